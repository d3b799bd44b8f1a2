//! The request side: a chatwire request as a Bedrock Converse body.
//!
//! | chatwire | Converse |
//! |---|---|
//! | system messages (text) | `system: [{text}]` |
//! | user / tool messages, assistant messages | `messages: [{role, content}]` (one role per turn, merged) |
//! | text, image (bytes or `data:` URL), file (bytes or `data:` URL) | `{text}`, `{image: {format, source: {bytes}}}`, `{document: {format, name, source: {bytes}}}` |
//! | tool call, tool result (text, blocks, is_error) | `{toolUse: {toolUseId, name, input}}`, `{toolResult: {toolUseId, content, status}}` |
//! | reasoning (text + signature, or redacted) | `{reasoningContent: {reasoningText: {text, signature}}}` / `{reasoningContent: {redactedContent}}` |
//! | cache breakpoints (message blocks, tools) | `{cachePoint: {type: "default"}}` after the block / tool |
//! | maxTokens, temperature, topP, stop | `inferenceConfig.maxTokens/temperature/topP/stopSequences` |
//! | tools, toolChoice AUTO / ANY / a tool | `toolConfig.tools[].toolSpec`, `toolConfig.toolChoice.auto/any/tool` |
//! | reasoning (budget or effort), topK | `additionalModelRequestFields.thinking`, `.top_k` (Anthropic's names on Bedrock) |
//! | providerOptions | top-level keys (`guardrailConfig`, `performanceConfig`...); its `additionalModelRequestFields` merged key by key |
//!
//! Refused (INVALID_ARGUMENT naming the field): http(s) image or file URLs
//! (Converse takes bytes or S3 only), toolChoice NONE (Converse has none),
//! structured output, seed, penalties, participant names, audio.

use serde_json::{json, Map, Value};

use crate::{
    chat::types::{
        Content, Effort, File, FileSource, Image, Role, Tool, ToolCall, ToolChoice, ToolResult,
    },
    error::Error,
    provider::{codec, codec::Supports, Call},
};

/// What Converse takes of the request's optional fields.
pub(super) const SUPPORTS: Supports = Supports {
    reasoning: true,
    response_format: false,
    provider_options: true,
    seed: false,
    top_k: true,
    penalties: false,
    parallel_tool_calls: false,
    message_name: false,
    tool_strict: false,
    files: true,
    audio: false,
    tool_result_blocks: true,
    cache_control: true,
};

/// The body keys chatwire writes itself.
pub(super) const OWNED: &[&str] = &["messages", "system", "inferenceConfig", "toolConfig"];

/// The thinking budget of an effort level (Anthropic's minimum is 1024).
fn effort_budget(e: Effort) -> u32 {
    match e {
        Effort::None | Effort::Minimal | Effort::Low => 1024,
        Effort::Medium => 4096,
        Effort::High => 16384,
    }
}

/// The Converse body for one call.
pub(super) fn body(
    call: &Call,
    default_max_tokens: Option<u32>,
) -> Result<Map<String, Value>, Error> {
    let req = &call.request;
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        let at = |j: usize| format!("messages[{i}].content[{j}]");
        let mut blocks = Vec::with_capacity(m.content.len());
        for (j, c) in m.content.iter().enumerate() {
            let b = if m.role == Role::System {
                match c {
                    Content::Text(t) if t.is_empty() => None,
                    Content::Text(t) => Some(json!({"text": t})),
                    _ => {
                        return Err(Error::invalid(format!(
                            "{}: bedrock's system prompt takes text only",
                            at(j)
                        )))
                    }
                }
            } else {
                block(c, &|| at(j))?
            };
            let sent = b.is_some();
            blocks.extend(b);
            if let Some((_, ttl)) = m.cache.iter().find(|(k, _)| *k == j) {
                if !sent {
                    return Err(Error::invalid(format!(
                        "{}.cacheControl: the block sends nothing to bedrock (empty), so there is nothing to cache up to",
                        at(j)
                    )));
                }
                blocks.push(cache_point(ttl, &|| format!("{}.cacheControl", at(j)))?);
            }
        }
        match m.role {
            Role::System => system.extend(blocks),
            Role::User | Role::Tool => codec::push_turn(&mut turns, "user", blocks),
            Role::Assistant => codec::push_turn(&mut turns, "assistant", blocks),
        }
    }

    let mut b = Map::new();
    b.insert(
        "messages".into(),
        Value::Array(
            turns
                .into_iter()
                .map(|(role, content)| json!({"role": role, "content": content}))
                .collect(),
        ),
    );
    if !system.is_empty() {
        b.insert("system".into(), Value::Array(system));
    }
    let mut inference = Map::new();
    if let Some(m) = codec::max_tokens(req, &call.options, default_max_tokens) {
        inference.insert("maxTokens".into(), json!(m));
    }
    codec::insert_sampling(
        &mut inference,
        req,
        ["temperature", "topP", "stopSequences"],
    );
    if !inference.is_empty() {
        b.insert("inferenceConfig".into(), Value::Object(inference));
    }

    let mut additional = Map::new();
    if let Some(r) = &req.reasoning {
        match (r.effort, r.budget_tokens) {
            (Some(Effort::None), _) => {
                additional.insert("thinking".into(), json!({"type": "disabled"}));
            }
            (effort, budget) if effort.is_some() || budget.is_some() || r.include == Some(true) => {
                let budget =
                    budget.unwrap_or_else(|| effort_budget(effort.unwrap_or(Effort::Medium)));
                additional.insert(
                    "thinking".into(),
                    json!({"type": "enabled", "budget_tokens": budget}),
                );
            }
            _ => {}
        }
    }
    if let Some(k) = req.top_k {
        additional.insert("top_k".into(), json!(k));
    }

    if !req.tools.is_empty() {
        let mut tools = Vec::with_capacity(req.tools.len());
        for (i, t) in req.tools.iter().enumerate() {
            tools.push(tool(t));
            if let Some(ttl) = &t.cache {
                tools.push(cache_point(ttl, &|| format!("tools[{i}].cacheControl"))?);
            }
        }
        let mut config = Map::new();
        config.insert("tools".into(), Value::Array(tools));
        match &req.tool_choice {
            None | Some(ToolChoice::Auto) => {}
            Some(ToolChoice::Any) => {
                config.insert("toolChoice".into(), json!({"any": {}}));
            }
            Some(ToolChoice::Tool(name)) => {
                config.insert("toolChoice".into(), json!({"tool": {"name": name}}));
            }
            Some(ToolChoice::None) => {
                return Err(Error::invalid(
                    "toolChoice: bedrock's Converse API has no NONE tool choice; leave the tools out instead",
                ))
            }
        }
        b.insert("toolConfig".into(), Value::Object(config));
    } else if matches!(req.tool_choice, Some(ToolChoice::Any | ToolChoice::Tool(_))) {
        return Err(Error::invalid(
            "toolChoice: bedrock needs the tools it may choose from (tools is empty)",
        ));
    }

    // providerOptions: the model's (config file), then the request's over them.
    for options in [
        &call.options.provider_options,
        &call.request.provider_options,
    ] {
        let mut options = options.clone();
        if let Some(extra) = options.remove("additionalModelRequestFields") {
            let Value::Object(extra) = extra else {
                return Err(Error::invalid(
                    "providerOptions.additionalModelRequestFields: must be an object",
                ));
            };
            for (k, v) in extra {
                let ours = (k == "thinking" && req.reasoning.is_some())
                    || (k == "top_k" && req.top_k.is_some());
                if ours {
                    return Err(Error::invalid(format!(
                        "providerOptions.additionalModelRequestFields.{k}: chatwire sets {k:?} from the request's own field for bedrock"
                    )));
                }
                additional.insert(k, v);
            }
        }
        codec::merge_provider_options(&mut b, &options, OWNED, "bedrock")?;
    }
    if !additional.is_empty() {
        b.insert(
            "additionalModelRequestFields".into(),
            Value::Object(additional),
        );
    }
    Ok(b)
}

fn tool(t: &Tool) -> Value {
    let mut spec = codec::tool_declaration(t);
    let schema = if t.parameters.is_empty() {
        json!({"type": "object", "properties": {}})
    } else {
        Value::Object(t.parameters.clone())
    };
    spec.insert("inputSchema".into(), json!({"json": schema}));
    json!({"toolSpec": spec})
}

fn cache_point(ttl: &str, at: &dyn Fn() -> String) -> Result<Value, Error> {
    match ttl {
        "" | "5m" => Ok(json!({"cachePoint": {"type": "default"}})),
        other => Err(Error::invalid(format!(
            "{}.ttl: bedrock's cache points take the default TTL (\"5m\" or empty), not {other:?}",
            at()
        ))),
    }
}

/// One content block (`None`: nothing to send, e.g. empty text).
fn block(c: &Content, at: &dyn Fn() -> String) -> Result<Option<Value>, Error> {
    Ok(Some(match c {
        Content::Audio(_) => {
            return Err(Error::invalid(format!(
                "{}.audio: the bedrock provider does not support it",
                at()
            )))
        }
        Content::Text(t) | Content::Refusal(t) => {
            if t.is_empty() {
                return Ok(None);
            }
            json!({"text": t})
        }
        Content::Image(img) => image(img, at)?,
        Content::File(f) => document(f, at)?,
        Content::ToolCall(tc) => json!({"toolUse": {
            "toolUseId": tc.id,
            "name": tc.name,
            "input": tool_input(tc, at)?,
        }}),
        Content::ToolResult(tr) => tool_result(tr, at)?,
        Content::Reasoning(r) => {
            if !r.redacted.is_empty() {
                json!({"reasoningContent": {"redactedContent": r.redacted}})
            } else {
                let mut text = Map::new();
                text.insert("text".into(), json!(r.text));
                if !r.signature.is_empty() {
                    text.insert("signature".into(), json!(r.signature));
                }
                json!({"reasoningContent": {"reasoningText": text}})
            }
        }
    }))
}

fn tool_result(tr: &ToolResult, at: &dyn Fn() -> String) -> Result<Value, Error> {
    let mut content = Vec::with_capacity(tr.blocks.len() + 1);
    if !tr.content.is_empty() || tr.blocks.is_empty() {
        content.push(json!({"text": tr.content}));
    }
    for (k, b) in tr.blocks.iter().enumerate() {
        let at = || format!("{}.toolResult.blocks[{k}]", at());
        match b {
            Content::Text(_) | Content::Image(_) | Content::File(_) => {
                content.extend(block(b, &at)?)
            }
            _ => {
                return Err(Error::invalid(format!(
                    "{}: a bedrock tool result takes text, images and documents",
                    at()
                )))
            }
        }
    }
    let mut o = Map::new();
    o.insert("toolUseId".into(), json!(tr.tool_call_id));
    o.insert("content".into(), Value::Array(content));
    if tr.is_error {
        o.insert("status".into(), json!("error"));
    }
    Ok(json!({"toolResult": o}))
}

/// The bytes of an inline source, as base64 (Converse's JSON form of a blob),
/// and its media type; http(s) URLs are refused (Converse fetches none).
fn inline<'a>(
    url_or_data: Result<(&'a str, String), &'a str>,
    at: &dyn Fn() -> String,
    what: &str,
) -> Result<(String, String), Error> {
    match url_or_data {
        Ok((mime, b64)) => Ok((mime.to_string(), b64)),
        Err(url) => match codec::split_data_url(url) {
            Some((mime, data)) => Ok((mime.to_string(), data.to_string())),
            None => Err(Error::invalid(format!(
                "{}.{what}.url: bedrock takes inline bytes (or a base64 data: URL), not a URL it would fetch",
                at()
            ))),
        },
    }
}

fn image(img: &Image, at: &dyn Fn() -> String) -> Result<Value, Error> {
    let src = match img {
        Image::Data { data, mime_type } => Ok((mime_type.as_str(), codec::base64(data))),
        Image::Url(url) => Err(url.as_str()),
    };
    let (mime, b64) = inline(src, at, "image")?;
    let format = match mime.as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        other => {
            return Err(Error::invalid(format!(
                "{}.image: bedrock takes png, jpeg, gif or webp images, not {other:?}",
                at()
            )))
        }
    };
    Ok(json!({"image": {"format": format, "source": {"bytes": b64}}}))
}

fn document(f: &File, at: &dyn Fn() -> String) -> Result<Value, Error> {
    let src = match &f.source {
        FileSource::Data(data) => Ok((f.mime_type.as_str(), codec::base64(data))),
        FileSource::Url(url) => Err(url.as_str()),
    };
    let (mime, b64) = inline(src, at, "file")?;
    let format = match mime.as_str() {
        "application/pdf" => "pdf",
        "text/csv" => "csv",
        "application/msword" => "doc",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "text/html" => "html",
        "text/plain" => "txt",
        "text/markdown" => "md",
        other => {
            return Err(Error::invalid(format!(
                "{}.file: bedrock takes pdf, csv, doc(x), xls(x), html, txt or md documents, not {other:?}",
                at()
            )))
        }
    };
    // Converse allows letters, digits, single spaces, hyphens, parentheses and
    // square brackets in a document's name.
    let name: String = f
        .filename
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '(' | ')' | '[' | ']') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = if name.trim().is_empty() {
        "document".to_string()
    } else {
        name.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    Ok(json!({"document": {"format": format, "name": name, "source": {"bytes": b64}}}))
}

fn tool_input(tc: &ToolCall, at: &dyn Fn() -> String) -> Result<Value, Error> {
    if tc.arguments.is_empty() && !tc.arguments_json.trim().is_empty() {
        return match serde_json::from_str::<Value>(&tc.arguments_json) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(Error::invalid(format!(
                "{}.toolCall.argumentsJson: must be a JSON object (bedrock's toolUse.input is one)",
                at()
            ))),
        };
    }
    Ok(Value::Object(tc.arguments.clone()))
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
