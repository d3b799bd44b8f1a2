//! One call's observation: opened by the api layer, routed once (its label
//! sets and histograms resolved then), and ended with its outcome, usage and
//! span attributes.

use super::*;

/// One call's observation; cheap to clone (the api layer, the pipeline and
/// the chunk stream share it). A default `CallObs` observes nothing.
#[derive(Clone, Default)]
pub struct CallObs(pub(super) Option<Arc<CallInner>>);

pub(super) struct CallInner {
    pub(super) observer: Observer,
    pub(super) rpc: &'static str,
    pub(super) started: Instant,
    pub(super) route: OnceLock<Routed>,
    /// The upstream's first chunk reached chatwire.
    pub(super) first_token: OnceLock<Instant>,
    /// The first chunk left for the gRPC layer.
    pub(super) first_out: OnceLock<Instant>,
    pub(super) ended: AtomicBool,
    pub(super) in_flight: Option<Gauge>,
    pub(super) span: Option<Context>,
}

/// A routed call's labels and the histograms resolved for them.
pub(super) struct Routed {
    pub(super) provider: &'static str,
    pub(super) model: String,
    pub(super) ttfc: Option<Histogram>,
    pub(super) added: Option<Histogram>,
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

    pub(super) fn last_chunk(
        &self,
        chunk: &Chunk,
        last_content: Option<Instant>,
        answer: Option<String>,
    ) {
        let Some(c) = &self.0 else { return };
        let usage = chunk.usage().unwrap_or_default();
        if let Some(m) = &c.observer.metrics {
            // Tokens are the answering provider's (a fallback's, not the first target's).
            let (provider, model) = (chunk.provider, c.model());
            let labels = |t: &'static str| TokenLabels {
                gen_ai_operation_name: OPERATION,
                gen_ai_provider_name: provider,
                gen_ai_request_model: model.clone(),
                gen_ai_token_type: t,
            };
            if chunk.usage().is_some() {
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
            if chunk.usage().is_some() {
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
            let reason = if chunk.finish_reason().is_empty() {
                chunk
                    .stop_reason()
                    .map(|s| format!("{s:?}").to_ascii_lowercase())
                    .unwrap_or_default()
            } else {
                chunk.finish_reason().to_string()
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
