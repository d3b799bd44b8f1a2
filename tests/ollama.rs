//! The `ollama` provider end to end: the real gRPC server in front of a mock
//! Ollama on 127.0.0.1 serving NDJSON written from Ollama's documented `/api/chat`
//! stream. Covers the request, content / thinking / tool calls / the final
//! `done` line, arbitrary read splits, a mid-stream error (partial output kept in
//! StreamEvents' error event), EOF before `done`, HTTP errors and OLLAMA_HOST forms.
// Tests measure wall-clock time and share state across mock threads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use chatwire::{config::Config, pb};
use common::*;
use pb::{chat_event::Event, content_block::Block, message_chunk::Delta};
use serde_json::json;
use tonic::Code;

const MODEL: &str = "ollama:qwen3:8b";

fn ndjson(lines: &[serde_json::Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn line(message: serde_json::Value) -> serde_json::Value {
    json!({"model": "qwen3:8b", "created_at": "2025-06-01T10:00:00.000Z", "message": message, "done": false})
}

fn done(reason: &str, prompt: u32, eval: u32) -> serde_json::Value {
    json!({"model": "qwen3:8b", "created_at": "2025-06-01T10:00:01.000Z",
        "message": {"role": "assistant", "content": ""},
        "done_reason": reason, "done": true, "total_duration": 123456, "load_duration": 1000,
        "prompt_eval_count": prompt, "prompt_eval_duration": 10, "eval_count": eval, "eval_duration": 100})
}

fn thinking_body() -> String {
    ndjson(&[
        line(json!({"role": "assistant", "content": "", "thinking": "The user greets; "})),
        line(json!({"role": "assistant", "content": "", "thinking": "reply kindly."})),
        line(json!({"role": "assistant", "content": "Héllo"})),
        line(json!({"role": "assistant", "content": " 👋🏽 世界"})),
        done("stop", 11, 7),
    ])
}

fn host(up: &MockUpstream) -> String {
    up.url.trim_start_matches("http://").to_string()
}

fn no_retry() -> Config {
    let mut c = Config::default();
    c.retry.max_retries = 0;
    c
}

#[tokio::test]
async fn content_thinking_and_usage_through_stream_invoke_and_events() {
    let up = MockUpstream::start(|_| Reply::ndjson(thinking_body())).await;
    // OLLAMA_HOST without a scheme, as people write it.
    let srv = TestServer::start(Config::default(), env(&[("OLLAMA_HOST", &host(&up))])).await;
    let mut c = srv.client().await;
    let mut req = text_request(MODEL, "Hi!");
    req.messages
        .insert(0, msg(pb::Role::System, vec![text("Be kind.")]));
    req.max_tokens = Some(100);
    req.temperature = Some(0.7);
    req.top_p = Some(0.9);
    req.stop = vec!["<end>".into()];
    req.config = Some(pb::RunConfig {
        run_id: "0b8f2a5e-6d5c-4a57-9f4e-000000000001".into(),
        ..Default::default()
    });

    let (chunks, status) = collect_stream(&mut c, req.clone()).await;
    assert!(status.is_none(), "{status:?}");
    // Ollama gives no id: every chunk carries the run's fallback id.
    assert!(chunks
        .iter()
        .all(|c| c.id == "run-0b8f2a5e-6d5c-4a57-9f4e-000000000001"));
    let deltas: Vec<_> = chunks.iter().filter_map(|c| c.delta.clone()).collect();
    assert_eq!(
        deltas,
        vec![
            Delta::Reasoning(pb::ReasoningChunk {
                text: "The user greets; ".into(),
                ..Default::default()
            }),
            Delta::Reasoning(pb::ReasoningChunk {
                text: "reply kindly.".into(),
                ..Default::default()
            }),
            Delta::Text("Héllo".into()),
            Delta::Text(" 👋🏽 世界".into()),
        ]
    );
    let last = chunks.last().unwrap();
    assert!(last.last && chunks.iter().filter(|c| c.last).count() == 1);
    assert_eq!(last.stop_reason, pb::StopReason::EndTurn as i32);
    assert_eq!(
        last.usage,
        Some(pb::Usage {
            input_tokens: 11,
            output_tokens: 7,
            total_tokens: 18,
            ..Default::default()
        })
    );

    let invoked = c.invoke(req.clone()).await.unwrap().into_inner();
    assert_eq!(comparable(&invoked), fold(&chunks));

    let (events, status) = collect_events(&mut c, req).await;
    assert!(status.is_none(), "{status:?}");
    assert!(events.iter().all(|e| e.name == "ChatOllama"));
    assert!(matches!(events.last().unwrap().event, Some(Event::End(_))));

    let r = &up.requests()[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/api/chat"));
    assert!(r.header("authorization").is_none());
    assert_eq!(
        r.json(),
        json!({
            "model": "qwen3:8b",
            "stream": true,
            "messages": [
                {"role": "system", "content": "Be kind."},
                {"role": "user", "content": "Hi!"}
            ],
            "options": {"temperature": 0.7, "top_p": 0.9, "num_predict": 100, "stop": ["<end>"]}
        })
    );
}

#[tokio::test]
async fn any_split_of_the_body_gives_identical_output() {
    let body = thinking_body();
    let len = body.len();
    let mut cases: Vec<Vec<usize>> = (0..24).map(|s| random_splits(len, s)).collect();
    cases.push(byte_splits(len));
    let skin = body.find('🏽').unwrap();
    let nl = body.find('\n').unwrap();
    cases.push(vec![nl, nl + 1, skin + 1, skin + 2, skin + 3]);
    let queue = std::sync::Arc::new(std::sync::Mutex::new(cases.clone()));
    let q = queue.clone();
    let up = MockUpstream::start(move |_| {
        Reply::ndjson(thinking_body()).splits(q.lock().unwrap().remove(0))
    })
    .await;
    let srv = TestServer::start(Config::default(), env(&[("OLLAMA_HOST", &up.url)])).await;
    let mut c = srv.client().await;
    let mut req = text_request(MODEL, "hi");
    req.config = Some(pb::RunConfig {
        run_id: "0b8f2a5e-6d5c-4a57-9f4e-000000000002".into(),
        ..Default::default()
    });
    let mut reference = None;
    for _ in 0..cases.len() {
        let (chunks, status) = collect_stream(&mut c, req.clone()).await;
        assert!(status.is_none(), "{status:?}");
        match &reference {
            None => reference = Some(chunks),
            Some(r) => assert_eq!(r, &chunks),
        }
    }
    assert_eq!(reference.unwrap().len(), 5);
}

#[tokio::test]
async fn tool_calls_images_and_tool_results() {
    let body = ndjson(&[
        line(json!({"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Tokyo", "unit": "°C"}}},
            {"function": {"name": "get_time", "arguments": {}}}
        ]})),
        done("stop", 169, 15),
    ]);
    let up = MockUpstream::start(move |_| Reply::ndjson(body.clone())).await;
    let srv = TestServer::start(Config::default(), env(&[("OLLAMA_HOST", &up.url)])).await;
    let mut c = srv.client().await;

    let obj = |v: serde_json::Value| {
        Some(chatwire::api::convert::json_to_struct(
            v.as_object().unwrap(),
        ))
    };
    let mut req = text_request(MODEL, "What is in this picture, and the weather?");
    // One run id for both calls, so Stream and Invoke share the fallback message id.
    req.config = Some(pb::RunConfig {
        run_id: "0b8f2a5e-6d5c-4a57-9f4e-000000000003".into(),
        ..Default::default()
    });
    req.messages[0].content.push(pb::ContentBlock {
        block: Some(Block::Image(pb::Image {
            source: Some(pb::image::Source::Data(b"\x89PNG".to_vec())),
            mime_type: "image/png".into(),
        })),
        ..Default::default()
    });
    req.messages.push(msg(
        pb::Role::Assistant,
        vec![
            pb::ContentBlock {
                block: Some(Block::Reasoning(pb::Reasoning {
                    text: "Need the weather tool.".into(),
                    ..Default::default()
                })),
                ..Default::default()
            },
            pb::ContentBlock {
                block: Some(Block::ToolCall(pb::ToolCall {
                    id: "call_7".into(),
                    name: "get_weather".into(),
                    arguments: obj(json!({"city": "Kyoto"})),
                    ..Default::default()
                })),
                ..Default::default()
            },
        ],
    ));
    req.messages.push(msg(
        pb::Role::Tool,
        vec![pb::ContentBlock {
            block: Some(Block::ToolResult(pb::ToolResult {
                tool_call_id: "call_7".into(),
                content: "18°C, clear".into(),
                is_error: false,
                ..Default::default()
            })),
            ..Default::default()
        }],
    ));
    req.tools = vec![pb::Tool {
        name: "get_weather".into(),
        description: "Weather for a city".into(),
        parameters: obj(
            json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        ),
        ..Default::default()
    }];

    // Thinking is asked for explicitly (no guess from the conversation).
    req.reasoning = Some(pb::ReasoningConfig {
        include_reasoning: Some(true),
        ..Default::default()
    });

    let (chunks, status) = collect_stream(&mut c, req.clone()).await;
    assert!(status.is_none(), "{status:?}");
    let calls: Vec<_> = chunks
        .iter()
        .filter_map(|c| match &c.delta {
            Some(Delta::ToolCall(t)) => Some(t.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[0].index, calls[0].id.as_str(), calls[0].name.as_str()),
        (0, "call_0", "get_weather")
    );
    // Arguments arrive as an object and are serialized once, as JSON text.
    assert_eq!(calls[0].arguments, r#"{"city":"Tokyo","unit":"°C"}"#);
    assert_eq!(
        (
            calls[1].index,
            calls[1].id.as_str(),
            calls[1].arguments.as_str()
        ),
        (1, "call_1", "{}")
    );
    assert_eq!(
        chunks.last().unwrap().stop_reason,
        pb::StopReason::ToolUse as i32
    );
    let invoked = c.invoke(req).await.unwrap().into_inner();
    assert_eq!(comparable(&invoked), fold(&chunks));
    assert_eq!(invoked.tool_calls.len(), 2);

    let body = up.requests()[0].json();
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": "What is in this picture, and the weather?", "images": ["iVBORw=="]},
            {"role": "assistant", "content": "", "thinking": "Need the weather tool.",
             "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Kyoto"}}}]},
            {"role": "tool", "content": "18°C, clear", "tool_name": "get_weather"}
        ])
    );
    assert_eq!(
        body["think"],
        json!(true),
        "reasoning asked for: think (no guess from the conversation)"
    );
    assert_eq!(
        body["tools"],
        json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
    );
}

#[tokio::test]
async fn a_midstream_error_keeps_the_partial_output_in_the_error_event() {
    let body = ndjson(&[
        line(json!({"role": "assistant", "content": "Once upon"})),
        line(json!({"role": "assistant", "content": " a time"})),
        json!({"error": "an error was encountered while running the model: unexpected EOF"}),
    ]);
    let up = MockUpstream::start(move |_| Reply::ndjson(body.clone())).await;
    let srv = TestServer::start(no_retry(), env(&[("OLLAMA_HOST", &up.url)])).await;
    let mut c = srv.client().await;
    let (events, status) = collect_events(&mut c, text_request(MODEL, "story")).await;
    let status = status.expect("the stream ends with the error status");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status
        .message()
        .contains("an error was encountered while running the model"));
    let streamed: String = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Stream(s)) => match s.chunk.as_ref().and_then(|c| c.delta.clone()) {
                Some(Delta::Text(t)) => Some(t),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(streamed, "Once upon a time");
    match &events.last().unwrap().event {
        Some(Event::Error(e)) => {
            assert_eq!(e.code, Code::Unavailable as i32);
            assert!(e.message.contains("unexpected EOF"));
            assert_eq!(
                e.partial.as_ref().unwrap().content,
                vec![text("Once upon a time")]
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn eof_before_done_is_unavailable_never_ok() {
    let body = ndjson(&[line(json!({"role": "assistant", "content": "Half"}))]);
    let up = MockUpstream::start(move |r: &Recorded| {
        if r.json()["messages"][0]["content"] == "cut" {
            Reply::ndjson(body.clone()).cut()
        } else {
            Reply::ndjson(body.clone())
        }
    })
    .await;
    let srv = TestServer::start(no_retry(), env(&[("OLLAMA_HOST", &up.url)])).await;
    let mut c = srv.client().await;
    for prompt in ["clean eof", "cut"] {
        let (chunks, status) = collect_stream(&mut c, text_request(MODEL, prompt)).await;
        let status = status.expect("an error status, not OK");
        assert_eq!(status.code(), Code::Unavailable, "{prompt}: {status:?}");
        if prompt == "clean eof" {
            assert_eq!(reason(&status), "UPSTREAM_TRUNCATED");
        }
        assert_eq!(chunk_text(&chunks), "Half");
    }
}

#[tokio::test]
async fn length_stops_and_http_errors() {
    let up = MockUpstream::start(|r: &Recorded| {
        match r.json()["messages"][0]["content"].as_str().unwrap_or("") {
            "long" => Reply::ndjson(ndjson(&[
                line(json!({"role": "assistant", "content": "abc"})),
                done("length", 3, 1),
            ])),
            "404" => Reply::json(
                404,
                r#"{"error":"model \"qwen3:8b\" not found, try pulling it first"}"#,
            ),
            "400" => Reply::json(
                400,
                r#"{"error":"registry.ollama.ai/library/qwen3:8b does not support tools"}"#,
            ),
            _ => Reply::json(
                500,
                r#"{"error":"llama runner process has terminated: signal: killed"}"#,
            ),
        }
    })
    .await;
    let srv = TestServer::start(no_retry(), env(&[("OLLAMA_HOST", &up.url)])).await;
    let mut c = srv.client().await;
    let m = c
        .invoke(text_request(MODEL, "long"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.stop_reason, pb::StopReason::MaxTokens as i32);
    for (prompt, code, needle) in [
        ("404", Code::NotFound, "try pulling it first"),
        ("400", Code::InvalidArgument, "does not support tools"),
        (
            "500",
            Code::Unavailable,
            "llama runner process has terminated",
        ),
    ] {
        let e = c.invoke(text_request(MODEL, prompt)).await.unwrap_err();
        assert_eq!(e.code(), code, "{prompt}: {e:?}");
        assert!(e.message().contains(needle), "{}", e.message());
    }
}

#[tokio::test]
async fn configured_only_when_ollama_host_is_set() {
    let srv = TestServer::start(Config::default(), env(&[])).await;
    let mut c = srv.client().await;
    let e = c.invoke(text_request(MODEL, "hi")).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("OLLAMA_HOST"), "{}", e.message());

    let up = MockUpstream::start(|_| Reply::ndjson(thinking_body())).await;
    let srv = TestServer::start(Config::default(), env(&[("OLLAMA_HOST", &host(&up))])).await;
    let mut c = srv.client().await;
    let list = c
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner();
    let o = list.providers.iter().find(|p| p.name == "ollama").unwrap();
    assert!(o.configured);
    assert_eq!(o.base_url, up.url, "the scheme is added");
    assert_eq!(
        o.features,
        [
            "tools",
            "images",
            "usage",
            "reasoning",
            "structured_output",
            "provider_options",
            "seed",
            "top_k",
            "penalties",
            "tool_result_blocks",
            "cache_control"
        ]
    );
}
