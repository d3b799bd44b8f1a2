//! The one pipeline behind Invoke, Stream and StreamEvents: start the routed
//! provider (retrying and falling back only before the first chunk), bound the
//! call with the caller's deadline and the three timers, and collapse the
//! answer into one chunk for non-streaming models.
//!
//! Layer: above `provider` (it drives providers through the trait), below `api`.

use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    hash::{BuildHasher, RandomState},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, Waker},
    time::Duration,
};

use futures_util::{stream, Stream, StreamExt};
use tokio::{
    sync::{Mutex, OwnedSemaphorePermit, Semaphore},
    time::{Instant, Sleep},
};

use crate::{
    chat::{
        aggregate::{delta_size, Aggregator, FinalMessage},
        budget::{Budget, Reservation},
        types::{ChatRequest, Chunk},
    },
    config::{Limits, RetryPolicy, Timers},
    error::{log_safe, Error, Kind},
    observe::{CallObs, ChunkObs, Observer},
    provider::{Call, ChunkStream, Registry, Route},
};

/// A call that has started: the route that served it and its chunks.
pub struct Started {
    pub route: Route,
    pub chunks: ChunkStream,
}

/// The pipeline, shared by every RPC.
pub struct Pipeline {
    pub registry: Arc<Registry>,
    pub timers: Timers,
    pub retry: RetryPolicy,
    permits: Option<Arc<Semaphore>>,
    /// Per model name (alias or provider:model) with `max_concurrent` set.
    model_permits: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// The replica's budget of buffered bytes, and the cap on one folded answer.
    budget: Budget,
    max_answer_bytes: usize,
    /// Metrics and traces (off unless the server turns them on).
    pub observer: Observer,
}

/// An answer being folded (Invoke, StreamEvents, non-streaming models): the
/// aggregator, held to the cap on a folded answer and to the replica's budget.
pub struct Fold {
    agg: Aggregator,
    reserved: Reservation,
    cap: usize,
}

impl Fold {
    /// Adds a chunk; an answer over the cap, or a replica over its budget, ends the call.
    pub fn push(&mut self, c: &Chunk) -> Result<(), Error> {
        // Checked before folding: a chunk that is not sent is not in the partial answer either.
        let size = self.agg.size() + c.delta.as_ref().map_or(0, delta_size);
        if size > self.cap {
            return Err(Error::new(
                Kind::ResourceExhausted,
                "ANSWER_TOO_LARGE",
                format!(
                    "the answer passed the {}-byte cap on a folded answer (max_answer_bytes): Invoke and StreamEvents hold the whole answer; use Stream for answers this large",
                    self.cap
                ),
            ));
        }
        self.reserved.set(size)?;
        self.agg.push(c);
        Ok(())
    }

    /// The model that answered (known once a fallback was chosen).
    pub fn set_model(&mut self, model: String) {
        self.agg.set_model(model);
    }

    /// The answer folded so far; the fold is spent.
    pub fn finish(&mut self) -> FinalMessage {
        std::mem::take(&mut self.agg).finish()
    }
}

impl Pipeline {
    pub fn new(registry: Registry, timers: Timers, retry: RetryPolicy, limits: Limits) -> Self {
        Self {
            registry: Arc::new(registry),
            timers,
            retry,
            permits: (limits.max_concurrent > 0)
                .then(|| Arc::new(Semaphore::new(limits.max_concurrent))),
            model_permits: Default::default(),
            budget: Budget::new(limits.max_buffered_bytes),
            max_answer_bytes: limits.max_answer_bytes,
            observer: Observer::default(),
        }
    }

    /// The pipeline with metrics and traces recorded through `observer`.
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = observer;
        self
    }

    /// A fold for one call's answer.
    pub fn fold(&self, model: impl Into<String>) -> Fold {
        Fold {
            agg: Aggregator::new(model),
            reserved: self.budget.reserve(),
            cap: self.max_answer_bytes,
        }
    }

    /// Bytes the replica's calls hold now (partial events, folded answers).
    pub fn buffered_bytes(&self) -> usize {
        self.budget.used()
    }

    /// Routes and starts a call; the first chunk has arrived (or the answer is
    /// empty) when this returns, so any failure before it is this call's error.
    pub async fn start(
        &self,
        name: &str,
        routes: Vec<Route>,
        request: ChatRequest,
        fallback_id: String,
        deadline: Option<Instant>,
    ) -> Result<Started, Error> {
        let obs = CallObs::none();
        self.start_observed(name, routes, request, fallback_id, deadline, &obs)
            .await
    }

    /// `start`, recording into the call's metrics and span.
    pub async fn start_observed(
        &self,
        name: &str,
        routes: Vec<Route>,
        request: ChatRequest,
        fallback_id: String,
        deadline: Option<Instant>,
        obs: &CallObs,
    ) -> Result<Started, Error> {
        let permit = match &self.permits {
            None => None,
            Some(sem) => Some(sem.clone().try_acquire_owned().map_err(|_| {
                Error::new(
                    Kind::ResourceExhausted,
                    "TOO_MANY_STREAMS",
                    "this server is at its limit of concurrent calls (max_concurrent_streams); retry later or on another replica",
                )
            })?),
        };
        let model_permit = match routes.first().and_then(|r| r.options.max_concurrent) {
            None => None,
            Some(n) => {
                let sem = self
                    .model_permits
                    .lock()
                    .await
                    .entry(name.to_string())
                    .or_insert_with(|| Arc::new(Semaphore::new(n)))
                    .clone();
                Some(sem.try_acquire_owned().map_err(|_| {
                    Error::new(
                        Kind::ResourceExhausted,
                        "TOO_MANY_STREAMS_FOR_MODEL",
                        format!("model {name:?} is at its limit of {n} concurrent calls (max_concurrent); retry later"),
                    )
                })?)
            }
        };
        let permit = (permit, model_permit);
        let timers = routes
            .first()
            .map_or(self.timers, |r| self.timers.for_model(&r.options));
        let now = Instant::now();
        let total_at = now + timers.total;
        let (end_at, end_is_caller) = match deadline {
            Some(d) if d < total_at => (d, true),
            _ => (total_at, false),
        };
        let end_error = || {
            if end_is_caller {
                deadline_error("the caller's deadline (grpc-timeout) passed before the first chunk")
            } else {
                deadline_error("the total-duration timer fired before the first chunk")
            }
        };
        // One request for every attempt: shared, never copied per retry.
        let request = Arc::new(request);

        let mut last_err = None;
        let total_routes = routes.len();
        for (i, route) in routes.into_iter().enumerate() {
            if i > 0 {
                obs.fallback(route.provider.info().name);
            }
            // Each target gets its own first-chunk window (retries included),
            // within the call's total / the caller's deadline.
            let first_at = (Instant::now() + timers.first_chunk).min(end_at);
            let mut attempt = 0;
            loop {
                let call = Call {
                    model: route.model.clone(),
                    request: request.clone(),
                    options: route.options.clone(),
                    fallback_id: fallback_id.clone(),
                    budget: self.budget.clone(),
                };
                let name = route.provider.info().name;
                let att = obs.attempt(name, &route.qualified, &route.model, attempt, i);
                let outcome = att
                    .scope(tokio::time::timeout_at(
                        first_at,
                        first_chunk(route.provider.stream(call)),
                    ))
                    .await;
                if outcome.is_err() {
                    obs.timer(match (first_at == end_at, end_is_caller) {
                        (false, _) => "first_chunk",
                        (true, false) => "total",
                        (true, true) => "deadline",
                    });
                }
                let err = match outcome {
                    Err(_) if first_at == end_at => {
                        let e = end_error();
                        att.failed(&e);
                        return Err(e);
                    }
                    // The first-chunk timer: a slow target, so the next one is tried.
                    Err(_) => deadline_error(
                        "the first-chunk timer fired: the upstream sent no chunk in time",
                    ),
                    Ok(Ok((first, rest))) => {
                        obs.first_token();
                        att.first_token();
                        // The permits live as long as the stream.
                        let chunks = timed(
                            first,
                            rest,
                            route.provider.info().name,
                            (timers.idle, end_at, end_is_caller),
                            obs.chunks(att),
                            permit,
                        );
                        let chunks = if route.options.streaming {
                            chunks
                        } else {
                            collapse(chunks, self.fold(""))
                        };
                        return Ok(Started { route, chunks });
                    }
                    Ok(Err(e)) => e,
                };
                att.failed(&err);
                tracing::debug!(
                    model = %log_safe(&route.qualified, 200),
                    attempt,
                    error = %err,
                    "upstream attempt failed"
                );
                if !err.kind.retryable() {
                    // Only rate limits, outages, timeouts and refused keys move on.
                    if i + 1 < total_routes && err.kind.worth_a_fallback() {
                        last_err = Some(err);
                        break;
                    }
                    return Err(err);
                }
                if attempt >= self.retry.max_retries {
                    last_err = Some(err);
                    break;
                }
                let wait = backoff(&self.retry, attempt).max(err.retry_after.unwrap_or_default());
                if Instant::now()
                    .checked_add(wait)
                    .is_none_or(|t| t >= first_at)
                {
                    last_err = Some(err);
                    break;
                }
                obs.retry(name);
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
        Err(last_err.unwrap_or_else(|| Error::internal("no route to try")))
    }
}

fn deadline_error(message: &str) -> Error {
    Error::new(Kind::DeadlineExceeded, "DEADLINE_EXCEEDED", message)
}

/// Exponential backoff with full jitter in [base·2^n / 2, base·2^n].
fn backoff(p: &RetryPolicy, attempt: u32) -> Duration {
    let exp = p
        .base_backoff
        .saturating_mul(1u32 << attempt.min(16))
        .min(p.max_backoff);
    let r = RandomState::new().hash_one(attempt) % 1000;
    exp / 2 + exp / 2 * u32::try_from(r).unwrap_or(0) / 1000
}

/// Awaits the provider and its first chunk, so a failure there can be retried.
async fn first_chunk(
    started: crate::provider::BoxFuture<Result<ChunkStream, Error>>,
) -> Result<(Option<Chunk>, ChunkStream), Error> {
    let mut s = started.await?;
    match s.next().await {
        // Every provider ends with a `last` chunk; ending with none is a cut.
        None => Err(Error::truncated(
            "the provider ended the answer before any chunk",
        )),
        Some(Ok(c)) => Ok((Some(c), s)),
        Some(Err(e)) => Err(e),
    }
}

/// What a call holds of the server's and the model's concurrency limits, for
/// as long as its stream lives.
type Permits = (Option<OwnedSemaphorePermit>, Option<OwnedSemaphorePermit>);

/// Puts the first chunk back in front and applies the idle and total timers
/// with one pinned `Sleep` (linkerd's tonic-stream). The sleep is not reset per
/// chunk (that takes the timer driver's lock every time): a chunk only records
/// when it came, and when the sleep fires early for an idle deadline that has
/// since moved on, it is reset once to the real one.
fn timed(
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

/// Non-streaming models: the whole answer as one chunk per content block (one
/// chunk for a text answer), the last carrying usage, stop reason and `last`.
fn collapse(chunks: ChunkStream, fold: Fold) -> ChunkStream {
    Box::pin(
        stream::once(async move {
            let (mut chunks, mut fold) = (chunks, fold);
            while let Some(c) = chunks.next().await {
                fold.push(&c?)?;
            }
            Ok::<_, Error>(std::mem::take(&mut fold.agg).into_collapsed())
        })
        .flat_map(|r: Result<VecDeque<Chunk>, Error>| match r {
            Ok(v) => stream::iter(v.into_iter().map(Ok).collect::<Vec<_>>()),
            Err(e) => stream::iter(vec![Err(e)]),
        }),
    )
}

#[cfg(test)]
#[path = "pipeline/tests.rs"]
mod tests;
