//! One upstream attempt (its span, status and time to first byte, carried to
//! the http shell in a task-local) and the watch on one answer's chunks.

use super::*;

/// One upstream attempt (a try, a retry or a fallback target); its span ends
/// when it fails or, for the attempt that answers, when the answer ends.
#[derive(Clone, Default)]
pub struct Attempt(pub(super) Option<Arc<AttemptInner>>);

pub(super) struct AttemptInner {
    pub(super) metrics: Option<Arc<Metrics>>,
    pub(super) provider: &'static str,
    pub(super) labels: ModelLabels,
    pub(super) started: Instant,
    pub(super) span: Option<Context>,
}

tokio::task_local! {
    static ATTEMPT: Attempt;
}

impl Attempt {
    /// Runs `fut` (the provider starting the attempt) with this attempt as
    /// `Attempt::current()`, so the http shell can report into it.
    /// (Not an `async fn`: that would hold `fut` twice, as its argument and
    /// inside the task-local future, for as long as the attempt waits.)
    pub fn scope<F: std::future::Future>(
        &self,
        fut: F,
    ) -> impl std::future::Future<Output = F::Output> {
        ATTEMPT.scope(self.clone(), fut)
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
    pub(super) call: CallObs,
    /// Held so the answering attempt's span lasts as long as the answer.
    pub(super) _attempt: Attempt,
    pub(super) gap: Option<Histogram>,
    pub(super) last: Option<Instant>,
    /// The answer's text, only when content capture is on.
    pub(super) answer: Option<String>,
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
