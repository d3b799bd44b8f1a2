//! API 1.1 through the real gRPC surface: exact tool arguments in all three
//! RPCs and in requests, the model / provider / block index on every chunk,
//! the raw finish reason and response metadata on the last one, and the
//! OpenAI provider's mapping of the new request fields (exact upstream body).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use chatwire::{config::Config, pb};
use common::*;
use pb::{content_block::Block, message_chunk::Delta};
use serde_json::{json, Value};
use tonic::Code;

/// Numbers a double cannot hold, a negative zero, escaped unicode.
const EXACT: &str = r#"{"n": 12345678901234567891, "d": 0.1000000000000000055511151231257827, "z": -0.0, "u": "\u00e9\ud83d\ude00"}"#;

/// A fake:script request with a fixed run id, so every call's message id is the same.
fn script_request(script: Value) -> pb::ChatRequest {
    let mut r = text_request("fake:script", &script.to_string());
    r.config = Some(pb::RunConfig {
        run_id: "0193f7a0-0000-7000-8000-000000000011".into(),
        ..Default::default()
    });
    r
}

#[tokio::test]
async fn tool_arguments_are_exact_in_stream_invoke_and_events() {
    let srv = TestServer::start(Config::default(), env(&[])).await;
    let mut c = srv.client().await;
    let (a, b) = EXACT.split_at(17);
    let script = json!({"chunks": [
        {"toolCall": {"index": 0, "id": "c1", "name": "calc", "arguments": a}},
        {"toolCall": {"index": 0, "arguments": b}}
    ], "stopReason": "tool_use"});

    let (chunks, st) = collect_stream(&mut c, script_request(script.clone())).await;
    assert!(st.is_none(), "{st:?}");
    let streamed: String = chunks
        .iter()
        .filter_map(|c| match &c.delta {
            Some(Delta::ToolCall(t)) => Some(t.arguments.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(streamed, EXACT);

    let invoked = c
        .invoke(script_request(script.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(invoked.tool_calls.len(), 1);
    assert_eq!(
        invoked.tool_calls[0].arguments_json, EXACT,
        "Invoke is byte for byte"
    );
    // The Struct form is lossy for such numbers (documented): 2^64-ish becomes a double.
    let s = invoked.tool_calls[0].arguments.as_ref().unwrap();
    assert!(s.fields.contains_key("n"));

    let (events, st) = collect_events(&mut c, script_request(script)).await;
    assert!(st.is_none(), "{st:?}");
    match events.last().and_then(|e| e.event.as_ref()) {
        Some(pb::chat_event::Event::End(end)) => {
            let out = end.output.as_ref().unwrap();
            assert_eq!(out.tool_calls[0].arguments_json, EXACT);
            assert_eq!(comparable(out), comparable(&invoked));
        }
        other => panic!("{other:?}"),
    }
    // And the client's own fold of the chunks equals Invoke.
    assert_eq!(fold(&chunks), comparable(&invoked));
}

fn openai_sse(chunks: &[Value]) -> String {
    let mut b = String::new();
    for c in chunks {
        b += &format!("data: {c}\n\n");
    }
    b + "data: [DONE]\n\n"
}

fn oa_chunk(delta: Value, finish: Value) -> Value {
    json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "model": "gpt-4o-mini-2024-07-18",
           "system_fingerprint": "fp_44709d6fcb", "service_tier": "default",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

async fn openai(body: String) -> (MockUpstream, TestServer) {
    let up =
        MockUpstream::start(move |_| Reply::sse(body.clone()).header("x-request-id", "req_abc123"))
            .await;
    let base = format!("{}/v1", up.url);
    let srv = TestServer::start(
        Config::default(),
        env(&[
            ("OPENAI_BASE_URL", &base),
            ("OPENAI_API_KEY", "sk-api11-test"),
        ]),
    )
    .await;
    (up, srv)
}

#[tokio::test]
async fn every_chunk_names_model_and_provider_and_the_last_one_the_raw_finish() {
    let body = openai_sse(&[
        oa_chunk(json!({"role": "assistant", "content": "Hel"}), Value::Null),
        oa_chunk(json!({"content": "lo"}), Value::Null),
        oa_chunk(json!({}), json!("stop")),
    ]);
    let (_up, srv) = openai(body).await;
    let mut c = srv.client().await;
    let req = || text_request("openai:gpt-4o-mini", "hi");
    let (chunks, st) = collect_stream(&mut c, req()).await;
    assert!(st.is_none(), "{st:?}");
    assert!(chunks.len() >= 3);
    for ch in &chunks {
        assert_eq!(ch.model, "gpt-4o-mini-2024-07-18", "{ch:?}");
        assert_eq!(ch.provider, "openai", "{ch:?}");
    }
    let last = chunks.last().unwrap();
    assert!(last.last);
    assert_eq!(last.finish_reason, "stop");
    assert_eq!(
        last.response_metadata.get("request_id").map(String::as_str),
        Some("req_abc123")
    );
    assert_eq!(
        last.response_metadata
            .get("system_fingerprint")
            .map(String::as_str),
        Some("fp_44709d6fcb")
    );
    assert_eq!(
        last.response_metadata
            .get("service_tier")
            .map(String::as_str),
        Some("default")
    );
    assert!(chunks[..chunks.len() - 1]
        .iter()
        .all(|c| c.finish_reason.is_empty()));

    let m = c.invoke(req()).await.unwrap().into_inner();
    assert_eq!(m.provider, "openai");
    assert_eq!(m.finish_reason, "stop");
    assert_eq!(
        m.response_metadata.get("request_id").map(String::as_str),
        Some("req_abc123")
    );
    assert_eq!(fold(&chunks), comparable(&m));
}

#[tokio::test]
async fn block_indexes_tell_text_before_and_after_a_tool_call_apart() {
    let srv = TestServer::start(Config::default(), env(&[])).await;
    let mut c = srv.client().await;
    let script = json!({"chunks": [
        {"reasoning": {"text": "think", "signature": "sig1"}},
        {"reasoning": {"text": "again"}},
        {"text": "Before "},
        {"text": "the call."},
        {"toolCall": {"index": 0, "id": "c1", "name": "f", "arguments": "{}"}},
        {"text": "After it."}
    ]});
    let (chunks, st) = collect_stream(&mut c, script_request(script.clone())).await;
    assert!(st.is_none(), "{st:?}");
    let idx: Vec<(u32, &str)> = chunks
        .iter()
        .filter_map(|c| match &c.delta {
            Some(Delta::Text(t)) => Some((c.block_index, t.as_str())),
            Some(Delta::Reasoning(r)) => Some((c.block_index, r.text.as_str())),
            _ => None,
        })
        .collect();
    // Two thinking blocks (the first is signed), then text, then text after the call.
    assert_eq!(
        idx,
        vec![
            (0, "think"),
            (1, "again"),
            (2, "Before "),
            (2, "the call."),
            (3, "After it.")
        ]
    );
    let m = c.invoke(script_request(script)).await.unwrap().into_inner();
    let texts: Vec<&str> = m
        .content
        .iter()
        .filter_map(|b| match &b.block {
            Some(Block::Text(t)) => Some(t.as_str()),
            Some(Block::Reasoning(r)) => Some(r.text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        texts,
        vec!["think", "again", "Before the call.", "After it."]
    );
    assert_eq!(fold(&chunks), comparable(&m));
}

fn tool_call_block(args_json: &str) -> pb::ContentBlock {
    pb::ContentBlock {
        block: Some(Block::ToolCall(pb::ToolCall {
            id: "call_1".into(),
            name: "calc".into(),
            // The Struct says otherwise: argumentsJson takes precedence.
            arguments: Some(chatwire::api::convert::json_to_struct(
                json!({"other": 1}).as_object().unwrap(),
            )),
            arguments_json: args_json.into(),
        })),
        ..Default::default()
    }
}

fn done_body() -> String {
    openai_sse(&[
        oa_chunk(json!({"content": "ok"}), Value::Null),
        oa_chunk(json!({}), json!("stop")),
    ])
}

#[tokio::test]
async fn request_arguments_json_reaches_openai_byte_for_byte() {
    let (up, srv) = openai(done_body()).await;
    let mut c = srv.client().await;
    let mut req = text_request("openai:gpt-4o-mini", "compute");
    req.messages
        .push(msg(pb::Role::Assistant, vec![tool_call_block(EXACT)]));
    req.messages.push(msg(
        pb::Role::Tool,
        vec![pb::ContentBlock {
            block: Some(Block::ToolResult(pb::ToolResult {
                tool_call_id: "call_1".into(),
                content: "42".into(),
                ..Default::default()
            })),
            ..Default::default()
        }],
    ));
    let (_, st) = collect_stream(&mut c, req).await;
    assert!(st.is_none(), "{st:?}");
    let sent = up.requests()[0].json();
    assert_eq!(
        sent["messages"][1]["tool_calls"][0]["function"]["arguments"],
        json!(EXACT),
        "{sent}"
    );
    // A request whose argumentsJson is not an object is refused, naming the field.
    let mut bad = text_request("openai:gpt-4o-mini", "x");
    bad.messages
        .push(msg(pb::Role::Assistant, vec![tool_call_block("[1]")]));
    let (_, st) = collect_stream(&mut c, bad).await;
    let st = st.unwrap();
    assert_eq!(st.code(), Code::InvalidArgument);
    assert!(st.message().contains("argumentsJson"), "{}", st.message());
}

#[tokio::test]
async fn openai_maps_the_new_request_fields() {
    let (up, srv) = openai(done_body()).await;
    let mut c = srv.client().await;
    let schema = chatwire::api::convert::json_to_struct(
        json!({"type": "object", "properties": {"a": {"type": "string"}}})
            .as_object()
            .unwrap(),
    );
    let mut req = text_request("openai:o4-mini", "hi");
    req.messages[0].name = "alice".into();
    req.reasoning = Some(pb::ReasoningConfig {
        effort: pb::ReasoningEffort::High as i32,
        ..Default::default()
    });
    req.response_format = Some(pb::ResponseFormat {
        r#type: pb::ResponseFormatType::JsonSchema as i32,
        name: "answer".into(),
        schema: Some(schema.clone()),
        strict: true,
        ..Default::default()
    });
    req.seed = Some(7);
    req.frequency_penalty = Some(0.5);
    req.presence_penalty = Some(-0.5);
    req.parallel_tool_calls = Some(false);
    req.tools = vec![pb::Tool {
        name: "f".into(),
        parameters: Some(schema),
        strict: Some(true),
        ..Default::default()
    }];
    req.provider_options = Some(chatwire::api::convert::json_to_struct(
        json!({"user": "u-1", "logit_bias": {"50256": -100}})
            .as_object()
            .unwrap(),
    ));
    let (_, st) = collect_stream(&mut c, req).await;
    assert!(st.is_none(), "{st:?}");
    let b = up.requests()[0].json();
    assert_eq!(b["reasoning_effort"], json!("high"));
    assert_eq!(b["response_format"]["type"], json!("json_schema"));
    assert_eq!(b["response_format"]["json_schema"]["name"], json!("answer"));
    assert_eq!(b["response_format"]["json_schema"]["strict"], json!(true));
    assert_eq!(
        b["response_format"]["json_schema"]["schema"]["type"],
        json!("object")
    );
    assert_eq!(b["seed"], json!(7));
    assert_eq!(b["frequency_penalty"], json!(0.5));
    assert_eq!(b["presence_penalty"], json!(-0.5));
    assert_eq!(b["parallel_tool_calls"], json!(false));
    assert_eq!(b["tools"][0]["function"]["strict"], json!(true));
    assert_eq!(b["messages"][0]["name"], json!("alice"));
    assert_eq!(b["user"], json!("u-1"));
    assert_eq!(b["logit_bias"]["50256"], json!(-100));

    // JSON mode, a file and audio.
    let mut req = text_request("openai:gpt-4o", "read this");
    req.response_format = Some(pb::ResponseFormat {
        r#type: pb::ResponseFormatType::JsonObject as i32,
        ..Default::default()
    });
    req.messages[0].content.push(pb::ContentBlock {
        block: Some(Block::File(pb::File {
            source: Some(pb::file::Source::Data(b"%PDF-1.4".to_vec())),
            mime_type: "application/pdf".into(),
            filename: "a.pdf".into(),
        })),
        ..Default::default()
    });
    req.messages[0].content.push(pb::ContentBlock {
        block: Some(Block::Audio(pb::Audio {
            data: b"RIFF".to_vec(),
            mime_type: "audio/wav".into(),
        })),
        ..Default::default()
    });
    let (_, st) = collect_stream(&mut c, req).await;
    assert!(st.is_none(), "{st:?}");
    let b = up.requests()[1].json();
    assert_eq!(b["response_format"], json!({"type": "json_object"}));
    let parts = &b["messages"][0]["content"];
    assert_eq!(parts[0], json!({"type": "text", "text": "read this"}));
    assert_eq!(
        parts[1],
        json!({"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0xLjQ="}})
    );
    assert_eq!(
        parts[2],
        json!({"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}})
    );
}

/// Sets one field of a request.
type Setter = Box<dyn Fn(&mut pb::ChatRequest)>;

#[tokio::test]
async fn openai_refuses_what_it_cannot_do_naming_field_and_provider() {
    let (up, srv) = openai(done_body()).await;
    let mut c = srv.client().await;
    let cases: Vec<(&str, Setter)> = vec![
        ("topK", Box::new(|r| r.top_k = Some(5))),
        (
            "reasoning.budgetTokens",
            Box::new(|r| {
                r.reasoning = Some(pb::ReasoningConfig {
                    budget_tokens: Some(2048),
                    ..Default::default()
                })
            }),
        ),
        (
            "providerOptions.model",
            Box::new(|r| {
                r.provider_options = Some(chatwire::api::convert::json_to_struct(
                    json!({"model": "gpt-5"}).as_object().unwrap(),
                ))
            }),
        ),
        (
            "file.url",
            Box::new(|r| {
                r.messages[0].content.push(pb::ContentBlock {
                    block: Some(Block::File(pb::File {
                        source: Some(pb::file::Source::Url("https://x/a.pdf".into())),
                        ..Default::default()
                    })),
                    ..Default::default()
                })
            }),
        ),
    ];
    for (field, set) in cases {
        let mut req = text_request("openai:gpt-4o-mini", "hi");
        set(&mut req);
        let (_, st) = collect_stream(&mut c, req).await;
        let st = st.unwrap_or_else(|| panic!("{field} must be refused"));
        assert_eq!(st.code(), Code::InvalidArgument, "{field}: {st:?}");
        assert!(st.message().contains(field), "{field}: {}", st.message());
        assert!(st.message().contains("openai"), "{field}: {}", st.message());
    }
    assert!(up.requests().is_empty(), "nothing reached the upstream");
}

#[tokio::test]
async fn a_models_provider_options_come_from_the_config() {
    let body = done_body();
    let up = MockUpstream::start(move |_| Reply::sse(body.clone())).await;
    let base = format!("{}/v1", up.url);
    let config = Config::from_toml(
        "[models.\"openai:local\".provider_options]\ntop_k = 20\nrepetition_penalty = 1.1\n",
    )
    .unwrap();
    let srv = TestServer::start(config, env(&[("OPENAI_BASE_URL", &base)])).await;
    let mut c = srv.client().await;
    let (_, st) = collect_stream(&mut c, text_request("openai:local", "hi")).await;
    assert!(st.is_none(), "{st:?}");
    let b = up.requests()[0].json();
    assert_eq!(b["top_k"], json!(20));
    assert_eq!(b["repetition_penalty"], json!(1.1));
}

#[tokio::test]
async fn chunks_name_the_model_even_when_the_provider_does_not() {
    // fake:echo (like Ollama) sends no model of its own: the requested one is named.
    let srv = TestServer::start(Config::default(), env(&[])).await;
    let mut c = srv.client().await;
    let (chunks, st) = collect_stream(&mut c, text_request("fake:echo", "one two")).await;
    assert!(st.is_none(), "{st:?}");
    assert!(chunks.len() >= 3);
    for ch in &chunks {
        assert_eq!(
            (ch.model.as_str(), ch.provider.as_str()),
            ("echo", "fake"),
            "{ch:?}"
        );
    }
}

#[tokio::test]
async fn a_huge_arguments_json_is_refused_before_it_is_parsed() {
    let srv = TestServer::start(Config::default(), env(&[])).await;
    let mut c = srv.client().await;
    let huge = format!("{{\"a\":[{}0]}}", "0,".repeat(300_000));
    let mut req = text_request("fake:echo", "hi");
    req.messages
        .push(msg(pb::Role::Assistant, vec![tool_call_block(&huge)]));
    let (_, st) = collect_stream(&mut c, req).await;
    let st = st.expect("refused");
    assert_eq!(st.code(), Code::InvalidArgument);
    assert!(st.message().contains("MAX_JSON_VALUES"), "{}", st.message());
}

#[tokio::test]
async fn fake_echo_honours_stop_sequences() {
    let srv = TestServer::start(Config::default(), env(&[])).await;
    let mut c = srv.client().await;
    let mut req = text_request("fake:echo", "one two. three END four");
    req.stop = vec!["END".into(), "three".into()];
    let (chunks, st) = collect_stream(&mut c, req.clone()).await;
    assert!(st.is_none(), "{st:?}");
    assert_eq!(chunk_text(&chunks), "one two. ");
    let last = chunks.last().unwrap();
    assert_eq!(last.stop_reason, pb::StopReason::StopSequence as i32);
    assert_eq!(
        (last.finish_reason.as_str(), last.stop_sequence.as_str()),
        ("stop_sequence", "three")
    );
    // maxTokens still cuts first when it comes first.
    req.max_tokens = Some(1);
    let m = c.invoke(req).await.unwrap().into_inner();
    assert_eq!(m.stop_reason, pb::StopReason::MaxTokens as i32);
}
