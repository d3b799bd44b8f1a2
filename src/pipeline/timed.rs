//! The stream a started call hands on: its first chunk put back in front, the
//! idle and total timers (the caller's deadline among them), the provider's
//! name stamped on every chunk, and the call's permits held to its end.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, Waker},
    time::Duration,
};

use futures_util::{Stream, StreamExt};
use tokio::{
    sync::OwnedSemaphorePermit,
    time::{Instant, Sleep},
};

use super::deadline_error;
use crate::{chat::types::Chunk, error::Error, observe::ChunkObs, provider::ChunkStream};

/// What a call holds of the server's and the model's concurrency limits, for
/// as long as its stream lives.
pub(super) type Permits = (Option<OwnedSemaphorePermit>, Option<OwnedSemaphorePermit>);

/// Puts the first chunk back in front and applies the idle and total timers
/// with one pinned `Sleep` (linkerd's tonic-stream). The sleep is not reset per
/// chunk (that takes the timer driver's lock every time): a chunk only records
/// when it came, and when the sleep fires early for an idle deadline that has
/// since moved on, it is reset once to the real one.
pub(super) fn timed(
    first: Option<Chunk>,
    rest: ChunkStream,
    provider: &'static str,
    (idle, end_at, end_is_caller): (Duration, Instant, bool),
    obs: ChunkObs,
    permits: Permits,
) -> ChunkStream {
    let now = Instant::now();
    Box::pin(Timed {
        first,
        rest,
        provider,
        idle,
        end_at,
        end_is_caller,
        obs,
        sleep: Box::pin(tokio::time::sleep_until((now + idle).min(end_at))),
        last: now,
        armed: None,
        done: false,
        _permits: permits,
    })
}

struct Timed {
    first: Option<Chunk>,
    rest: ChunkStream,
    /// Stamped on every chunk (LangChain's `model_provider`).
    provider: &'static str,
    idle: Duration,
    end_at: Instant,
    end_is_caller: bool,
    /// Metrics and traces: the gap between chunks, the last chunk's usage.
    obs: ChunkObs,
    /// Set no later than the idle deadline (`last + idle`) or the end.
    sleep: Pin<Box<Sleep>>,
    /// When the last chunk was handed on: the idle gap counts from here.
    last: Instant,
    /// The waker `sleep` last registered, kept while that registration stands.
    armed: Option<Waker>,
    done: bool,
    _permits: Permits,
}

impl Timed {
    fn chunk(&mut self, mut c: Chunk, now: Instant) -> Poll<Option<Result<Chunk, Error>>> {
        c.provider = self.provider;
        self.obs.chunk(&c);
        self.done = c.last;
        self.last = now;
        Poll::Ready(Some(Ok(c)))
    }

    fn end(&mut self, e: Error) -> Poll<Option<Result<Chunk, Error>>> {
        self.obs.error(&e);
        self.done = true;
        Poll::Ready(Some(Err(e)))
    }
}

impl Stream for Timed {
    type Item = Result<Chunk, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(c) = this.first.take() {
            return this.chunk(c, Instant::now());
        }
        match this.rest.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(c))) => {
                let now = Instant::now();
                // An upstream that is always ready must not outrun the deadline.
                if now < this.end_at {
                    return this.chunk(c, now);
                }
            }
            Poll::Ready(Some(Err(e))) => return this.end(e),
            // The provider stopped without its `last` chunk: a cut, never a quiet OK.
            Poll::Ready(None) => {
                return this.end(Error::truncated(
                    "the answer ended without its last chunk (truncated)",
                ))
            }
            // Nothing came, and the sleep already waits, for a deadline no
            // later than the real one (chunks only move the idle deadline
            // later), with a waker for this same task: nothing to do until it
            // fires or a chunk comes. This runs on every coalescing turn; it
            // skips a clock read and the timer's own poll. (Not for a chunk
            // that came after the end: that ends the call now, below, though
            // the timer wheel may not have fired the sleep yet.)
            Poll::Pending => {
                if this.armed.as_ref().is_some_and(|w| w.will_wake(cx.waker()))
                    && !this.sleep.is_elapsed()
                {
                    return Poll::Pending;
                }
            }
        }
        this.armed = None;
        let now = loop {
            let now = Instant::now();
            let due = (this.last + this.idle).min(this.end_at);
            if now >= due {
                break now;
            }
            if this.sleep.deadline() > due {
                this.sleep.as_mut().reset(due);
            }
            // With tokio's task budget spent, a poll returns Pending without
            // registering the waker: only a poll made with budget arms.
            let budget = tokio::task::coop::has_budget_remaining();
            if this.sleep.as_mut().poll(cx).is_pending() {
                if budget {
                    this.armed = Some(cx.waker().clone());
                }
                return Poll::Pending;
            }
            // The sleep fired for a deadline that chunks have since moved on:
            // set it to the real one (once per idle period, not per chunk).
            this.sleep.as_mut().reset(due);
        };
        let at_end = now >= this.end_at || this.last + this.idle >= this.end_at;
        let (timer, msg) = if at_end && this.end_is_caller {
            (
                "deadline",
                "the caller's deadline (grpc-timeout) passed mid-stream; the answer is cut",
            )
        } else if at_end {
            (
                "total",
                "the total-duration timer fired mid-stream; the answer is cut",
            )
        } else {
            ("idle", "the idle timer fired: the upstream sent no content for too long (keepalive pings and comments do not count); the answer is cut")
        };
        this.obs.timer(timer);
        this.end(deadline_error(msg))
    }
}

#[cfg(test)]
#[path = "timed_tests.rs"]
mod tests;
