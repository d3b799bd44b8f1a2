//! The timers' stream (`Timed`) polled by hand, on tokio's paused clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures_util::{future::poll_fn, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::*;
use crate::{chat::types::Delta, error::Kind, observe::CallObs};

fn text(t: &str) -> Chunk {
    Chunk {
        delta: Some(Delta::Text(t.into())),
        ..Chunk::default()
    }
}

/// A chunk that arrives after the total deadline ends the call with
/// DEADLINE_EXCEEDED at once, even while the timer wheel has not yet fired
/// the sleep (tokio rounds a deadline up to its next millisecond tick): the
/// poll that brings it must not go back to waiting on the sleep, or the chunk
/// is lost and the call later ends as a cut instead.
#[tokio::test(start_paused = true)]
async fn a_chunk_after_the_end_ends_the_call_even_before_the_sleep_fires() {
    let (tx, rx) = mpsc::unbounded_channel::<Result<Chunk, Error>>();
    let start = Instant::now();
    let end_at = start + Duration::from_micros(10_500);
    let obs = CallObs::none().chunks(CallObs::none().attempt("p", "p:m", "m", 0, 0));
    let mut s = timed(
        None,
        Box::pin(UnboundedReceiverStream::new(rx)),
        "p",
        (Duration::from_secs(3600), end_at, false),
        obs,
        (None, None),
    );
    tx.send(Ok(text("a"))).unwrap();
    let first = s.next().await.unwrap().unwrap();
    assert_eq!(first.delta, Some(Delta::Text("a".into())));
    // Nothing more yet: the stream waits on its sleep (due at the 11 ms tick).
    assert!(poll_fn(|cx| Poll::Ready(s.poll_next_unpin(cx).is_pending())).await);
    // The clock passes the end, not the sleep's tick; then a chunk comes.
    tokio::time::advance(Duration::from_micros(10_700)).await;
    assert!(Instant::now() >= end_at);
    tx.send(Ok(text("b"))).unwrap();
    let got = poll_fn(|cx| Poll::Ready(s.poll_next_unpin(cx))).await;
    match got {
        Poll::Ready(Some(Err(e))) => assert_eq!(e.kind, Kind::DeadlineExceeded, "{e:?}"),
        other => panic!("want DEADLINE_EXCEEDED at once, got {other:?}"),
    }
}
