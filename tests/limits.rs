//! What one request, one answer and all calls together may hold, through the
//! real gRPC surface: the per-request count limits (INVALID_ARGUMENT naming
//! the limit), the cap on a folded answer (Invoke, StreamEvents; Stream folds
//! nothing and is not capped), and the replica's budget of buffered bytes
//! (RESOURCE_EXHAUSTED for the call that would go over it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use std::time::Duration;

use chatwire::{config::Config, pb};
use common::*;
use prost_types::{value::Kind as PKind, Struct, Value};
use serde_json::json;
use tonic::Code;

const MODEL: &str = "anthropic:claude-3-haiku-20240307";

fn ev(data: serde_json::Value) -> String {
    format!(
        "event: {}\ndata: {data}\n\n",
        data["type"].as_str().unwrap()
    )
}

/// An Anthropic answer of `pieces` text deltas of `size` bytes; `complete`
/// adds the terminal events (else the upstream stays open after them).
fn long_answer(pieces: usize, size: usize, complete: bool) -> String {
    let mut b = ev(
        json!({"type":"message_start","message":{"id":"msg_big","model":"claude","usage":{"input_tokens":1,"output_tokens":1}}}),
    );
    b += &ev(
        json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
    );
    let piece = "x".repeat(size);
    for _ in 0..pieces {
        b += &ev(
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":piece}}),
        );
    }
    if complete {
        b += &ev(json!({"type":"content_block_stop","index":0}));
        b += &ev(
            json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}),
        );
        b += &ev(json!({"type":"message_stop"}));
    }
    b
}

async fn anthropic(up: &MockUpstream, config: Config) -> TestServer {
    TestServer::start(
        config,
        env(&[
            ("ANTHROPIC_API_KEY", "sk-test-key-limits"),
            ("ANTHROPIC_BASE_URL", &up.url),
        ]),
    )
    .await
}

fn with_limits(answer: usize, buffered: usize) -> Config {
    let mut c = Config::default();
    c.limits.max_answer_bytes = answer;
    c.limits.max_buffered_bytes = buffered;
    c.retry.max_retries = 0;
    c
}

fn assert_refused(status: Option<tonic::Status>, code: Code, reason_is: &str, needle: &str) {
    let status = status.expect("the call must fail");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(reason(&status), reason_is, "{status:?}");
    assert!(status.message().contains(needle), "{}", status.message());
}

#[tokio::test]
async fn requests_over_a_count_limit_are_refused_naming_the_limit() {
    let srv = TestServer::start(Config::default(), env(&[])).await;
    let mut c = srv.client().await;
    let tiny = msg(pb::Role::User, vec![text("x")]);

    let mut r = text_request("fake:echo", "hi");
    r.messages = vec![tiny.clone(); 100_001];
    let (_, st) = collect_stream(&mut c, r).await;
    assert_refused(st, Code::InvalidArgument, "INVALID_REQUEST", "MAX_MESSAGES");

    let tool = |i: usize| pb::Tool {
        name: format!("t{i}"),
        parameters: Some(Struct::default()),
        ..Default::default()
    };
    let mut r = text_request("fake:echo", "hi");
    r.tools = (0..4097).map(tool).collect();
    let (_, st) = collect_stream(&mut c, r).await;
    assert_refused(st, Code::InvalidArgument, "INVALID_REQUEST", "MAX_TOOLS");
    // At the limit, and with a duplicate found among them all.
    let mut r = text_request("fake:echo", "hi");
    r.tools = (0..4096).map(tool).collect();
    let (chunks, st) = collect_stream(&mut c, r.clone()).await;
    assert!(st.is_none(), "{st:?}");
    assert_eq!(chunk_text(&chunks), "hi");
    r.tools[4095].name = "t7".into();
    let (_, st) = collect_stream(&mut c, r).await;
    assert_refused(
        st,
        Code::InvalidArgument,
        "INVALID_REQUEST",
        "tools[4095].name: duplicate",
    );

    // One schema of 300,000 JSON values.
    let mut schema = Struct::default();
    for i in 0..300_000 {
        schema.fields.insert(
            format!("k{i}"),
            Value {
                kind: Some(PKind::BoolValue(true)),
            },
        );
    }
    let mut r = text_request("fake:echo", "hi");
    r.tools = vec![pb::Tool {
        name: "big".into(),
        parameters: Some(schema),
        ..Default::default()
    }];
    let (_, st) = collect_stream(&mut c, r).await;
    assert_refused(
        st,
        Code::InvalidArgument,
        "INVALID_REQUEST",
        "MAX_JSON_VALUES",
    );
}

#[tokio::test]
async fn a_folded_answer_is_capped_but_a_stream_is_not() {
    // 4 MiB of text against a 1 MiB cap on folded answers.
    let complete = long_answer(1024, 4096, true);
    let up = MockUpstream::start(move |_| Reply::sse(complete.clone())).await;
    let srv = anthropic(&up, with_limits(1 << 20, 0)).await;
    let mut c = srv.client().await;

    let st = c.invoke(text_request(MODEL, "long")).await.unwrap_err();
    assert_refused(
        Some(st),
        Code::ResourceExhausted,
        "ANSWER_TOO_LARGE",
        "max_answer_bytes",
    );

    let (events, st) = collect_events(&mut c, text_request(MODEL, "long")).await;
    assert_refused(
        st,
        Code::ResourceExhausted,
        "ANSWER_TOO_LARGE",
        "max_answer_bytes",
    );
    match events.last().and_then(|e| e.event.as_ref()) {
        Some(pb::chat_event::Event::Error(e)) => {
            assert_eq!(e.code, Code::ResourceExhausted as i32);
        }
        other => panic!("the last event is the error: {other:?}"),
    }

    // Stream holds nothing: the whole 4 MiB arrives.
    let (chunks, st) = collect_stream(&mut c, text_request(MODEL, "long")).await;
    assert!(st.is_none(), "{st:?}");
    assert_eq!(chunk_text(&chunks).len(), 4 << 20);
}

#[tokio::test]
async fn an_invoke_over_the_cap_lets_go_of_an_endless_upstream() {
    let endless = long_answer(1024, 4096, false);
    let up = MockUpstream::start(move |_| Reply::sse(endless.clone()).hold_open()).await;
    let srv = anthropic(&up, with_limits(1 << 20, 0)).await;
    let mut c = srv.client().await;
    let st = c.invoke(text_request(MODEL, "forever")).await.unwrap_err();
    assert_refused(
        Some(st),
        Code::ResourceExhausted,
        "ANSWER_TOO_LARGE",
        "Stream",
    );
    assert!(
        up.wait_closed(Duration::from_secs(10)).await,
        "the upstream connection is closed once the cap ends the call"
    );
}

#[tokio::test]
async fn calls_over_the_replicas_budget_fail_and_the_budget_comes_back() {
    // 256 KiB for all calls; each answer folds 160 KiB and then waits.
    let held = long_answer(40, 4096, false);
    let whole = long_answer(40, 4096, true);
    // "again" gets the same 160 KiB as a complete answer; anything else is held open.
    let up = MockUpstream::start(move |r| {
        if String::from_utf8_lossy(&r.body).contains("again") {
            Reply::sse(whole.clone())
        } else {
            Reply::sse(held.clone()).hold_open()
        }
    })
    .await;
    let srv = anthropic(&up, with_limits(64 << 20, 256 << 10)).await;
    let mut first = srv.client().await;
    let holder = tokio::spawn(async move { first.invoke(text_request(MODEL, "hold")).await });
    // The first call holds its 160 KiB once its bytes are in; a second one
    // then cannot fold its own 160 KiB.
    let mut c = srv.client().await;
    let mut refused = None;
    for _ in 0..100 {
        let mut r = tonic::Request::new(text_request(MODEL, "second"));
        r.set_timeout(Duration::from_millis(500));
        match c.invoke(r).await {
            Err(st) if st.code() == Code::ResourceExhausted => {
                refused = Some(st);
                break;
            }
            // Too early (the first call had not folded yet): this one timed out.
            Err(st) if st.code() == Code::DeadlineExceeded => continue,
            other => panic!("{other:?}"),
        }
    }
    assert_refused(
        refused,
        Code::ResourceExhausted,
        "MEMORY_BUDGET_EXCEEDED",
        "max_buffered_bytes",
    );
    // The first call going away gives its share back: another 160 KiB answer
    // (which could not fit beside it) folds whole.
    holder.abort();
    let _ = holder.await;
    let mut answered = None;
    for _ in 0..100 {
        match c.invoke(text_request(MODEL, "again")).await {
            Ok(m) => {
                answered = Some(m.into_inner());
                break;
            }
            Err(st) if st.code() == Code::ResourceExhausted => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(st) => panic!("{st:?}"),
        }
    }
    let m = answered.expect("the budget came back");
    assert_eq!(
        m.content
            .iter()
            .map(|b| match &b.block {
                Some(pb::content_block::Block::Text(t)) => t.len(),
                _ => 0,
            })
            .sum::<usize>(),
        40 * 4096
    );
}

#[tokio::test]
async fn a_partial_event_counts_against_the_budget() {
    // One event of 2 MiB, still unterminated, against a budget of 512 KiB: the
    // framer's buffer alone would go over it.
    let mut body = long_answer(1, 16, false);
    body += "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"";
    body += &"y".repeat(2 << 20);
    let up = MockUpstream::start(move |_| Reply::sse(body.clone()).hold_open()).await;
    let srv = anthropic(&up, with_limits(64 << 20, 512 << 10)).await;
    let mut c = srv.client().await;
    let (chunks, st) = collect_stream(&mut c, text_request(MODEL, "big event")).await;
    assert_eq!(
        chunk_text(&chunks),
        "x".repeat(16),
        "what came before is delivered"
    );
    assert_refused(
        st,
        Code::ResourceExhausted,
        "MEMORY_BUDGET_EXCEEDED",
        "max_buffered_bytes",
    );
}

#[tokio::test]
async fn the_deadline_holds_whatever_the_answer_size() {
    // 40 MiB of answer as fast as loopback carries it, then an open connection;
    // the fold cap is far away. The caller's 500 ms deadline still ends the call
    // (the answer is never copied to build the status).
    let endless = long_answer(10 * 1024, 4096, false);
    let up = MockUpstream::start(move |_| Reply::sse(endless.clone()).hold_open()).await;
    let srv = anthropic(&up, with_limits(1 << 30, 0)).await;
    let mut c = srv.client().await;
    let mut req = tonic::Request::new(text_request(MODEL, "big"));
    req.set_timeout(Duration::from_millis(500));
    let started = std::time::Instant::now();
    let st = c.invoke(req).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(st.code(), Code::DeadlineExceeded, "{st:?}");
    // A wall-clock bound with room for a loaded machine (2 s was flaky under a
    // load average above 20): a deadline that never fires shows as the idle
    // timer's 120 s, one held back until the 40 MiB are through as seconds.
    assert!(
        took < Duration::from_secs(5),
        "ended {took:?} after the call began"
    );
    assert!(
        up.wait_closed(Duration::from_secs(5)).await,
        "the upstream is let go"
    );
}
