//! The request side of the Responses API: a domain `ChatRequest` → the JSON
//! body of `POST {base}/responses` (`stream: true`, `store: false`).
//!
//! Encrypted reasoning round trip: a reasoning item the model returned comes
//! to the client as a reasoning block whose `signature` is `<item id>:<encrypted
//! content>` (opaque to the client; see decode.rs). Sent back in a later turn,
//! that block becomes the `reasoning` input item it came from (id, encrypted
//! content, its text as the summary). Other providers' signatures (no `rs_`-style
//! id before a colon) and unsigned reasoning are not sent: with `store: false`
//! OpenAI cannot use reasoning without its encrypted content.

use serde_json::{json, Map, Value};

use super::super::wire::image_url;

use crate::{
    chat::types::{
        ChatRequest, Content, Effort, File, FileSource, Message, Reasoning, ResponseFormat, Role,
        ToolChoice,
    },
    error::Error,
    provider::{
        codec::{self, Supports},
        ModelOptions,
    },
};

/// What the Responses API maps of the optional request fields. It has no
/// stop sequences, seed, top-k or penalties (refused, naming the field); audio
/// input and participant names have no input form here; caching is automatic.
pub const SUPPORTS: Supports = Supports {
    reasoning: true,
    response_format: true,
    provider_options: true,
    seed: false,
    top_k: false,
    penalties: false,
    parallel_tool_calls: true,
    message_name: false,
    tool_strict: true,
    files: true,
    audio: false,
    tool_result_blocks: false,
    cache_control: true,
};

/// Keys of the body chatwire writes itself (providerOptions may not set them).
pub const OWNED: &[&str] = &[
    "model",
    "input",
    "stream",
    "store",
    "include",
    "tools",
    "tool_choice",
    "max_output_tokens",
    "temperature",
    "top_p",
    "reasoning",
    "text",
    "parallel_tool_calls",
    "previous_response_id",
];

const PROVIDER: &str = "openai-responses";

/// The JSON body for `POST {base}/responses`.
pub fn body(
    model: &str,
    req: &ChatRequest,
    options: &ModelOptions,
    default_max_tokens: Option<u32>,
) -> Result<Value, Error> {
    codec::refuse_unsupported(req, PROVIDER, SUPPORTS)?;
    if !req.stop.is_empty() {
        return Err(Error::invalid(
            "stop: the openai-responses provider does not support stop sequences (the Responses API has none)",
        ));
    }
    let mut b = Map::new();
    b.insert("model".into(), json!(model));
    b.insert("input".into(), Value::Array(input(&req.messages)?));
    b.insert("stream".into(), json!(true));
    b.insert("store".into(), json!(false));
    if let Some(max) = codec::max_tokens(req, options, default_max_tokens) {
        b.insert("max_output_tokens".into(), json!(max));
    }
    if let Some(t) = req.temperature {
        b.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        b.insert("top_p".into(), json!(p));
    }
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut f = codec::tool_declaration(t);
                f.insert("type".into(), json!("function"));
                f.insert("parameters".into(), Value::Object(t.parameters.clone()));
                if let Some(strict) = t.strict {
                    f.insert("strict".into(), json!(strict));
                }
                Value::Object(f)
            })
            .collect();
        b.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = &req.tool_choice {
        let v = match choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Any => json!("required"),
            ToolChoice::Tool(name) => json!({ "type": "function", "name": name }),
        };
        b.insert("tool_choice".into(), v);
    }
    if let Some(v) = req.parallel_tool_calls.filter(|_| !req.tools.is_empty()) {
        b.insert("parallel_tool_calls".into(), json!(v));
    }
    if let Some(r) = &req.reasoning {
        if r.budget_tokens.is_some() {
            return Err(Error::invalid(
                "reasoning.budgetTokens: the openai-responses provider takes an effort level, not a token budget",
            ));
        }
        let mut reasoning = Map::new();
        let effort = r.effort.map(|e| match e {
            Effort::None => "none",
            Effort::Minimal => "minimal",
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
        });
        if let Some(e) = effort {
            reasoning.insert("effort".into(), json!(e));
        }
        if r.include == Some(true) {
            reasoning.insert("summary".into(), json!("auto"));
        }
        if !reasoning.is_empty() {
            b.insert("reasoning".into(), Value::Object(reasoning));
        }
        // Reasoning asked for: its encrypted form comes back (store is false,
        // so that is the only way to carry it into the next turn).
        if r.effort != Some(Effort::None) {
            b.insert("include".into(), json!(["reasoning.encrypted_content"]));
        }
    }
    match &req.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            b.insert(
                "text".into(),
                json!({ "format": { "type": "json_object" } }),
            );
        }
        Some(ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
            description,
        }) => {
            let mut f = Map::new();
            f.insert("type".into(), json!("json_schema"));
            f.insert("name".into(), json!(name));
            f.insert("schema".into(), Value::Object(schema.clone()));
            f.insert("strict".into(), json!(strict));
            if !description.is_empty() {
                f.insert("description".into(), json!(description));
            }
            b.insert("text".into(), json!({ "format": f }));
        }
    }
    codec::merge_provider_options(&mut b, &options.provider_options, OWNED, PROVIDER)?;
    codec::merge_provider_options(&mut b, &req.provider_options, OWNED, PROVIDER)?;
    Ok(Value::Object(b))
}

/// The conversation as input items, in order: messages (system, user,
/// assistant text), `function_call` / `function_call_output` items and
/// `reasoning` items.
fn input(msgs: &[Message]) -> Result<Vec<Value>, Error> {
    let mut out = Vec::with_capacity(msgs.len());
    for (i, m) in msgs.iter().enumerate() {
        if matches!(m.role, Role::System | Role::Assistant) {
            if let Some(j) = m
                .content
                .iter()
                .position(|c| matches!(c, Content::Image(_) | Content::File(_)))
            {
                return Err(Error::invalid(format!(
                    "messages[{i}].content[{j}]: the openai-responses provider takes images and files in user messages only"
                )));
            }
        }
        match m.role {
            Role::System => out.push(json!({ "role": "system", "content": m.text() })),
            Role::User => user(m, &mut out)?,
            Role::Assistant => assistant(m, &mut out),
            Role::Tool => {
                let before = out.len();
                tool_results(m, &mut out);
                if out.len() == before {
                    return Err(Error::invalid(format!(
                        "messages[{i}]: a tool message needs a toolResult block (its toolCallId answers the assistant's tool call)"
                    )));
                }
            }
        }
    }
    Ok(out)
}

fn user(m: &Message, out: &mut Vec<Value>) -> Result<(), Error> {
    tool_results(m, out);
    let has_media = m
        .content
        .iter()
        .any(|c| matches!(c, Content::Image(_) | Content::File(_)));
    let has_text = m.content.iter().any(|c| matches!(c, Content::Text(_)));
    if has_media {
        let mut parts = Vec::new();
        for c in &m.content {
            match c {
                Content::Text(t) => parts.push(json!({ "type": "input_text", "text": t })),
                Content::Image(img) => parts.push(json!({
                    "type": "input_image",
                    "image_url": image_url(img),
                })),
                Content::File(f) => parts.push(file_part(f)),
                _ => {}
            }
        }
        out.push(json!({ "role": "user", "content": parts }));
    } else if has_text
        || !m
            .content
            .iter()
            .any(|c| matches!(c, Content::ToolResult(_)))
    {
        out.push(json!({ "role": "user", "content": m.text() }));
    }
    Ok(())
}

fn file_part(f: &File) -> Value {
    let mut p = Map::new();
    p.insert("type".into(), json!("input_file"));
    match &f.source {
        FileSource::Data(data) => {
            if !f.filename.is_empty() {
                p.insert("filename".into(), json!(f.filename));
            }
            p.insert(
                "file_data".into(),
                json!(codec::data_url(&f.mime_type, data)),
            );
        }
        FileSource::Url(u) => {
            p.insert("file_url".into(), json!(u));
        }
    }
    Value::Object(p)
}

fn tool_results(m: &Message, out: &mut Vec<Value>) {
    for c in &m.content {
        if let Content::ToolResult(r) = c {
            out.push(json!({
                "type": "function_call_output",
                "call_id": r.tool_call_id,
                "output": r.content,
            }));
        }
    }
}

/// An assistant turn, block by block in order: adjacent text (and refusal
/// text) as one assistant message, tool calls as `function_call` items,
/// signed reasoning as the `reasoning` item it came from.
fn assistant(m: &Message, out: &mut Vec<Value>) {
    let mut text = String::new();
    let flush = |text: &mut String, out: &mut Vec<Value>| {
        if !text.is_empty() {
            out.push(json!({ "role": "assistant", "content": std::mem::take(text) }));
        }
    };
    for c in &m.content {
        match c {
            Content::Text(t) | Content::Refusal(t) => text.push_str(t),
            Content::ToolCall(tc) => {
                flush(&mut text, out);
                out.push(json!({
                    "type": "function_call",
                    "call_id": tc.id,
                    "name": tc.name,
                    "arguments": tc.arguments_text(),
                }));
            }
            Content::Reasoning(r) => {
                if let Some(item) = reasoning_item(r) {
                    flush(&mut text, out);
                    out.push(item);
                }
            }
            _ => {}
        }
    }
    flush(&mut text, out);
}

/// The reasoning item a signed reasoning block came from (see the module doc).
fn reasoning_item(r: &Reasoning) -> Option<Value> {
    let (id, encrypted) = split_signature(&r.signature)?;
    let summary = if r.text.is_empty() {
        json!([])
    } else {
        json!([{ "type": "summary_text", "text": r.text }])
    };
    Some(json!({
        "type": "reasoning",
        "id": id,
        "encrypted_content": encrypted,
        "summary": summary,
    }))
}

/// `<item id>:<encrypted content>` → its two parts; None for anything else
/// (another provider's signature, an empty one).
pub fn split_signature(sig: &str) -> Option<(&str, &str)> {
    let (id, enc) = sig.split_once(':')?;
    let id_ok = id.starts_with("rs_")
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    (id_ok && !enc.is_empty()).then_some((id, enc))
}

/// The signature a reasoning block carries for a reasoning item.
pub fn signature(id: &str, encrypted: &str) -> String {
    format!("{id}:{encrypted}")
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
