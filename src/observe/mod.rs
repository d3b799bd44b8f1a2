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

mod attempt;
mod call;
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

use attempt::AttemptInner;
pub use attempt::{Attempt, ChunkObs};
use call::CallInner;
pub use call::CallObs;
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
