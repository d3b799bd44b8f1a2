//! The request side: a chatwire request as an `/api/chat` body. Text,
//! reasoning, images and tool calls of one message become one Ollama message;
//! each tool result is a `tool` message of its own, named after its call.

use serde_json::{json, Map, Value};

use crate::{
    chat::types::{Content, Image, Role, ToolChoice},
    error::Error,
    provider::{
        codec::{self, ToolNames},
        Call,
    },
};

/// The JSON body of an `/api/chat` call.
pub fn request_body(call: &Call, default_max_tokens: Option<u32>) -> Result<Value, Error> {
    let req = &call.request;
    let mut messages = Vec::new();
    let mut had_reasoning = false;
    let mut names = ToolNames::default();
    for (i, msg) in req.messages.iter().enumerate() {
        let role = match msg.role {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        };
        let mut text = String::new();
        let mut thinking = String::new();
        let mut images = Vec::new();
        let mut tool_calls = Vec::new();
        for c in &msg.content {
            match c {
                // Refused before the body is built (codec::refuse_unsupported).
                Content::File(_) | Content::Audio(_) => {}
                Content::Text(t) => text.push_str(t),
                Content::Refusal(t) => text.push_str(t),
                Content::Reasoning(r) => thinking.push_str(&r.text),
                Content::Image(Image::Data { data, .. }) => {
                    images.push(Value::String(codec::base64(data)))
                }
                Content::Image(Image::Url(url)) => {
                    let (_, data) = codec::split_data_url(url).ok_or_else(|| {
                        Error::invalid(format!(
                            "messages[{i}]: ollama takes images as inline data only \
                             (data + mimeType, or a data: URL), not {url:?}"
                        ))
                    })?;
                    images.push(Value::String(data.to_string()))
                }
                Content::ToolCall(tc) => tool_calls.push(json!({
                    "function": { "name": tc.name, "arguments": tc.arguments }
                })),
                Content::ToolResult(r) => {
                    // Each result is its own `tool` message, named when the call is known.
                    let mut m = Map::new();
                    m.insert("role".into(), json!("tool"));
                    m.insert("content".into(), json!(r.content));
                    if let Some(name) = names.get(&r.tool_call_id) {
                        m.insert("tool_name".into(), json!(name));
                    }
                    messages.push(Value::Object(m));
                }
            }
        }
        names.add(msg);
        let only_results = msg
            .content
            .iter()
            .all(|c| matches!(c, Content::ToolResult(_)));
        if only_results && !msg.content.is_empty() {
            continue;
        }
        let mut m = Map::new();
        m.insert("role".into(), json!(role));
        m.insert("content".into(), json!(text));
        if !thinking.is_empty() {
            had_reasoning |= msg.role == Role::Assistant;
            m.insert("thinking".into(), json!(thinking));
        }
        if !images.is_empty() {
            m.insert("images".into(), Value::Array(images));
        }
        if !tool_calls.is_empty() {
            m.insert("tool_calls".into(), Value::Array(tool_calls));
        }
        messages.push(Value::Object(m));
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(call.model));
    body.insert("messages".into(), Value::Array(messages));
    body.insert("stream".into(), json!(true));
    let tools: Vec<Value> = match &req.tool_choice {
        Some(ToolChoice::None) => Vec::new(),
        Some(ToolChoice::Tool(name)) => req
            .tools
            .iter()
            .filter(|t| &t.name == name)
            .map(tool_json)
            .collect(),
        _ => req.tools.iter().map(tool_json).collect(),
    };
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
    }
    if had_reasoning {
        body.insert("think".into(), json!(true));
    }
    let mut options = Map::new();
    codec::insert_sampling(&mut options, req, ["temperature", "top_p", "stop"]);
    if let Some(n) = codec::max_tokens(req, &call.options, default_max_tokens) {
        options.insert("num_predict".into(), json!(n));
    }
    if !options.is_empty() {
        body.insert("options".into(), Value::Object(options));
    }
    Ok(Value::Object(body))
}

fn tool_json(t: &crate::chat::types::Tool) -> Value {
    json!({
        "type": "function",
        "function": {
            "name": t.name,
            "description": t.description,
            "parameters": t.parameters,
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::chat::types::{ChatRequest, Message, Reasoning, Tool, ToolCall, ToolResult};
    use crate::error::Kind;

    #[test]
    fn request_body_maps_messages_tools_and_options() {
        let mut args = Map::new();
        args.insert("city".into(), json!("Tokyo"));
        let request = ChatRequest {
            messages: vec![
                Message {
                    role: Role::System,
                    content: vec![Content::Text("sys".into())],
                    ..Default::default()
                },
                Message {
                    role: Role::User,
                    content: vec![
                        Content::Text("what is this".into()),
                        Content::Image(Image::Data {
                            data: b"abc".to_vec(),
                            mime_type: "image/png".into(),
                        }),
                        Content::Image(Image::Url("data:image/png;base64,QUJD".into())),
                    ],
                    ..Default::default()
                },
                Message {
                    role: Role::Assistant,
                    content: vec![
                        Content::Reasoning(Reasoning {
                            text: "think".into(),
                            ..Reasoning::default()
                        }),
                        Content::ToolCall(ToolCall {
                            id: "call_0".into(),
                            name: "weather".into(),
                            arguments: args,
                            ..Default::default()
                        }),
                    ],
                    ..Default::default()
                },
                Message {
                    role: Role::Tool,
                    content: vec![Content::ToolResult(ToolResult {
                        tool_call_id: "call_0".into(),
                        content: "rain".into(),
                        is_error: false,
                        ..Default::default()
                    })],
                    ..Default::default()
                },
            ],
            max_tokens: Some(9),
            temperature: Some(0.2),
            top_p: Some(0.5),
            stop: vec!["x".into()],
            tools: vec![Tool {
                name: "weather".into(),
                description: "w".into(),
                parameters: json!({"type":"object"}).as_object().cloned().unwrap(),
                ..Default::default()
            }],
            tool_choice: None,
            ..Default::default()
        };
        let call = Call {
            model: "llama3.2".into(),
            request: request.into(),
            options: crate::provider::ModelOptions::default(),
            fallback_id: "run-1".into(),
            budget: Default::default(),
        };
        assert_eq!(
            request_body(&call, None).unwrap(),
            json!({
                "model": "llama3.2",
                "stream": true,
                "think": true,
                "messages": [
                    {"role": "system", "content": "sys"},
                    {"role": "user", "content": "what is this", "images": ["YWJj", "QUJD"]},
                    {"role": "assistant", "content": "", "thinking": "think",
                     "tool_calls": [{"function": {"name": "weather", "arguments": {"city": "Tokyo"}}}]},
                    {"role": "tool", "content": "rain", "tool_name": "weather"}
                ],
                "tools": [{"type": "function", "function": {"name": "weather", "description": "w", "parameters": {"type": "object"}}}],
                "options": {"temperature": 0.2, "top_p": 0.5, "num_predict": 9, "stop": ["x"]}
            })
        );
        let mut c = call.clone();
        std::sync::Arc::make_mut(&mut c.request).tool_choice = Some(ToolChoice::None);
        std::sync::Arc::make_mut(&mut c.request).messages[1].content =
            vec![Content::Image(Image::Url("https://x/y.png".into()))];
        assert_eq!(
            request_body(&c, None).unwrap_err().kind,
            Kind::InvalidArgument
        );
        std::sync::Arc::make_mut(&mut c.request)
            .messages
            .truncate(1);
        let body = request_body(&c, None).unwrap();
        assert!(body.get("tools").is_none() && body.get("think").is_none());
    }
}
