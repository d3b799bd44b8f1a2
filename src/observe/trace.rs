//! Traces: OpenTelemetry spans exported over OTLP/gRPC, configured by the
//! standard `OTEL_*` variables and off when no endpoint is set. The spans are
//! made with the OpenTelemetry API directly (not through `tracing`'s layer):
//! a call's span and its attempts' spans carry typed GenAI attributes, start
//! from the caller's W3C context and end exactly when the call or attempt
//! does, and a server with tracing off pays nothing (no subscriber layer
//! looks at every log event).

use std::time::Duration;

use opentelemetry::{
    propagation::{Extractor, TextMapPropagator},
    trace::{SpanKind, TraceContextExt, Tracer as _},
    Context, KeyValue,
};
use opentelemetry_sdk::{
    propagation::TraceContextPropagator,
    trace::{SdkTracer, SdkTracerProvider},
    Resource,
};

use crate::{config::Env, error::Error};

/// The switch that lets spans carry prompts and answers (off by default).
pub const CAPTURE_CONTENT_ENV: &str = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT";

/// The tracer and its provider (which owns the batch exporter).
#[derive(Clone)]
pub struct Tracing {
    pub(crate) tracer: SdkTracer,
    provider: SdkTracerProvider,
    /// Prompts and answers go on spans (`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`).
    pub(crate) capture: bool,
}

impl std::fmt::Debug for Tracing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracing")
            .field("capture", &self.capture)
            .finish_non_exhaustive()
    }
}

fn set<'e>(env: &'e Env, key: &str) -> Option<&'e str> {
    env.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
}

impl Tracing {
    /// Tracing as the environment asks: an OTLP/gRPC exporter to
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`;
    /// none when neither is set, `OTEL_SDK_DISABLED=true` or
    /// `OTEL_TRACES_EXPORTER=none`. Must be called inside the Tokio runtime.
    pub fn from_env(env: &Env) -> Result<Option<Self>, Error> {
        if set(env, "OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        match set(env, "OTEL_TRACES_EXPORTER") {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(other) => {
                return Err(Error::invalid(format!(
                    "OTEL_TRACES_EXPORTER={other:?}: chatwire exports traces with otlp (or none)"
                )))
            }
        }
        let Some(endpoint) = set(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| set(env, "OTEL_EXPORTER_OTLP_ENDPOINT"))
        else {
            return Ok(None);
        };
        for key in [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Some(p) = set(env, key).filter(|p| *p != "grpc") {
                return Err(Error::invalid(format!(
                    "{key}={p:?}: chatwire exports OTLP over gRPC only (grpc)"
                )));
            }
        }
        use opentelemetry_otlp::WithExportConfig as _;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| Error::invalid(format!("OTLP exporter for {endpoint:?}: {e}")))?;
        let mut resource = Resource::builder();
        if set(env, "OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name("chatwire");
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                resource
                    .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                    .build(),
            )
            .build();
        use opentelemetry::trace::TracerProvider as _;
        let tracer = provider.tracer("chatwire");
        let capture = set(env, CAPTURE_CONTENT_ENV).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        tracing::info!(endpoint = %crate::error::log_safe(endpoint, 200), capture_content = capture, "OpenTelemetry traces on (OTLP/gRPC)");
        Ok(Some(Self {
            tracer,
            provider,
            capture,
        }))
    }

    /// Exports what is buffered and stops the exporter (at most `wait`).
    pub async fn shutdown(&self, wait: Duration) {
        let provider = self.provider.clone();
        // The SDK blocks while it flushes: not on a runtime thread.
        let _ = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(wait)).await;
    }

    /// A span started under `parent`, as a context that holds it.
    pub(crate) fn start(
        &self,
        name: String,
        kind: SpanKind,
        parent: &Context,
        attributes: Vec<KeyValue>,
    ) -> Context {
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, parent);
        parent.with_span(span)
    }
}

/// The caller's W3C trace context (`traceparent`, `tracestate` from the gRPC metadata).
pub(crate) fn extract(traceparent: Option<&str>, tracestate: Option<&str>) -> Context {
    struct Headers<'a>(Option<&'a str>, Option<&'a str>);
    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            match key {
                "traceparent" => self.0,
                "tracestate" => self.1,
                _ => None,
            }
        }
        fn keys(&self) -> Vec<&str> {
            vec!["traceparent", "tracestate"]
        }
    }
    if traceparent.is_none() {
        return Context::new();
    }
    TraceContextPropagator::new().extract(&Headers(traceparent, tracestate))
}

/// The W3C `traceparent` (and `tracestate`) naming `cx`'s span, for an upstream request.
pub(crate) fn traceparent(cx: &Context) -> Option<(String, String)> {
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return None;
    }
    Some((
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        ),
        sc.trace_state().header(),
    ))
}
