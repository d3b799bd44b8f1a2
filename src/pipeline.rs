//! The one pipeline behind Invoke, Stream and StreamEvents: start the routed
//! provider (retrying and falling back only before the first chunk), bound the
//! call with the caller's deadline and the three timers, and collapse the
//! answer into one chunk for non-streaming models.
//!
//! Layer: above `provider` (it drives providers through the trait), below `api`.

use std::{
    collections::{HashMap, VecDeque},
    hash::{BuildHasher, RandomState},
    sync::Arc,
    time::Duration,
};

use futures_util::{stream, StreamExt};
use tokio::{
    sync::{Mutex, Semaphore},
    time::Instant,
};

use crate::{
    chat::{
        aggregate::{delta_size, Aggregator, FinalMessage},
        budget::{Budget, Reservation},
        types::{ChatRequest, Chunk},
    },
    config::{Limits, RetryPolicy, Timers},
    error::{log_safe, Error, Kind},
    observe::{CallObs, Observer},
    provider::{Call, ChunkStream, Registry, Route},
};

mod timed;

use timed::timed;

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
        self.start_observed(name, routes, Arc::new(request), fallback_id, deadline, &obs)
            .await
    }

    /// `start`, recording into the call's metrics and span. The request comes
    /// shared (one for every attempt, never copied per retry) and the routes
    /// are walked by index: this future is what a call waiting for its first
    /// token holds, so nothing large is kept in it by value.
    pub async fn start_observed(
        &self,
        name: &str,
        mut routes: Vec<Route>,
        request: Arc<ChatRequest>,
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
        let mut last_err = None;
        let total_routes = routes.len();
        for i in 0..total_routes {
            let route = &routes[i];
            if i > 0 {
                obs.fallback(route.provider.info().name);
            }
            // Each target gets its own first-chunk window (retries included),
            // within the call's total / the caller's deadline.
            let first_at = (Instant::now() + timers.first_chunk).min(end_at);
            let mut attempt = 0;
            loop {
                // A deadline already passed (a `grpc-timeout` shorter than the
                // margin kept before it, or used up by earlier attempts before a
                // fallback target) sends nothing: a request upstream would be
                // paid for and never answered.
                if Instant::now() >= end_at {
                    obs.timer(if end_is_caller { "deadline" } else { "total" });
                    return Err(end_error());
                }
                let call = Call {
                    model: route.model.clone(),
                    request: request.clone(),
                    options: route.options.clone(),
                    fallback_id: fallback_id.clone(),
                    budget: self.budget.clone(),
                };
                let name = route.provider.info().name;
                let att = obs.attempt(name, &route.qualified, &route.model, attempt, i);
                // In a block of its own, so that `outcome` (176 bytes) is
                // not kept in this future through the backoff's sleep.
                let err = {
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
                    match outcome {
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
                            let route = routes.swap_remove(i);
                            return Ok(Started { route, chunks });
                        }
                        Ok(Err(e)) => e,
                    }
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
