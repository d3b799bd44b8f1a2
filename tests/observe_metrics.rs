//! Metrics end to end: the real server with `metrics_addr` set, calls through
//! the fake model and a mock Anthropic upstream (a retry, a fallback, errors
//! before and after the first chunk, a caller's deadline, a model name the
//! configuration does not know), then `/metrics` scraped over HTTP and the
//! histograms and counters read from the Prometheus text.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use chatwire::config::Config;
use common::*;
use serde_json::json;
use tonic::Code;

fn ev(data: serde_json::Value) -> String {
    format!(
        "event: {}\ndata: {data}\n\n",
        data["type"].as_str().unwrap()
    )
}

/// An Anthropic answer, split oddly (CRLF is the mock's job elsewhere; here a ping between deltas).
fn answer(text: &[&str]) -> String {
    let mut b = ev(
        json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant",
        "model":"claude-upstream-name","content":[],"stop_reason":null,"stop_sequence":null,
        "usage":{"input_tokens":11,"output_tokens":1}}}),
    ) + &ev(
        json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
    );
    for t in text {
        b += &ev(
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":t}}),
        );
        b += "event: ping\ndata: {\"type\": \"ping\"}\n\n";
    }
    b + &ev(json!({"type":"content_block_stop","index":0}))
        + &ev(
            json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":4}}),
        )
        + &ev(json!({"type":"message_stop"}))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The sum of every sample named `name` whose labels include all of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut total = 0.0;
    let mut found = false;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let (n, labelset) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if n != name {
            continue;
        }
        let pairs: Vec<String> = labelset.split(',').map(str::to_string).collect();
        if labels
            .iter()
            .all(|(k, v)| pairs.iter().any(|p| *p == format!("{k}=\"{v}\"")))
        {
            total += value.parse::<f64>().unwrap();
            found = true;
        }
    }
    assert!(found, "no sample {name}{labels:?} in:\n{text}");
    total
}

async fn scrape(port: u16) -> String {
    let res = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let ctype = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    res.text().await.unwrap()
}

const SECRET_KEY: &str = "sk-ant-metrics-secret-0123456789";

#[tokio::test]
async fn metrics_count_calls_tokens_retries_fallbacks_timers_and_errors() {
    // The mock upstream: `claude-down` always answers 503; `claude-retry`
    // answers 503 once, then streams; any other model streams.
    let retry_seen = Arc::new(AtomicUsize::new(0));
    let seen = retry_seen.clone();
    let up = MockUpstream::start(move |r| {
        let model = r.json()["model"].as_str().unwrap_or("").to_string();
        let down = Reply::json(
            503,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"down"}}"#,
        );
        match model.as_str() {
            "claude-down" => down,
            "claude-retry" if seen.fetch_add(1, Ordering::SeqCst) == 0 => down,
            _ => Reply::sse(answer(&["Hi", " there", "!"])).splits(vec![40, 333, 334, 600]),
        }
    })
    .await;
    let port = free_port();
    let config = Config::from_toml(&format!(
        r#"
metrics_addr = "127.0.0.1:{port}"
[retry]
max_retries = 1
base_backoff_ms = 1
max_backoff_ms = 2
[fake.scripts.hello]
chunks = [{{text = "Hel"}}, {{text = "lo"}}, {{text = " world"}}]
usage = {{inputTokens = 7, outputTokens = 3, cacheReadTokens = 2, reasoningTokens = 1}}
[fake.scripts.broken]
chunks = [{{text = "par"}}, {{text = "tial"}}]
fail = {{afterChunks = 1, code = "UNAVAILABLE"}}
[fake.scripts.slow]
chunks = [{{text = "a"}}, {{text = "b"}}]
delayMs = 300
[models.flaky]
target = "anthropic:claude-down"
fallbacks = ["fake:hello"]
[models."anthropic:claude-retry"]
streaming = true
"#
    ))
    .unwrap();
    let srv = TestServer::start(
        config,
        env(&[
            ("ANTHROPIC_API_KEY", SECRET_KEY),
            ("ANTHROPIC_BASE_URL", &up.url),
        ]),
    )
    .await;
    let mut c = srv.client().await;

    // 1. The fake, streamed: three content chunks, usage of every type.
    let (chunks, status) = collect_stream(&mut c, text_request("fake:hello", "hi")).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(chunk_text(&chunks), "Hello world");

    // 2. Anthropic through Invoke: a 503, one retry, then the answer.
    let m = c
        .invoke(text_request("anthropic:claude-retry", "hi"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.usage.unwrap().output_tokens, 4);

    // 3. An alias whose first target is down: a retry, then the fallback answers.
    let (chunks, status) = collect_stream(&mut c, text_request("flaky", "hi")).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(chunk_text(&chunks), "Hello world");

    // 4. A failure after the first chunk.
    let (_, status) = collect_stream(&mut c, text_request("fake:broken", "hi")).await;
    assert_eq!(status.unwrap().code(), Code::Unavailable);

    // 5. A model name the configuration does not know (caller's free text).
    let (events, status) = collect_events(
        &mut c,
        text_request("anthropic:please summarise my secret diary", "hi"),
    )
    .await;
    assert!(status.is_none(), "{status:?}");
    assert!(events.len() > 3);

    // 6. The caller's deadline passes before the first chunk.
    let mut req = tonic::Request::new(text_request("fake:slow", "hi"));
    req.set_timeout(Duration::from_millis(150));
    let err = c.stream(req).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);

    // 7. A call in flight while scraped: its first chunk is read, the second is 300 ms away.
    let mut slow = c
        .stream(text_request("fake:slow", "hi"))
        .await
        .unwrap()
        .into_inner();
    use futures_util::StreamExt;
    slow.next().await.unwrap().unwrap();
    let during = scrape(port).await;
    assert_eq!(
        sample(&during, "chatwire_calls_in_flight", &[("rpc", "Stream")]),
        1.0
    );
    while slow.next().await.is_some() {}
    // The guard drops (and the call ends) once the stream is done on the server side.
    let mut text = scrape(port).await;
    for _ in 0..50 {
        if sample(&text, "chatwire_calls_in_flight", &[("rpc", "Stream")]) == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        text = scrape(port).await;
    }
    let t = text.as_str();
    let s = |name: &str, labels: &[(&str, &str)]| sample(t, name, labels);

    assert_eq!(s("chatwire_calls_in_flight", &[("rpc", "Stream")]), 0.0);
    assert_eq!(s("chatwire_calls_in_flight", &[("rpc", "Invoke")]), 0.0);

    // Call durations, by RPC, provider, requested model and code.
    let hello = [
        ("rpc", "Stream"),
        ("gen_ai_operation_name", "chat"),
        ("gen_ai_provider_name", "fake"),
        ("gen_ai_request_model", "fake:hello"),
    ];
    let ok = [&hello[..], &[("code", "OK")]].concat();
    assert_eq!(
        s("gen_ai_client_operation_duration_seconds_count", &ok),
        1.0
    );
    assert_eq!(
        s("gen_ai_server_time_to_first_token_seconds_count", &hello),
        1.0
    );
    assert_eq!(s("chatwire_added_latency_seconds_count", &hello), 1.0);
    let added = s("chatwire_added_latency_seconds_sum", &hello);
    assert!(added > 0.0 && added < 1.0, "added latency {added}");
    assert_eq!(
        s(
            "gen_ai_client_operation_duration_seconds_count",
            &[
                ("rpc", "Invoke"),
                ("gen_ai_provider_name", "anthropic"),
                ("gen_ai_request_model", "anthropic:claude-retry"),
                ("code", "OK"),
            ]
        ),
        1.0
    );
    assert_eq!(
        s(
            "gen_ai_client_operation_duration_seconds_count",
            &[
                ("gen_ai_request_model", "fake:broken"),
                ("code", "UNAVAILABLE")
            ]
        ),
        1.0
    );
    assert_eq!(
        s(
            "gen_ai_client_operation_duration_seconds_count",
            &[
                ("gen_ai_request_model", "fake:slow"),
                ("code", "DEADLINE_EXCEEDED")
            ]
        ),
        1.0
    );
    // The unknown model is `other`; its text is nowhere in the scrape, nor is the key.
    assert_eq!(
        s(
            "gen_ai_client_operation_duration_seconds_count",
            &[
                ("rpc", "StreamEvents"),
                ("gen_ai_request_model", "other"),
                ("code", "OK")
            ]
        ),
        1.0
    );
    assert!(!t.contains("diary"), "{t}");
    assert!(!t.contains(SECRET_KEY), "{t}");

    // Tokens by type: the fake's script twice (direct, and as flaky's fallback).
    let tokens = |model: &str, ty: &str| {
        s(
            "chatwire_tokens_total",
            &[
                ("gen_ai_provider_name", "fake"),
                ("gen_ai_request_model", model),
                ("gen_ai_token_type", ty),
            ],
        )
    };
    assert_eq!(tokens("fake:hello", "input"), 7.0);
    assert_eq!(tokens("fake:hello", "output"), 3.0);
    assert_eq!(tokens("fake:hello", "cache_read"), 2.0);
    assert_eq!(tokens("fake:hello", "reasoning"), 1.0);
    assert_eq!(tokens("flaky", "output"), 3.0);
    assert_eq!(
        s(
            "gen_ai_client_token_usage_sum",
            &[
                ("gen_ai_provider_name", "anthropic"),
                ("gen_ai_request_model", "anthropic:claude-retry"),
                ("gen_ai_token_type", "input")
            ]
        ),
        11.0
    );
    assert_eq!(
        s(
            "gen_ai_server_time_per_output_token_seconds_count",
            &[("gen_ai_request_model", "fake:hello")]
        ),
        1.0
    );
    // The gap between chunks: three content chunks, two gaps.
    assert_eq!(
        s(
            "chatwire_upstream_inter_chunk_gap_seconds_count",
            &[
                ("gen_ai_provider_name", "fake"),
                ("gen_ai_request_model", "fake:hello")
            ]
        ),
        2.0
    );

    // Retries, fallbacks, attempts, upstream statuses and time to first byte.
    let retry = [
        ("gen_ai_provider_name", "anthropic"),
        ("gen_ai_request_model", "anthropic:claude-retry"),
    ];
    assert_eq!(s("chatwire_retries_total", &retry), 1.0);
    assert_eq!(s("chatwire_upstream_attempts_total", &retry), 2.0);
    assert_eq!(
        s(
            "chatwire_upstream_time_to_first_token_seconds_count",
            &retry
        ),
        1.0
    );
    let flaky = [
        ("gen_ai_provider_name", "anthropic"),
        ("gen_ai_request_model", "flaky"),
    ];
    assert_eq!(s("chatwire_retries_total", &flaky), 1.0);
    assert_eq!(s("chatwire_upstream_attempts_total", &flaky), 2.0);
    assert_eq!(
        s(
            "chatwire_fallbacks_total",
            &[
                ("gen_ai_provider_name", "fake"),
                ("gen_ai_request_model", "flaky")
            ]
        ),
        1.0
    );
    let status = |code: &str| {
        s(
            "chatwire_upstream_responses_total",
            &[
                ("gen_ai_provider_name", "anthropic"),
                ("http_response_status_code", code),
            ],
        )
    };
    assert_eq!(status("503"), 3.0);
    assert_eq!(status("200"), 2.0);
    assert_eq!(
        s(
            "chatwire_upstream_time_to_first_byte_seconds_count",
            &[("gen_ai_provider_name", "anthropic")]
        ),
        5.0
    );

    // Timers and ErrorInfo reasons.
    assert_eq!(
        s("chatwire_timer_firings_total", &[("timer", "deadline")]),
        1.0
    );
    assert_eq!(
        s(
            "chatwire_errors_total",
            &[
                ("gen_ai_provider_name", "fake"),
                ("reason", "SCRIPTED_FAILURE")
            ]
        ),
        1.0
    );
    assert_eq!(
        s("chatwire_errors_total", &[("reason", "DEADLINE_EXCEEDED")]),
        1.0
    );

    // Only /metrics is served.
    let res = reqwest::get(format!("http://127.0.0.1:{port}/other"))
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

/// The metrics port keeps at most 64 connections and a new one closes the
/// oldest: connections opened and left idle cannot keep a scrape out (with a
/// cap that waited for a free slot, a scrape waited for hyper's 10 s header
/// timeout to free one, longer than Prometheus's default scrape timeout).
#[tokio::test]
async fn idle_connections_cannot_keep_a_scrape_out() {
    let port = free_port();
    let config = Config::from_toml(&format!("metrics_addr = \"127.0.0.1:{port}\"\n")).unwrap();
    let _srv = TestServer::start(config, env(&[])).await;
    // The metrics listener starts beside the server: wait for it.
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    scrape(port).await;
    let held = silent_connections(port, 100).await;
    for i in 0..3 {
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), scrape(port)).await;
        assert!(got.is_ok(), "scrape {i} with 100 idle connections opened");
    }
    drop(held);

    // A kept-alive connection that has scraped (Prometheus's) outlives
    // connections that never sent a request: those are closed first.
    let mut kept = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    assert_eq!(raw_scrape(&mut kept).await.ok(), Some(200));
    let silent = silent_connections(port, 100).await;
    let again =
        tokio::time::timeout(std::time::Duration::from_secs(5), raw_scrape(&mut kept)).await;
    assert_eq!(
        again.ok().and_then(Result::ok),
        Some(200),
        "the connection that scraped was kept through 100 silent connects"
    );
    drop(silent);
}

/// `n` connections that send nothing, each accepted before the next is
/// opened (as a slow attacker's would be).
async fn silent_connections(port: u16, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap(),
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    held
}

/// One `GET /metrics` on a kept-alive HTTP/1.1 connection: the status code.
async fn raw_scrape(conn: &mut tokio::net::TcpStream) -> std::io::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: m\r\n\r\n")
        .await?;
    let mut buf = Vec::new();
    let mut piece = [0u8; 4096];
    loop {
        let n = conn.read(&mut piece).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&piece[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + len {
                return Ok(head[9..12].parse().unwrap());
            }
        }
    }
}
