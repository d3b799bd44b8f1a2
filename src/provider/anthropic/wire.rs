//! The request side: a chatwire request as an Anthropic Messages API body.
//! System messages become the top-level `system`; tool results travel in user
//! messages; consecutive messages of one role are merged (Anthropic demands
//! alternation); reasoning with its signature goes back as `thinking`.
//!
//! Every optional field either has its Anthropic form here or is refused
//! (`SUPPORTS`, and the checks below) with INVALID_ARGUMENT naming the field
//! and the provider; nothing is dropped silently.

use serde_json::{json, Map, Value};

use super::thinking::{check_thinking, thinking, Thinking};
use crate::{
    chat::types::{
        ChatRequest, Content, File, FileSource, Image, ResponseFormat, Role, Tool, ToolCall,
        ToolChoice,
    },
    error::Error,
    provider::{codec::Supports, Call},
};

/// Anthropic demands a max_tokens: this one goes when neither the request, the
/// model nor the provider sets one (with thinking on: the budget plus this).
const DEFAULT_MAX_TOKENS: u32 = 1024;

/// The beta that turns on structured outputs (`output_format`, strict tools).
pub(super) const STRUCTURED_OUTPUTS_BETA: &str = "structured-outputs-2025-11-13";

/// The body keys chatwire writes itself: `providerOptions` may not set them
/// (`metadata`, `service_tier`, `container`... stay open).
pub(super) const OWNED: &[&str] = &[
    "model",
    "messages",
    "system",
    "stream",
    "max_tokens",
    "tools",
    "tool_choice",
    "thinking",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "output_format",
];

/// What the Messages API takes of the request's optional fields: no seed, no
/// penalties, no participant names, no audio input.
pub(super) const SUPPORTS: Supports = Supports {
    reasoning: true,
    response_format: true,
    provider_options: true,
    seed: false,
    top_k: true,
    penalties: false,
    parallel_tool_calls: true,
    message_name: false,
    tool_strict: true,
    files: true,
    audio: false,
    tool_result_blocks: true,
    cache_control: true,
};

/// The `anthropic-beta` features the body needs: structured outputs for a
/// JSON schema response format or a strict tool.
pub(super) fn betas(req: &ChatRequest) -> Vec<&'static str> {
    let schema = matches!(req.response_format, Some(ResponseFormat::JsonSchema { .. }));
    let strict = req.tools.iter().any(|t| t.strict == Some(true));
    if schema || strict {
        vec![STRUCTURED_OUTPUTS_BETA]
    } else {
        Vec::new()
    }
}

/// The JSON body for one streamed call. `default_max_tokens` is the provider's
/// configured default (the file), used when neither the request nor the model
/// sets one. Anthropic's own constraints (thinking, response format, content)
/// are INVALID_ARGUMENT naming the field; the fields it has no form for at all
/// are refused before (`SUPPORTS`).
pub(super) fn body(
    call: &Call,
    default_max_tokens: Option<u32>,
) -> Result<Map<String, Value>, Error> {
    let req = &call.request;
    let mut system: Vec<Value> = Vec::new();
    let mut messages: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        let at = |j: usize| format!("messages[{i}].content[{j}]");
        let mut blocks = Vec::with_capacity(m.content.len());
        // Where each content block went in `blocks` (None: nothing was sent).
        let mut placed = Vec::with_capacity(m.content.len());
        for (j, c) in m.content.iter().enumerate() {
            let v = if m.role == Role::System {
                match c {
                    Content::Text(t) if t.is_empty() => None,
                    Content::Text(t) => Some(json!({"type": "text", "text": t})),
                    _ => {
                        return Err(Error::invalid(format!(
                            "{}: anthropic's system prompt takes text only",
                            at(j)
                        )))
                    }
                }
            } else {
                block(c, &|| at(j))?
            };
            placed.push(v.is_some().then_some(blocks.len()));
            blocks.extend(v);
        }
        for (j, ttl) in &m.cache {
            // A breakpoint on a block that sends nothing goes on the one before it.
            let target = placed
                .get(..=*j)
                .and_then(|p| p.iter().rev().find_map(|x| *x));
            let Some(marked) = target.and_then(|k| blocks.get_mut(k)) else {
                return Err(Error::invalid(format!(
                    "{}.cacheControl: the block sends nothing to anthropic (empty), so there is nothing to cache up to",
                    at(*j)
                )));
            };
            if let Value::Object(o) = marked {
                o.insert(
                    "cache_control".into(),
                    cache_control(ttl, &|| format!("{}.cacheControl", at(*j)))?,
                );
            }
        }
        let role = match m.role {
            Role::System => {
                system.extend(blocks);
                continue;
            }
            Role::User | Role::Tool => "user",
            Role::Assistant => "assistant",
        };
        crate::provider::codec::push_turn(&mut messages, role, blocks);
    }

    let think = thinking(req);
    let max_tokens =
        match crate::provider::codec::max_tokens(req, &call.options, default_max_tokens) {
            Some(m) => m,
            // Nobody set one: room for the thinking and an answer.
            None => match think {
                Thinking::On { budget, .. } => budget.saturating_add(DEFAULT_MAX_TOKENS),
                _ => DEFAULT_MAX_TOKENS,
            },
        };
    if let Thinking::On { budget, from } = think {
        check_thinking(req, budget, from, max_tokens)?;
    }

    let mut b = Map::new();
    b.insert("model".into(), json!(call.model));
    b.insert("max_tokens".into(), json!(max_tokens));
    b.insert("stream".into(), json!(true));
    if system.iter().any(|s| s.get("cache_control").is_some()) {
        // A breakpoint needs the block form.
        b.insert("system".into(), Value::Array(system));
    } else if !system.is_empty() {
        let texts: Vec<&str> = system.iter().filter_map(|s| s["text"].as_str()).collect();
        b.insert("system".into(), json!(texts.join("\n\n")));
    }
    b.insert(
        "messages".into(),
        Value::Array(
            messages
                .into_iter()
                .map(|(role, content)| json!({"role": role, "content": content}))
                .collect(),
        ),
    );
    crate::provider::codec::insert_sampling(
        &mut b,
        req,
        ["temperature", "top_p", "stop_sequences"],
    );
    if let Some(k) = req.top_k {
        b.insert("top_k".into(), json!(k));
    }
    match think {
        Thinking::Unset => {}
        Thinking::Off => {
            b.insert("thinking".into(), json!({"type": "disabled"}));
        }
        Thinking::On { budget, .. } => {
            b.insert(
                "thinking".into(),
                json!({"type": "enabled", "budget_tokens": budget}),
            );
        }
    }
    match &req.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            return Err(Error::invalid(
                "responseFormat: JSON_OBJECT has no native form on anthropic; give a JSON_SCHEMA (structured outputs) or force a tool call (toolChoice) whose input is the object",
            ))
        }
        Some(ResponseFormat::JsonSchema {
            schema,
            description,
            ..
        }) => {
            // Anthropic's format is the schema alone (always strict, unnamed):
            // the description goes in the schema unless it has its own.
            let mut schema = schema.clone();
            if !description.is_empty() && !schema.contains_key("description") {
                schema.insert("description".into(), json!(description));
            }
            b.insert(
                "output_format".into(),
                json!({"type": "json_schema", "schema": schema}),
            );
        }
    }
    if !req.tools.is_empty() {
        let tools = req
            .tools
            .iter()
            .enumerate()
            .map(|(i, t)| tool(t, i))
            .collect::<Result<Vec<_>, _>>()?;
        b.insert("tools".into(), Value::Array(tools));
    }
    let mut choice = req.tool_choice.as_ref().map(|choice| match choice {
        ToolChoice::Auto => json!({"type": "auto"}),
        ToolChoice::Any => json!({"type": "any"}),
        ToolChoice::None => json!({"type": "none"}),
        ToolChoice::Tool(name) => json!({"type": "tool", "name": name}),
    });
    // One tool call per turn: Anthropic says so on the tool choice (auto when
    // none is set). Without tools, or with NONE, there is nothing to limit.
    let none = matches!(req.tool_choice, Some(ToolChoice::None));
    if req.parallel_tool_calls == Some(false) && !req.tools.is_empty() && !none {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if let Value::Object(o) = c {
            o.insert("disable_parallel_tool_use".into(), json!(true));
        }
    }
    if let Some(c) = choice {
        b.insert("tool_choice".into(), c);
    }
    Ok(b)
}

/// A tool definition: name, description, `input_schema`, `strict` when asked
/// for (structured outputs), and a cache breakpoint when marked.
fn tool(t: &Tool, i: usize) -> Result<Value, Error> {
    let mut o = crate::provider::codec::tool_declaration(t);
    let schema = if t.parameters.is_empty() {
        json!({"type": "object", "properties": {}})
    } else {
        Value::Object(t.parameters.clone())
    };
    o.insert("input_schema".into(), schema);
    if t.strict == Some(true) {
        o.insert("strict".into(), json!(true));
    }
    if let Some(ttl) = &t.cache {
        o.insert(
            "cache_control".into(),
            cache_control(ttl, &|| format!("tools[{i}].cacheControl"))?,
        );
    }
    Ok(Value::Object(o))
}

/// Anthropic's `cache_control`: ephemeral, with `ttl` only for one hour
/// ("5m" or empty is the default five minutes).
fn cache_control(ttl: &str, at: &dyn Fn() -> String) -> Result<Value, Error> {
    match ttl {
        "" | "5m" => Ok(json!({"type": "ephemeral"})),
        "1h" => Ok(json!({"type": "ephemeral", "ttl": "1h"})),
        other => Err(Error::invalid(format!(
            "{}.ttl: anthropic takes \"5m\" or \"1h\", not {other:?}",
            at()
        ))),
    }
}

/// One content block in Anthropic's shape (`None`: nothing to send, e.g. empty
/// text, which Anthropic rejects). `at` names the block for errors.
fn block(c: &Content, at: &dyn Fn() -> String) -> Result<Option<Value>, Error> {
    Ok(Some(match c {
        // Refused before the body is built (codec::refuse_unsupported).
        Content::Audio(_) => {
            return Err(Error::invalid(format!(
                "{}.audio: the anthropic provider does not support it",
                at()
            )))
        }
        Content::Text(t) | Content::Refusal(t) => {
            if t.is_empty() {
                return Ok(None);
            }
            json!({"type": "text", "text": t})
        }
        Content::Image(img) => json!({"type": "image", "source": image_source(img, at)?}),
        Content::File(f) => document(f, at)?,
        Content::ToolCall(tc) => json!({
            "type": "tool_use",
            "id": tc.id,
            "name": tc.name,
            "input": tool_input(tc, at)?,
        }),
        Content::ToolResult(tr) => {
            let mut o = Map::new();
            o.insert("type".into(), json!("tool_result"));
            o.insert("tool_use_id".into(), json!(tr.tool_call_id));
            if tr.blocks.is_empty() {
                o.insert("content".into(), json!(tr.content));
            } else {
                // The blocks, after the text content when there is one.
                let mut content = Vec::with_capacity(tr.blocks.len() + 1);
                if !tr.content.is_empty() {
                    content.push(json!({"type": "text", "text": tr.content}));
                }
                for (k, b) in tr.blocks.iter().enumerate() {
                    let at = || format!("{}.toolResult.blocks[{k}]", at());
                    content.extend(block(b, &at)?);
                }
                o.insert("content".into(), Value::Array(content));
            }
            if tr.is_error {
                o.insert("is_error".into(), json!(true));
            }
            Value::Object(o)
        }
        Content::Reasoning(r) => {
            if !r.redacted.is_empty() {
                json!({"type": "redacted_thinking", "data": r.redacted})
            } else {
                json!({"type": "thinking", "thinking": r.text, "signature": r.signature})
            }
        }
    }))
}

/// An image source: base64 for inline bytes and for a `data:` URL (Anthropic
/// fetches only http(s) URLs), else the URL.
fn image_source(img: &Image, at: &dyn Fn() -> String) -> Result<Value, Error> {
    Ok(match img {
        Image::Data { data, mime_type } => json!({
            "type": "base64",
            "media_type": mime_type,
            "data": crate::provider::codec::base64(data),
        }),
        Image::Url(url) => match crate::provider::codec::split_data_url(url) {
            Some((mime, data)) => json!({"type": "base64", "media_type": mime, "data": data}),
            None if url.starts_with("data:") => {
                return Err(Error::invalid(format!(
                "{}.image.url: anthropic takes a data: URL only in base64 (data:<type>;base64,...)",
                at()
            )))
            }
            None => json!({"type": "url", "url": url}),
        },
    })
}

/// A file as a `document` block: inline text/plain as a text source, other
/// inline bytes (PDF) and `data:` URLs as base64, http(s) URLs as a URL
/// source; the filename is the title.
fn document(f: &File, at: &dyn Fn() -> String) -> Result<Value, Error> {
    let source = match &f.source {
        FileSource::Data(data) if f.mime_type == "text/plain" => {
            let Ok(text) = std::str::from_utf8(data) else {
                return Err(Error::invalid(format!(
                    "{}.file.data: a text/plain document must be UTF-8 for anthropic",
                    at()
                )));
            };
            json!({"type": "text", "media_type": "text/plain", "data": text})
        }
        FileSource::Data(data) => json!({
            "type": "base64",
            "media_type": f.mime_type,
            "data": crate::provider::codec::base64(data),
        }),
        FileSource::Url(url) => match crate::provider::codec::split_data_url(url) {
            Some((mime, data)) => json!({"type": "base64", "media_type": mime, "data": data}),
            None if url.starts_with("data:") => {
                return Err(Error::invalid(format!(
                "{}.file.url: anthropic takes a data: URL only in base64 (data:<type>;base64,...)",
                at()
            )))
            }
            None => json!({"type": "url", "url": url}),
        },
    };
    let mut o = Map::new();
    o.insert("type".into(), json!("document"));
    o.insert("source".into(), source);
    if !f.filename.is_empty() {
        o.insert("title".into(), json!(f.filename));
    }
    Ok(Value::Object(o))
}

/// `tool_use.input`, an object: the call's arguments (their numbers exact,
/// serde_json keeps them as written), or its exact text parsed when only that
/// is known.
fn tool_input(tc: &ToolCall, at: &dyn Fn() -> String) -> Result<Value, Error> {
    if tc.arguments.is_empty() && !tc.arguments_json.trim().is_empty() {
        return match serde_json::from_str::<Value>(&tc.arguments_json) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(Error::invalid(format!(
                "{}.toolCall.argumentsJson: must be a JSON object (anthropic's tool_use.input is one)",
                at()
            ))),
        };
    }
    Ok(Value::Object(tc.arguments.clone()))
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
