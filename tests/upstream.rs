//! What an SRE expects between the client and a misbehaving upstream (here a
//! mock Anthropic server): cancellation reaches the upstream connection,
//! a client that stops reading does not make the server buffer the upstream,
//! the caller's deadline drops the upstream, retry-after is honoured, and the
//! key never reaches a log or an error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use chatwire::{config::Config, pb};
use common::*;
use futures_util::StreamExt;
use serde_json::json;
use tonic::Code;

const MODEL: &str = "anthropic:claude-3-haiku-20240307";

fn ev(data: serde_json::Value) -> String {
    format!(
        "event: {}\ndata: {data}\n\n",
        data["type"].as_str().unwrap()
    )
}

fn head() -> String {
    ev(
        json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant",
        "model":"claude-3-haiku-20240307","content":[],"stop_reason":null,"stop_sequence":null,
        "usage":{"input_tokens":5,"output_tokens":1}}}),
    ) + &ev(
        json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
    )
}

fn delta(t: &str) -> String {
    ev(json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":t}}))
}

fn tail() -> String {
    ev(json!({"type":"content_block_stop","index":0}))
        + &ev(
            json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":9}}),
        )
        + &ev(json!({"type":"message_stop"}))
}

/// A body that streams `n` tokens, one piece each, then hangs (the upstream is still "thinking").
fn slow_body(n: usize) -> (String, Vec<usize>) {
    let mut body = head();
    let mut splits = vec![body.len()];
    for i in 0..n {
        body += &delta(&format!("tok{i} "));
        splits.push(body.len());
    }
    (body, splits)
}

async fn setup(reply: Reply, config: Config) -> (MockUpstream, TestServer) {
    let up = MockUpstream::start(move |_| reply.clone()).await;
    let srv = TestServer::start(
        config,
        env(&[
            ("ANTHROPIC_API_KEY", "sk-ant-test-SECRET"),
            ("ANTHROPIC_BASE_URL", &up.url),
        ]),
    )
    .await;
    (up, srv)
}

/// The time from the client dropping its call to the mock seeing its connection close.
async fn close_latency(up: &MockUpstream, dropped_at: Instant) -> Duration {
    assert!(
        up.wait_closed(Duration::from_secs(5)).await,
        "the upstream connection was never closed"
    );
    dropped_at.elapsed()
}

// The issue asks for 100 ms; the assertion allows 1 s so a loaded 2-core CI machine
// does not flake, and the measured figure is printed (`cargo test -- --nocapture`).
const CLOSE_BOUND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn cancelling_stream_mid_answer_closes_the_upstream_connection() {
    let (body, splits) = slow_body(3);
    let (up, srv) = setup(
        Reply::sse(body)
            .splits(splits)
            .delay(Duration::from_millis(20))
            .hold_open(),
        Config::default(),
    )
    .await;
    let mut c = srv.client().await;
    let mut s = c
        .stream(text_request(MODEL, "hi"))
        .await
        .unwrap()
        .into_inner();
    assert!(s.next().await.unwrap().is_ok());
    assert_eq!(up.closed_count(), 0);
    drop(s);
    let t = close_latency(&up, Instant::now()).await;
    println!("Stream cancel → upstream closed in {t:?}");
    assert!(t < CLOSE_BOUND, "{t:?}");
}

#[tokio::test]
async fn cancelling_stream_events_before_the_first_token_closes_the_upstream() {
    // Only message_start, then nothing: no token has been sent yet.
    let (up, srv) = setup(Reply::sse(head()).hold_open(), Config::default()).await;
    let mut c = srv.client().await;
    let mut s = c
        .stream_events(text_request(MODEL, "hi"))
        .await
        .unwrap()
        .into_inner();
    // The start event comes at once; the first token never does.
    assert!(matches!(
        s.next().await.unwrap().unwrap().event,
        Some(pb::chat_event::Event::Start(_))
    ));
    for _ in 0..100 {
        if !up.requests().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(up.requests().len(), 1);
    drop(s);
    let t = close_latency(&up, Instant::now()).await;
    println!("StreamEvents cancel (before first token) → upstream closed in {t:?}");
    assert!(t < CLOSE_BOUND, "{t:?}");
}

#[tokio::test]
async fn cancelling_invoke_closes_the_upstream_connection() {
    let (body, splits) = slow_body(2);
    let (up, srv) = setup(
        Reply::sse(body).splits(splits).hold_open(),
        Config::default(),
    )
    .await;
    let mut c = srv.client().await;
    // The client gives up (drops the call) while the upstream is still streaming.
    let r = tokio::time::timeout(
        Duration::from_millis(300),
        c.invoke(text_request(MODEL, "hi")),
    )
    .await;
    assert!(r.is_err(), "Invoke cannot finish: the upstream never ends");
    let t = close_latency(&up, Instant::now()).await;
    println!("Invoke cancel → upstream closed in {t:?}");
    assert!(t < CLOSE_BOUND, "{t:?}");
}

#[tokio::test]
async fn the_callers_deadline_drops_the_upstream_request() {
    let (body, splits) = slow_body(2);
    let (up, srv) = setup(
        Reply::sse(body).splits(splits).hold_open(),
        Config::default(),
    )
    .await;
    let mut c = srv.client().await;
    let mut req = tonic::Request::new(text_request(MODEL, "hi"));
    req.set_timeout(Duration::from_millis(400));
    let err = c.invoke(req).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert!(up.wait_closed(Duration::from_secs(3)).await);
}

#[tokio::test]
async fn a_client_that_stops_reading_does_not_grow_the_server() {
    // 50 MB of tokens, offered in 64 KiB pieces as fast as the socket takes them.
    let mut body = head();
    let piece = delta(&"x".repeat(1000));
    let total = 50 * 1024 * 1024;
    let mut deltas = 0;
    while body.len() < total {
        body += &piece;
        deltas += 1;
    }
    body += &tail();
    let splits: Vec<usize> = (1..body.len() / 65536).map(|i| i * 65536).collect();
    let size = body.len();
    let (up, srv) = setup(Reply::sse(body).splits(splits), Config::default()).await;
    let mut c = srv.client().await;
    let mut s = c
        .stream(text_request(MODEL, "hi"))
        .await
        .unwrap()
        .into_inner();
    let first = s.next().await.unwrap().unwrap();
    // The client now stops reading. Wait until the upstream is stuck.
    let mut last = 0;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = up.bytes_written();
        if now == last {
            break;
        }
        last = now;
    }
    let stuck_at = up.bytes_written();
    println!(
        "client not reading: upstream stuck after {:.1} MiB of {:.1} MiB",
        stuck_at as f64 / 1048576.0,
        size as f64 / 1048576.0
    );
    // Socket buffers and HTTP/2 windows hold a few MiB at most; the server holds nothing more.
    assert!(
        stuck_at < 16 * 1024 * 1024,
        "the server read {stuck_at} bytes ahead of its client"
    );
    // Reading again resumes the flow, and every byte arrives in order.
    let mut n = 1;
    let mut text_len = match &first.delta {
        Some(pb::message_chunk::Delta::Text(t)) => t.len(),
        _ => 0,
    };
    while let Some(c) = s.next().await {
        let c = c.unwrap();
        if let Some(pb::message_chunk::Delta::Text(t)) = &c.delta {
            text_len += t.len();
        }
        n += 1;
    }
    assert_eq!(n, deltas + 1, "every delta, then the last chunk");
    assert_eq!(text_len, deltas * 1000, "every byte of text");
    assert_eq!(up.bytes_written(), size);
}

#[tokio::test]
async fn retry_after_is_honoured_before_the_first_chunk() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let ok_body = head() + &delta("fine") + &tail();
    let up = MockUpstream::start(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::json(
                429,
                r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
            )
            .header("retry-after", "1")
        } else {
            Reply::sse(ok_body.clone())
        }
    })
    .await;
    let srv = TestServer::start(
        Config::default(),
        env(&[("ANTHROPIC_API_KEY", "k"), ("ANTHROPIC_BASE_URL", &up.url)]),
    )
    .await;
    let mut c = srv.client().await;
    let started = Instant::now();
    let m = c
        .invoke(text_request(MODEL, "hi"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        m.content[0].block,
        Some(pb::content_block::Block::Text("fine".into()))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "retry-after: 1 was honoured"
    );

    // A retry-after beyond the caller's deadline is not waited for: the 429 is the answer.
    calls.store(0, Ordering::SeqCst);
    let mut req = tonic::Request::new(text_request(MODEL, "hi"));
    req.set_timeout(Duration::from_millis(500));
    let err = c.invoke(req).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_key_never_reaches_an_error_message() {
    for status in [400, 401, 403, 404, 429, 500, 529] {
        let reply = Reply::json(
            status,
            r#"{"type":"error","error":{"type":"api_error","message":"nope"}}"#,
        );
        let mut config = Config::default();
        config.retry.max_retries = 0;
        let (_up, srv) = setup(reply, config).await;
        let mut c = srv.client().await;
        let err = c.invoke(text_request(MODEL, "hi")).await.unwrap_err();
        let details = format!("{err:?}");
        assert!(!details.contains("SECRET"), "{details}");
    }
}
