//! Graceful drain: on shutdown the server refuses new chat calls with
//! UNAVAILABLE (reason DRAINING), so a call that reaches this replica after the
//! drain began gets a status it can retry elsewhere, never a hang; the server
//! then sends HTTP/2 GOAWAY on every connection (see `server`), lets calls in
//! flight finish within the grace period, and ends the rest with UNAVAILABLE.

use std::{
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
};

use std::task::{Context, Poll, Waker};

use futures_util::{Stream, StreamExt};
use tokio::sync::{watch, Notify};
use tonic::Status;

use super::status::to_status;
use crate::{
    error::{log_safe, Error, Kind},
    observe::{CallObs, Observer},
};

/// The longest caller-supplied value a log line carries (characters).
pub(crate) const LOG_VALUE_MAX: usize = 200;

/// The server's drain state, shared by the service and the server loop.
pub(crate) struct Drain {
    draining: AtomicBool,
    /// Set by `hard_stop` before the stop is sent: a guard whose stop future is
    /// already waiting reads this instead of polling that future again.
    stopping: AtomicBool,
    in_flight: AtomicUsize,
    idle: Notify,
    stop: watch::Sender<bool>,
}

impl Drain {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            draining: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
            stop: watch::channel(false).0,
        })
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub(crate) fn start_drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Counts a call in flight until the guard drops (which logs how it ended).
    pub(crate) fn enter(self: &Arc<Self>, rpc: &'static str) -> CallGuard {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        CallGuard {
            drain: self.clone(),
            rpc,
            model: String::new(),
            run_id: String::new(),
            started: tokio::time::Instant::now(),
            items: 0,
            outcome: None,
            obs: CallObs::none(),
        }
    }

    /// Resolves when no call is in flight.
    pub(crate) async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// The grace period is over: every call still in flight ends with UNAVAILABLE.
    pub(crate) fn hard_stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.stop.send_replace(true);
    }

    /// Resolves once `hard_stop` was called.
    pub(crate) fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.subscribe();
        async move {
            let _ = rx.wait_for(|v| *v).await;
        }
    }

    /// The error for calls refused (`during_call` false) or cut by the drain.
    pub(crate) fn error_for(during_call: bool) -> Error {
        let message = if during_call {
            "this server is shutting down and its grace period is over; the answer is cut: retry on another replica"
        } else {
            "this server is shutting down; retry on another replica"
        };
        Error::new(Kind::Draining, "DRAINING", message)
    }

    /// The error that ends a call still in flight when the grace period is over.
    pub(crate) fn error() -> Error {
        Self::error_for(true)
    }

    /// The status for calls refused or ended by the drain.
    pub(crate) fn status(during_call: bool) -> Status {
        to_status(&Self::error_for(during_call))
    }
}

/// A call in flight. Dropping it logs one `call ended` line: the outcome
/// (`OK`, a status code, or `dropped before completion` when the client went
/// away first), the items sent and the duration.
pub(crate) struct CallGuard {
    drain: Arc<Drain>,
    rpc: &'static str,
    model: String,
    run_id: String,
    started: tokio::time::Instant,
    items: usize,
    outcome: Option<tonic::Code>,
    /// Metrics and traces: the call ends (duration, span) when the guard drops.
    obs: CallObs,
}

impl CallGuard {
    /// Names the call in its log line.
    /// Both are the caller's text: escaped and capped for the log line.
    pub(crate) fn describe(&mut self, model: &str, run_id: &str) {
        self.model = log_safe(model, LOG_VALUE_MAX);
        self.run_id = log_safe(run_id, LOG_VALUE_MAX);
    }

    /// Opens the call's metrics and span (the caller's W3C trace context is in `md`).
    pub(crate) fn observe(
        &mut self,
        observer: &Observer,
        md: &tonic::metadata::MetadataMap,
    ) -> CallObs {
        let get = |k: &str| md.get(k).and_then(|v| v.to_str().ok());
        self.obs = observer.call(self.rpc, get("traceparent"), get("tracestate"));
        self.obs.clone()
    }

    /// Records how the call ended.
    pub(crate) fn finish(&mut self, code: tonic::Code) {
        self.outcome.get_or_insert(code);
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        let elapsed_ms = self.started.elapsed().as_millis() as u64;
        let outcome = match self.outcome {
            Some(tonic::Code::Ok) => "OK".to_string(),
            Some(code) => format!("{code:?}"),
            // The response was dropped before its end: the client went away (or
            // the server stopped under it).
            None => "dropped before completion".to_string(),
        };
        tracing::info!(
            rpc = self.rpc,
            model = %self.model,
            run_id = %self.run_id,
            outcome = %outcome,
            items = self.items,
            elapsed_ms,
            "call ended"
        );
        // A call dropped before its end: the client went away (CANCELLED).
        let code = self.outcome.unwrap_or(tonic::Code::Cancelled);
        self.obs.end(crate::observe::grpc_code_name(code as i32));
        if self.drain.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.drain.idle.notify_waiters();
        }
    }
}

/// A response stream that holds its call guard and ends with UNAVAILABLE at hard stop.
pub(crate) type Guarded<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Wraps a response stream (boxed once, here) with its call guard.
pub(crate) fn guard<T, S>(inner: S, call: CallGuard) -> Guarded<T>
where
    T: Send + 'static,
    S: Stream<Item = Result<T, Status>> + Send + Unpin + 'static,
{
    // Unconstrained: a poll that returns Pending has always registered the
    // waker (tokio's task budget could otherwise return Pending unregistered),
    // which is what lets later polls skip it (see `armed`).
    let stopped = Box::pin(tokio::task::coop::unconstrained(call.drain.stopped()));
    Box::pin(Guard {
        inner,
        call: Some(call),
        stopped,
        armed: None,
    })
}

/// A plain `Stream` (no future rebuilt per item): the inner stream first, then
/// the hard stop; the guard is finished and dropped when the stream ends.
struct Guard<S> {
    inner: S,
    /// None once the stream has ended (its guard dropped and logged).
    call: Option<CallGuard>,
    stopped: Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    /// The waker `stopped` last registered. While it would wake this same task
    /// and no hard stop began, `stopped` is not polled again: each poll of it
    /// takes the lock of the drain's waiter list, shared by every call, and the
    /// stream is polled once per chunk and per coalescing turn.
    armed: Option<Waker>,
}

impl<T, S> Stream for Guard<S>
where
    S: Stream<Item = Result<T, Status>> + Unpin,
{
    type Item = Result<T, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(c) = this.call.as_mut() else {
            return Poll::Ready(None);
        };
        match this.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(v))) => {
                c.items += 1;
                return Poll::Ready(Some(Ok(v)));
            }
            Poll::Ready(Some(Err(e))) => {
                c.finish(e.code());
                this.call = None;
                return Poll::Ready(Some(Err(e)));
            }
            Poll::Ready(None) => {
                c.finish(tonic::Code::Ok);
                this.call = None;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        let registered = this.armed.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
        if registered && !c.drain.stopping.load(Ordering::SeqCst) {
            return Poll::Pending;
        }
        if this.stopped.as_mut().poll(cx).is_pending() {
            if !registered {
                this.armed = Some(cx.waker().clone());
            }
            return Poll::Pending;
        }
        let status = Drain::status(true);
        c.finish(status.code());
        this.call = None;
        Poll::Ready(Some(Err(status)))
    }
}
