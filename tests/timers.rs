//! The pipeline's three timers (first chunk, idle, total), the caller's
//! deadline and retry-after, driven in-process: `Pipeline` with a `Registry`
//! holding the fake (and two small providers written here), no sockets.
//!
//! No provider here races a timer: a chunk that must not come in time never
//! comes (an hour-long scripted delay, or a provider that hangs after its
//! chunks), and a stream that must outlive a timer never stops. Which timer
//! fires therefore does not depend on how loaded the machine is, and elapsed
//! times are only checked from below (a timer never fires early).
//!
//! They run under `#[tokio::test(start_paused = true)]`: tokio's clock is
//! paused and jumps to the next timer when every task waits, so nothing here
//! really waits and the order in which timers fire is exact. The wall-clock
//! smoke tests through the real server are in serving.rs.
// Tests measure wall-clock time and share state across mock threads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use chatwire::{
    chat::types::{ChatRequest, Chunk, Content, Delta, Message, Role},
    config::{Config, Limits, RetryPolicy, Timers},
    error::{Error, Kind},
    pipeline::Pipeline,
    provider::{fake::Fake, BoxFuture, Call, ChunkStream, Provider, ProviderInfo, Registry},
};
use futures_util::{stream, StreamExt};
use tokio::time::Instant;

/// Longer than any test here may take: reaching it means no timer fired.
const HANG_GUARD: Duration = Duration::from_secs(20);

/// A script whose first chunk would come after an hour: never, for these tests.
const NEVER: &str = r#"{"chunks": [{"text": "too late"}], "delayMs": 3600000}"#;

fn timers(first_chunk: Duration, idle: Duration, total: Duration) -> Timers {
    Timers {
        first_chunk,
        idle,
        total,
    }
}

const LONG: Duration = Duration::from_secs(3600);
const SHORT: Duration = Duration::from_millis(50);

fn pipeline(registry: Registry, timers: Timers) -> Pipeline {
    Pipeline::new(registry, timers, RetryPolicy::default(), Limits::default())
}

/// A registry with the fake, whose echo waits `token_delay` before each token.
fn fake_only(token_delay: Duration) -> Registry {
    let mut r = Registry::new();
    r.add_provider(Arc::new(Fake::with_scripts(
        token_delay,
        Default::default(),
    )));
    r
}

fn user(text: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![Message {
            role: Role::User,
            content: vec![Content::Text(text.to_string())],
            ..Default::default()
        }],
        ..ChatRequest::default()
    }
}

/// `n` words for fake:echo (each word and each space is a token).
fn words(n: usize) -> String {
    vec!["w"; n].join(" ")
}

/// What a caller of the pipeline gets: the chunks, with when each arrived,
/// and the error that ended the call (None: it ended with its last chunk).
struct Outcome {
    chunks: Vec<(Chunk, Instant)>,
    error: Option<Error>,
    started: Instant,
    ended: Instant,
}

impl Outcome {
    fn text(&self) -> String {
        self.chunks
            .iter()
            .filter_map(|(c, _)| match &c.delta {
                Some(Delta::Text(t)) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The error, which must be the named timer's DEADLINE_EXCEEDED.
    fn deadline(&self, says: &str) -> &Error {
        let e = self.error.as_ref().expect("the call ends with an error");
        assert_eq!(e.kind, Kind::DeadlineExceeded, "{e:?}");
        assert_eq!(e.reason, "DEADLINE_EXCEEDED", "{e:?}");
        assert!(e.message.contains(says), "want {says:?} in {:?}", e.message);
        e
    }
}

async fn run(p: &Pipeline, model: &str, text: &str, deadline: Option<Instant>) -> Outcome {
    let started = Instant::now();
    let call = async {
        let routes = p.registry.resolve(model).expect("a known model");
        let mut chunks = Vec::new();
        let mut s = match p
            .start(model, routes, user(text), "run-timers".into(), deadline)
            .await
        {
            Ok(s) => s.chunks,
            Err(e) => return (chunks, Some(e)),
        };
        while let Some(item) = s.next().await {
            match item {
                Ok(c) => chunks.push((c, Instant::now())),
                Err(e) => return (chunks, Some(e)),
            }
        }
        (chunks, None)
    };
    let (chunks, error) = tokio::time::timeout(HANG_GUARD, call)
        .await
        .unwrap_or_else(|_| panic!("{model}: no timer ended the call within {HANG_GUARD:?}"));
    Outcome {
        chunks,
        error,
        started,
        ended: Instant::now(),
    }
}

// ---------------------------------------------------------------- providers written here

/// `hang:*`: waits `before_first`, sends `texts` one chunk each, then neither
/// sends nor ends (an upstream gone quiet mid-answer).
struct Hang {
    info: ProviderInfo,
    before_first: Duration,
    texts: Vec<&'static str>,
}

fn info(name: &'static str) -> ProviderInfo {
    ProviderInfo {
        name,
        chat_class: "TestChatModel",
        configured: true,
        base_url: String::new(),
        features: Vec::new(),
        models: Vec::new(),
        how_to_configure: "nothing",
    }
}

impl Hang {
    fn new(before_first: Duration, texts: &[&'static str]) -> Self {
        Self {
            info: info("hang"),
            before_first,
            texts: texts.to_vec(),
        }
    }
}

impl Provider for Hang {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn stream(&self, call: Call) -> BoxFuture<Result<ChunkStream, Error>> {
        let wait = self.before_first;
        let chunks: Vec<Result<Chunk, Error>> = self
            .texts
            .iter()
            .map(|t| {
                Ok(Chunk {
                    id: call.fallback_id.clone(),
                    delta: Some(Delta::Text(t.to_string())),
                    ..Chunk::default()
                })
            })
            .collect();
        Box::pin(async move {
            let s = stream::once(tokio::time::sleep(wait))
                .flat_map(move |()| stream::iter(chunks.clone()))
                .chain(stream::pending());
            Ok(Box::pin(s) as ChunkStream)
        })
    }
}

/// `flaky:*`: the first `failures` calls fail as an upstream 429 with
/// `retry_after`; later calls are served by the fake (`flaky:echo` echoes).
/// Records when each call came.
struct Flaky {
    info: ProviderInfo,
    fake: Fake,
    failures: usize,
    retry_after: Duration,
    calls: Arc<Mutex<Vec<Instant>>>,
}

impl Flaky {
    fn new(failures: usize, retry_after: Duration) -> (Self, Arc<Mutex<Vec<Instant>>>) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let me = Self {
            info: info("flaky"),
            fake: Fake::with_scripts(Duration::ZERO, Default::default()),
            failures,
            retry_after,
            calls: calls.clone(),
        };
        (me, calls)
    }
}

impl Provider for Flaky {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn stream(&self, call: Call) -> BoxFuture<Result<ChunkStream, Error>> {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(Instant::now());
            calls.len()
        };
        if n <= self.failures {
            let e = Error::from_upstream_status(429, "slow down")
                .with_provider("flaky")
                .with_retry_after(Some(self.retry_after));
            return Box::pin(async move { Err(e) });
        }
        self.fake.stream(call)
    }
}

// ---------------------------------------------------------------- the first-chunk timer

#[tokio::test(start_paused = true)]
async fn the_first_chunk_timer_ends_a_call_that_gets_nothing() {
    let p = pipeline(fake_only(Duration::ZERO), timers(SHORT, LONG, LONG));
    let out = run(&p, "fake:script", NEVER, None).await;
    assert!(out.chunks.is_empty());
    out.deadline("first-chunk timer");
    assert!(out.ended - out.started >= SHORT, "never before the timer");
}

#[tokio::test(start_paused = true)]
async fn a_per_model_first_chunk_timer_binds_that_name_only() {
    // The server default is an hour; the alias "impatient" has 50 ms.
    let mut config = Config::from_toml(
        "[models.impatient]\ntarget = \"fake:script\"\nfirst_chunk_secs = 0.05\n",
    )
    .unwrap();
    config.timers = timers(LONG, LONG, LONG);
    let registry = chatwire::provider::registry::build(&config, &Default::default()).unwrap();
    let p = pipeline(registry, config.timers);
    let out = run(&p, "impatient", NEVER, None).await;
    assert!(out.chunks.is_empty());
    out.deadline("first-chunk timer");
    assert!(out.ended - out.started >= SHORT);
    // The same script under its own name waits (here 100 ms) for its first chunk.
    let script = r#"{"chunks": [{"text": "on time"}], "delayMs": 100}"#;
    let out = run(&p, "fake:script", script, None).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.text(), "on time");
}

#[tokio::test(start_paused = true)]
async fn a_first_chunk_timeout_moves_an_alias_on_to_its_fallback() {
    // The primary sends nothing for an hour; the alias's first-chunk timer is
    // 50 ms: the fallback answers, within its own window.
    let mut config = Config::from_toml(
        "[models.sturdy]\ntarget = \"fake:script\"\nfallbacks = [\"fake:echo\"]\nfirst_chunk_secs = 0.05\n",
    )
    .unwrap();
    config.timers = timers(LONG, LONG, LONG);
    let registry = chatwire::provider::registry::build(&config, &Default::default()).unwrap();
    let p = pipeline(registry, config.timers);
    let out = run(&p, "sturdy", NEVER, None).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.text(), NEVER, "fake:echo answered with the prompt");
    assert!(
        out.ended - out.started >= SHORT,
        "after the primary's window"
    );
    // Without a fallback left, the timer is the answer.
    let mut config =
        Config::from_toml("[models.alone]\ntarget = \"fake:script\"\nfirst_chunk_secs = 0.05\n")
            .unwrap();
    config.timers = timers(LONG, LONG, LONG);
    let registry = chatwire::provider::registry::build(&config, &Default::default()).unwrap();
    let out = run(&pipeline(registry, config.timers), "alone", NEVER, None).await;
    out.deadline("first-chunk timer");
}

// ---------------------------------------------------------------- the idle timer

#[tokio::test(start_paused = true)]
async fn the_idle_timer_ends_a_stream_gone_quiet_and_keeps_what_was_sent() {
    let mut registry = fake_only(Duration::ZERO);
    registry.add_provider(Arc::new(Hang::new(Duration::ZERO, &["a", "b"])));
    let p = pipeline(registry, timers(LONG, SHORT, LONG));
    let out = run(&p, "hang:x", "hi", None).await;
    assert_eq!(out.text(), "ab", "the chunks before the silence arrive");
    assert!(out.chunks.iter().all(|(c, _)| !c.last));
    out.deadline("idle timer");
    let last_chunk = out.chunks.last().unwrap().1;
    assert!(out.ended - last_chunk >= SHORT, "never before the timer");
}

#[tokio::test(start_paused = true)]
async fn the_idle_timer_counts_from_the_latest_chunk_not_the_first() {
    // 5 ms between tokens, 200 tokens (about 1 s in all), an idle timer of
    // 50 ms: every gap is well inside it, so the answer completes. (The timer
    // is not reset per chunk; it must still follow the latest one.)
    let p = pipeline(
        fake_only(Duration::from_millis(5)),
        timers(LONG, Duration::from_millis(50), LONG),
    );
    let out = run(&p, "fake:echo", &words(100), None).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(out.chunks.last().is_some_and(|(c, _)| c.last));
    assert!(out.ended - out.started >= Duration::from_millis(500));
}

#[tokio::test(start_paused = true)]
async fn the_idle_timer_does_not_run_before_the_first_chunk() {
    // The first chunk takes 3× the idle timer: only the first-chunk timer
    // (an hour) bounds that wait; idle counts from the first chunk on.
    let mut registry = fake_only(Duration::ZERO);
    registry.add_provider(Arc::new(Hang::new(3 * SHORT, &["late but fine"])));
    let p = pipeline(registry, timers(LONG, SHORT, LONG));
    let out = run(&p, "hang:x", "hi", None).await;
    assert_eq!(out.text(), "late but fine");
    out.deadline("idle timer");
    let (_, first_at) = out.chunks[0];
    assert!(first_at - out.started >= 3 * SHORT);
    assert!(out.ended - first_at >= SHORT);
}

// ---------------------------------------------------------------- the total timer

#[tokio::test(start_paused = true)]
async fn the_total_timer_cuts_a_stream_that_keeps_going() {
    // fake:echo with 5 ms per token: 5000 words would take 50 s; the idle
    // timer (an hour) never fires, the total one (100 ms) does.
    let total = Duration::from_millis(100);
    let p = pipeline(
        fake_only(Duration::from_millis(5)),
        timers(LONG, LONG, total),
    );
    let out = run(&p, "fake:echo", &words(5000), None).await;
    assert!(!out.chunks.is_empty(), "tokens flowed before the cut");
    assert!(out.chunks.len() < 9999);
    assert!(out.chunks.iter().all(|(c, _)| !c.last));
    out.deadline("total-duration timer fired mid-stream");
    assert!(out.ended - out.started >= total, "never before the timer");
}

#[tokio::test(start_paused = true)]
async fn the_total_timer_bounds_the_wait_for_the_first_chunk_too() {
    let p = pipeline(fake_only(Duration::ZERO), timers(LONG, LONG, SHORT));
    let out = run(&p, "fake:script", NEVER, None).await;
    assert!(out.chunks.is_empty());
    out.deadline("total-duration timer fired before the first chunk");
    assert!(out.ended - out.started >= SHORT);
}

// ---------------------------------------------------------------- the caller's deadline

#[tokio::test(start_paused = true)]
async fn the_callers_deadline_ends_the_call_and_is_named_as_such() {
    let p = pipeline(
        fake_only(Duration::from_millis(5)),
        timers(LONG, LONG, LONG),
    );
    let deadline = Instant::now() + SHORT;
    let out = run(&p, "fake:script", NEVER, Some(deadline)).await;
    assert!(out.chunks.is_empty());
    out.deadline("caller's deadline (grpc-timeout) passed before the first chunk");
    assert!(out.ended >= deadline, "never before the deadline");

    let deadline = Instant::now() + SHORT;
    let out = run(&p, "fake:echo", &words(5000), Some(deadline)).await;
    assert!(!out.chunks.is_empty());
    out.deadline("caller's deadline (grpc-timeout) passed mid-stream");
    assert!(out.ended >= deadline);
}

// ---------------------------------------------------------------- retry-after

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_before_the_first_chunk() {
    // The backoff is 1 ms: only the upstream's retry-after can make the wait longer.
    let retry = RetryPolicy {
        max_retries: 2,
        base_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(1),
    };
    let after = Duration::from_millis(300);
    let (flaky, calls) = Flaky::new(1, after);
    let mut registry = Registry::new();
    registry.add_provider(Arc::new(flaky));
    let p = Pipeline::new(registry, timers(LONG, LONG, LONG), retry, Limits::default());
    let out = run(&p, "flaky:echo", "fine", None).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.text(), "fine");
    let calls = calls.lock().unwrap().clone();
    assert_eq!(
        calls.len(),
        2,
        "one 429, then the retry that served the call"
    );
    assert!(
        calls[1] - calls[0] >= after,
        "the retry came {:?} after the 429 that said to wait {after:?}",
        calls[1] - calls[0]
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_the_deadline_is_not_waited_for() {
    // The upstream says "in an hour"; the caller gives 2 s: the 429 is the answer, at once.
    let (flaky, calls) = Flaky::new(usize::MAX, LONG);
    let mut registry = Registry::new();
    registry.add_provider(Arc::new(flaky));
    let p = Pipeline::new(
        registry,
        timers(LONG, LONG, LONG),
        RetryPolicy::default(),
        Limits::default(),
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    let out = run(&p, "flaky:echo", "hi", Some(deadline)).await;
    let e = out.error.expect("the 429");
    assert_eq!(e.kind, Kind::RateLimited, "{e:?}");
    assert_eq!(e.retry_after, Some(LONG), "the caller learns when to retry");
    assert_eq!(calls.lock().unwrap().len(), 1, "not retried");
    assert!(
        out.ended < deadline,
        "answered before the deadline, not at it"
    );
}
