//! The end-to-end relay: a mock Anthropic upstream on 127.0.0.1 streaming a
//! 2,000-token answer → chatwire → a tonic client reading every chunk. Measures
//! what one Stream call costs through the whole stack (HTTP/1.1 in, gRPC out).
//! Run: `cargo bench --bench relay`.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../tests/common/mod.rs"]
mod common;

use chatwire::config::Config;
use common::*;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::StreamExt;
use serde_json::json;

const TOKENS: usize = 2_000;

fn body() -> String {
    let ev = |v: serde_json::Value| {
        format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap_or(""))
    };
    let mut b = ev(
        json!({"type":"message_start","message":{"id":"msg_1","model":"claude","usage":{"input_tokens":5,"output_tokens":1}}}),
    );
    b += &ev(
        json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
    );
    for i in 0..TOKENS {
        b += &ev(
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":format!(" tok{i}")}}),
        );
    }
    b += &ev(json!({"type":"content_block_stop","index":0}));
    b += &ev(
        json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":TOKENS}}),
    );
    b + &ev(json!({"type":"message_stop"}))
}

/// A mock upstream, a chatwire server (metrics on or off) and a client.
async fn setup(body: &str, metrics: bool) -> (MockUpstream, TestServer, Client) {
    // Pieces of 4 KiB, as a network would deliver them.
    let splits: Vec<usize> = (1..body.len() / 4096).map(|i| i * 4096).collect();
    let reply = Reply::sse(body.to_string()).splits(splits);
    let up = MockUpstream::start(move |_| reply.clone()).await;
    let mut config = Config::default();
    if metrics {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        config.metrics_addr = Some(l.local_addr().unwrap());
    }
    let srv = TestServer::start(
        config,
        env(&[
            ("ANTHROPIC_API_KEY", "bench-key"),
            ("ANTHROPIC_BASE_URL", &up.url),
        ]),
    )
    .await;
    let client = srv.client().await;
    (up, srv, client)
}

type Client =
    chatwire::pb::chat_model_service_client::ChatModelServiceClient<tonic::transport::Channel>;

async fn one_call(client: &mut Client) {
    let mut s = client
        .stream(text_request("anthropic:claude-3-haiku-20240307", "hi"))
        .await
        .unwrap()
        .into_inner();
    let mut n = 0;
    while let Some(c) = s.next().await {
        c.unwrap();
        n += 1;
    }
    assert_eq!(n, TOKENS + 1);
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = body();
    let mut g = c.benchmark_group("relay");
    g.throughput(Throughput::Elements(TOKENS as u64));
    g.sample_size(20);
    for (metrics, name) in [
        (false, "Stream, 2k tokens from a mock Anthropic upstream"),
        (
            true,
            "Stream, 2k tokens from a mock Anthropic upstream, metrics on",
        ),
    ] {
        let (_up, srv, mut client) = rt.block_on(setup(&body, metrics));
        g.bench_function(name, |b| b.iter(|| rt.block_on(one_call(&mut client))));
        drop(srv);
    }
    g.finish();
}

/// The process's CPU time (user + system), from /proc/self/stat (Linux).
fn cpu_time() -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(std::time::Duration::from_millis(ticks * 10))
}

/// CPU per relayed chunk with metrics off and on: the whole process (mock
/// upstream, chatwire, client), alternating rounds so load drifts hit both.
/// `RELAY_CPU_CALLS` calls per round (default 50), four rounds each.
fn cpu_per_chunk(_: &mut Criterion) {
    let Some(_) = cpu_time() else { return };
    let calls: usize = std::env::var("RELAY_CPU_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = body();
    let mut off = rt.block_on(setup(&body, false));
    let mut on = rt.block_on(setup(&body, true));
    let mut spent = [std::time::Duration::ZERO; 2];
    for _ in 0..4 {
        for (i, (_, _, client)) in [&mut off, &mut on].into_iter().enumerate() {
            let t0 = cpu_time().unwrap();
            rt.block_on(async {
                for _ in 0..calls {
                    one_call(client).await;
                }
            });
            spent[i] += cpu_time().unwrap() - t0;
        }
    }
    let chunks = (4 * calls * (TOKENS + 1)) as f64;
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e9 / chunks;
    println!(
        "relay/cpu per chunk (whole process, {} chunks each): metrics off {:.0} ns, metrics on {:.0} ns ({:+.1}%)",
        chunks,
        per(spent[0]),
        per(spent[1]),
        (per(spent[1]) / per(spent[0]) - 1.0) * 100.0
    );
}

criterion_group!(benches, bench, cpu_per_chunk);
criterion_main!(benches);
