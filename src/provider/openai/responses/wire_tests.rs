//! Unit tests of wire.rs (the request body).

use super::*;
use crate::chat::types::{Image, ReasoningConfig, Tool, ToolCall, ToolResult};

fn msg(role: Role, content: Vec<Content>) -> Message {
    Message::new(role, content)
}

#[test]
fn a_tool_turn_with_reasoning_round_trips_as_items() {
    let mut args = Map::new();
    args.insert("city".into(), json!("Paris"));
    let mut schema = Map::new();
    schema.insert("type".into(), json!("object"));
    let req = ChatRequest {
        messages: vec![
            msg(Role::System, vec![Content::Text("be brief".into())]),
            msg(
                Role::User,
                vec![
                    Content::Text("weather?".into()),
                    Content::Image(Image::Url("https://x/y.png".into())),
                ],
            ),
            msg(
                Role::Assistant,
                vec![
                    Content::Reasoning(Reasoning {
                        text: "**Plan**".into(),
                        signature: "rs_1:gAAAAB==".into(),
                        redacted: String::new(),
                    }),
                    Content::Reasoning(Reasoning {
                        text: "anthropic's".into(),
                        signature: "EqQBCkYIBxgCKkB".into(),
                        redacted: String::new(),
                    }),
                    Content::Text("Let me look.".into()),
                    Content::ToolCall(ToolCall {
                        id: "call_1".into(),
                        name: "weather".into(),
                        arguments: args,
                        ..Default::default()
                    }),
                ],
            ),
            msg(
                Role::Tool,
                vec![Content::ToolResult(ToolResult {
                    tool_call_id: "call_1".into(),
                    content: "sunny".into(),
                    ..Default::default()
                })],
            ),
        ],
        max_tokens: Some(100),
        tools: vec![Tool {
            name: "weather".into(),
            description: "the weather".into(),
            parameters: schema.clone(),
            strict: Some(true),
            ..Default::default()
        }],
        tool_choice: Some(ToolChoice::Tool("weather".into())),
        reasoning: Some(ReasoningConfig {
            effort: Some(Effort::Low),
            budget_tokens: None,
            include: Some(true),
        }),
        response_format: Some(ResponseFormat::JsonSchema {
            name: "w".into(),
            schema,
            strict: true,
            description: String::new(),
        }),
        ..Default::default()
    };
    let b = body("o4-mini", &req, &ModelOptions::default(), None).unwrap_or_default();
    assert_eq!(
        b,
        json!({
            "model": "o4-mini", "stream": true, "store": false,
            "max_output_tokens": 100,
            "input": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [
                    {"type": "input_text", "text": "weather?"},
                    {"type": "input_image", "image_url": "https://x/y.png"},
                ]},
                {"type": "reasoning", "id": "rs_1", "encrypted_content": "gAAAAB==",
                 "summary": [{"type": "summary_text", "text": "**Plan**"}]},
                {"role": "assistant", "content": "Let me look."},
                {"type": "function_call", "call_id": "call_1", "name": "weather",
                 "arguments": "{\"city\":\"Paris\"}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            ],
            "tools": [{"type": "function", "name": "weather", "description": "the weather",
                       "parameters": {"type": "object"}, "strict": true}],
            "tool_choice": {"type": "function", "name": "weather"},
            "reasoning": {"effort": "low", "summary": "auto"},
            "include": ["reasoning.encrypted_content"],
            "text": {"format": {"type": "json_schema", "name": "w",
                                "schema": {"type": "object"}, "strict": true}},
        })
    );
}

#[test]
fn what_responses_cannot_carry_is_refused_by_name() {
    let base = ChatRequest {
        messages: vec![msg(Role::User, vec![Content::Text("hi".into())])],
        ..Default::default()
    };
    for (req, field) in [
        (
            ChatRequest {
                stop: vec!["END".into()],
                ..base.clone()
            },
            "stop",
        ),
        (
            ChatRequest {
                seed: Some(1),
                ..base.clone()
            },
            "seed",
        ),
        (
            ChatRequest {
                reasoning: Some(ReasoningConfig {
                    budget_tokens: Some(10),
                    ..Default::default()
                }),
                ..base.clone()
            },
            "budgetTokens",
        ),
    ] {
        let e = body("m", &req, &ModelOptions::default(), None).err();
        assert!(
            e.as_ref().is_some_and(
                |e| e.kind == crate::error::Kind::InvalidArgument && e.message.contains(field)
            ),
            "{field}: {e:?}"
        );
    }
    let mut po = Map::new();
    po.insert("store".into(), json!(true));
    let req = ChatRequest {
        provider_options: po,
        ..base
    };
    assert!(body("m", &req, &ModelOptions::default(), None).is_err());
}

#[test]
fn signatures_split_only_for_reasoning_items() {
    assert_eq!(
        split_signature("rs_ab-1:gAAA=="),
        Some(("rs_ab-1", "gAAA=="))
    );
    assert_eq!(
        split_signature(&signature("rs_x", "e:f")),
        Some(("rs_x", "e:f"))
    );
    assert_eq!(split_signature("EqQBCkYIBxgC"), None);
    assert_eq!(split_signature("rs_x:"), None);
    assert_eq!(split_signature("msg_1:abc"), None);
}
