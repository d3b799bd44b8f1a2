//! Unit tests of the module beside this file.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::chat::types::{ChatRequest, Message, Reasoning, Tool, ToolCall, ToolResult};
use crate::error::Kind;
use crate::{
    chat::types::{Effort, ReasoningConfig},
    provider::gemini::thinking::thinking_config,
};

fn call(messages: Vec<Message>) -> Call {
    Call {
        model: "gemini-2.0-flash".into(),
        request: ChatRequest {
            messages,
            ..ChatRequest::default()
        }
        .into(),
        options: crate::provider::ModelOptions::default(),
        fallback_id: "run-1".into(),
        budget: Default::default(),
    }
}

#[test]
fn request_body_maps_roles_tools_signatures_and_config() {
    let mut args = Map::new();
    args.insert("city".into(), json!("Paris"));
    let mut c = call(vec![
        Message {
            role: Role::System,
            content: vec![Content::Text("be brief".into())],
            ..Default::default()
        },
        Message {
            role: Role::User,
            content: vec![
                Content::Text("weather?".into()),
                Content::Image(Image::Data {
                    data: b"abc".to_vec(),
                    mime_type: "image/png".into(),
                }),
                Content::Image(Image::Url("https://x.test/cat.jpg".into())),
            ],
            ..Default::default()
        },
        Message {
            role: Role::Assistant,
            content: vec![
                Content::Reasoning(Reasoning {
                    text: "hmm".into(),
                    signature: "SIG".into(),
                    redacted: String::new(),
                }),
                Content::ToolCall(ToolCall {
                    id: "call_0".into(),
                    name: "weather".into(),
                    arguments: args.clone(),
                    ..Default::default()
                }),
                Content::ToolCall(ToolCall {
                    id: "abc".into(),
                    name: "time".into(),
                    arguments: Map::new(),
                    ..Default::default()
                }),
            ],
            ..Default::default()
        },
        Message {
            role: Role::Tool,
            content: vec![Content::ToolResult(ToolResult {
                tool_call_id: "call_0".into(),
                content: "sunny".into(),
                is_error: false,
                ..Default::default()
            })],
            ..Default::default()
        },
        Message {
            role: Role::Tool,
            content: vec![Content::ToolResult(ToolResult {
                tool_call_id: "abc".into(),
                content: "no clock".into(),
                is_error: true,
                ..Default::default()
            })],
            ..Default::default()
        },
    ]);
    std::sync::Arc::make_mut(&mut c.request).tools = vec![Tool {
        name: "weather".into(),
        description: "Weather".into(),
        parameters: json!({"type":"object","properties":{"city":{"type":"string"}}})
            .as_object()
            .cloned()
            .unwrap(),
        ..Default::default()
    }];
    std::sync::Arc::make_mut(&mut c.request).tool_choice = Some(ToolChoice::Tool("weather".into()));
    std::sync::Arc::make_mut(&mut c.request).max_tokens = Some(50);
    std::sync::Arc::make_mut(&mut c.request).temperature = Some(0.5);
    std::sync::Arc::make_mut(&mut c.request).top_p = Some(0.9);
    std::sync::Arc::make_mut(&mut c.request).stop = vec!["END".into()];
    let body = request_body(&c, None).unwrap();
    assert_eq!(
        body,
        json!({
            "systemInstruction": {"parts": [{"text": "be brief"}]},
            "contents": [
                {"role": "user", "parts": [
                    {"text": "weather?"},
                    {"inlineData": {"mimeType": "image/png", "data": "YWJj"}},
                    {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://x.test/cat.jpg"}}
                ]},
                {"role": "model", "parts": [
                    {"text": "hmm", "thought": true},
                    {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": "SIG"},
                    {"functionCall": {"id": "abc", "name": "time", "args": {}}}
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "weather", "response": {"content": "sunny"}}},
                    {"functionResponse": {"id": "abc", "name": "time", "response": {"error": "no clock"}}}
                ]}
            ],
            "tools": [{"functionDeclarations": [{"name": "weather", "description": "Weather",
                "parametersJsonSchema": {"type":"object","properties":{"city":{"type":"string"}}}}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}},
            "generationConfig": {"maxOutputTokens": 50, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]}
        })
    );
}

#[test]
fn signature_without_a_following_part_stays_on_the_thought() {
    let parts = model_parts(
        &[
            Content::Reasoning(Reasoning {
                text: "a".into(),
                signature: "S1".into(),
                redacted: String::new(),
            }),
            Content::Text("answer".into()),
            Content::Reasoning(Reasoning {
                text: "b".into(),
                signature: "S2".into(),
                redacted: String::new(),
            }),
        ],
        0,
    )
    .unwrap();
    assert_eq!(
        parts,
        vec![
            json!({"text": "a", "thought": true}),
            json!({"text": "answer", "thoughtSignature": "S1"}),
            json!({"text": "b", "thought": true, "thoughtSignature": "S2"}),
        ]
    );
}

#[test]
fn unknown_tool_result_id_is_invalid_and_thoughts_come_only_when_asked_for() {
    let c = call(vec![Message {
        role: Role::Tool,
        content: vec![Content::ToolResult(ToolResult {
            tool_call_id: "nope".into(),
            content: "x".into(),
            is_error: false,
            ..Default::default()
        })],
        ..Default::default()
    }]);
    assert_eq!(
        request_body(&c, None).unwrap_err().kind,
        Kind::InvalidArgument
    );
    let mut c = call(vec![Message {
        role: Role::User,
        content: vec![Content::Text("hi".into())],
        ..Default::default()
    }]);
    // No reasoning field: no thinkingConfig, whatever the model's name.
    c.model = "gemini-2.5-pro".into();
    let body = request_body(&c, None).unwrap();
    assert!(body.get("generationConfig").is_none(), "{body}");
    std::sync::Arc::make_mut(&mut c.request).reasoning = Some(ReasoningConfig {
        include: Some(true),
        ..Default::default()
    });
    let body = request_body(&c, None).unwrap();
    assert_eq!(
        body["generationConfig"],
        json!({"thinkingConfig": {"includeThoughts": true}})
    );
}

#[test]
fn efforts_are_levels_from_gemini_3_and_budgets_before() {
    let r = |effort, budget_tokens| ReasoningConfig {
        effort,
        budget_tokens,
        include: None,
    };
    for (model, effort, want) in [
        (
            "gemini-2.5-flash",
            Effort::None,
            json!({"thinkingBudget": 0}),
        ),
        (
            "gemini-2.5-flash",
            Effort::Minimal,
            json!({"thinkingBudget": 512}),
        ),
        (
            "gemini-2.5-flash",
            Effort::Low,
            json!({"thinkingBudget": 1024}),
        ),
        (
            "models/gemini-2.5-pro",
            Effort::Medium,
            json!({"thinkingBudget": 8192}),
        ),
        (
            "gemini-2.5-pro",
            Effort::High,
            json!({"thinkingBudget": 24576}),
        ),
        (
            "gemini-3-pro-preview",
            Effort::None,
            json!({"thinkingBudget": 0}),
        ),
        (
            "gemini-3-flash-preview",
            Effort::Minimal,
            json!({"thinkingLevel": "minimal"}),
        ),
        (
            "models/gemini-3-pro-preview",
            Effort::Low,
            json!({"thinkingLevel": "low"}),
        ),
        (
            "gemini-3.1-pro",
            Effort::Medium,
            json!({"thinkingLevel": "medium"}),
        ),
        (
            "gemini-3-pro-preview",
            Effort::High,
            json!({"thinkingLevel": "high"}),
        ),
        (
            "gemini-10-ultra",
            Effort::High,
            json!({"thinkingLevel": "high"}),
        ),
    ] {
        assert_eq!(
            thinking_config(model, &r(Some(effort), None)),
            Some(want),
            "{model} {effort:?}"
        );
    }
    // A budget wins over an effort, on every model.
    assert_eq!(
        thinking_config("gemini-3-pro-preview", &r(Some(Effort::High), Some(300))),
        Some(json!({"thinkingBudget": 300}))
    );
    assert_eq!(thinking_config("gemini-2.5-flash", &r(None, None)), None);
}
