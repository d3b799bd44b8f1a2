//! The wire shape of a Chat Completions `chat.completion.chunk`, as the
//! decoder (`super::decode`) reads it: borrowed from the frame wherever the
//! text has no escapes, so a token's chunk costs its text and its `choices`
//! array. (Reading choice 0 inline instead of into a `Vec` saved that
//! allocation but made the decoder 8–20 % slower: the chunk it builds is then
//! about twice the size, and is moved several times on its way.)

use std::fmt;

use serde::{
    de::{self, SeqAccess, Visitor},
    Deserialize, Deserializer,
};

use crate::provider::json_str::JsonStr;

#[derive(Deserialize)]
pub(super) struct WireChunk<'a> {
    #[serde(default, borrow)]
    pub(super) id: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    pub(super) model: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    pub(super) choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    pub(super) usage: Option<WireUsage>,
    #[serde(default, borrow)]
    pub(super) system_fingerprint: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    pub(super) service_tier: Option<JsonStr<'a>>,
    /// Read only when present (the error path), so `Value` is fine here.
    #[serde(default)]
    pub(super) error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
pub(super) struct Choice<'a> {
    #[serde(default)]
    pub(super) index: Option<u32>,
    #[serde(default, borrow)]
    pub(super) delta: Option<WireDelta<'a>>,
    #[serde(default, borrow)]
    pub(super) finish_reason: Option<JsonStr<'a>>,
}

#[derive(Deserialize)]
pub(super) struct WireDelta<'a> {
    #[serde(default)]
    pub(super) content: Option<ContentField>,
    #[serde(default, borrow)]
    pub(super) refusal: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    pub(super) reasoning_content: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    pub(super) reasoning: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    pub(super) tool_calls: Option<Vec<ToolCallDelta<'a>>>,
    #[serde(default, borrow)]
    pub(super) function_call: Option<FunctionDelta<'a>>,
}

/// `content` is a string (everyone) or typed parts (Mistral's reasoning
/// models), told apart by the JSON type (not by serde's `untagged`, which
/// buffers the value and tries each variant in turn).
pub(super) enum ContentField {
    Text(String),
    Parts(Vec<ContentPart>),
}

impl<'de> Deserialize<'de> for ContentField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ContentVisitor;
        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = ContentField;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of content parts")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ContentField, E> {
                Ok(ContentField::Text(v.to_owned()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<ContentField, E> {
                Ok(ContentField::Text(v))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<ContentField, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(ContentField::Parts)
            }
        }
        d.deserialize_any(ContentVisitor)
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum ContentPart {
    Text {
        #[serde(default)]
        text: String,
    },
    Thinking {
        #[serde(default)]
        thinking: Vec<ThinkingPart>,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
pub(super) struct ThinkingPart {
    #[serde(default)]
    pub(super) text: String,
}

#[derive(Deserialize)]
pub(super) struct ToolCallDelta<'a> {
    #[serde(default)]
    pub(super) index: Option<u32>,
    #[serde(default, borrow)]
    pub(super) id: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    pub(super) function: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
pub(super) struct FunctionDelta<'a> {
    #[serde(default, borrow)]
    pub(super) name: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    pub(super) arguments: Option<JsonStr<'a>>,
}

#[derive(Deserialize)]
pub(super) struct WireUsage {
    #[serde(default)]
    pub(super) prompt_tokens: Option<u32>,
    #[serde(default)]
    pub(super) completion_tokens: Option<u32>,
    #[serde(default)]
    pub(super) total_tokens: Option<u32>,
    #[serde(default)]
    pub(super) prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    pub(super) completion_tokens_details: Option<CompletionDetails>,
    /// DeepSeek's name for cached prompt tokens.
    #[serde(default)]
    pub(super) prompt_cache_hit_tokens: Option<u32>,
}

#[derive(Deserialize)]
pub(super) struct PromptDetails {
    #[serde(default)]
    pub(super) cached_tokens: Option<u32>,
}

#[derive(Deserialize)]
pub(super) struct CompletionDetails {
    #[serde(default)]
    pub(super) reasoning_tokens: Option<u32>,
}
