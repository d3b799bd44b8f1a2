//! The request side: a chatwire request as an Anthropic Messages API body.
//! System messages become the top-level `system`; tool results travel in user
//! messages; consecutive messages of one role are merged (Anthropic demands
//! alternation); reasoning with its signature goes back as `thinking`.

use serde_json::{json, Map, Value};

use crate::{
    chat::types::{Content, Image, Role, ToolChoice},
    provider::Call,
};

/// Anthropic demands a max_tokens: this one goes when neither the request, the
/// model nor the provider sets one.
const DEFAULT_MAX_TOKENS: u32 = 1024;

/// The JSON body for one streamed call. `default_max_tokens` is the provider's
/// configured default (the file), used when neither the request nor the model sets one.
pub(super) fn body(call: &Call, default_max_tokens: Option<u32>) -> Value {
    let req = &call.request;
    let mut system: Vec<&str> = Vec::new();
    let mut messages: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for m in &req.messages {
        let role = match m.role {
            Role::System => {
                system.extend(m.content.iter().filter_map(|c| match c {
                    Content::Text(t) => Some(t.as_str()),
                    _ => None,
                }));
                continue;
            }
            Role::User | Role::Tool => "user",
            Role::Assistant => "assistant",
        };
        let blocks: Vec<Value> = m.content.iter().filter_map(block).collect();
        crate::provider::codec::push_turn(&mut messages, role, blocks);
    }
    let mut b = Map::new();
    b.insert("model".into(), json!(call.model));
    let max_tokens = crate::provider::codec::max_tokens(req, &call.options, default_max_tokens)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    b.insert("max_tokens".into(), json!(max_tokens));
    b.insert("stream".into(), json!(true));
    if !system.is_empty() {
        b.insert("system".into(), json!(system.join("\n\n")));
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
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut o = crate::provider::codec::tool_declaration(t);
                let schema = if t.parameters.is_empty() {
                    json!({"type": "object", "properties": {}})
                } else {
                    Value::Object(t.parameters.clone())
                };
                o.insert("input_schema".into(), schema);
                Value::Object(o)
            })
            .collect();
        b.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = &req.tool_choice {
        let c = match choice {
            ToolChoice::Auto => json!({"type": "auto"}),
            ToolChoice::Any => json!({"type": "any"}),
            ToolChoice::None => json!({"type": "none"}),
            ToolChoice::Tool(name) => json!({"type": "tool", "name": name}),
        };
        b.insert("tool_choice".into(), c);
    }
    Value::Object(b)
}

/// One content block in Anthropic's shape (`None`: nothing to send, e.g. empty
/// text, which Anthropic rejects).
fn block(c: &Content) -> Option<Value> {
    Some(match c {
        // Refused before the body is built (codec::refuse_unsupported).
        Content::File(_) | Content::Audio(_) => return None,
        Content::Text(t) | Content::Refusal(t) => {
            if t.is_empty() {
                return None;
            }
            json!({"type": "text", "text": t})
        }
        Content::Image(Image::Url(url)) => {
            json!({"type": "image", "source": {"type": "url", "url": url}})
        }
        Content::Image(Image::Data { data, mime_type }) => json!({
            "type": "image",
            "source": {"type": "base64", "media_type": mime_type, "data": crate::provider::codec::base64(data)},
        }),
        Content::ToolCall(tc) => json!({
            "type": "tool_use",
            "id": tc.id,
            "name": tc.name,
            "input": Value::Object(tc.arguments.clone()),
        }),
        Content::ToolResult(tr) => {
            let mut o = Map::new();
            o.insert("type".into(), json!("tool_result"));
            o.insert("tool_use_id".into(), json!(tr.tool_call_id));
            o.insert("content".into(), json!(tr.content));
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::types::{ChatRequest, Message, Reasoning, Tool, ToolCall, ToolResult};
    use crate::provider::ModelOptions;

    fn call(req: ChatRequest) -> Call {
        Call {
            model: "claude-3-haiku-20240307".into(),
            request: req.into(),
            options: ModelOptions::default(),
            fallback_id: "run-x".into(),
            budget: Default::default(),
        }
    }

    fn msg(role: Role, content: Vec<Content>) -> Message {
        Message {
            role,
            content,
            ..Default::default()
        }
    }

    #[test]
    fn maps_a_multi_turn_tool_conversation() {
        let mut args = Map::new();
        args.insert("city".into(), json!("Paris"));
        let req = ChatRequest {
            messages: vec![
                msg(Role::System, vec![Content::Text("be brief".into())]),
                msg(
                    Role::User,
                    vec![
                        Content::Text("weather?".into()),
                        Content::Image(Image::Url("https://x/y.png".into())),
                        Content::Image(Image::Data {
                            data: b"foo".to_vec(),
                            mime_type: "image/png".into(),
                        }),
                    ],
                ),
                msg(
                    Role::Assistant,
                    vec![
                        Content::Reasoning(Reasoning {
                            text: "think".into(),
                            signature: "sig".into(),
                            redacted: String::new(),
                        }),
                        Content::Reasoning(Reasoning {
                            redacted: "opaque".into(),
                            ..Reasoning::default()
                        }),
                        Content::ToolCall(ToolCall {
                            id: "toolu_1".into(),
                            name: "weather".into(),
                            arguments: args.clone(),
                            ..Default::default()
                        }),
                    ],
                ),
                msg(
                    Role::Tool,
                    vec![Content::ToolResult(ToolResult {
                        tool_call_id: "toolu_1".into(),
                        content: "sunny".into(),
                        is_error: false,
                        ..Default::default()
                    })],
                ),
                msg(
                    Role::Tool,
                    vec![Content::ToolResult(ToolResult {
                        tool_call_id: "toolu_2".into(),
                        content: "boom".into(),
                        is_error: true,
                        ..Default::default()
                    })],
                ),
                msg(Role::User, vec![Content::Text("thanks".into())]),
            ],
            temperature: Some(0.5),
            top_p: Some(0.9),
            stop: vec!["END".into()],
            tools: vec![Tool {
                name: "weather".into(),
                description: "gets weather".into(),
                parameters: serde_json::from_value(
                    json!({"type":"object","properties":{"city":{"type":"string"}}}),
                )
                .unwrap_or_default(),
                ..Default::default()
            }],
            tool_choice: Some(ToolChoice::Tool("weather".into())),
            ..ChatRequest::default()
        };
        let b = body(&call(req), None);
        assert_eq!(
            b,
            json!({
                "model": "claude-3-haiku-20240307",
                "max_tokens": 1024,
                "stream": true,
                "system": "be brief",
                "messages": [
                    {"role": "user", "content": [
                        {"type": "text", "text": "weather?"},
                        {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "Zm9v"}},
                    ]},
                    {"role": "assistant", "content": [
                        {"type": "thinking", "thinking": "think", "signature": "sig"},
                        {"type": "redacted_thinking", "data": "opaque"},
                        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "boom", "is_error": true},
                        {"type": "text", "text": "thanks"},
                    ]},
                ],
                "temperature": 0.5,
                "top_p": 0.9,
                "stop_sequences": ["END"],
                "tools": [{"name": "weather", "description": "gets weather",
                           "input_schema": {"type":"object","properties":{"city":{"type":"string"}}}}],
                "tool_choice": {"type": "tool", "name": "weather"},
            })
        );
    }

    #[test]
    fn max_tokens_request_then_model_then_provider_then_1024() {
        let user = vec![msg(Role::User, vec![Content::Text("hi".into())])];
        let mut c = call(ChatRequest {
            messages: user,
            ..ChatRequest::default()
        });
        assert_eq!(body(&c, None)["max_tokens"], 1024);
        assert_eq!(body(&c, Some(7))["max_tokens"], 7);
        c.options.default_max_tokens = Some(9);
        assert_eq!(body(&c, Some(7))["max_tokens"], 9);
        std::sync::Arc::make_mut(&mut c.request).max_tokens = Some(11);
        assert_eq!(body(&c, Some(7))["max_tokens"], 11);
        assert!(body(&c, None).get("system").is_none());
        assert!(body(&c, None).get("tools").is_none());
    }
}
