//! The openai provider end to end: the real gRPC server, a mock OpenAI
//! Chat Completions server on 127.0.0.1:0 serving bodies written here from the
//! documented format, and checks of the request the mock received.
// Tests measure wall-clock time and share state across mock threads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use std::time::Duration;

use chatwire::{api::convert::json_to_struct, config::Config, pb};
use common::*;
use pb::{chat_event::Event, message_chunk::Delta};
use serde_json::{json, Value};
use tonic::Code;

const MODEL: &str = "openai:gpt-4o-mini";

/// One SSE data event holding a chunk of choice 0.
fn delta(d: Value, finish: Value) -> String {
    let c = json!({
        "id": "chatcmpl-abc123", "object": "chat.completion.chunk", "created": 1,
        "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_x",
        "choices": [{"index": 0, "delta": d, "logprobs": null, "finish_reason": finish}],
    });
    format!("data: {c}\n\n")
}

fn usage_chunk(prompt: u32, completion: u32, cached: u32, reasoning: u32) -> String {
    let c = json!({
        "id": "chatcmpl-abc123", "object": "chat.completion.chunk", "created": 1,
        "model": "gpt-4o-mini-2024-07-18", "choices": [],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                  "total_tokens": prompt + completion,
                  "prompt_tokens_details": {"cached_tokens": cached},
                  "completion_tokens_details": {"reasoning_tokens": reasoning}},
    });
    format!("data: {c}\n\n")
}

const DONE: &str = "data: [DONE]\n\n";

fn text_body() -> String {
    let mut b = String::from(": keepalive\n\n");
    b += &delta(json!({"role": "assistant", "content": ""}), Value::Null);
    for t in ["Grüße", " aus ", "東京", " 🚀🇫🇷", "!"] {
        b += &delta(json!({ "content": t }), Value::Null);
    }
    b += &delta(json!({}), json!("stop"));
    b += &usage_chunk(12, 5, 8, 0);
    b += DONE;
    b
}

fn tools_body() -> String {
    let mut b = delta(
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"index": 0, "id": "call_w", "type": "function", "function": {"name": "weather", "arguments": ""}}]}),
        Value::Null,
    );
    for a in ["{\"ci", "ty\": \"Zür", "ich\"}"] {
        b += &delta(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": a}}]}),
            Value::Null,
        );
    }
    b += &delta(
        json!({"tool_calls": [{"index": 1, "id": "call_t", "type": "function", "function": {"name": "time", "arguments": ""}}]}),
        Value::Null,
    );
    for a in ["{\"tz\":", "\"CET\"}"] {
        b += &delta(
            json!({"tool_calls": [{"index": 1, "function": {"arguments": a}}]}),
            Value::Null,
        );
    }
    b += &delta(json!({}), json!("tool_calls"));
    b += &usage_chunk(40, 30, 0, 0);
    b += DONE;
    b
}

fn reasoning_body() -> String {
    let mut b = delta(
        json!({"role": "assistant", "content": null, "reasoning_content": ""}),
        Value::Null,
    );
    for r in ["Let me ", "think… ", "2+2=4."] {
        b += &delta(
            json!({ "content": null, "reasoning_content": r }),
            Value::Null,
        );
    }
    for t in ["The answer", " is 4."] {
        b += &delta(
            json!({ "content": t, "reasoning_content": null }),
            Value::Null,
        );
    }
    b += &delta(json!({}), json!("stop"));
    b += &usage_chunk(10, 20, 0, 12);
    b += DONE;
    b
}

async fn setup(body: String, envs: &[(&str, &str)], config: Config) -> (MockUpstream, TestServer) {
    let up = MockUpstream::start(move |_| Reply::sse(body.clone())).await;
    let base = format!("{}/v1", up.url);
    let mut pairs: Vec<(&str, &str)> = vec![("OPENAI_BASE_URL", &base)];
    pairs.extend_from_slice(envs);
    let srv = TestServer::start(config, env(&pairs)).await;
    (up, srv)
}

fn stream_deltas(chunks: &[pb::MessageChunk]) -> Vec<Option<Delta>> {
    chunks.iter().map(|c| c.delta.clone()).collect()
}

#[tokio::test]
async fn text_stream_invoke_and_events_agree_and_the_request_is_openai_shaped() {
    let (up, srv) = setup(
        text_body(),
        &[("OPENAI_API_KEY", "sk-test-secret")],
        Config::default(),
    )
    .await;
    let mut c = srv.client().await;
    let mut req = text_request(MODEL, "hallo");
    req.messages
        .insert(0, msg(pb::Role::System, vec![text("be kind")]));
    req.max_tokens = Some(50);
    req.temperature = Some(0.0);
    req.top_p = Some(0.5);
    req.stop = vec!["\n\n".into()];

    let (chunks, status) = collect_stream(&mut c, req.clone()).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(chunk_text(&chunks), "Grüße aus 東京 🚀🇫🇷!");
    assert_eq!(chunks.len(), 6, "five text chunks, then the last one");
    assert!(chunks.iter().all(|c| c.id == "chatcmpl-abc123"));
    let last = chunks.last().unwrap();
    assert!(last.last && last.delta.is_none());
    assert_eq!(chunks.iter().filter(|c| c.last).count(), 1);
    assert!(chunks[..5]
        .iter()
        .all(|c| c.usage.is_none() && c.stop_reason == 0));
    assert_eq!(last.stop_reason, pb::StopReason::EndTurn as i32);
    let u = last.usage.unwrap();
    assert_eq!(
        (
            u.input_tokens,
            u.output_tokens,
            u.total_tokens,
            u.cache_read_tokens
        ),
        (12, 5, 17, 8)
    );

    let invoked = c.invoke(req.clone()).await.unwrap().into_inner();
    assert_eq!(comparable(&invoked), fold(&chunks));
    // The model as the provider names it in its answer, not the requested alias.
    assert_eq!(invoked.model, "gpt-4o-mini-2024-07-18");

    let (events, status) = collect_events(&mut c, req.clone()).await;
    assert!(status.is_none());
    assert!(events.iter().all(|e| e.name == "ChatOpenAI"));
    assert!(matches!(events[0].event, Some(Event::Start(_))));
    let streamed: Vec<pb::MessageChunk> = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Stream(s)) => s.chunk.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(streamed, chunks);
    match &events.last().unwrap().event {
        Some(Event::End(e)) => assert_eq!(e.output.as_ref(), Some(&invoked)),
        other => panic!("{other:?}"),
    }

    let reqs = up.requests();
    assert_eq!(reqs.len(), 3);
    let r = &reqs[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(
        r.header("authorization").as_deref(),
        Some("Bearer sk-test-secret")
    );
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        r.json(),
        json!({
            "model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "system", "content": "be kind"}, {"role": "user", "content": "hallo"}],
            "max_tokens": 50, "temperature": 0.0, "top_p": 0.5, "stop": ["\n\n"],
        })
    );
}

#[tokio::test]
async fn a_base_url_alone_configures_it_and_sends_no_authorization() {
    let mut config = Config::default();
    let opts = chatwire::provider::ModelOptions {
        include_usage: false,
        max_completion_tokens: true,
        ..Default::default()
    };
    config.model_options.insert("openai:local".into(), opts);
    config
        .providers
        .entry("openai".into())
        .or_default()
        .headers
        .insert("x-extra".into(), "yes".into());
    // This server sends no usage at all: usage is absent, not zero.
    let mut body = delta(json!({"content": "ok"}), Value::Null);
    body += &delta(json!({}), json!("stop"));
    body += DONE;
    let (up, srv) = setup(body, &[], config).await;
    let mut c = srv.client().await;
    let mut req = text_request("openai:local", "hi");
    req.max_tokens = Some(9);
    let (chunks, status) = collect_stream(&mut c, req).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(chunk_text(&chunks), "ok");
    assert_eq!(chunks.last().unwrap().usage, None);
    let r = &up.requests()[0];
    assert_eq!(r.header("authorization"), None);
    assert_eq!(r.header("x-extra").as_deref(), Some("yes"));
    let b = r.json();
    assert_eq!(b.get("stream_options"), None);
    assert_eq!(b["max_completion_tokens"], json!(9));
    assert_eq!(b.get("max_tokens"), None);

    // Neither key nor base URL: known but not configured.
    let srv = TestServer::start(Config::default(), env(&[])).await;
    let mut c = srv.client().await;
    let (_, status) = collect_stream(&mut c, text_request(MODEL, "hi")).await;
    let status = status.unwrap();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("OPENAI_API_KEY"));
}

/// A tool call whose arguments are `depth` objects nested (itself included).
fn deep_tool_call_body(depth: usize) -> String {
    let args = "{\"a\":".repeat(depth - 1) + "{}" + &"}".repeat(depth - 1);
    let mut b = delta(
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"index": 0, "id": "call_d", "type": "function", "function": {"name": "deep", "arguments": args}}]}),
        Value::Null,
    );
    b += &delta(json!({}), json!("tool_calls"));
    b += DONE;
    b
}

/// Tool-call arguments nested deeper than a gRPC client decodes as a Struct
/// (most stop at 100 protobuf levels, three per JSON level) would make the
/// whole answer undecodable (prost: "recursion limit reached", the text lost
/// with it): past 30 levels the call is an invalid one, its text kept; 30
/// levels are a tool call as usual. Invoke and StreamEvents' end event alike.
#[tokio::test]
async fn tool_arguments_too_deep_for_a_struct_are_an_invalid_call() {
    for (depth, valid) in [(30, true), (31, false), (40, false), (120, false)] {
        let (_up, srv) = setup(
            deep_tool_call_body(depth),
            &[("OPENAI_API_KEY", "k")],
            Config::default(),
        )
        .await;
        let mut c = srv.client().await;
        let m = c
            .invoke(text_request(MODEL, "go deep"))
            .await
            .unwrap_or_else(|e| panic!("depth {depth}: the answer decodes: {e:?}"))
            .into_inner();
        let (events, status) = collect_events(&mut c, text_request(MODEL, "go deep")).await;
        assert!(status.is_none(), "depth {depth}: {status:?}");
        let end = match events.last().and_then(|e| e.event.clone()) {
            Some(Event::End(e)) => e.output.expect("the end event's message"),
            other => panic!("depth {depth}: {other:?}"),
        };
        for (what, m) in [("Invoke", &m), ("StreamEvents", &end)] {
            if valid {
                assert_eq!(m.tool_calls.len(), 1, "{what} depth {depth}");
                assert!(m.invalid_tool_calls.is_empty(), "{what} depth {depth}");
            } else {
                assert!(m.tool_calls.is_empty(), "{what} depth {depth}");
                let bad = &m.invalid_tool_calls[0];
                assert_eq!((bad.id.as_str(), bad.name.as_str()), ("call_d", "deep"));
                assert!(
                    bad.arguments.starts_with("{\"a\":{\"a\":"),
                    "{what}: the text is kept"
                );
                assert!(
                    bad.error.contains("more than 30 levels deep"),
                    "{what}: {}",
                    bad.error
                );
            }
        }
    }
}

#[tokio::test]
async fn parallel_tool_calls_and_tool_messages_in_the_request() {
    let (up, srv) = setup(tools_body(), &[("OPENAI_API_KEY", "k")], Config::default()).await;
    let mut c = srv.client().await;
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}});
    let mut req = text_request(MODEL, "weather and time?");
    let args = json!({"city": "Bern"});
    req.messages.push(msg(
        pb::Role::Assistant,
        vec![pb::ContentBlock {
            block: Some(pb::content_block::Block::ToolCall(pb::ToolCall {
                id: "call_0".into(),
                name: "weather".into(),
                arguments: Some(json_to_struct(args.as_object().unwrap())),
                ..Default::default()
            })),
            ..Default::default()
        }],
    ));
    req.messages.push(msg(
        pb::Role::Tool,
        vec![pb::ContentBlock {
            block: Some(pb::content_block::Block::ToolResult(pb::ToolResult {
                tool_call_id: "call_0".into(),
                content: "rain".into(),
                is_error: false,
                ..Default::default()
            })),
            ..Default::default()
        }],
    ));
    req.tools = vec![pb::Tool {
        name: "weather".into(),
        description: "current weather".into(),
        parameters: Some(json_to_struct(schema.as_object().unwrap())),
        ..Default::default()
    }];
    req.tool_choice = Some(pb::ToolChoice {
        mode: pb::tool_choice::Mode::Any as i32,
        name: String::new(),
    });

    let (chunks, status) = collect_stream(&mut c, req.clone()).await;
    assert!(status.is_none(), "{status:?}");
    let calls: Vec<pb::ToolCallChunk> = chunks
        .iter()
        .filter_map(|c| match &c.delta {
            Some(Delta::ToolCall(t)) => Some(t.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(calls.len(), 5, "every arguments fragment is its own chunk");
    assert_eq!(
        (calls[0].index, calls[0].id.as_str(), calls[0].name.as_str()),
        (0, "call_w", "weather")
    );
    assert!(calls[1].id.is_empty() && calls[1].name.is_empty());
    assert_eq!(
        (calls[3].index, calls[3].id.as_str(), calls[3].name.as_str()),
        (1, "call_t", "time")
    );
    assert_eq!(
        chunks.last().unwrap().stop_reason,
        pb::StopReason::ToolUse as i32
    );

    let m = c.invoke(req).await.unwrap().into_inner();
    assert_eq!(comparable(&m), fold(&chunks));
    assert_eq!(m.tool_calls.len(), 2);
    assert_eq!(m.tool_calls[0].name, "weather");
    assert_eq!(
        m.tool_calls[0].arguments,
        Some(json_to_struct(
            json!({"city": "Zürich"}).as_object().unwrap()
        ))
    );
    assert_eq!(m.tool_calls[1].id, "call_t");

    let b = up.requests()[0].json();
    assert_eq!(
        b["tools"],
        json!([{"type": "function", "function": {"name": "weather", "description": "current weather", "parameters": schema}}])
    );
    assert_eq!(b["tool_choice"], json!("required"));
    assert_eq!(
        b["messages"][1],
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_0", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Bern\"}"}}]})
    );
    assert_eq!(
        b["messages"][2],
        json!({"role": "tool", "tool_call_id": "call_0", "content": "rain"})
    );
}

#[tokio::test]
async fn reasoning_content_becomes_reasoning_chunks() {
    let (_up, srv) = setup(reasoning_body(), &[], Config::default()).await;
    let mut c = srv.client().await;
    let req = text_request("openai:deepseek-reasoner", "2+2?");
    let (chunks, status) = collect_stream(&mut c, req.clone()).await;
    assert!(status.is_none(), "{status:?}");
    let reasoning: String = chunks
        .iter()
        .filter_map(|c| match &c.delta {
            Some(Delta::Reasoning(r)) => Some(r.text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(reasoning, "Let me think… 2+2=4.");
    assert_eq!(chunk_text(&chunks), "The answer is 4.");
    assert_eq!(chunks.last().unwrap().usage.unwrap().reasoning_tokens, 12);
    let m = c.invoke(req).await.unwrap().into_inner();
    assert_eq!(comparable(&m), fold(&chunks));
    assert_eq!(m.content.len(), 2, "a reasoning block, then a text block");
}

#[tokio::test]
async fn refusal_chunks_end_with_content_filter() {
    let mut body = delta(
        json!({"role": "assistant", "content": null, "refusal": ""}),
        Value::Null,
    );
    for r in ["I'm sorry, ", "I can't help ", "with that."] {
        body += &delta(json!({ "refusal": r }), Value::Null);
    }
    body += &delta(json!({}), json!("stop"));
    body += &usage_chunk(30, 8, 0, 0);
    body += DONE;
    let (_up, srv) = setup(body, &[("OPENAI_API_KEY", "k")], Config::default()).await;
    let mut c = srv.client().await;
    let (chunks, status) = collect_stream(&mut c, text_request(MODEL, "bad")).await;
    assert!(status.is_none());
    let refusal: Vec<&str> = chunks
        .iter()
        .filter_map(|c| match &c.delta {
            Some(Delta::Refusal(r)) => Some(r.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(refusal, ["I'm sorry, ", "I can't help ", "with that."]);
    assert_eq!(chunk_text(&chunks), "");
    assert_eq!(
        chunks.last().unwrap().stop_reason,
        pb::StopReason::ContentFilter as i32
    );
}

#[tokio::test]
async fn length_stop_and_eof_after_finish_reason_without_done_is_ok() {
    let mut body = delta(json!({"content": "Once upon"}), Value::Null);
    body += &delta(json!({"content": " a"}), json!("length"));
    // No usage chunk and no [DONE]: some compatible servers just close. That is
    // a whole answer only when usage was not asked for (include_usage off for
    // this model); with usage asked for, the same bytes are a cut (hardening.rs).
    let config =
        Config::from_toml(&format!("[models.\"{MODEL}\"]\ninclude_usage = false\n")).unwrap();
    let (_up, srv) = setup(body, &[("OPENAI_API_KEY", "k")], config).await;
    let mut c = srv.client().await;
    let (chunks, status) = collect_stream(&mut c, text_request(MODEL, "story")).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(chunk_text(&chunks), "Once upon a");
    let last = chunks.last().unwrap();
    assert!(last.last);
    assert_eq!(last.stop_reason, pb::StopReason::MaxTokens as i32);
    assert_eq!(last.usage, None);
}

#[tokio::test]
async fn mid_stream_error_ends_with_its_status_and_message() {
    let mut body = delta(json!({"content": "partial "}), Value::Null);
    body += &delta(json!({"content": "answer"}), Value::Null);
    body += "event: error\ndata: {\"error\":{\"message\":\"Rate limit reached for requests\",\"type\":\"rate_limit_exceeded\",\"code\":\"rate_limit_exceeded\"}}\n\n";
    let (_up, srv) = setup(body, &[("OPENAI_API_KEY", "k")], Config::default()).await;
    let mut c = srv.client().await;
    let req = text_request(MODEL, "hi");
    let (chunks, status) = collect_stream(&mut c, req.clone()).await;
    assert_eq!(chunk_text(&chunks), "partial answer");
    assert!(chunks.iter().all(|c| !c.last));
    let status = status.expect("an errored stream never ends OK");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("Rate limit reached for requests"),
        "{}",
        status.message()
    );

    let (events, status) = collect_events(&mut c, req).await;
    assert_eq!(status.map(|s| s.code()), Some(Code::ResourceExhausted));
    match &events.last().unwrap().event {
        Some(Event::Error(e)) => {
            assert_eq!(e.code, Code::ResourceExhausted as i32);
            assert!(e.message.contains("Rate limit reached"));
            assert_eq!(
                e.partial.as_ref().unwrap().content[0].block,
                Some(pb::content_block::Block::Text("partial answer".into()))
            );
        }
        other => panic!("{other:?}"),
    }

    // An error object in a plain data line (OpenRouter style), with a numeric code.
    let mut body = delta(json!({"content": "x"}), Value::Null);
    body += "data: {\"id\":\"g\",\"error\":{\"code\":502,\"message\":\"provider returned error\"},\"choices\":[]}\n\n";
    body += DONE;
    let (_up, srv) = setup(body, &[("OPENAI_API_KEY", "k")], Config::default()).await;
    let mut c = srv.client().await;
    let (_, status) = collect_stream(&mut c, text_request(MODEL, "hi")).await;
    let status = status.unwrap();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("provider returned error"));
}

#[tokio::test]
async fn cut_connection_and_eof_without_finish_are_unavailable() {
    let mut body = delta(json!({"content": "half an"}), Value::Null);
    body += &delta(json!({"content": " answ"}), Value::Null);
    let cut_body = body.clone();
    let up = MockUpstream::start(move |r: &Recorded| {
        if r.json()["model"] == "cut" {
            Reply::sse(cut_body.clone()).cut()
        } else {
            Reply::sse(cut_body.clone())
        }
    })
    .await;
    let base = format!("{}/v1", up.url);
    let srv = TestServer::start(Config::default(), env(&[("OPENAI_BASE_URL", &base)])).await;
    let mut c = srv.client().await;
    for model in ["openai:cut", "openai:eof"] {
        let (chunks, status) = collect_stream(&mut c, text_request(model, "hi")).await;
        assert_eq!(chunk_text(&chunks), "half an answ", "{model}");
        assert!(chunks.iter().all(|c| !c.last), "{model}");
        let status = status.unwrap_or_else(|| panic!("{model}: a truncated stream ended OK"));
        assert_eq!(status.code(), Code::Unavailable, "{model}: {status:?}");
    }
}

#[tokio::test]
async fn http_errors_carry_the_servers_message_and_retry_info() {
    let up = MockUpstream::start(|r: &Recorded| match r.json()["model"].as_str() {
        Some("busy") => Reply::json(
            429,
            r#"{"error":{"message":"Rate limit reached for gpt-4o-mini","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
        )
        .header("retry-after", "3"),
        Some("nokey") => Reply::json(
            401,
            r#"{"error":{"message":"Incorrect API key provided: sk-bad***","type":"invalid_request_error","code":"invalid_api_key"}}"#,
        ),
        _ => Reply::json(
            404,
            r#"{"error":{"message":"The model `nope` does not exist","type":"invalid_request_error","code":"model_not_found"}}"#,
        ),
    })
    .await;
    let base = format!("{}/v1", up.url);
    let mut config = Config::default();
    config.retry.max_retries = 0;
    let srv = TestServer::start(
        config,
        env(&[
            ("OPENAI_BASE_URL", &base),
            ("OPENAI_API_KEY", "sk-very-secret"),
        ]),
    )
    .await;
    let mut c = srv.client().await;

    let (chunks, status) = collect_stream(&mut c, text_request("openai:busy", "hi")).await;
    assert!(chunks.is_empty());
    let status = status.unwrap();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status
            .message()
            .contains("Rate limit reached for gpt-4o-mini"),
        "{}",
        status.message()
    );
    use tonic_types::StatusExt;
    let info = status.get_details_error_info().unwrap();
    assert_eq!(info.metadata["provider"], "openai");
    assert_eq!(info.metadata["upstream_status"], "429");
    assert_eq!(
        status.get_details_retry_info().unwrap().retry_delay,
        Some(Duration::from_secs(3))
    );
    assert_eq!(up.requests().len(), 1, "max_retries = 0: one request");

    let status = c
        .invoke(text_request("openai:nokey", "hi"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("Incorrect API key provided"));
    assert!(!status.message().contains("sk-very-secret"));

    let status = c
        .invoke(text_request("openai:nope", "hi"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("does not exist"));
}

/// A body with every kind of chunk, CRLF line endings and multi-byte text,
/// delivered at many split points (1-byte pieces, inside UTF-8 sequences and
/// inside CRLF): the gRPC output must be identical every time.
#[tokio::test]
async fn random_splits_give_identical_output() {
    let mut body = String::from(": ping\r\n\r\n");
    body += &reasoning_body()
        .replace(DONE, "")
        .replace(&usage_chunk(10, 20, 0, 12), "");
    body += &delta(json!({"content": "½ · 😀 — ok"}), Value::Null);
    body += &tools_body();
    let body = body.replace("\n\n", "\r\n\r\n").into_bytes();
    let mut plans: Vec<Vec<usize>> = vec![Vec::new(), byte_splits(body.len())];
    plans.extend((0..30).map(|seed| random_splits(body.len(), seed)));
    let plans = std::sync::Arc::new(std::sync::Mutex::new(plans));
    let n = plans.lock().unwrap().len();
    let b2 = body.clone();
    let p2 = plans.clone();
    let up = MockUpstream::start(move |r: &Recorded| {
        let i: usize = r.json()["model"]
            .as_str()
            .unwrap_or("0")
            .parse()
            .unwrap_or(0);
        Reply::sse(b2.clone()).splits(p2.lock().unwrap()[i].clone())
    })
    .await;
    let base = format!("{}/v1", up.url);
    let srv = TestServer::start(Config::default(), env(&[("OPENAI_BASE_URL", &base)])).await;
    let mut c = srv.client().await;
    let (want, status) = collect_stream(&mut c, text_request("openai:0", "go")).await;
    assert!(status.is_none(), "{status:?}");
    assert!(want.len() > 10);
    for i in 1..n {
        let (got, status) =
            collect_stream(&mut c, text_request(&format!("openai:{i}"), "go")).await;
        assert!(status.is_none(), "plan {i}: {status:?}");
        assert_eq!(stream_deltas(&got), stream_deltas(&want), "plan {i}");
        assert_eq!(got, want, "plan {i}");
    }
}
