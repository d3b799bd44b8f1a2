//! API 1.1 through the `ollama` provider, end to end: the real gRPC server in
//! front of a mock Ollama on 127.0.0.1. Each new request field is checked as
//! the exact JSON `/api/chat` receives (reasoning → think, responseFormat →
//! format, seed / topK / penalties → options, tool-result text and images,
//! cache breakpoints, providerOptions merged, exact tool-call numbers); what
//! Ollama lacks is INVALID_ARGUMENT naming the field and the provider, before
//! any upstream call.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use chatwire::{api::convert::json_to_struct, config::Config, pb};
use common::*;
use pb::content_block::Block;
use serde_json::{json, Value};
use tonic::{transport::Channel, Code};

type Client = pb::chat_model_service_client::ChatModelServiceClient<Channel>;

const MODEL: &str = "ollama:gpt-oss:20b";

fn ok_body() -> String {
    [
        json!({"model": "gpt-oss:20b", "created_at": "2025-06-01T10:00:00.000Z",
            "message": {"role": "assistant", "content": "ok"}, "done": false}),
        json!({"model": "gpt-oss:20b", "created_at": "2025-06-01T10:00:01.000Z",
            "message": {"role": "assistant", "content": ""}, "done_reason": "stop", "done": true,
            "prompt_eval_count": 3, "eval_count": 1}),
    ]
    .iter()
    .map(|l| format!("{l}\n"))
    .collect()
}

/// A mock Ollama answering "ok", the server in front of it, and a client.
async fn setup() -> (MockUpstream, TestServer, Client) {
    let up = MockUpstream::start(|_| Reply::ndjson(ok_body())).await;
    let mut config = Config::default();
    config.retry.max_retries = 0;
    let srv = TestServer::start(config, env(&[("OLLAMA_HOST", &up.url)])).await;
    let c = srv.client().await;
    (up, srv, c)
}

/// Invokes `req` and returns the JSON body Ollama received for it.
async fn sent(c: &mut Client, up: &MockUpstream, req: pb::ChatRequest) -> Value {
    let before = up.requests().len();
    let m = c.invoke(req).await.unwrap().into_inner();
    assert_eq!(m.content, vec![text("ok")]);
    let reqs = up.requests();
    assert_eq!(reqs.len(), before + 1);
    assert_eq!(reqs[before].path, "/api/chat");
    reqs[before].json()
}

/// Invokes `req` and checks it is INVALID_ARGUMENT naming `field` and the
/// provider, and that nothing reached Ollama.
async fn refused(c: &mut Client, up: &MockUpstream, req: pb::ChatRequest, field: &str) {
    let before = up.requests().len();
    let e = c.invoke(req).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{field}: {e:?}");
    assert!(e.message().contains(field), "{field}: {}", e.message());
    assert!(e.message().contains("ollama"), "{field}: {}", e.message());
    assert_eq!(up.requests().len(), before, "{field}: nothing is sent");
}

fn obj(v: Value) -> prost_types::Struct {
    json_to_struct(v.as_object().unwrap())
}

fn block(b: Block) -> pb::ContentBlock {
    pb::ContentBlock {
        block: Some(b),
        ..Default::default()
    }
}

fn reasoning(
    effort: pb::ReasoningEffort,
    budget: Option<u32>,
    include: Option<bool>,
) -> pb::ReasoningConfig {
    pb::ReasoningConfig {
        effort: effort as i32,
        budget_tokens: budget,
        include_reasoning: include,
    }
}

fn tool_call(id: &str, name: &str, arguments_json: &str) -> pb::ContentBlock {
    block(Block::ToolCall(pb::ToolCall {
        id: id.into(),
        name: name.into(),
        arguments: None,
        arguments_json: arguments_json.into(),
    }))
}

fn tool_result(id: &str, content: &str, blocks: Vec<pb::ContentBlock>) -> pb::ContentBlock {
    block(Block::ToolResult(pb::ToolResult {
        tool_call_id: id.into(),
        content: content.into(),
        is_error: false,
        blocks,
    }))
}

fn weather_tool() -> pb::Tool {
    pb::Tool {
        name: "weather".into(),
        description: "Weather".into(),
        parameters: Some(obj(json!({"type": "object"}))),
        ..Default::default()
    }
}

#[tokio::test]
async fn reasoning_maps_to_think_and_nothing_is_guessed() {
    use pb::ReasoningEffort as E;
    let (up, _srv, mut c) = setup().await;
    for (r, want) in [
        (reasoning(E::None, None, None), json!(false)),
        (reasoning(E::Minimal, None, None), json!(true)),
        (reasoning(E::Low, None, None), json!("low")),
        (reasoning(E::Medium, None, Some(true)), json!("medium")),
        (reasoning(E::High, None, None), json!("high")),
        (reasoning(E::High, None, Some(false)), json!(false)),
        (reasoning(E::Unspecified, None, Some(true)), json!(true)),
        (reasoning(E::Unspecified, None, Some(false)), json!(false)),
    ] {
        let mut req = text_request(MODEL, "think");
        req.reasoning = Some(r);
        let body = sent(&mut c, &up, req).await;
        assert_eq!(body["think"], want, "{r:?}");
    }
    // No reasoning field: no think, even when the conversation holds reasoning.
    let mut req = text_request(MODEL, "first");
    req.messages.push(msg(
        pb::Role::Assistant,
        vec![
            block(Block::Reasoning(pb::Reasoning {
                text: "Hmm.".into(),
                ..Default::default()
            })),
            text("Hello."),
        ],
    ));
    req.messages.push(msg(pb::Role::User, vec![text("again")]));
    let body = sent(&mut c, &up, req).await;
    assert_eq!(
        body,
        json!({
            "model": "gpt-oss:20b",
            "stream": true,
            "messages": [
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "Hello.", "thinking": "Hmm."},
                {"role": "user", "content": "again"}
            ]
        })
    );
    // A budget has no Ollama form.
    let mut req = text_request(MODEL, "x");
    req.reasoning = Some(reasoning(E::High, Some(1024), None));
    refused(&mut c, &up, req, "reasoning.budgetTokens").await;
}

#[tokio::test]
async fn response_format_seed_top_k_and_penalties() {
    use pb::ResponseFormatType as T;
    let (up, _srv, mut c) = setup().await;
    let schema =
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    for (format, want) in [
        (
            pb::ResponseFormat {
                r#type: T::JsonObject as i32,
                ..Default::default()
            },
            Some(json!("json")),
        ),
        (
            pb::ResponseFormat {
                r#type: T::JsonSchema as i32,
                name: "place".into(),
                schema: Some(obj(schema.clone())),
                strict: true,
                description: String::new(),
            },
            Some(schema.clone()),
        ),
        (
            pb::ResponseFormat {
                r#type: T::Text as i32,
                ..Default::default()
            },
            None,
        ),
    ] {
        let mut req = text_request(MODEL, "json please");
        req.response_format = Some(format.clone());
        let body = sent(&mut c, &up, req).await;
        assert_eq!(body.get("format"), want.as_ref(), "{format:?}");
    }

    let mut req = text_request(MODEL, "sample");
    req.seed = Some(7);
    req.top_k = Some(20);
    req.frequency_penalty = Some(0.5);
    req.presence_penalty = Some(-0.25);
    req.max_tokens = Some(64);
    let body = sent(&mut c, &up, req).await;
    assert_eq!(
        body["options"],
        json!({"num_predict": 64, "seed": 7, "top_k": 20, "frequency_penalty": 0.5, "presence_penalty": -0.25})
    );
}

#[tokio::test]
async fn tool_result_text_and_images_and_cache_breakpoints() {
    let (up, _srv, mut c) = setup().await;
    let cache = |ttl: &str| Some(pb::CacheControl { ttl: ttl.into() });
    let mut req = text_request(MODEL, "Weather map?");
    req.messages[0].cache_control = cache("1h");
    req.messages[0].content[0].cache_control = cache("5m");
    req.messages.push(msg(
        pb::Role::Assistant,
        vec![tool_call("call_0", "weather", r#"{"city":"Oslo"}"#)],
    ));
    req.messages.push(msg(
        pb::Role::Tool,
        vec![tool_result(
            "call_0",
            "Rain. ",
            vec![
                text("Map attached."),
                block(Block::Image(pb::Image {
                    source: Some(pb::image::Source::Data(vec![0x89, b'P', b'N', b'G'])),
                    mime_type: "image/png".into(),
                })),
                block(Block::Image(pb::Image {
                    source: Some(pb::image::Source::Url("data:image/png;base64,QUJD".into())),
                    mime_type: String::new(),
                })),
            ],
        )],
    ));
    let mut tool = weather_tool();
    tool.cache_control = cache("5m");
    req.tools = vec![tool];
    let body = sent(&mut c, &up, req).await;
    assert_eq!(
        body,
        json!({
            "model": "gpt-oss:20b",
            "stream": true,
            "messages": [
                {"role": "user", "content": "Weather map?"},
                {"role": "assistant", "content": "",
                 "tool_calls": [{"function": {"name": "weather", "arguments": {"city": "Oslo"}}}]},
                {"role": "tool", "content": "Rain. Map attached.", "images": ["iVBORw==", "QUJD"],
                 "tool_name": "weather"}
            ],
            "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather",
                "parameters": {"type": "object"}}}]
        })
    );
}

#[tokio::test]
async fn what_ollama_lacks_is_refused_naming_the_field() {
    let (up, _srv, mut c) = setup().await;

    let mut req = text_request(MODEL, "x");
    req.tools = vec![weather_tool()];
    req.parallel_tool_calls = Some(true);
    refused(&mut c, &up, req, "parallelToolCalls").await;

    let mut req = text_request(MODEL, "x");
    req.messages[0].name = "alice".into();
    refused(&mut c, &up, req, "messages[0].name").await;

    let mut req = text_request(MODEL, "x");
    let mut tool = weather_tool();
    tool.strict = Some(false);
    req.tools = vec![tool];
    refused(&mut c, &up, req, "tools[0].strict").await;

    let mut req = text_request(MODEL, "x");
    req.messages[0].content.push(block(Block::File(pb::File {
        source: Some(pb::file::Source::Data(b"%PDF".to_vec())),
        mime_type: "application/pdf".into(),
        filename: String::new(),
    })));
    refused(&mut c, &up, req, "messages[0].content[1].file").await;

    let mut req = text_request(MODEL, "x");
    req.messages[0].content.push(block(Block::Audio(pb::Audio {
        data: b"RIFF".to_vec(),
        mime_type: "audio/wav".into(),
    })));
    refused(&mut c, &up, req, "messages[0].content[1].audio").await;

    let mut req = text_request(MODEL, "x");
    req.messages.push(msg(
        pb::Role::Assistant,
        vec![tool_call("c1", "weather", "{}")],
    ));
    req.messages.push(msg(
        pb::Role::Tool,
        vec![tool_result(
            "c1",
            "",
            vec![
                text("see file"),
                block(Block::File(pb::File {
                    source: Some(pb::file::Source::Url("https://x.test/a.pdf".into())),
                    mime_type: "application/pdf".into(),
                    filename: String::new(),
                })),
            ],
        )],
    ));
    refused(
        &mut c,
        &up,
        req,
        "messages[2].content[0].toolResult.blocks[1].file",
    )
    .await;

    // Ollama fetches no URL: an image in a tool result must be inline too.
    let mut req = text_request(MODEL, "x");
    req.messages.push(msg(
        pb::Role::Assistant,
        vec![tool_call("c1", "weather", "{}")],
    ));
    req.messages.push(msg(
        pb::Role::Tool,
        vec![tool_result(
            "c1",
            "",
            vec![block(Block::Image(pb::Image {
                source: Some(pb::image::Source::Url("https://x.test/map.png".into())),
                mime_type: String::new(),
            }))],
        )],
    ));
    refused(
        &mut c,
        &up,
        req,
        "messages[2].content[0].toolResult.blocks[0].image",
    )
    .await;
}

#[tokio::test]
async fn provider_options_merge_and_owned_keys_are_refused() {
    let (up, _srv, mut c) = setup().await;
    let mut req = text_request(MODEL, "x");
    req.temperature = Some(0.25);
    req.provider_options = Some(obj(json!({
        "keep_alive": "10m",
        "options": {"num_ctx": 8192, "repeat_penalty": 1.1}
    })));
    let body = sent(&mut c, &up, req).await;
    assert_eq!(
        body,
        json!({
            "model": "gpt-oss:20b",
            "stream": true,
            "messages": [{"role": "user", "content": "x"}],
            "options": {"temperature": 0.25, "num_ctx": 8192, "repeat_penalty": 1.1},
            "keep_alive": "10m"
        })
    );

    for (options, field) in [
        (json!({"think": true}), "providerOptions.think"),
        (json!({"format": "json"}), "providerOptions.format"),
        (json!({"model": "other"}), "providerOptions.model"),
        (
            json!({"options": {"seed": 1}}),
            "providerOptions.options.seed",
        ),
        (
            json!({"options": {"num_predict": 10}}),
            "providerOptions.options.num_predict",
        ),
        (json!({"options": 3}), "providerOptions.options"),
    ] {
        let mut req = text_request(MODEL, "x");
        req.provider_options = Some(obj(options));
        let before = up.requests().len();
        let e = c.invoke(req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{field}");
        assert!(e.message().contains(field), "{field}: {}", e.message());
        assert_eq!(up.requests().len(), before);
    }
}

#[tokio::test]
async fn tool_call_arguments_keep_their_numbers_exactly() {
    let (up, _srv, mut c) = setup().await;
    let mut req = text_request(MODEL, "go");
    req.messages.push(msg(
        pb::Role::Assistant,
        vec![tool_call(
            "call_1",
            "weather",
            r#"{"n": 12345678901234567891, "x": -0.0}"#,
        )],
    ));
    req.messages.push(msg(
        pb::Role::Tool,
        vec![tool_result("call_1", "done", vec![])],
    ));
    req.tools = vec![weather_tool()];
    sent(&mut c, &up, req).await;
    let raw = String::from_utf8(up.requests()[0].body.clone()).unwrap();
    assert!(
        raw.contains(
            r#""tool_calls":[{"function":{"arguments":{"n":12345678901234567891,"x":-0.0},"name":"weather"}}]"#
        ),
        "{raw}"
    );
}
