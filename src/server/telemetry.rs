//! Metrics and traces for the server: the `/metrics` listener (when
//! `metrics_addr` is set) and the OTLP trace exporter (when the `OTEL_*`
//! environment names an endpoint), and the observer the pipeline records into.

use std::sync::Arc;

use crate::{
    config::{Config, Env},
    error::Error,
    observe::{metrics, Metrics, Observer, Tracing},
    provider::Registry,
};

/// What runs beside the gRPC server; dropping it stops the metrics listener.
pub(crate) struct Telemetry {
    listener: Option<tokio::task::JoinHandle<()>>,
    tracing: Option<Tracing>,
}

impl Telemetry {
    /// Starts what the configuration asks for; the observer records into it.
    pub(crate) async fn start(
        config: &Config,
        env: &Env,
        registry: &Registry,
    ) -> Result<(Observer, Self), Error> {
        let metrics = config.metrics_addr.map(|_| Arc::new(Metrics::new()));
        let tracing = Tracing::from_env(env)?;
        // The model names a metric label may carry: configured ones and the
        // providers' known lists; any other requested name is labelled `other`.
        let known = config
            .aliases
            .iter()
            .flat_map(|(name, alias)| std::iter::once(name.clone()).chain(alias.targets.clone()))
            .chain(config.model_options.keys().cloned())
            .chain(
                registry
                    .infos()
                    .flat_map(|i| i.models.iter().map(move |m| format!("{}:{m}", i.name))),
            )
            .collect::<Vec<_>>();
        let observer = Observer::new(metrics.clone(), tracing.clone(), known);
        let listener = match (config.metrics_addr, metrics) {
            (Some(addr), Some(m)) => Some(metrics::listen(addr, m).await?),
            _ => None,
        };
        Ok((observer, Self { listener, tracing }))
    }

    /// Exports the spans still buffered (at most five seconds).
    pub(crate) async fn shutdown(&self) {
        if let Some(t) = &self.tracing {
            t.shutdown(std::time::Duration::from_secs(5)).await;
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(l) = &self.listener {
            l.abort();
        }
    }
}
