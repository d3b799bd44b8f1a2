//! The request side: a domain `ChatRequest` → the Chat Completions JSON body.
//! Built with `serde_json::json!` (once per call, off the hot path).

use serde_json::{json, Map, Value};

use crate::{
    chat::types::{
        ChatRequest, Content, Effort, File, FileSource, Image, Message, ResponseFormat, Role,
        ToolChoice,
    },
    error::Error,
    provider::{
        codec::{self, Supports},
        ModelOptions,
    },
};

/// What Chat Completions maps of the optional request fields (the rest is
/// INVALID_ARGUMENT naming the field): top-k and reasoning budgets have no
/// Chat Completions form (an OpenAI-compatible server that takes `top_k` gets
/// it through providerOptions); caching is automatic, so breakpoints are a no-op.
pub const SUPPORTS: Supports = Supports {
    reasoning: true,
    response_format: true,
    provider_options: true,
    seed: true,
    top_k: false,
    penalties: true,
    parallel_tool_calls: true,
    message_name: true,
    tool_strict: true,
    files: true,
    audio: true,
    tool_result_blocks: false,
    cache_control: true,
};

/// Keys of the body chatwire writes itself (providerOptions may not set them).
pub const OWNED: &[&str] = &[
    "model",
    "messages",
    "stream",
    "stream_options",
    "tools",
    "tool_choice",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "n",
    "response_format",
    "reasoning_effort",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "parallel_tool_calls",
];

/// The JSON body for `POST {base}/chat/completions`. `n` is never sent: only
/// choice 0 is ever read.
pub fn body(
    model: &str,
    req: &ChatRequest,
    options: &ModelOptions,
    default_max_tokens: Option<u32>,
) -> Result<Value, Error> {
    codec::refuse_unsupported(req, "openai", SUPPORTS)?;
    let mut b = Map::new();
    b.insert("model".into(), json!(model));
    b.insert("messages".into(), Value::Array(messages(&req.messages)?));
    b.insert("stream".into(), json!(true));
    if options.include_usage {
        b.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    if let Some(max) = crate::provider::codec::max_tokens(req, options, default_max_tokens) {
        let key = if options.max_completion_tokens {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        b.insert(key.into(), json!(max));
    }
    crate::provider::codec::insert_sampling(&mut b, req, ["temperature", "top_p", "stop"]);
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut f = crate::provider::codec::tool_declaration(t);
                f.insert("parameters".into(), Value::Object(t.parameters.clone()));
                if let Some(strict) = t.strict {
                    f.insert("strict".into(), json!(strict));
                }
                json!({ "type": "function", "function": f })
            })
            .collect();
        b.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = &req.tool_choice {
        let v = match choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Any => json!("required"),
            ToolChoice::Tool(name) => json!({ "type": "function", "function": { "name": name } }),
        };
        b.insert("tool_choice".into(), v);
    }
    if let Some(r) = &req.reasoning {
        if r.budget_tokens.is_some() {
            return Err(Error::invalid(
                "reasoning.budgetTokens: the openai provider takes an effort level, not a token budget",
            ));
        }
        if r.include == Some(true) {
            return Err(Error::invalid(
                "reasoning.includeReasoning: the openai provider (Chat Completions) does not return OpenAI models' reasoning; compatible servers that stream reasoning_content do so unasked",
            ));
        }
        let effort = match r.effort {
            None => None,
            Some(Effort::None) => Some("none"),
            Some(Effort::Minimal) => Some("minimal"),
            Some(Effort::Low) => Some("low"),
            Some(Effort::Medium) => Some("medium"),
            Some(Effort::High) => Some("high"),
        };
        if let Some(e) = effort {
            b.insert("reasoning_effort".into(), json!(e));
        }
    }
    match &req.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            b.insert("response_format".into(), json!({ "type": "json_object" }));
        }
        Some(ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
            description,
        }) => {
            let mut js = Map::new();
            js.insert("name".into(), json!(name));
            js.insert("schema".into(), Value::Object(schema.clone()));
            js.insert("strict".into(), json!(strict));
            if !description.is_empty() {
                js.insert("description".into(), json!(description));
            }
            b.insert(
                "response_format".into(),
                json!({ "type": "json_schema", "json_schema": js }),
            );
        }
    }
    if let Some(seed) = req.seed {
        b.insert("seed".into(), json!(seed));
    }
    if let Some(v) = req.frequency_penalty {
        b.insert("frequency_penalty".into(), json!(v));
    }
    if let Some(v) = req.presence_penalty {
        b.insert("presence_penalty".into(), json!(v));
    }
    // OpenAI refuses parallel_tool_calls without tools: it means nothing then.
    if let Some(v) = req.parallel_tool_calls.filter(|_| !req.tools.is_empty()) {
        b.insert("parallel_tool_calls".into(), json!(v));
    }
    codec::merge_provider_options(&mut b, &options.provider_options, OWNED, "openai")?;
    codec::merge_provider_options(&mut b, &req.provider_options, OWNED, "openai")?;
    Ok(Value::Object(b))
}

fn messages(msgs: &[Message]) -> Result<Vec<Value>, Error> {
    let mut out = Vec::with_capacity(msgs.len());
    for (i, m) in msgs.iter().enumerate() {
        let at = out.len();
        if matches!(m.role, Role::System | Role::Assistant) {
            if let Some(j) = m
                .content
                .iter()
                .position(|c| matches!(c, Content::Image(_) | Content::File(_) | Content::Audio(_)))
            {
                return Err(Error::invalid(format!(
                    "messages[{i}].content[{j}]: the openai provider takes images, files and audio in user messages only"
                )));
            }
        }
        match m.role {
            Role::System => out.push(json!({ "role": "system", "content": m.text() })),
            Role::User => user(m, &mut out)?,
            Role::Assistant => out.push(assistant(m)),
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
        if !m.name.is_empty() {
            for v in &mut out[at..] {
                if let Some(o) = v.as_object_mut().filter(|o| o["role"] != "tool") {
                    o.insert("name".into(), json!(m.name));
                }
            }
        }
    }
    Ok(out)
}

/// Tool results become `tool` messages (also when a client put them in a user
/// message, as Anthropic's format does); the rest stays a user message.
fn user(m: &Message, out: &mut Vec<Value>) -> Result<(), Error> {
    tool_results(m, out);
    let has_media = m
        .content
        .iter()
        .any(|c| matches!(c, Content::Image(_) | Content::File(_) | Content::Audio(_)));
    let has_text = m.content.iter().any(|c| matches!(c, Content::Text(_)));
    if has_media {
        let mut parts: Vec<Value> = Vec::new();
        for c in &m.content {
            match c {
                Content::Text(t) => parts.push(json!({ "type": "text", "text": t })),
                Content::Image(img) => parts.push(json!({
                    "type": "image_url",
                    "image_url": { "url": image_url(img) },
                })),
                Content::File(f) => parts.push(file_part(f)?),
                Content::Audio(a) => {
                    let format = match a.mime_type.as_str() {
                        "audio/wav" | "audio/x-wav" | "audio/wave" => "wav",
                        "audio/mpeg" | "audio/mp3" => "mp3",
                        other => {
                            return Err(Error::invalid(format!(
                                "audio.mimeType: the openai provider takes audio/wav or audio/mpeg, not {other:?}"
                            )))
                        }
                    };
                    parts.push(json!({
                        "type": "input_audio",
                        "input_audio": { "data": codec::base64(&a.data), "format": format },
                    }));
                }
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

/// A document as Chat Completions' `file` part: inline data (base64, with its
/// filename). Chat Completions takes no file URLs, so a URL is refused.
fn file_part(f: &File) -> Result<Value, Error> {
    match &f.source {
        FileSource::Data(data) => {
            let mut file = Map::new();
            if !f.filename.is_empty() {
                file.insert("filename".into(), json!(f.filename));
            }
            file.insert(
                "file_data".into(),
                json!(codec::data_url(&f.mime_type, data)),
            );
            Ok(json!({ "type": "file", "file": file }))
        }
        FileSource::Url(_) => Err(Error::invalid(
            "file.url: the openai provider takes files as inline data (Chat Completions has no file URLs)",
        )),
    }
}

fn tool_results(m: &Message, out: &mut Vec<Value>) {
    for c in &m.content {
        if let Content::ToolResult(r) = c {
            out.push(json!({
                "role": "tool",
                "tool_call_id": r.tool_call_id,
                "content": r.content,
            }));
        }
    }
}

/// Text, refusal and tool calls (arguments as a JSON string). Reasoning blocks
/// are not sent back: Chat Completions has no input field for them.
fn assistant(m: &Message) -> Value {
    let mut a = Map::new();
    a.insert("role".into(), json!("assistant"));
    let text = m.text();
    let calls: Vec<Value> = m
        .content
        .iter()
        .filter_map(|c| match c {
            Content::ToolCall(tc) => Some(json!({
                "id": tc.id,
                "type": "function",
                "function": {
                    "name": tc.name,
                    // The exact text when the caller gave it: byte for byte.
                    "arguments": tc.arguments_text(),
                },
            })),
            _ => None,
        })
        .collect();
    let refusal: String = m
        .content
        .iter()
        .filter_map(|c| match c {
            Content::Refusal(r) => Some(r.as_str()),
            _ => None,
        })
        .collect();
    if text.is_empty() && !calls.is_empty() {
        a.insert("content".into(), Value::Null);
    } else {
        a.insert("content".into(), json!(text));
    }
    if !refusal.is_empty() {
        a.insert("refusal".into(), json!(refusal));
    }
    if !calls.is_empty() {
        a.insert("tool_calls".into(), Value::Array(calls));
    }
    Value::Object(a)
}

/// An image as Chat Completions and the Responses API take it: its URL, or a data URL.
pub(super) fn image_url(img: &Image) -> String {
    match img {
        Image::Url(u) => u.clone(),
        Image::Data { data, mime_type } => codec::data_url(mime_type, data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::types::{Tool, ToolCall, ToolResult};

    fn msg(role: Role, content: Vec<Content>) -> Message {
        Message {
            role,
            content,
            ..Default::default()
        }
    }

    #[test]
    fn body_has_every_field_in_openai_shape() {
        let mut params = Map::new();
        params.insert("type".into(), json!("object"));
        let mut args = Map::new();
        args.insert("city".into(), json!("Paris"));
        let req = ChatRequest {
            messages: vec![
                msg(Role::System, vec![Content::Text("be brief".into())]),
                msg(
                    Role::User,
                    vec![
                        Content::Text("what is this?".into()),
                        Content::Image(Image::Url("https://x/y.png".into())),
                        Content::Image(Image::Data {
                            data: b"foo".to_vec(),
                            mime_type: "image/png".into(),
                        }),
                    ],
                ),
                msg(
                    Role::Assistant,
                    vec![Content::ToolCall(ToolCall {
                        id: "call_1".into(),
                        name: "weather".into(),
                        arguments: args,
                        ..Default::default()
                    })],
                ),
                msg(
                    Role::Tool,
                    vec![Content::ToolResult(ToolResult {
                        tool_call_id: "call_1".into(),
                        content: "sunny".into(),
                        is_error: false,
                        ..Default::default()
                    })],
                ),
                msg(
                    Role::Assistant,
                    vec![Content::Refusal("no".into()), Content::Text("".into())],
                ),
            ],
            max_tokens: Some(7),
            temperature: Some(0.5),
            top_p: Some(0.9),
            stop: vec!["END".into()],
            tools: vec![Tool {
                name: "weather".into(),
                description: "the weather".into(),
                parameters: params,
                ..Default::default()
            }],
            tool_choice: Some(ToolChoice::Tool("weather".into())),
            ..Default::default()
        };
        let b = body("gpt-4o-mini", &req, &ModelOptions::default(), None).unwrap_or_default();
        assert_eq!(
            b,
            json!({
                "model": "gpt-4o-mini",
                "stream": true,
                "stream_options": {"include_usage": true},
                "max_tokens": 7, "temperature": 0.5, "top_p": 0.9, "stop": ["END"],
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,Zm9v"}},
                    ]},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_1", "type": "function",
                         "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                    {"role": "assistant", "content": "", "refusal": "no"},
                ],
                "tools": [{"type": "function", "function": {
                    "name": "weather", "description": "the weather", "parameters": {"type": "object"}}}],
                "tool_choice": {"type": "function", "function": {"name": "weather"}},
            })
        );
    }

    #[test]
    fn options_switch_usage_and_max_completion_tokens() {
        let req = ChatRequest {
            messages: vec![msg(Role::User, vec![Content::Text("hi".into())])],
            tool_choice: Some(ToolChoice::Any),
            ..ChatRequest::default()
        };
        let o = ModelOptions {
            include_usage: false,
            max_completion_tokens: true,
            ..ModelOptions::default()
        };
        let b = body("o3", &req, &o, Some(100)).unwrap_or_default();
        assert_eq!(b.get("stream_options"), None);
        assert_eq!(b.get("max_tokens"), None);
        assert_eq!(b["max_completion_tokens"], json!(100));
        assert_eq!(b["tool_choice"], json!("required"));
        assert_eq!(b.get("n"), None);
        assert_eq!(b["messages"], json!([{"role": "user", "content": "hi"}]));
        for (c, want) in [(ToolChoice::Auto, "auto"), (ToolChoice::None, "none")] {
            let r = ChatRequest {
                tool_choice: Some(c),
                ..req.clone()
            };
            let b = body("m", &r, &ModelOptions::default(), None).unwrap_or_default();
            assert_eq!(b["tool_choice"], json!(want));
        }
    }

    #[test]
    fn a_tool_message_without_a_result_is_invalid() {
        let req = ChatRequest {
            messages: vec![msg(Role::Tool, vec![Content::Text("x".into())])],
            ..ChatRequest::default()
        };
        let e = body("m", &req, &ModelOptions::default(), None).err();
        assert_eq!(e.map(|e| e.kind), Some(crate::error::Kind::InvalidArgument));
    }
}
