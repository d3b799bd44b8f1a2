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

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = body();
    let (_up, srv, mut client) = rt.block_on(async {
        // Pieces of 4 KiB, as a network would deliver them.
        let splits: Vec<usize> = (1..body.len() / 4096).map(|i| i * 4096).collect();
        let reply = Reply::sse(body.clone()).splits(splits);
        let up = MockUpstream::start(move |_| reply.clone()).await;
        let srv = TestServer::start(
            Config::default(),
            env(&[
                ("ANTHROPIC_API_KEY", "bench-key"),
                ("ANTHROPIC_BASE_URL", &up.url),
            ]),
        )
        .await;
        let client = srv.client().await;
        (up, srv, client)
    });
    let mut g = c.benchmark_group("relay");
    g.throughput(Throughput::Elements(TOKENS as u64));
    g.sample_size(20);
    g.bench_function("Stream, 2k tokens from a mock Anthropic upstream", |b| {
        b.iter(|| {
            rt.block_on(async {
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
            })
        })
    });
    g.finish();
    drop(srv);
}

criterion_group!(benches, bench);
criterion_main!(benches);
