//! Unit tests of wire.rs (the request body).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::chat::types::{ChatRequest, Message, Reasoning, ReasoningConfig};

fn call(req: ChatRequest) -> Call {
    Call {
        model: "anthropic.claude-3-haiku-20240307-v1:0".into(),
        request: Arc::new(req),
        options: Default::default(),
        fallback_id: "run-x".into(),
        budget: Default::default(),
    }
}

#[test]
fn a_conversation_with_tools_reasoning_and_settings() {
    let req = ChatRequest {
        messages: vec![
            Message::new(Role::System, vec![Content::Text("Be brief.".into())]),
            Message::new(
                Role::User,
                vec![
                    Content::Text("Weather?".into()),
                    Content::Image(Image::Data {
                        data: b"PNG".to_vec(),
                        mime_type: "image/png".into(),
                    }),
                ],
            ),
            Message::new(
                Role::Assistant,
                vec![
                    Content::Reasoning(Reasoning {
                        text: "think".into(),
                        signature: "sig".into(),
                        redacted: String::new(),
                    }),
                    Content::ToolCall(ToolCall {
                        id: "t1".into(),
                        name: "get".into(),
                        arguments_json: "{\"city\":\"Paris\"}".into(),
                        ..Default::default()
                    }),
                ],
            ),
            Message::new(
                Role::Tool,
                vec![Content::ToolResult(ToolResult {
                    tool_call_id: "t1".into(),
                    content: "sunny".into(),
                    is_error: true,
                    blocks: vec![],
                })],
            ),
        ],
        max_tokens: Some(100),
        temperature: Some(0.5),
        stop: vec!["END".into()],
        tools: vec![Tool {
            name: "get".into(),
            description: "d".into(),
            ..Default::default()
        }],
        tool_choice: Some(ToolChoice::Tool("get".into())),
        reasoning: Some(ReasoningConfig {
            budget_tokens: Some(2048),
            ..Default::default()
        }),
        top_k: Some(5),
        ..Default::default()
    };
    let b = Value::Object(body(&call(req), None).unwrap());
    assert_eq!(
        b,
        json!({
            "system": [{"text": "Be brief."}],
            "messages": [
                {"role": "user", "content": [{"text": "Weather?"}, {"image": {"format": "png", "source": {"bytes": "UE5H"}}}]},
                {"role": "assistant", "content": [
                    {"reasoningContent": {"reasoningText": {"text": "think", "signature": "sig"}}},
                    {"toolUse": {"toolUseId": "t1", "name": "get", "input": {"city": "Paris"}}}
                ]},
                {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "sunny"}], "status": "error"}}]}
            ],
            "inferenceConfig": {"maxTokens": 100, "temperature": 0.5, "stopSequences": ["END"]},
            "toolConfig": {"tools": [{"toolSpec": {"name": "get", "description": "d", "inputSchema": {"json": {"type": "object", "properties": {}}}}}], "toolChoice": {"tool": {"name": "get"}}},
            "additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 2048}, "top_k": 5}
        })
    );
}

#[test]
fn what_converse_cannot_carry_is_refused() {
    let with = |c: Content| ChatRequest {
        messages: vec![Message::new(Role::User, vec![c])],
        ..Default::default()
    };
    let e = body(
        &call(with(Content::Image(Image::Url("https://x/y.png".into())))),
        None,
    )
    .unwrap_err();
    assert!(e.message.contains("image.url"), "{}", e.message);
    let req = ChatRequest {
        tools: vec![Tool {
            name: "f".into(),
            ..Default::default()
        }],
        tool_choice: Some(ToolChoice::None),
        ..with(Content::Text("x".into()))
    };
    assert!(body(&call(req), None)
        .unwrap_err()
        .message
        .contains("toolChoice"));
    let mut req = with(Content::Text("x".into()));
    req.provider_options.insert("messages".into(), json!([]));
    assert!(body(&call(req), None).is_err());
}
