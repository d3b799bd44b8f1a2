//! Chunks the upstream sends together leave together: when one read brings
//! many SSE events (each its own HTTP/1.1 chunk), their gRPC messages share
//! HTTP/2 DATA frames (and socket writes) instead of one frame each, and every
//! chunk still arrives, in order.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use chatwire::config::Config;
use common::{raw_h2::*, *};
use serde_json::json;

const TOKENS: usize = 200;

fn event(delta: serde_json::Value, finish: serde_json::Value) -> String {
    let c = json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    format!("data: {c}\n\n")
}

/// A fast upstream: every event its own HTTP/1.1 chunk, all written at once.
fn burst() -> (String, Vec<usize>) {
    let mut body = String::new();
    let mut splits = Vec::new();
    for i in 0..TOKENS {
        body += &event(
            json!({"content": format!("t{i} ")}),
            serde_json::Value::Null,
        );
        splits.push(body.len());
    }
    body += &event(json!({}), json!("stop"));
    splits.push(body.len());
    body += "data: [DONE]\n\n";
    (body, splits)
}

/// The server, its OpenAI upstream answering every call with `burst()`.
async fn serve_burst() -> (MockUpstream, TestServer) {
    let (body, splits) = burst();
    let up = MockUpstream::start(move |_| Reply::sse(body.clone()).splits(splits.clone())).await;
    let base = format!("{}/v1", up.url);
    let srv = TestServer::start(Config::default(), env(&[("OPENAI_BASE_URL", &base)])).await;
    (up, srv)
}

#[tokio::test]
async fn chunks_that_arrive_together_share_http2_frames_and_all_arrive_in_order() {
    let (_up, srv) = serve_burst().await;
    let mut h2 = h2_connect(srv.addr).await;

    let resp = h2_send(&mut h2, "Stream", &text_request("openai:m", "go")).unwrap();
    let (chunks, code, message, frames) = read_stream_frames(resp).await;

    assert_eq!(code, "0", "{message}");
    let want: String = (0..TOKENS).map(|i| format!("t{i} ")).collect();
    assert_eq!(chunk_text(&chunks), want, "every chunk, in order");
    assert!(chunks.last().unwrap().last, "ends with the last chunk");
    // One DATA frame per chunk when each is passed on alone; chunks that were
    // read together must share frames.
    assert!(
        frames * 2 <= chunks.len(),
        "{} chunks came in {frames} DATA frames: chunks read together were not sent together",
        chunks.len()
    );
}

/// The first chunk waits for no coalescing turn: it leaves alone, in the
/// first DATA frame, though the rest of the burst is already on its way (the
/// time to the first token is what a caller feels; under load each turn waits
/// for every other ready task). Before, it waited until turns stopped bringing
/// more, and shared its frame with the chunks read meanwhile.
#[tokio::test]
async fn the_first_chunk_of_a_burst_leaves_alone_at_once() {
    use prost::Message;
    let (_up, srv) = serve_burst().await;
    let mut h2 = h2_connect(srv.addr).await;
    for _ in 0..5 {
        let resp = h2_send(&mut h2, "Stream", &text_request("openai:m", "go")).unwrap();
        let mut body = resp.await.unwrap().into_body();
        let first = body.data().await.expect("a DATA frame").unwrap();
        let len = u32::from_be_bytes(first[1..5].try_into().unwrap()) as usize;
        assert_eq!(
            first.len(),
            5 + len,
            "the first DATA frame holds one gRPC message, not {} bytes of several",
            first.len()
        );
        let chunk = chatwire::pb::MessageChunk::decode(&first[5..]).unwrap();
        assert_eq!(chunk_text(&[chunk]), "t0 ");
        while let Some(d) = body.data().await {
            let _ = body.flow_control().release_capacity(d.unwrap().len());
        }
    }
}
