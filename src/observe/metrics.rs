//! The Prometheus registry: every metric chatwire exports, and the `/metrics`
//! listener. Names follow the OpenTelemetry GenAI semantic conventions where
//! they define one (`gen_ai.client.operation.duration` is exported as
//! `gen_ai_client_operation_duration_seconds`), `chatwire_*` for the rest.
//! Label values are bounded: an RPC name, a provider name from the registry, a
//! model name the configuration or a provider's known list has (else
//! `other`), a gRPC code name, an ErrorInfo reason (a constant), an HTTP
//! status, a timer's name. Never a caller's free text, never a secret.

use std::{
    collections::VecDeque,
    convert::Infallible,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use http_body_util::Full;
use hyper::{body::Bytes, Method, Request, Response, StatusCode};
use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};
use tokio::net::TcpListener;

use crate::error::Error;

/// A call's labels: which RPC, which provider served it, which model was asked for.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CallLabels {
    pub(crate) rpc: &'static str,
    pub(crate) gen_ai_operation_name: &'static str,
    pub(crate) gen_ai_provider_name: &'static str,
    pub(crate) gen_ai_request_model: String,
}

/// A finished call's labels: the call's, and the gRPC code it ended with.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabels {
    pub(crate) rpc: &'static str,
    pub(crate) gen_ai_operation_name: &'static str,
    pub(crate) gen_ai_provider_name: &'static str,
    pub(crate) gen_ai_request_model: String,
    pub(crate) code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ModelLabels {
    pub(crate) gen_ai_provider_name: &'static str,
    pub(crate) gen_ai_request_model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TokenLabels {
    pub(crate) gen_ai_operation_name: &'static str,
    pub(crate) gen_ai_provider_name: &'static str,
    pub(crate) gen_ai_request_model: String,
    pub(crate) gen_ai_token_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ProviderLabels {
    pub(crate) gen_ai_provider_name: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StatusLabels {
    pub(crate) gen_ai_provider_name: &'static str,
    pub(crate) http_response_status_code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RpcLabels {
    pub(crate) rpc: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TimerLabels {
    pub(crate) timer: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabels {
    pub(crate) gen_ai_provider_name: &'static str,
    pub(crate) reason: &'static str,
}

type Hist<L> = Family<L, Histogram, fn() -> Histogram>;

// Bucket boundaries: the GenAI semantic conventions' advice where it exists.
const DURATION: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
const FIRST_TOKEN: [f64; 16] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
const PER_TOKEN: [f64; 13] = [
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
];
const TOKENS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];
/// chatwire's own latency: microseconds to tens of milliseconds.
const ADDED: [f64; 14] = [
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.05, 0.1,
];
/// The gap between two chunks: sub-millisecond (a burst in one read) to seconds.
const GAP: [f64; 14] = [
    0.000_1, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

fn hist<L: Clone + std::hash::Hash + Eq>(b: fn() -> Histogram) -> Hist<L> {
    Family::new_with_constructor(b)
}

/// Every metric chatwire exports, in one registry.
pub struct Metrics {
    registry: Registry,
    pub(crate) operation_duration: Hist<OutcomeLabels>,
    pub(crate) time_to_first_chunk: Hist<CallLabels>,
    pub(crate) added_latency: Hist<CallLabels>,
    pub(crate) time_per_output_token: Hist<ModelLabels>,
    pub(crate) token_usage: Hist<TokenLabels>,
    pub(crate) tokens: Family<TokenLabels, Counter>,
    pub(crate) upstream_first_byte: Hist<ProviderLabels>,
    pub(crate) upstream_first_token: Hist<ModelLabels>,
    pub(crate) inter_chunk_gap: Hist<ModelLabels>,
    pub(crate) in_flight: Family<RpcLabels, Gauge>,
    pub(crate) attempts: Family<ModelLabels, Counter>,
    pub(crate) retries: Family<ModelLabels, Counter>,
    pub(crate) fallbacks: Family<ModelLabels, Counter>,
    pub(crate) timer_firings: Family<TimerLabels, Counter>,
    pub(crate) upstream_responses: Family<StatusLabels, Counter>,
    pub(crate) errors: Family<ReasonLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::default();
        let m = Self {
            operation_duration: hist(|| Histogram::new(DURATION)),
            time_to_first_chunk: hist(|| Histogram::new(FIRST_TOKEN)),
            added_latency: hist(|| Histogram::new(ADDED)),
            time_per_output_token: hist(|| Histogram::new(PER_TOKEN)),
            token_usage: hist(|| Histogram::new(TOKENS)),
            tokens: Family::default(),
            upstream_first_byte: hist(|| Histogram::new(FIRST_TOKEN)),
            upstream_first_token: hist(|| Histogram::new(FIRST_TOKEN)),
            inter_chunk_gap: hist(|| Histogram::new(GAP)),
            in_flight: Family::default(),
            attempts: Family::default(),
            retries: Family::default(),
            fallbacks: Family::default(),
            timer_firings: Family::default(),
            upstream_responses: Family::default(),
            errors: Family::default(),
            registry: Registry::default(),
        };
        r.register_with_unit(
            "gen_ai_client_operation_duration",
            "GenAI operation duration: a chat call from its arrival to its end (gen_ai.client.operation.duration), by RPC, provider, requested model and gRPC code",
            Unit::Seconds,
            m.operation_duration.clone(),
        );
        r.register_with_unit(
            "gen_ai_server_time_to_first_token",
            "Time from a call's arrival to its first chunk leaving chatwire (gen_ai.server.time_to_first_token), by RPC, provider and requested model",
            Unit::Seconds,
            m.time_to_first_chunk.clone(),
        );
        r.register_with_unit(
            "gen_ai_server_time_per_output_token",
            "Time per output token after the first (gen_ai.server.time_per_output_token), one observation per call with more than one output token",
            Unit::Seconds,
            m.time_per_output_token.clone(),
        );
        r.register(
            "gen_ai_client_token_usage",
            "Tokens used per call (gen_ai.client.token.usage), input and output, as the provider reported them",
            m.token_usage.clone(),
        );
        r.register(
            "chatwire_tokens",
            "Tokens by type (input, output, cache_read, cache_creation, reasoning), as the provider reported them",
            m.tokens.clone(),
        );
        r.register_with_unit(
            "chatwire_added_latency",
            "chatwire's own latency: from the upstream's first chunk reaching chatwire to the first chunk handed to the gRPC layer",
            Unit::Seconds,
            m.added_latency.clone(),
        );
        r.register_with_unit(
            "chatwire_upstream_time_to_first_byte",
            "Upstream time to first byte: from sending an attempt's HTTP request to its response headers",
            Unit::Seconds,
            m.upstream_first_byte.clone(),
        );
        r.register_with_unit(
            "chatwire_upstream_time_to_first_token",
            "Upstream time to first token: from an attempt's start to its first chunk reaching chatwire",
            Unit::Seconds,
            m.upstream_first_token.clone(),
        );
        r.register_with_unit(
            "chatwire_upstream_inter_chunk_gap",
            "The gap between two content chunks of an answer (one observation per chunk after the first)",
            Unit::Seconds,
            m.inter_chunk_gap.clone(),
        );
        r.register(
            "chatwire_calls_in_flight",
            "Chat calls in flight, by RPC",
            m.in_flight.clone(),
        );
        r.register(
            "chatwire_upstream_attempts",
            "Upstream attempts started (first tries, retries and fallbacks)",
            m.attempts.clone(),
        );
        r.register(
            "chatwire_retries",
            "Retries of the same upstream before the first chunk",
            m.retries.clone(),
        );
        r.register(
            "chatwire_fallbacks",
            "Fallbacks taken: an alias moved on to its next target (labelled with the target moved to)",
            m.fallbacks.clone(),
        );
        r.register(
            "chatwire_timer_firings",
            "Timers that ended a call or an attempt: first_chunk, idle, total, deadline (the caller's grpc-timeout)",
            m.timer_firings.clone(),
        );
        r.register(
            "chatwire_upstream_responses",
            "Upstream HTTP responses by status code",
            m.upstream_responses.clone(),
        );
        r.register(
            "chatwire_errors",
            "Errors that ended a routed call, by ErrorInfo reason",
            m.errors.clone(),
        );
        Self { registry: r, ..m }
    }

    /// The registry in the text exposition format (OpenMetrics 1.0, which Prometheus reads).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// The content type of `render`'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Connections kept open at most: past it, a new connection closes another,
/// the oldest of those that never sent a request, else the oldest (a scrape
/// takes milliseconds; Prometheus's kept-alive connection has sent requests),
/// so connections opened and left idle cannot keep a scrape out.
const MAX_SCRAPE_CONNECTIONS: usize = 64;

/// Binds the metrics listener and serves `GET /metrics` on it until the task is aborted.
pub async fn listen(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
) -> Result<tokio::task::JoinHandle<()>, Error> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Error::invalid(format!("metrics_addr {addr}: cannot listen: {e}")))?;
    let bound = listener.local_addr().map_or(addr, |a| a);
    tracing::info!(addr = %bound, "metrics serving on /metrics");
    Ok(tokio::spawn(serve(listener, metrics)))
}

/// Serves `GET /metrics` (HTTP/1.1) on an already bound listener.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    // Each open connection's task, and whether it has sent a request.
    let mut open: VecDeque<(tokio::task::AbortHandle, Arc<AtomicBool>)> = VecDeque::new();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "metrics accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        open.retain(|(c, _)| !c.is_finished());
        if open.len() >= MAX_SCRAPE_CONNECTIONS {
            let silent = open
                .iter()
                .position(|(_, asked)| !asked.load(Ordering::Relaxed));
            if let Some((victim, _)) = open.remove(silent.unwrap_or(0)) {
                tracing::debug!(
                    max_connections = MAX_SCRAPE_CONNECTIONS,
                    "metrics: closing a connection to serve a new one"
                );
                victim.abort();
            }
        }
        let metrics = metrics.clone();
        let asked = Arc::new(AtomicBool::new(false));
        let asks = asked.clone();
        let task = tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                asks.store(true, Ordering::Relaxed);
                let res = respond(&metrics, &req);
                async move { Ok::<_, Infallible>(res) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .keep_alive(true)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            // A scrape that stalls is cut after a minute, whatever it is doing.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(60), conn).await;
        });
        open.push_back((task.abort_handle(), asked));
    }
}

fn respond<B>(metrics: &Metrics, req: &Request<B>) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => {
            (StatusCode::OK, CONTENT_TYPE, metrics.render())
        }
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "use GET\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: metrics are at /metrics\n".to_string(),
        ),
    };
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(ctype),
    );
    res
}
