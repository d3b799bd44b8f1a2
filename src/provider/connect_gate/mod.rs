//! One TLS connect at a time per origin while a client has no connection
//! there, so that a burst of calls shares the HTTP/2 connection the first one
//! opens instead of each opening its own.
//!
//! A client offers HTTP/2 and HTTP/1.1 by ALPN. Until it has a connection to
//! an origin, hyper's pool lets every call that finds none start its own
//! connect, and once one of them agrees on HTTP/2 the others are dropped: a
//! burst of calls reaching a cold client cost up to a TLS handshake per call
//! to keep one connection (76 connects for 100 calls in tests/upstream_h2.rs),
//! and the memory those handshakes leave behind. Speaking only HTTP/2
//! (hyper's own one-connect lock) avoids that but fails badly: when its one
//! connect fails, every waiting call is cancelled and retried behind the next
//! single connect, so against an unreachable upstream call k waits k connect
//! timeouts; and an HTTP/1.1-only server then fails every call.
//!
//! The gate is a reqwest connector layer, below the pool. Per origin, the
//! first connect (the probe) goes ahead; connects that start while it runs
//! wait for it (at most [`PROBE_WAIT`], then they connect as without the
//! gate: a probe stuck on a dead address must not spend their own connect
//! timeout), then:
//! - if it agreed on HTTP/2, they never connect: their calls are waiting in the
//!   pool too and receive the probe's connection when hyper puts it there, and
//!   hyper leaves their unneeded connects running in the background, where
//!   they end with an error (only logged by hyper) [`SETTLE`] after the probe
//!   ended. So do connects that start within [`HOLD_AFTER`] of it: hyper
//!   pools the connection a few steps after the connect returns, and calls in
//!   between find none there;
//! - if it failed, or agreed on HTTP/1.1 (a connection per call anyway), each
//!   connects itself at once, as without the gate; an origin that answered
//!   over HTTP/1.1 is not gated for [`HTTP1_FOR`];
//! - if it was dropped before its connect returned (its call cancelled), one
//!   of them probes next.
//!
//! What this costs when the probe's connection never serves them (its HTTP/2
//! handshake fails, the probe's call is cancelled before hyper pools it, or
//! the connection closes at once): the calls waiting for it fail, some at
//! once (hyper cancels its pool's waiters), the rest [`SETTLE`] after the
//! probe. Nothing was sent on them, so they fail as UNAVAILABLE, which the
//! pipeline retries after its backoff (by default 100 ms at least, longer
//! than [`HOLD_AFTER`]), by when the gate lets connects through again.
//!
//! Plain `http://` origins (no ALPN, so never HTTP/2 here) are not gated. A
//! connect the gate cannot place (an origin it cannot read) is not gated.

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use hyper_util::client::legacy::connect::Connection;
use tokio::{
    sync::{watch, Mutex},
    time::Instant,
};

/// The longest a connect waits for the probe before connecting itself.
/// A TLS handshake to a provider takes a few round trips (well under 1 s);
/// a probe slower than this is likely stuck.
pub const PROBE_WAIT: Duration = Duration::from_secs(1);

/// How long after a probe agreed on HTTP/2 the connects it made unneeded stay
/// pending before they end with an error: far longer than hyper needs to pool
/// the connection, so that a call is never failed by a slow poll.
pub const SETTLE: Duration = Duration::from_secs(1);

/// Connects that start this soon after a probe agreed on HTTP/2 are taken for
/// calls that found the connection not yet pooled, and held like its waiters.
/// Later ones probe again (the connection has closed, or the pool would have
/// served them): so a connection closed at once holds back few calls.
pub const HOLD_AFTER: Duration = Duration::from_millis(50);

/// How long an origin that answered over HTTP/1.1 is left ungated (hyper's
/// pool keeps an idle connection as long).
pub const HTTP1_FOR: Duration = Duration::from_secs(90);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One client's gate (each client has its own pool, so its own gate).
#[derive(Clone, Default)]
pub struct ConnectGate {
    origins: Arc<Mutex<HashMap<String, Arc<watch::Sender<Round>>>>>,
}

/// One origin's state: whether a probe is running, how many have ended, how
/// the last one ended, and whether the origin answered over HTTP/1.1.
#[derive(Clone, Copy, Default)]
struct Round {
    probing: bool,
    ended: u64,
    outcome: Outcome,
    /// When the last probe that agreed on HTTP/2 ended.
    http2_at: Option<Instant>,
    /// When a probe last found HTTP/1.1.
    http1_at: Option<Instant>,
}

#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
enum Outcome {
    /// Dropped before it ended (its call was cancelled).
    #[default]
    Dropped,
    /// A connection that agreed on HTTP/2.
    Http2,
    /// A failure, or a connection without HTTP/2.
    Other,
}

impl ConnectGate {
    /// The state of the origin `key` names, or `None` when its connects are
    /// not gated. reqwest hands the layer an opaque request whose `Debug`
    /// shows the origin's URI (the key); if it ever stops doing so, nothing
    /// is gated.
    async fn origin(&self, key: &str) -> Option<Arc<watch::Sender<Round>>> {
        let rest = key.split_once("https://")?.1;
        // Scheme and host only: no `user:pass@` kept, even in memory.
        let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        let mut origins = self.origins.lock().await;
        let round = origins
            .entry(host.to_string())
            .or_insert_with(|| Arc::new(watch::channel(Round::default()).0))
            .clone();
        let http1 = matches!(round.borrow().http1_at, Some(at) if Instant::now() < at + HTTP1_FOR);
        (!http1).then_some(round)
    }

    /// Runs `connect` through the gate of the origin `key` names.
    pub async fn connect<C, F>(&self, key: &str, connect: impl FnOnce() -> F) -> Result<C, BoxError>
    where
        C: Connection,
        F: Future<Output = Result<C, BoxError>>,
    {
        let Some(round) = self.origin(key).await else {
            return connect().await;
        };
        // One bound on the whole wait, however many probes come and go.
        let give_up = Instant::now() + PROBE_WAIT;
        loop {
            let mut changes = round.subscribe();
            let (mut probe, mut seen, mut settling) = (false, 0, None);
            let now = Instant::now();
            round.send_if_modified(|r| {
                seen = r.ended;
                match r.http2_at {
                    Some(at) if !r.probing && now < at + HOLD_AFTER => settling = Some(at),
                    _ if !r.probing => {
                        r.probing = true;
                        probe = true;
                    }
                    _ => {}
                }
                false // nobody waits for a probe to start
            });
            if let Some(at) = settling {
                return not_needed(at).await;
            }
            if probe {
                let mut end = ProbeEnd {
                    round: &round,
                    outcome: Outcome::Dropped,
                    http1: false,
                };
                let result = connect().await;
                (end.outcome, end.http1) = match &result {
                    Ok(c) if c.connected().is_negotiated_h2() => (Outcome::Http2, false),
                    Ok(_) => (Outcome::Other, true),
                    Err(_) => (Outcome::Other, false),
                };
                return result;
            }
            let ended = tokio::time::timeout_at(give_up, changes.wait_for(|r| r.ended != seen));
            let (outcome, at) = match ended.await {
                Ok(Ok(r)) => (r.outcome, r.http2_at),
                // The probe is slow (or its state is gone): connect.
                Ok(Err(_)) | Err(_) => (Outcome::Other, None),
            };
            match (outcome, at) {
                (Outcome::Http2, Some(at)) => return not_needed(at).await,
                (Outcome::Dropped, _) => continue,
                _ => return connect().await,
            }
        }
    }
}

/// A connect that the HTTP/2 connection a probe opened at `at` makes
/// unneeded: it stays pending until [`SETTLE`] after that, then ends with an
/// error.
async fn not_needed<C>(at: Instant) -> Result<C, BoxError> {
    tokio::time::sleep_until(at + SETTLE).await;
    // Seen only when that connection never reached hyper's pool (its calls
    // took it from there otherwise, and hyper only logs this).
    Err("waited for the HTTP/2 connection another call opened to this origin, which did not become usable".into())
}

/// Ends a probe's round when the probe ends or is dropped, waking its waiters.
struct ProbeEnd<'a> {
    round: &'a watch::Sender<Round>,
    outcome: Outcome,
    http1: bool,
}

impl Drop for ProbeEnd<'_> {
    fn drop(&mut self) {
        let (outcome, http1) = (self.outcome, self.http1);
        self.round.send_modify(|r| {
            r.probing = false;
            r.ended += 1;
            r.outcome = outcome;
            r.http2_at = (outcome == Outcome::Http2).then(Instant::now);
            if http1 {
                r.http1_at = Some(Instant::now());
            }
        });
    }
}

impl<S> tower_layer::Layer<S> for ConnectGate {
    type Service = Gated<S>;

    fn layer(&self, inner: S) -> Gated<S> {
        Gated {
            inner,
            gate: self.clone(),
        }
    }
}

/// reqwest's connector behind the gate.
#[derive(Clone)]
pub struct Gated<S> {
    inner: S,
    gate: ConnectGate,
}

impl<S, R> tower_service::Service<R> for Gated<S>
where
    S: tower_service::Service<R, Error = BoxError> + Clone + Send + 'static,
    S::Response: Connection + Send + 'static,
    S::Future: Send + 'static,
    R: fmt::Debug + Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        // The instance polled ready goes with this call (tower's convention).
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let gate = self.gate.clone();
        Box::pin(async move {
            let key = format!("{request:?}");
            gate.connect(&key, move || inner.call(request)).await
        })
    }
}

#[cfg(test)]
mod tests;
