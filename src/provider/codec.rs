//! Small shared pieces of the providers' request builders: base64 and `data:`
//! URLs for inline images, the max-tokens fallback, tool-call names by id, role
//! turns merged, tool declarations, sampling settings (and the pump's
//! whole-body run, re-exported for the providers).

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::ModelOptions;
use crate::{
    chat::types::{ChatRequest, Content, Message, Tool},
    error::Error,
};

/// A request body's bytes. `serde_json::to_vec` writes straight into the
/// buffer; `Value`'s `Display` (`to_string()`) goes through the formatting
/// machinery piece by piece, about twice the work for the same bytes.
pub fn json_body<T: serde::Serialize + ?Sized>(body: &T, provider: &str) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(body)
        .map_err(|e| Error::internal(format!("encoding the {provider} request failed: {e}")))
}

/// A `data:` URL carrying `bytes` base64-encoded (OpenAI's image and file inputs).
pub fn data_url(mime_type: &str, bytes: &[u8]) -> String {
    format!("data:{mime_type};base64,{}", base64(bytes))
}

/// Standard base64 with padding (RFC 4648).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextets = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for (k, s) in sextets.iter().enumerate() {
            if k <= chunk.len() {
                out.push(char::from(ALPHABET[*s as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The whole-body run of the one pump (kept here for the providers' callers).
pub use super::pump::decode_body;

/// A `data:<mime>;base64,<payload>` URL as its media type and its payload
/// (still base64); `None` for any other URL.
pub fn split_data_url(url: &str) -> Option<(&str, &str)> {
    url.strip_prefix("data:")?.split_once(";base64,")
}

/// The max tokens to ask for: the request's, else the model's configured
/// default, else the provider's (its settings). A provider whose API demands a
/// value puts its own constant after this.
pub fn max_tokens(
    req: &ChatRequest,
    options: &ModelOptions,
    provider_default: Option<u32>,
) -> Option<u32> {
    req.max_tokens
        .or(options.default_max_tokens)
        .or(provider_default)
}

/// The function names of the tool calls a conversation has made so far, by
/// call id: what a tool result needs on a wire that names the function rather
/// than the call. Fed each message after it is built, so a result sees only
/// the calls before it; the nearest earlier call with the id wins (within one
/// message, the first). One pass over the request, one lookup per result.
#[derive(Debug, Default)]
pub struct ToolNames<'a>(HashMap<&'a str, &'a str>);

impl<'a> ToolNames<'a> {
    /// The name of the call `id`, if an earlier message made it.
    pub fn get(&self, id: &str) -> Option<&'a str> {
        self.0.get(id).copied()
    }

    /// Records the tool calls of `msg`.
    pub fn add(&mut self, msg: &'a Message) {
        // Backwards, so that within one message the first call with an id wins.
        for c in msg.content.iter().rev() {
            if let Content::ToolCall(tc) = c {
                self.0.insert(&tc.id, &tc.name);
            }
        }
    }
}

/// Appends one message's blocks as a turn of `role`, merged into the last turn
/// when that has the same role (for wires that want roles to alternate); a
/// message without blocks adds nothing.
pub fn push_turn(
    turns: &mut Vec<(&'static str, Vec<Value>)>,
    role: &'static str,
    blocks: Vec<Value>,
) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some((r, prev)) if *r == role => prev.extend(blocks),
        _ => turns.push((role, blocks)),
    }
}

/// A tool's `name`, and its `description` when it has one: how a function
/// declaration starts on every wire that leaves an empty description out (the
/// caller adds the schema under its wire's key).
pub fn tool_declaration(t: &Tool) -> Map<String, Value> {
    let mut d = Map::new();
    d.insert("name".into(), Value::String(t.name.clone()));
    if !t.description.is_empty() {
        d.insert("description".into(), Value::String(t.description.clone()));
    }
    d
}

/// The request's sampling settings that are set (temperature, top-p, stop
/// sequences), under the wire's names for them, in that order.
pub fn insert_sampling(map: &mut Map<String, Value>, req: &ChatRequest, keys: [&str; 3]) {
    let [temperature, top_p, stop] = keys;
    if let Some(t) = req.temperature {
        map.insert(temperature.into(), t.into());
    }
    if let Some(p) = req.top_p {
        map.insert(top_p.into(), p.into());
    }
    if !req.stop.is_empty() {
        map.insert(stop.into(), req.stop.clone().into());
    }
}

/// Merges `providerOptions` (the request's, over the model's from the
/// config) into the upstream body. `owned` are the keys chatwire builds
/// itself (model, messages, stream, tools...): setting one is INVALID_ARGUMENT
/// naming the key and the provider, never a silent override.
pub fn merge_provider_options(
    body: &mut Map<String, Value>,
    options: &Map<String, Value>,
    owned: &[&str],
    provider: &str,
) -> Result<(), crate::error::Error> {
    for (k, v) in options {
        if owned.contains(&k.as_str()) {
            return Err(crate::error::Error::invalid(format!(
                "providerOptions.{k}: chatwire sets {k:?} itself for the {provider} provider; use the request's own field"
            )));
        }
        body.insert(k.clone(), v.clone());
    }
    Ok(())
}

/// What a provider maps of the request's optional fields. Anything asked for
/// that the provider does not map is INVALID_ARGUMENT naming the field and the
/// provider: nothing is dropped silently.
#[derive(Clone, Copy, Debug, Default)]
pub struct Supports {
    pub reasoning: bool,
    pub response_format: bool,
    pub provider_options: bool,
    pub seed: bool,
    pub top_k: bool,
    pub penalties: bool,
    pub parallel_tool_calls: bool,
    pub message_name: bool,
    pub tool_strict: bool,
    pub files: bool,
    pub audio: bool,
    pub tool_result_blocks: bool,
    /// Cache breakpoints are honoured (Anthropic) or harmless (automatic caching).
    pub cache_control: bool,
}

impl Supports {
    /// The ListModels feature words for what this provider maps (the README's
    /// per-provider table uses the same words).
    pub fn words(&self) -> Vec<&'static str> {
        [
            (self.reasoning, "reasoning"),
            (self.response_format, "structured_output"),
            (self.provider_options, "provider_options"),
            (self.seed, "seed"),
            (self.top_k, "top_k"),
            (self.penalties, "penalties"),
            (self.parallel_tool_calls, "parallel_tool_calls"),
            (self.message_name, "participant_names"),
            (self.tool_strict, "strict_tools"),
            (self.files, "files"),
            (self.audio, "audio"),
            (self.tool_result_blocks, "tool_result_blocks"),
            (self.cache_control, "cache_control"),
        ]
        .into_iter()
        .filter_map(|(on, w)| on.then_some(w))
        .collect()
    }
}

/// The feature list of a provider: what it always does, then what it maps.
pub fn features(base: &[&'static str], s: Supports) -> Vec<&'static str> {
    let mut f = base.to_vec();
    for w in s.words() {
        if !f.contains(&w) {
            f.push(w);
        }
    }
    f
}

/// Refuses the fields `provider` does not map (see `Supports`).
pub fn refuse_unsupported(
    req: &ChatRequest,
    provider: &str,
    s: Supports,
) -> Result<(), crate::error::Error> {
    let no = |field: &str| {
        Err(crate::error::Error::invalid(format!(
            "{field}: the {provider} provider does not support it"
        )))
    };
    if req.reasoning.is_some() && !s.reasoning {
        return no("reasoning");
    }
    if req
        .response_format
        .as_ref()
        .is_some_and(|f| *f != crate::chat::types::ResponseFormat::Text)
        && !s.response_format
    {
        return no("responseFormat");
    }
    if !req.provider_options.is_empty() && !s.provider_options {
        return no("providerOptions");
    }
    if req.seed.is_some() && !s.seed {
        return no("seed");
    }
    if req.top_k.is_some() && !s.top_k {
        return no("topK");
    }
    if req.frequency_penalty.is_some() && !s.penalties {
        return no("frequencyPenalty");
    }
    if req.presence_penalty.is_some() && !s.penalties {
        return no("presencePenalty");
    }
    if req.parallel_tool_calls.is_some() && !s.parallel_tool_calls {
        return no("parallelToolCalls");
    }
    for (i, t) in req.tools.iter().enumerate() {
        if t.strict.is_some() && !s.tool_strict {
            return no(&format!("tools[{i}].strict"));
        }
        if t.cache.is_some() && !s.cache_control {
            return no(&format!("tools[{i}].cacheControl"));
        }
    }
    for (i, m) in req.messages.iter().enumerate() {
        if !m.name.is_empty() && !s.message_name {
            return no(&format!("messages[{i}].name"));
        }
        if !m.cache.is_empty() && !s.cache_control {
            return no(&format!("messages[{i}].cacheControl"));
        }
        for (j, c) in m.content.iter().enumerate() {
            match c {
                Content::File(_) if !s.files => {
                    return no(&format!("messages[{i}].content[{j}].file"))
                }
                Content::Audio(_) if !s.audio => {
                    return no(&format!("messages[{i}].content[{j}].audio"))
                }
                Content::ToolResult(r) if !r.blocks.is_empty() && !s.tool_result_blocks => {
                    return no(&format!("messages[{i}].content[{j}].toolResult.blocks"))
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::chat::types::{Role, ToolCall};

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn data_urls_split_into_mime_and_payload() {
        assert_eq!(
            split_data_url("data:image/png;base64,QUJD"),
            Some(("image/png", "QUJD"))
        );
        assert_eq!(split_data_url("data:image/png,QUJD"), None);
        assert_eq!(split_data_url("https://x/y.png"), None);
    }

    #[test]
    fn max_tokens_request_then_model_then_provider() {
        let mut req = ChatRequest::default();
        let mut options = ModelOptions::default();
        assert_eq!(max_tokens(&req, &options, None), None);
        assert_eq!(max_tokens(&req, &options, Some(7)), Some(7));
        options.default_max_tokens = Some(9);
        assert_eq!(max_tokens(&req, &options, Some(7)), Some(9));
        req.max_tokens = Some(11);
        assert_eq!(max_tokens(&req, &options, Some(7)), Some(11));
    }

    #[test]
    fn tool_names_see_earlier_calls_the_nearest_first() {
        let call = |id: &str, name: &str| {
            Content::ToolCall(ToolCall {
                id: id.into(),
                name: name.into(),
                arguments: serde_json::Map::new(),
                ..Default::default()
            })
        };
        let msgs = [
            Message {
                role: Role::Assistant,
                content: vec![call("a", "old"), call("b", "first"), call("b", "second")],
                ..Default::default()
            },
            Message {
                role: Role::Assistant,
                content: vec![call("a", "new")],
                ..Default::default()
            },
        ];
        let mut names = ToolNames::default();
        assert_eq!(names.get("a"), None);
        names.add(&msgs[0]);
        assert_eq!(
            (names.get("a"), names.get("b")),
            (Some("old"), Some("first"))
        );
        names.add(&msgs[1]);
        assert_eq!(
            (names.get("a"), names.get("b")),
            (Some("new"), Some("first"))
        );
        assert_eq!(names.get("c"), None);
    }

    #[test]
    fn turns_of_one_role_merge_and_empty_ones_vanish() {
        let mut turns = Vec::new();
        push_turn(&mut turns, "user", vec![json!(1)]);
        push_turn(&mut turns, "user", vec![json!(2)]);
        push_turn(&mut turns, "model", Vec::new());
        push_turn(&mut turns, "model", vec![json!(3)]);
        push_turn(&mut turns, "user", vec![json!(4)]);
        assert_eq!(
            turns,
            vec![
                ("user", vec![json!(1), json!(2)]),
                ("model", vec![json!(3)]),
                ("user", vec![json!(4)]),
            ]
        );
    }

    #[test]
    fn tool_declarations_leave_an_empty_description_out() {
        let t = Tool {
            name: "f".into(),
            description: String::new(),
            parameters: Map::new(),
            ..Default::default()
        };
        assert_eq!(Value::Object(tool_declaration(&t)), json!({"name": "f"}));
        let t = Tool {
            description: "d".into(),
            ..t
        };
        assert_eq!(
            Value::Object(tool_declaration(&t)),
            json!({"name": "f", "description": "d"})
        );
    }

    #[test]
    fn sampling_settings_go_under_the_wires_names_when_set() {
        let mut m = Map::new();
        let mut req = ChatRequest::default();
        insert_sampling(&mut m, &req, ["t", "p", "s"]);
        assert!(m.is_empty());
        req.temperature = Some(0.5);
        req.top_p = Some(0.25);
        req.stop = vec!["END".into()];
        insert_sampling(&mut m, &req, ["t", "p", "s"]);
        assert_eq!(Value::Object(m), json!({"t": 0.5, "p": 0.25, "s": ["END"]}));
    }
}
