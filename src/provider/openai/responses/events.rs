//! The Responses API's stream as serde reads it: the event envelope, output
//! items, the response object (usage, incomplete details) and annotations.
//! Only what the decoder uses is named; everything else is skipped.

use std::borrow::Cow;

use serde::Deserialize;

use crate::provider::json_str::JsonStr;

#[derive(Deserialize)]
pub(super) struct Event<'a> {
    #[serde(rename = "type", default, borrow)]
    pub(super) kind: Cow<'a, str>,
    #[serde(default)]
    pub(super) output_index: Option<u32>,
    #[serde(default)]
    pub(super) summary_index: Option<u32>,
    #[serde(default, borrow)]
    pub(super) delta: Option<JsonStr<'a>>,
    #[serde(default)]
    pub(super) item: Option<Item>,
    #[serde(default)]
    pub(super) response: Option<Response>,
    #[serde(default)]
    pub(super) annotation: Option<Annotation>,
    /// The `error` event's own fields (or a nested `error` object).
    #[serde(default)]
    pub(super) code: Option<serde_json::Value>,
    #[serde(default)]
    pub(super) message: Option<String>,
    #[serde(default)]
    pub(super) error: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
pub(super) struct Item {
    #[serde(rename = "type", default)]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) id: String,
    #[serde(default)]
    pub(super) call_id: String,
    #[serde(default)]
    pub(super) name: String,
    #[serde(default)]
    pub(super) arguments: String,
    #[serde(default)]
    pub(super) encrypted_content: Option<String>,
    #[serde(default)]
    pub(super) summary: Vec<TextPart>,
    #[serde(default)]
    pub(super) content: Vec<TextPart>,
}

#[derive(Deserialize, Default)]
pub(super) struct TextPart {
    #[serde(rename = "type", default)]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) text: String,
    #[serde(default)]
    pub(super) refusal: String,
}

#[derive(Deserialize)]
pub(super) struct Response {
    #[serde(default)]
    pub(super) id: String,
    #[serde(default)]
    pub(super) model: String,
    #[serde(default)]
    pub(super) usage: Option<WireUsage>,
    #[serde(default)]
    pub(super) incomplete_details: Option<Incomplete>,
    #[serde(default)]
    pub(super) error: Option<serde_json::Value>,
    #[serde(default)]
    pub(super) service_tier: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct Incomplete {
    #[serde(default)]
    pub(super) reason: String,
}

#[derive(Deserialize)]
pub(super) struct WireUsage {
    #[serde(default)]
    pub(super) input_tokens: u32,
    #[serde(default)]
    pub(super) output_tokens: u32,
    #[serde(default)]
    pub(super) total_tokens: Option<u32>,
    #[serde(default)]
    pub(super) input_tokens_details: Option<InputDetails>,
    #[serde(default)]
    pub(super) output_tokens_details: Option<OutputDetails>,
}

#[derive(Deserialize)]
pub(super) struct InputDetails {
    #[serde(default)]
    pub(super) cached_tokens: u32,
}

#[derive(Deserialize)]
pub(super) struct OutputDetails {
    #[serde(default)]
    pub(super) reasoning_tokens: u32,
}

#[derive(Deserialize)]
pub(super) struct Annotation {
    #[serde(rename = "type", default)]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) url: String,
    #[serde(default)]
    pub(super) title: String,
    #[serde(default)]
    pub(super) start_index: i64,
    #[serde(default)]
    pub(super) end_index: i64,
}
