//! What an SRE expects between the client and a misbehaving upstream (here a
//! mock Anthropic server): cancellation reaches the upstream connection,
//! a client that stops reading does not make the server buffer the upstream,
//! the caller's deadline drops the upstream, a 429's retry-after decides
//! whether it is retried, and the key never reaches a log or an error.
// Tests measure wall-clock time and share state across mock threads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

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

/// A deadline already spent when the call arrives sends no request upstream:
/// `grpc-timeout` at or under the margin the server keeps before it (at least
/// 5 ms) gets DEADLINE_EXCEEDED at once; with one of a nanosecond, tonic's own
/// deadline layer may answer first (CANCELLED), but nothing goes upstream either.
#[tokio::test]
async fn an_expired_deadline_sends_nothing_upstream() {
    let (up, srv) = setup(
        Reply::sse(head() + &delta("hi") + &tail()),
        Config::default(),
    )
    .await;
    let mut c = srv.client().await;
    // A call with room first: it reaches the upstream, and leaves a pooled
    // connection on which a request would go out on its first poll.
    let mut req = tonic::Request::new(text_request(MODEL, "hi"));
    req.set_timeout(Duration::from_secs(10));
    c.invoke(req).await.unwrap();
    assert_eq!(up.requests().len(), 1);
    let with_timeout = |t: &str| {
        let mut req = tonic::Request::new(text_request(MODEL, "hi"));
        req.metadata_mut()
            .insert("grpc-timeout", t.parse().unwrap());
        req
    };
    for timeout in ["5m", "4m", "1n", "0n"] {
        let ours = timeout.ends_with('m');
        let err = c.invoke(with_timeout(timeout)).await.unwrap_err();
        let (chunks, stream_err) = collect_stream(&mut c, with_timeout(timeout)).await;
        assert!(chunks.is_empty(), "{timeout}");
        for e in [Some(err), stream_err] {
            let e = e.expect("an error status");
            if ours || e.code() == Code::DeadlineExceeded {
                assert_eq!(e.code(), Code::DeadlineExceeded, "{timeout}: {e:?}");
                assert!(e.message().contains("before the first chunk"), "{e:?}");
            } else {
                assert_eq!(e.code(), Code::Cancelled, "{timeout}: {e:?}");
            }
        }
    }
    assert_eq!(
        up.requests().len(),
        1,
        "no more requests reached the upstream"
    );
}

/// A 200 of the wrong content type (a gateway's JSON error, an HTML page) is
/// a protocol error that quotes the body, redacted: the caller learns why.
#[tokio::test]
async fn a_200_of_the_wrong_type_quotes_its_body() {
    let key = "sk-ant-wrongtype-0123456789abcdef";
    let body = format!(r#"{{"error":{{"message":"Budget exceeded for key {key}"}}}}"#);
    let up = MockUpstream::start(move |_| Reply::json(200, body.clone())).await;
    let srv = TestServer::start(
        Config::default(),
        env(&[("ANTHROPIC_API_KEY", key), ("ANTHROPIC_BASE_URL", &up.url)]),
    )
    .await;
    let mut c = srv.client().await;
    let err = c.invoke(text_request(MODEL, "hi")).await.unwrap_err();
    let (chunks, stream_err) = collect_stream(&mut c, text_request(MODEL, "hi")).await;
    assert!(chunks.is_empty());
    for e in [err, stream_err.expect("an error status")] {
        assert_eq!(reason(&e), "UPSTREAM_PROTOCOL_ERROR", "{e:?}");
        assert!(e.message().contains("not text/event-stream"), "{e:?}");
        assert!(
            e.message().contains("its body: Budget exceeded for key"),
            "{e:?}"
        );
        assert!(!e.message().contains(key), "{e:?}");
    }
}

/// A stream mislabelled (`text/plain`) is refused at once, its body quoted
/// only as far as it comes within a second: it is not read on, generating and
/// billing, until the first-chunk timer ends the call as a slow target.
#[tokio::test]
async fn a_mislabelled_endless_stream_is_refused_without_reading_it_on() {
    let up = MockUpstream::start(move |_| {
        Reply::new(200, "text/plain", head() + &delta("hi")).hold_open()
    })
    .await;
    let srv = TestServer::start(
        Config::from_toml("[timers]\nfirst_chunk_secs = 30\n").unwrap(),
        env(&[("ANTHROPIC_API_KEY", "k"), ("ANTHROPIC_BASE_URL", &up.url)]),
    )
    .await;
    let mut c = srv.client().await;
    let err = c.invoke(text_request(MODEL, "hi")).await.unwrap_err();
    assert_eq!(reason(&err), "UPSTREAM_PROTOCOL_ERROR", "{err:?}");
    assert!(err.message().contains("not text/event-stream"), "{err:?}");
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
async fn the_upstreams_retry_after_decides_whether_a_429_is_retried() {
    // How long the pipeline waits for a retry-after is tested in-process
    // (timers.rs); here, over HTTP, the header's effect on the decision.
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let ok_body = head() + &delta("fine") + &tail();
    let retry_after = std::sync::Arc::new(std::sync::Mutex::new("0"));
    let after = retry_after.clone();
    let up = MockUpstream::start(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::json(
                429,
                r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
            )
            .header("retry-after", &after.lock().unwrap())
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

    // "retry-after: 0": retried at once, and the retry serves the call.
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

    // A retry-after beyond the caller's deadline is not waited for: the 429 is
    // the answer, with the upstream's delay in RetryInfo.
    calls.store(0, Ordering::SeqCst);
    *retry_after.lock().unwrap() = "3600";
    let mut req = tonic::Request::new(text_request(MODEL, "hi"));
    req.set_timeout(Duration::from_secs(5));
    let err = tokio::time::timeout(Duration::from_secs(20), c.invoke(req))
        .await
        .expect("answered, not held until the deadline")
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(reason(&err), "UPSTREAM_RATE_LIMITED");
    use tonic_types::StatusExt;
    assert_eq!(
        err.get_details_retry_info().and_then(|r| r.retry_delay),
        Some(Duration::from_secs(3600))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// Everything the server logs on this thread. The test's runtime is
/// current-thread, so every task of an in-process server logs here.
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> LogBuffer {
        self.clone()
    }
}

/// One provider as the leak test drives it: its model, the key the server
/// holds, and what its upstream says when it echoes that key back.
struct Leaky {
    model: &'static str,
    key: &'static str,
    /// Text of the provider's own error message, which must still reach the caller.
    kept: &'static str,
}

const LEAKY: [Leaky; 4] = [
    Leaky {
        model: "anthropic:claude-3-haiku-20240307",
        key: "sk-ant-api03-LEAK-anthropic-0123456789abcdef",
        kept: "invalid x-api-key",
    },
    Leaky {
        model: "openai:gpt-4o-mini",
        key: "sk-proj-LEAK-openai-0123456789abcdef",
        kept: "Incorrect API key provided",
    },
    Leaky {
        model: "gemini:gemini-2.0-flash",
        key: "AIzaLEAK-gemini-0123456789abcdef",
        kept: "API key not valid",
    },
    Leaky {
        model: "ollama:llama3.2",
        key: "ollama-LEAK-0123456789abcdef",
        kept: "unauthorized",
    },
];

/// The credential a request carried, in whichever header its provider uses.
fn sent_key(r: &Recorded) -> String {
    r.header("x-api-key")
        .or_else(|| r.header("x-goog-api-key"))
        .or_else(|| {
            r.header("authorization")
                .map(|v| v.trim_start_matches("Bearer ").to_string())
        })
        .unwrap_or_default()
}

/// The upstream's answer, echoing `key` in its own error format: an HTTP
/// error for `status` >= 400, else a stream that fails after one token.
fn echoing_reply(path: &str, status: u16, key: &str) -> Reply {
    if path.contains("/messages") {
        let error = |t: &str| json!({"type": "error", "error": {"type": t, "message": format!("invalid x-api-key: {key}")}});
        if status >= 400 {
            let t = match status {
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                500.. => "api_error",
                _ => "invalid_request_error",
            };
            return Reply::json(status, error(t).to_string());
        }
        Reply::sse(head() + &delta("partial ") + &ev(error("api_error")))
    } else if path.contains("/chat/completions") {
        let error = json!({"error": {
            "message": format!("Incorrect API key provided: {key}. You can find your API key at https://platform.openai.com/account/api-keys."),
            "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}});
        if status >= 400 {
            return Reply::json(status, error.to_string());
        }
        let chunk = json!({"id": "chatcmpl-leak", "object": "chat.completion.chunk", "created": 1,
            "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": "partial "}, "finish_reason": null}]});
        Reply::sse(format!("data: {chunk}\n\ndata: {error}\n\n"))
    } else if path.contains(":streamGenerateContent") {
        let error = json!({"error": {"code": status.max(500), "message": format!("API key not valid: {key}. Please pass a valid API key."),
            "status": if status >= 400 { "INVALID_ARGUMENT" } else { "INTERNAL" }}});
        if status >= 400 {
            return Reply::json(status, error.to_string());
        }
        let chunk = json!({"candidates": [{"content": {"parts": [{"text": "partial "}], "role": "model"}, "index": 0}],
            "responseId": "leak", "modelVersion": "gemini-2.0-flash"});
        Reply::sse(format!("data: {chunk}\r\n\r\ndata: {error}\r\n\r\n"))
    } else {
        let error = json!({"error": format!("unauthorized: {key}")});
        if status >= 400 {
            return Reply::json(status, error.to_string());
        }
        let line = json!({"model": "llama3.2", "created_at": "2025-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": "partial "}, "done": false});
        Reply::ndjson(format!("{line}\n{error}\n"))
    }
}

/// Fails if `key` is anywhere in what the client got for a status.
fn assert_no_key(status: &tonic::Status, key: &str, kept: &str, what: &str) {
    use tonic_types::StatusExt;
    assert!(
        !status.message().contains(key),
        "{what}: the key is in the status message: {}",
        status.message()
    );
    assert!(
        status.message().contains(kept),
        "{what}: the upstream's own message is kept (redacted, not dropped): {}",
        status.message()
    );
    let details = String::from_utf8_lossy(status.details());
    assert!(
        !details.contains(key),
        "{what}: the key is in the status details: {details}"
    );
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert!(
        info.metadata.values().all(|v| !v.contains(key)),
        "{what}: the key is in the ErrorInfo metadata: {:?}",
        info.metadata
    );
    assert!(!format!("{status:?}").contains(key), "{what}: {status:?}");
}

#[tokio::test]
async fn the_key_never_reaches_an_error_message() {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    // One mock upstream for all four providers: it answers in the format the
    // request path asks for, with the status the test sets, and echoes the key
    // the request carried.
    let status = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(0));
    let echoed = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    // When set, the key is echoed in JSON escapes (`\u0073k-…`, or one
    // character escaped), as a JSON encoder may write it: its bytes are then
    // not the key's, but the message read from the JSON is.
    let escape = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(0));
    let (st, seen, esc) = (status.clone(), echoed.clone(), escape.clone());
    let up = MockUpstream::start(move |r| {
        let key = sent_key(r);
        seen.lock().unwrap().push(key.clone());
        let mut reply = echoing_reply(&r.path, st.load(std::sync::atomic::Ordering::SeqCst), &key);
        let escaped: String = match esc.load(std::sync::atomic::Ordering::SeqCst) {
            0 => key.clone(),
            1 => key
                .chars()
                .map(|c| format!("\\u{:04x}", c as u32))
                .collect(),
            _ => key.replacen('-', "\\u002d", 1),
        };
        let body = String::from_utf8(reply.body)
            .unwrap()
            .replace(&key, &escaped);
        reply.body = body.into_bytes();
        reply
    })
    .await;
    let host = up.url.trim_start_matches("http://").to_string();
    let mut config = Config::default();
    config.retry.max_retries = 0;
    let srv = TestServer::start(
        config,
        env(&[
            ("ANTHROPIC_API_KEY", LEAKY[0].key),
            ("ANTHROPIC_BASE_URL", &up.url),
            ("OPENAI_API_KEY", LEAKY[1].key),
            ("OPENAI_BASE_URL", &up.url),
            ("GEMINI_API_KEY", LEAKY[2].key),
            ("GEMINI_BASE_URL", &up.url),
            ("OLLAMA_API_KEY", LEAKY[3].key),
            ("OLLAMA_HOST", &host),
        ]),
    )
    .await;
    let mut c = srv.client().await;

    for (p, escaped) in LEAKY.iter().flat_map(|p| (0..3).map(move |e| (p, e))) {
        escape.store(escaped, std::sync::atomic::Ordering::SeqCst);
        // Errors before the stream: the key echoed in the HTTP error body.
        for code in [400, 401, 403, 404, 429, 500, 503] {
            status.store(code, std::sync::atomic::Ordering::SeqCst);
            let what = format!("{} HTTP {code}, escapes {escaped}", p.model);
            let err = c.invoke(text_request(p.model, "hi")).await.unwrap_err();
            assert_no_key(&err, p.key, p.kept, &what);
            let (chunks, err) = collect_stream(&mut c, text_request(p.model, "hi")).await;
            assert!(chunks.is_empty(), "{what}");
            assert_no_key(&err.expect("an error status"), p.key, p.kept, &what);
        }
        // An error inside the stream, after a token: the key echoed in the error event.
        status.store(200, std::sync::atomic::Ordering::SeqCst);
        let what = format!("{} mid-stream, escapes {escaped}", p.model);
        let (events, err) = collect_events(&mut c, text_request(p.model, "hi")).await;
        assert_no_key(&err.expect("an error status"), p.key, p.kept, &what);
        match events.last().and_then(|e| e.event.as_ref()) {
            Some(pb::chat_event::Event::Error(e)) => {
                assert!(!e.message.contains(p.key), "{what}: {}", e.message);
                assert!(e.message.contains(p.kept), "{what}: {}", e.message);
                assert!(
                    e.partial
                        .as_ref()
                        .is_some_and(|m| !format!("{m:?}").contains(p.key)),
                    "{what}: {:?}",
                    e.partial
                );
            }
            other => panic!("{what}: the stream ends with an error event, got {other:?}"),
        }
        assert!(
            events
                .iter()
                .any(|e| matches!(&e.event, Some(pb::chat_event::Event::Stream(_)))),
            "{what}: a token came before the error"
        );
    }

    // The mock really was sent each key, and echoed it back.
    let echoed = echoed.lock().unwrap().clone();
    for p in &LEAKY {
        assert!(
            echoed.iter().any(|k| k == p.key),
            "the {} upstream was sent its key",
            p.model
        );
    }
    drop(c);
    drop(srv);
    // The logs saw the upstream's error text (redacted), never the key.
    let logs = logs.text();
    assert!(
        logs.contains("upstream attempt failed") && logs.contains("Incorrect API key provided"),
        "the errors were logged ({} bytes of logs)",
        logs.len()
    );
    for p in &LEAKY {
        let leaked: Vec<&str> = logs.lines().filter(|l| l.contains(p.key)).collect();
        assert!(
            leaked.is_empty(),
            "the {} key reached the logs:\n{}",
            p.model,
            leaked.join("\n")
        );
    }
}
