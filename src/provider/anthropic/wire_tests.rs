//! Unit tests of the module beside this file.
#![allow(clippy::unwrap_used)]
use super::*;
use crate::chat::types::{
    ChatRequest, Effort, Message, Reasoning, ReasoningConfig, Tool, ToolCall, ToolResult,
};
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

/// The body as one JSON value (panics on a refusal).
fn body(c: &Call, default_max_tokens: Option<u32>) -> Value {
    Value::Object(super::body(c, default_max_tokens).unwrap())
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

fn with(f: impl FnOnce(&mut ChatRequest)) -> Call {
    let mut req = ChatRequest {
        messages: vec![msg(Role::User, vec![Content::Text("hi".into())])],
        ..ChatRequest::default()
    };
    f(&mut req);
    call(req)
}

fn refused(c: &Call) -> String {
    let e = super::body(c, None).unwrap_err();
    assert_eq!(e.kind, crate::error::Kind::InvalidArgument, "{}", e.message);
    assert!(e.message.contains("anthropic"), "{}", e.message);
    e.message
}

fn reasoning(effort: Option<Effort>, budget: Option<u32>) -> Option<ReasoningConfig> {
    Some(ReasoningConfig {
        effort,
        budget_tokens: budget,
        include: None,
    })
}

#[test]
fn effort_levels_are_budgets_and_an_unset_max_tokens_makes_room() {
    for (effort, budget) in [
        (Effort::Minimal, 1024),
        (Effort::Low, 1024),
        (Effort::Medium, 4096),
        (Effort::High, 16384),
    ] {
        let b = body(&with(|r| r.reasoning = reasoning(Some(effort), None)), None);
        assert_eq!(
            b["thinking"],
            json!({"type": "enabled", "budget_tokens": budget})
        );
        assert_eq!(b["max_tokens"], budget + 1024, "{effort:?}");
    }
    let b = body(
        &with(|r| r.reasoning = reasoning(Some(Effort::None), None)),
        None,
    );
    assert_eq!(b["thinking"], json!({"type": "disabled"}));
    assert_eq!(b["max_tokens"], 1024);
    // includeReasoning alone asks for thinking: the medium budget.
    let b = body(
        &with(|r| {
            r.reasoning = Some(ReasoningConfig {
                include: Some(true),
                ..ReasoningConfig::default()
            })
        }),
        None,
    );
    assert_eq!(b["thinking"]["budget_tokens"], 4096);
    // A configured max tokens is checked, not raised.
    let mut c = with(|r| r.reasoning = reasoning(Some(Effort::High), None));
    c.options.default_max_tokens = Some(8000);
    let m = refused(&c);
    assert!(m.starts_with("reasoning.effort:"), "{m}");
}

#[test]
fn thinking_refuses_what_anthropic_forbids_with_it() {
    let on = || reasoning(None, Some(2048));
    for (f, field) in [
        (
            Box::new(|r: &mut ChatRequest| r.top_p = Some(0.5)) as Box<dyn Fn(&mut ChatRequest)>,
            "topP:",
        ),
        (
            Box::new(|r: &mut ChatRequest| r.tool_choice = Some(ToolChoice::Any)),
            "toolChoice:",
        ),
        (Box::new(|r: &mut ChatRequest| r.top_k = Some(5)), "topK:"),
        (
            Box::new(|r: &mut ChatRequest| r.temperature = Some(0.3)),
            "temperature:",
        ),
    ] {
        let m = refused(&with(|r| {
            r.reasoning = on();
            f(r);
        }));
        assert!(m.starts_with(field), "{m}");
    }
    // temperature 1 and top_p 0.95 are allowed.
    let b = body(
        &with(|r| {
            r.reasoning = on();
            r.temperature = Some(1.0);
            r.top_p = Some(0.95);
        }),
        None,
    );
    assert_eq!(b["thinking"]["budget_tokens"], 2048);
    // Without thinking, top_k goes as is.
    assert_eq!(body(&with(|r| r.top_k = Some(5)), None)["top_k"], 5);
}

#[test]
fn data_urls_go_as_base64_and_system_takes_text_only() {
    let b = body(
        &with(|r| {
            r.messages[0].content.push(Content::Image(Image::Url(
                "data:image/png;base64,QUJD".into(),
            )));
        }),
        None,
    );
    assert_eq!(
        b["messages"][0]["content"][1],
        json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "QUJD"}})
    );
    let m = refused(&with(|r| {
        r.messages[0]
            .content
            .push(Content::Image(Image::Url("data:image/png,QUJD".into())));
    }));
    assert!(m.starts_with("messages[0].content[1].image.url:"), "{m}");
    let m = refused(&with(|r| {
        r.messages.insert(
            0,
            msg(
                Role::System,
                vec![Content::Image(Image::Url("https://x/y.png".into()))],
            ),
        );
    }));
    assert!(m.starts_with("messages[0].content[0]:"), "{m}");
}

#[test]
fn a_breakpoint_on_an_empty_block_moves_to_the_block_before() {
    let b = body(
        &with(|r| {
            r.messages[0].content.push(Content::Text(String::new()));
            r.messages[0].cache = vec![(1, "1h".into())];
        }),
        None,
    );
    assert_eq!(
        b["messages"][0]["content"],
        json!([{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral", "ttl": "1h"}}])
    );
    let m = refused(&with(|r| r.messages[0].cache = vec![(0, "2d".into())]));
    assert!(
        m.starts_with("messages[0].content[0].cacheControl.ttl:"),
        "{m}"
    );
}

#[test]
fn tool_use_input_from_the_exact_text_when_only_it_is_known() {
    let exact = r#"{"n": 12345678901234567891, "x": -0.0}"#;
    let c = |json: &str| {
        with(|r| {
            r.messages.push(msg(
                Role::Assistant,
                vec![Content::ToolCall(ToolCall {
                    id: "t".into(),
                    name: "f".into(),
                    arguments: Map::new(),
                    arguments_json: json.into(),
                })],
            ))
        })
    };
    let b = serde_json::to_string(&body(&c(exact), None)).unwrap();
    assert!(
        b.contains(r#""input":{"n":12345678901234567891,"x":-0.0}"#),
        "{b}"
    );
    let m = refused(&c("[1]"));
    assert!(
        m.starts_with("messages[1].content[0].toolCall.argumentsJson:"),
        "{m}"
    );
}
