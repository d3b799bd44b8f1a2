//! The response body's chunk queue (`Body::pending`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures_util::{stream, StreamExt};

use super::*;
use crate::provider::openai::decode::OpenAiDecoder;

fn event(i: usize) -> String {
    format!(
        "data: {{\"id\":\"c1\",\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"t{i}\"}}}}]}}\n\n"
    )
}

/// A burst of 40 chunks in one read passes in order, and the queue it grew
/// gives back the excess once drained: an open stream does not keep a burst's
/// worth (40 chunks × 160 bytes) for the rest of its life.
#[tokio::test]
async fn a_burst_leaves_in_order_and_its_queue_shrinks_back() {
    let burst: String = (0..40).map(event).collect();
    let reads: Vec<reqwest::Result<Bytes>> =
        vec![Ok(Bytes::from(burst)), Ok(Bytes::from(event(40)))];
    let mut body = Body {
        bytes: Box::pin(stream::iter(reads).chain(stream::pending())),
        pump: Pump::new(
            Framing::Sse,
            1 << 20,
            Box::new(OpenAiDecoder::new()),
            "fallback",
        ),
        pending: VecDeque::with_capacity(1),
        error: None,
        ended: false,
        provider: "openai",
        turns: 0,
        fresh: false,
        delivered: false,
        lease: None,
    };
    for i in 0..=40 {
        let chunk = body.next().await.unwrap().unwrap();
        assert_eq!(
            chunk.delta,
            Some(crate::chat::types::Delta::Text(format!("t{i}")))
        );
        if i == 0 {
            assert!(body.pending.capacity() >= 40, "{}", body.pending.capacity());
        }
    }
    assert!(body.pending.is_empty());
    assert!(
        body.pending.capacity() <= PENDING_KEEP,
        "{}",
        body.pending.capacity()
    );
}
