//! Observability: Prometheus metrics (`metrics`) and OpenTelemetry traces
//! (`trace`) for every chat call, named after the OpenTelemetry GenAI semantic
//! conventions where they define a name. Both are off unless configured; off,
//! every hook below is one branch on a `None`.
//!
//! Layer: just above `config` (imports `error`, `chat` and `config`'s `Env`). `provider`,
//! `pipeline` and `api` record into it at their natural points: the api layer
//! opens a call (`Observer::call`) and ends it, the pipeline opens an attempt
//! per upstream try and watches chunks come out of the provider, the http
//! shell reports the upstream's status and time to first byte and takes the
//! `traceparent` for its request.
//!
//! Cost: a call's label sets are resolved when it is routed (once); per
//! content chunk only the inter-chunk histogram is observed (an `Instant` and
//! one histogram observation, no allocation, no label lookup). Everything else
//! is per call or per attempt.

pub mod metrics;
pub mod trace;

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, OnceLock,
    },
};

use opentelemetry::{
    trace::{SpanKind, Status as SpanStatus, TraceContextExt},
    Array, Context, KeyValue, StringValue, Value,
};
use prometheus_client::metrics::{gauge::Gauge, histogram::Histogram};
use tokio::time::Instant;

pub use metrics::Metrics;
pub use trace::Tracing;

use crate::{
    chat::types::{ChatRequest, Chunk, Content, Delta, Role},
    error::{log_safe, Error},
};
use metrics::{
    CallLabels, ModelLabels, OutcomeLabels, ProviderLabels, ReasonLabels, RpcLabels, StatusLabels,
    TimerLabels, TokenLabels,
};

/// The label a model name gets when the configuration does not know it.
pub const OTHER_MODEL: &str = "other";
const OPERATION: &str = "chat";
/// Longest model name or content a span attribute carries (characters).
const ATTR_MAX: usize = 200;
const CONTENT_MAX: usize = 64 * 1024;

/// What a server observes with: metrics, tracing, both or neither. Cheap to clone.
#[derive(Clone, Default)]
pub struct Observer {
    metrics: Option<Arc<Metrics>>,
    tracing: Option<Tracing>,
    /// Model names a label may carry: aliases, configured models, providers' known lists.
    known: Arc<HashSet<String>>,
}

impl Observer {
    pub fn new(
        metrics: Option<Arc<Metrics>>,
        tracing: Option<Tracing>,
        known_models: impl IntoIterator<Item = String>,
    ) -> Self {
        Self {
            metrics,
            tracing,
            known: Arc::new(known_models.into_iter().collect()),
        }
    }

    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.metrics.as_ref()
    }

    pub fn tracing(&self) -> Option<&Tracing> {
        self.tracing.as_ref()
    }

    /// The label for a requested model: the name if configured or known, else `other`.
    pub fn model_label(&self, requested: &str) -> String {
        if self.known.contains(requested) {
            requested.to_string()
        } else {
            OTHER_MODEL.to_string()
        }
    }

    /// A call arrived on `rpc`; `traceparent` / `tracestate` are the caller's
    /// gRPC metadata. It is in flight until `CallObs::end`.
    pub fn call(
        &self,
        rpc: &'static str,
        traceparent: Option<&str>,
        tracestate: Option<&str>,
    ) -> CallObs {
        if self.metrics.is_none() && self.tracing.is_none() {
            return CallObs(None);
        }
        let in_flight = self.metrics.as_ref().map(|m| {
            let g = m.in_flight.get_or_create_owned(&RpcLabels { rpc });
            g.inc();
            g
        });
        let span = self.tracing.as_ref().map(|t| {
            t.start(
                OPERATION.to_string(),
                SpanKind::Server,
                &trace::extract(traceparent, tracestate),
                vec![
                    KeyValue::new("gen_ai.operation.name", OPERATION),
                    KeyValue::new("rpc.system", "grpc"),
                    KeyValue::new("rpc.service", "chatwire.v1.ChatModelService"),
                    KeyValue::new("rpc.method", rpc),
                ],
            )
        });
        CallObs(Some(Arc::new(CallInner {
            observer: self.clone(),
            rpc,
            started: Instant::now(),
            route: OnceLock::new(),
            first_token: OnceLock::new(),
            first_out: OnceLock::new(),
            ended: AtomicBool::new(false),
            in_flight,
            span,
        })))
    }
}

/// One call's observation; cheap to clone (the api layer, the pipeline and
/// the chunk stream share it). A default `CallObs` observes nothing.
#[derive(Clone, Default)]
pub struct CallObs(Option<Arc<CallInner>>);

struct CallInner {
    observer: Observer,
    rpc: &'static str,
    started: Instant,
    route: OnceLock<Routed>,
    /// The upstream's first chunk reached chatwire.
    first_token: OnceLock<Instant>,
    /// The first chunk left for the gRPC layer.
    first_out: OnceLock<Instant>,
    ended: AtomicBool,
    in_flight: Option<Gauge>,
    span: Option<Context>,
}

/// A routed call's labels and the histograms resolved for them.
struct Routed {
    provider: &'static str,
    model: String,
    ttfc: Option<Histogram>,
    added: Option<Histogram>,
}

impl CallInner {
    fn provider(&self) -> &'static str {
        self.route.get().map_or("none", |r| r.provider)
    }

    fn model(&self) -> String {
        self.route
            .get()
            .map_or_else(|| OTHER_MODEL.to_string(), |r| r.model.clone())
    }

    fn capture(&self) -> bool {
        self.span.is_some() && self.observer.tracing.as_ref().is_some_and(|t| t.capture)
    }
}

impl CallObs {
    /// Observes nothing (for callers outside a server: tests, benches).
    pub fn none() -> Self {
        Self(None)
    }

    /// The call was routed: `provider` serves its first target and `requested`
    /// is the model name as the caller wrote it (labelled only if configured).
    pub fn routed(&self, provider: &'static str, requested: &str) {
        let Some(c) = &self.0 else { return };
        let model = c.observer.model_label(requested);
        if let Some(cx) = &c.span {
            let span = cx.span();
            span.update_name(format!("{OPERATION} {model}"));
            span.set_attribute(KeyValue::new("gen_ai.provider.name", provider));
            span.set_attribute(KeyValue::new(
                "gen_ai.request.model",
                log_safe(requested, ATTR_MAX),
            ));
        }
        let labels = CallLabels {
            rpc: c.rpc,
            gen_ai_operation_name: OPERATION,
            gen_ai_provider_name: provider,
            gen_ai_request_model: model.clone(),
        };
        let m = c.observer.metrics.as_deref();
        let _ = c.route.set(Routed {
            provider,
            ttfc: m.map(|m| m.time_to_first_chunk.get_or_create_owned(&labels)),
            added: m.map(|m| m.added_latency.get_or_create_owned(&labels)),
            model,
        });
    }

    /// The request, on the span, when content capture is on.
    pub fn input(&self, request: &ChatRequest) {
        let Some(c) = &self.0 else { return };
        if !c.capture() {
            return;
        }
        let messages: Vec<serde_json::Value> = request
            .messages
            .iter()
            .map(|m| {
                let role = match m.role {
                    Role::System => "system",
                    Role::User => "user",
                    Role::Assistant => "assistant",
                    Role::Tool => "tool",
                };
                let parts: Vec<serde_json::Value> = m
                    .content
                    .iter()
                    .filter_map(|b| match b {
                        Content::Text(t) | Content::Refusal(t) => {
                            Some(serde_json::json!({"type": "text", "content": t}))
                        }
                        _ => None,
                    })
                    .collect();
                serde_json::json!({"role": role, "parts": parts})
            })
            .collect();
        if let Some(cx) = &c.span {
            let text = serde_json::Value::Array(messages).to_string();
            cx.span().set_attribute(KeyValue::new(
                "gen_ai.input.messages",
                cut(text, CONTENT_MAX),
            ));
        }
    }

    /// The upstream's first chunk reached chatwire (the pipeline has it).
    pub fn first_token(&self) {
        if let Some(c) = &self.0 {
            let _ = c.first_token.set(Instant::now());
        }
    }

    /// A chunk is being handed to the gRPC layer: the first one is timed (time
    /// to first chunk, and chatwire's added latency since the upstream's first
    /// chunk arrived); later ones cost one check.
    pub fn chunk_out(&self) {
        let Some(c) = &self.0 else { return };
        if c.first_out.get().is_some() {
            return;
        }
        let now = Instant::now();
        if c.first_out.set(now).is_err() {
            return;
        }
        let ttfc = now.duration_since(c.started).as_secs_f64();
        if let Some(r) = c.route.get() {
            if let Some(h) = &r.ttfc {
                h.observe(ttfc);
            }
            if let (Some(h), Some(t)) = (&r.added, c.first_token.get()) {
                h.observe(now.duration_since(*t).as_secs_f64());
            }
        }
        if let Some(cx) = &c.span {
            let span = cx.span();
            span.set_attribute(KeyValue::new("gen_ai.server.time_to_first_token", ttfc));
            span.add_event(
                "gen_ai.first_chunk",
                vec![KeyValue::new("gen_ai.server.time_to_first_token", ttfc)],
            );
        }
    }

    /// An error that ends the call (or the attempt that was its last).
    pub fn error(&self, e: &Error) {
        let Some(c) = &self.0 else { return };
        if let Some(m) = &c.observer.metrics {
            m.errors
                .get_or_create(&ReasonLabels {
                    gen_ai_provider_name: c.provider(),
                    reason: e.reason,
                })
                .inc();
        }
        if let Some(cx) = &c.span {
            cx.span()
                .set_attribute(KeyValue::new("error.type", e.reason));
        }
    }

    /// A timer fired: `first_chunk`, `idle`, `total` or `deadline`.
    pub fn timer(&self, timer: &'static str) {
        let Some(c) = &self.0 else { return };
        if let Some(m) = &c.observer.metrics {
            m.timer_firings.get_or_create(&TimerLabels { timer }).inc();
        }
        if let Some(cx) = &c.span {
            cx.span().add_event(
                "chatwire.timer_fired",
                vec![KeyValue::new("chatwire.timer", timer)],
            );
        }
    }

    /// The same upstream is tried again.
    pub fn retry(&self, provider: &'static str) {
        let Some(c) = &self.0 else { return };
        if let Some(m) = &c.observer.metrics {
            m.retries
                .get_or_create(&ModelLabels {
                    gen_ai_provider_name: provider,
                    gen_ai_request_model: c.model(),
                })
                .inc();
        }
    }

    /// An alias moves on to its next target, served by `provider`.
    pub fn fallback(&self, provider: &'static str) {
        let Some(c) = &self.0 else { return };
        if let Some(m) = &c.observer.metrics {
            m.fallbacks
                .get_or_create(&ModelLabels {
                    gen_ai_provider_name: provider,
                    gen_ai_request_model: c.model(),
                })
                .inc();
        }
    }

    /// An upstream attempt starts: `target` is `provider:model`, `retry` the
    /// retry number (0 for the first try), `fallback` the alias target index.
    pub fn attempt(
        &self,
        provider: &'static str,
        target: &str,
        model: &str,
        retry: u32,
        fallback: usize,
    ) -> Attempt {
        let Some(c) = &self.0 else {
            return Attempt(None);
        };
        let labels = ModelLabels {
            gen_ai_provider_name: provider,
            gen_ai_request_model: c.model(),
        };
        if let Some(m) = &c.observer.metrics {
            m.attempts.get_or_create(&labels).inc();
        }
        let span = match (&c.observer.tracing, &c.span) {
            (Some(t), Some(parent)) => Some(t.start(
                format!("{OPERATION} {}", log_safe(target, ATTR_MAX)),
                SpanKind::Client,
                parent,
                vec![
                    KeyValue::new("gen_ai.operation.name", OPERATION),
                    KeyValue::new("gen_ai.provider.name", provider),
                    KeyValue::new("gen_ai.request.model", log_safe(model, ATTR_MAX)),
                    KeyValue::new("chatwire.retry", i64::from(retry)),
                    KeyValue::new(
                        "chatwire.fallback_index",
                        i64::try_from(fallback).unwrap_or(i64::MAX),
                    ),
                ],
            )),
            _ => None,
        };
        Attempt(Some(Arc::new(AttemptInner {
            metrics: c.observer.metrics.clone(),
            provider,
            labels,
            started: Instant::now(),
            span,
        })))
    }

    /// The observer of the chunks coming out of the provider (one per call).
    pub fn chunks(&self, attempt: Attempt) -> ChunkObs {
        // Labelled with the provider that answers (a fallback's, not the first target's).
        let gap = match (&self.0, &attempt.0) {
            (Some(c), Some(a)) => c
                .observer
                .metrics
                .as_ref()
                .map(|m| m.inter_chunk_gap.get_or_create_owned(&a.labels)),
            _ => None,
        };
        let capture = self.0.as_ref().is_some_and(|c| c.capture());
        ChunkObs {
            call: self.clone(),
            _attempt: attempt,
            gap,
            last: None,
            answer: capture.then(String::new),
        }
    }

    fn last_chunk(&self, chunk: &Chunk, last_content: Option<Instant>, answer: Option<String>) {
        let Some(c) = &self.0 else { return };
        let usage = chunk.usage.unwrap_or_default();
        if let Some(m) = &c.observer.metrics {
            // Tokens are the answering provider's (a fallback's, not the first target's).
            let (provider, model) = (chunk.provider, c.model());
            let labels = |t: &'static str| TokenLabels {
                gen_ai_operation_name: OPERATION,
                gen_ai_provider_name: provider,
                gen_ai_request_model: model.clone(),
                gen_ai_token_type: t,
            };
            if chunk.usage.is_some() {
                for (t, n) in [
                    ("input", usage.input),
                    ("output", usage.output),
                    ("cache_read", usage.cache_read),
                    ("cache_creation", usage.cache_creation),
                    ("reasoning", usage.reasoning),
                ] {
                    if n > 0 {
                        m.tokens.get_or_create(&labels(t)).inc_by(u64::from(n));
                    }
                    if t == "input" || t == "output" {
                        m.token_usage
                            .get_or_create(&labels(t))
                            .observe(f64::from(n));
                    }
                }
            }
            if let (Some(first), Some(end)) = (c.first_token.get(), last_content) {
                if usage.output > 1 {
                    let per =
                        end.duration_since(*first).as_secs_f64() / f64::from(usage.output - 1);
                    m.time_per_output_token
                        .get_or_create(&ModelLabels {
                            gen_ai_provider_name: provider,
                            gen_ai_request_model: model.clone(),
                        })
                        .observe(per);
                }
            }
        }
        if let Some(cx) = &c.span {
            let span = cx.span();
            if !chunk.model.is_empty() {
                span.set_attribute(KeyValue::new(
                    "gen_ai.response.model",
                    log_safe(&chunk.model, ATTR_MAX),
                ));
            }
            if !chunk.id.is_empty() {
                span.set_attribute(KeyValue::new(
                    "gen_ai.response.id",
                    log_safe(&chunk.id, ATTR_MAX),
                ));
            }
            if chunk.usage.is_some() {
                for (k, n) in [
                    ("gen_ai.usage.input_tokens", usage.input),
                    ("gen_ai.usage.output_tokens", usage.output),
                    ("gen_ai.usage.cache_read.input_tokens", usage.cache_read),
                    (
                        "gen_ai.usage.cache_creation.input_tokens",
                        usage.cache_creation,
                    ),
                    ("gen_ai.usage.reasoning.output_tokens", usage.reasoning),
                ] {
                    span.set_attribute(KeyValue::new(k, i64::from(n)));
                }
            }
            let reason = if chunk.finish_reason.is_empty() {
                chunk
                    .stop_reason
                    .map(|s| format!("{s:?}").to_ascii_lowercase())
                    .unwrap_or_default()
            } else {
                chunk.finish_reason.clone()
            };
            if !reason.is_empty() {
                span.set_attribute(KeyValue::new(
                    "gen_ai.response.finish_reasons",
                    Value::Array(Array::String(vec![StringValue::from(reason)])),
                ));
            }
            if let Some(text) = answer {
                let out = serde_json::json!([{
                    "role": "assistant",
                    "parts": [{"type": "text", "content": text}],
                }]);
                span.set_attribute(KeyValue::new(
                    "gen_ai.output.messages",
                    cut(out.to_string(), CONTENT_MAX),
                ));
            }
        }
    }

    /// The call ended with the gRPC code named `code` (`OK`, `UNAVAILABLE`…):
    /// its duration is recorded and its span ends. Only the first end counts.
    pub fn end(&self, code: &'static str) {
        let Some(c) = &self.0 else { return };
        if c.ended.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(g) = &c.in_flight {
            g.dec();
        }
        if let Some(m) = &c.observer.metrics {
            m.operation_duration
                .get_or_create(&OutcomeLabels {
                    rpc: c.rpc,
                    gen_ai_operation_name: OPERATION,
                    gen_ai_provider_name: c.provider(),
                    gen_ai_request_model: c.model(),
                    code,
                })
                .observe(c.started.elapsed().as_secs_f64());
        }
        if let Some(cx) = &c.span {
            let span = cx.span();
            span.set_attribute(KeyValue::new("rpc.grpc.status_code", code));
            if code != "OK" {
                span.set_status(SpanStatus::error(code));
            }
            span.end();
        }
    }
}

/// One upstream attempt (a try, a retry or a fallback target); its span ends
/// when it fails or, for the attempt that answers, when the answer ends.
#[derive(Clone, Default)]
pub struct Attempt(Option<Arc<AttemptInner>>);

struct AttemptInner {
    metrics: Option<Arc<Metrics>>,
    provider: &'static str,
    labels: ModelLabels,
    started: Instant,
    span: Option<Context>,
}

tokio::task_local! {
    static ATTEMPT: Attempt;
}

impl Attempt {
    /// Runs `fut` (the provider starting the attempt) with this attempt as
    /// `Attempt::current()`, so the http shell can report into it.
    pub async fn scope<F: std::future::Future>(&self, fut: F) -> F::Output {
        ATTEMPT.scope(self.clone(), fut).await
    }

    /// The attempt the running provider future belongs to (none outside `scope`).
    pub fn current() -> Attempt {
        ATTEMPT.try_with(Attempt::clone).unwrap_or_default()
    }

    /// The W3C `traceparent` and `tracestate` for the upstream request.
    pub fn traceparent(&self) -> Option<(String, String)> {
        trace::traceparent(self.0.as_ref()?.span.as_ref()?)
    }

    /// The upstream answered with HTTP `status` (its headers arrived).
    pub fn response(&self, status: u16) {
        let Some(a) = &self.0 else { return };
        if let Some(m) = &a.metrics {
            m.upstream_first_byte
                .get_or_create(&ProviderLabels {
                    gen_ai_provider_name: a.provider,
                })
                .observe(a.started.elapsed().as_secs_f64());
            m.upstream_responses
                .get_or_create(&StatusLabels {
                    gen_ai_provider_name: a.provider,
                    http_response_status_code: status,
                })
                .inc();
        }
        if let Some(cx) = &a.span {
            cx.span().set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
        }
    }

    /// The attempt's first chunk arrived.
    pub fn first_token(&self) {
        let Some(a) = &self.0 else { return };
        if let Some(m) = &a.metrics {
            m.upstream_first_token
                .get_or_create(&a.labels)
                .observe(a.started.elapsed().as_secs_f64());
        }
    }

    /// The attempt failed with `e` (another may follow); its span ends.
    pub fn failed(&self, e: &Error) {
        // Counted in chatwire_errors only if it ends the call (`CallObs::error`).
        let Some(a) = &self.0 else { return };
        if let Some(cx) = &a.span {
            let span = cx.span();
            span.set_attribute(KeyValue::new("error.type", e.reason));
            span.set_status(SpanStatus::error(e.reason));
            span.end();
        }
    }
}

/// Watches the chunks of one answer as they come out of the provider: the
/// gap between content chunks (the one per-chunk observation), and, at the
/// last chunk, usage, response model and finish reason (once per call).
pub struct ChunkObs {
    call: CallObs,
    /// Held so the answering attempt's span lasts as long as the answer.
    _attempt: Attempt,
    gap: Option<Histogram>,
    last: Option<Instant>,
    /// The answer's text, only when content capture is on.
    answer: Option<String>,
}

impl ChunkObs {
    /// A chunk came out of the provider.
    #[inline]
    pub fn chunk(&mut self, c: &Chunk) {
        if c.delta.is_some() {
            if let Some(h) = &self.gap {
                let now = Instant::now();
                if let Some(prev) = self.last {
                    h.observe(now.duration_since(prev).as_secs_f64());
                }
                self.last = Some(now);
            }
            if let (Some(a), Some(Delta::Text(t))) = (&mut self.answer, &c.delta) {
                if a.len() < CONTENT_MAX {
                    a.push_str(t);
                }
            }
        }
        if c.last {
            self.call.last_chunk(c, self.last, self.answer.take());
        }
    }

    /// The answer ended with an error (a timer, the upstream, a cut).
    pub fn error(&self, e: &Error) {
        self.call.error(e);
    }

    /// A timer cut the answer.
    pub fn timer(&self, timer: &'static str) {
        self.call.timer(timer);
    }
}

/// The gRPC code name for a code number (`OK`, `UNAVAILABLE`…), for labels.
pub fn grpc_code_name(code: i32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("UNKNOWN")
}

fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut at = max;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
    }
    s
}
