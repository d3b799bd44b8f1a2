//! The request side: a domain `ChatRequest` → the Chat Completions JSON body.
//! Built with `serde_json::json!` (once per call, off the hot path).

use serde_json::{json, Map, Value};

use crate::{
    chat::types::{ChatRequest, Content, Image, Message, Role, ToolChoice},
    error::Error,
    provider::ModelOptions,
};

/// The JSON body for `POST {base}/chat/completions`. `n` is never sent: only
/// choice 0 is ever read.
pub fn body(
    model: &str,
    req: &ChatRequest,
    options: &ModelOptions,
    default_max_tokens: Option<u32>,
) -> Result<Value, Error> {
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
    Ok(Value::Object(b))
}

fn messages(msgs: &[Message]) -> Result<Vec<Value>, Error> {
    let mut out = Vec::with_capacity(msgs.len());
    for (i, m) in msgs.iter().enumerate() {
        match m.role {
            Role::System => out.push(json!({ "role": "system", "content": m.text() })),
            Role::User => user(m, &mut out),
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
    }
    Ok(out)
}

/// Tool results become `tool` messages (also when a client put them in a user
/// message, as Anthropic's format does); the rest stays a user message.
fn user(m: &Message, out: &mut Vec<Value>) {
    tool_results(m, out);
    let has_image = m.content.iter().any(|c| matches!(c, Content::Image(_)));
    let has_text = m.content.iter().any(|c| matches!(c, Content::Text(_)));
    if has_image {
        let parts: Vec<Value> = m
            .content
            .iter()
            .filter_map(|c| match c {
                Content::Text(t) => Some(json!({ "type": "text", "text": t })),
                Content::Image(img) => Some(json!({
                    "type": "image_url",
                    "image_url": { "url": image_url(img) },
                })),
                _ => None,
            })
            .collect();
        out.push(json!({ "role": "user", "content": parts }));
    } else if has_text
        || !m
            .content
            .iter()
            .any(|c| matches!(c, Content::ToolResult(_)))
    {
        out.push(json!({ "role": "user", "content": m.text() }));
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
                    "arguments": Value::Object(tc.arguments.clone()).to_string(),
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

fn image_url(img: &Image) -> String {
    match img {
        Image::Url(u) => u.clone(),
        Image::Data { data, mime_type } => format!(
            "data:{mime_type};base64,{}",
            crate::provider::codec::base64(data)
        ),
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
