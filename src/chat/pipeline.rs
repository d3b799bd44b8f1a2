//! The one pipeline behind Invoke, Stream and StreamEvents: route the model,
//! start the provider (retrying and falling back only before the first chunk),
//! bound the call with the caller's deadline and the three timers, and collapse
//! the answer into one chunk for non-streaming models.

use std::{
    collections::VecDeque,
    hash::{BuildHasher, RandomState},
    sync::Arc,
    time::Duration,
};

use futures_util::{stream, StreamExt};
use tokio::{sync::Semaphore, time::Instant};

use super::{aggregate::Aggregator, types::ChatRequest};
use crate::{
    chat::types::Chunk,
    error::{Error, Kind},
    provider::{Call, ChunkStream, Registry, Route},
};

/// The three stream timers (linkerd's initial / idle / lifetime).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timers {
    /// From the request to the first chunk (includes connecting and retries).
    pub first_chunk: Duration,
    /// Longest gap between two chunks.
    pub idle: Duration,
    /// The whole call.
    pub total: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            first_chunk: Duration::from_secs(120),
            idle: Duration::from_secs(120),
            total: Duration::from_secs(900),
        }
    }
}

/// Retries before the first chunk.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// Limits on concurrent streams.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Concurrent calls on this server (0: unlimited).
    pub max_concurrent: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrent: 1024,
        }
    }
}

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
    model_permits: std::sync::Mutex<std::collections::HashMap<String, Arc<Semaphore>>>,
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
        }
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
                let sem = {
                    let mut map = self
                        .model_permits
                        .lock()
                        .map_err(|_| Error::internal("model permit table poisoned"))?;
                    map.entry(name.to_string())
                        .or_insert_with(|| Arc::new(Semaphore::new(n)))
                        .clone()
                };
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
        let timers = match routes.first() {
            None => self.timers,
            Some(r) => Timers {
                first_chunk: r
                    .options
                    .first_chunk_timeout
                    .unwrap_or(self.timers.first_chunk),
                idle: r.options.idle_timeout.unwrap_or(self.timers.idle),
                total: r.options.total_timeout.unwrap_or(self.timers.total),
            },
        };
        let now = Instant::now();
        let total_at = now + timers.total;
        let (end_at, end_is_caller) = match deadline {
            Some(d) if d < total_at => (d, true),
            _ => (total_at, false),
        };
        let first_at = (now + timers.first_chunk).min(end_at);
        let timer_error = |at: Instant| -> Error {
            if at == end_at && end_is_caller {
                deadline_error("the caller's deadline (grpc-timeout) passed before the first chunk")
            } else if at == end_at && end_at < now + timers.first_chunk {
                deadline_error("the total-duration timer fired before the first chunk")
            } else {
                deadline_error("the first-chunk timer fired: the upstream sent nothing in time")
            }
        };

        let mut last_err = None;
        let total_routes = routes.len();
        for (i, route) in routes.into_iter().enumerate() {
            let mut attempt = 0;
            loop {
                let call = Call {
                    model: route.model.clone(),
                    request: request.clone(),
                    options: route.options.clone(),
                    fallback_id: fallback_id.clone(),
                };
                let outcome =
                    tokio::time::timeout_at(first_at, first_chunk(route.provider.stream(call)))
                        .await;
                let err = match outcome {
                    Err(_) => return Err(timer_error(first_at)),
                    Ok(Ok((first, rest))) => {
                        let chunks = timed(first, rest, timers.idle, end_at, end_is_caller);
                        let chunks = if route.options.streaming {
                            chunks
                        } else {
                            collapse(chunks)
                        };
                        // The permit lives as long as the stream.
                        let chunks = Box::pin(chunks.map(move |c| {
                            let _held = &permit;
                            c
                        }));
                        return Ok(Started { route, chunks });
                    }
                    Ok(Err(e)) => e,
                };
                tracing::debug!(model = %route.qualified, attempt, error = %err, "upstream attempt failed");
                if !is_retryable(&err) {
                    // Only rate limits and outages move on to a fallback.
                    if i + 1 < total_routes && is_fallback_worthy(&err) {
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

/// Connection errors, 429, 5xx, 529 / overloaded: worth another try.
fn is_retryable(e: &Error) -> bool {
    match e.kind {
        Kind::Unavailable => !matches!(
            e.reason,
            "UPSTREAM_PROTOCOL_ERROR"
                | "UPSTREAM_FRAME_TOO_LARGE"
                | "SCRIPTED_FAILURE"
                | "DRAINING"
        ),
        Kind::ResourceExhausted => e.upstream_status.is_some(),
        _ => false,
    }
}

fn is_fallback_worthy(e: &Error) -> bool {
    is_retryable(e) || matches!(e.kind, Kind::DeadlineExceeded | Kind::PermissionDenied)
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

/// Puts the first chunk back in front and applies the idle and total timers.
fn timed(
    first: Option<Chunk>,
    rest: ChunkStream,
    idle: Duration,
    end_at: Instant,
    end_is_caller: bool,
) -> ChunkStream {
    struct S {
        first: Option<Chunk>,
        rest: ChunkStream,
        done: bool,
    }
    let s = S {
        first,
        rest,
        done: false,
    };
    Box::pin(stream::unfold(s, move |mut s| async move {
        if s.done {
            return None;
        }
        if let Some(c) = s.first.take() {
            s.done = c.last;
            return Some((Ok(c), s));
        }
        let idle_at = Instant::now() + idle;
        let at = idle_at.min(end_at);
        match tokio::time::timeout_at(at, s.rest.next()).await {
            Ok(Some(Ok(c))) => {
                s.done = c.last;
                Some((Ok(c), s))
            }
            Ok(Some(Err(e))) => {
                s.done = true;
                Some((Err(e), s))
            }
            // The provider stopped without its `last` chunk: a cut, never a quiet OK.
            Ok(None) => {
                s.done = true;
                Some((
                    Err(Error::truncated(
                        "the answer ended without its last chunk (truncated)",
                    )),
                    s,
                ))
            }
            Err(_) => {
                s.done = true;
                let msg = if at == end_at && end_is_caller {
                    "the caller's deadline (grpc-timeout) passed mid-stream; the answer is cut"
                } else if at == end_at {
                    "the total-duration timer fired mid-stream; the answer is cut"
                } else {
                    "the idle timer fired: the upstream sent nothing for too long; the answer is cut"
                };
                Some((Err(deadline_error(msg)), s))
            }
        }
    }))
}

/// Non-streaming models: the whole answer as one chunk per content block (one
/// chunk for a text answer), the last carrying usage, stop reason and `last`.
fn collapse(chunks: ChunkStream) -> ChunkStream {
    Box::pin(
        stream::once(async move {
            let mut chunks = chunks;
            let mut agg = Aggregator::new("");
            while let Some(c) = chunks.next().await {
                agg.push(&c?);
            }
            Ok::<_, Error>(agg.collapsed())
        })
        .flat_map(|r: Result<VecDeque<Chunk>, Error>| match r {
            Ok(v) => stream::iter(v.into_iter().map(Ok).collect::<Vec<_>>()),
            Err(e) => stream::iter(vec![Err(e)]),
        }),
    )
}
