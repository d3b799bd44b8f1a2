//! Builds the registry from config + environment and serves the gRPC surface
//! (chat service, health, reflection) on a listener the caller binds, until
//! the caller's shutdown future completes; then drains within the grace period.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{atomic::AtomicBool, Arc},
    time::Duration,
};

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tonic_health::ServingStatus;

use crate::{
    api::service::ChatService,
    chat::pipeline::Pipeline,
    config::Config,
    error::Error,
    pb::{self, chat_model_service_server::ChatModelServiceServer},
    provider::{self, fake::Fake, Registry},
};

/// The fully-qualified service name health reports on.
pub const SERVICE_NAME: &str = "chatwire.v1.ChatModelService";

/// A snapshot of the environment (injected, so tests never mutate the process's).
pub type Env = BTreeMap<String, String>;

/// Every provider known, configured from the file and the environment.
pub fn registry(config: &Config, env: &Env) -> Result<Registry, Error> {
    let mut reg = Registry::new();
    reg.add_provider(Arc::new(Fake::new(config.fake_token_delay)));
    for p in provider::remote(config, env)? {
        reg.add_provider(p);
    }
    for (name, alias) in &config.aliases {
        reg.add_alias(name.clone(), alias.clone());
    }
    for (name, o) in &config.model_options {
        reg.set_model_options(name.clone(), o.clone());
    }
    Ok(reg)
}

/// Serves until `shutdown` completes, then turns health NOT_SERVING, refuses
/// new calls, and gives in-flight calls `config.shutdown_grace` to finish.
pub async fn run(
    config: Config,
    env: Env,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let registry = registry(&config, &env)?;
    for p in registry.providers() {
        let info = p.info();
        tracing::info!(provider = info.name, configured = info.configured, base_url = %info.base_url, "provider");
    }
    let pipeline = Arc::new(Pipeline::new(
        registry,
        config.timers,
        config.retry,
        config.limits,
    ));
    let draining = Arc::new(AtomicBool::new(false));
    let service = ChatService::new(pipeline, draining.clone());

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status("", ServingStatus::Serving).await;
    health
        .set_service_status(SERVICE_NAME, ServingStatus::Serving)
        .await;

    let reflection = |b: tonic_reflection::server::Builder<'static>| {
        b.register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // google.rpc.ErrorInfo / RetryInfo, so grpcurl decodes error details.
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection(tonic_reflection::server::Builder::configure())
        .build_v1()
        .map_err(|e| Error::internal(format!("reflection: {e}")))?;
    let reflection_v1alpha = reflection(tonic_reflection::server::Builder::configure())
        .build_v1alpha()
        .map_err(|e| Error::internal(format!("reflection: {e}")))?;

    let chat = ChatModelServiceServer::new(service)
        .max_decoding_message_size(config.max_request_bytes)
        .max_encoding_message_size(usize::MAX);

    let addr = listener.local_addr().ok();
    tracing::info!(addr = ?addr, "chatwire serving");

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let grace = config.shutdown_grace;
    let server = Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(chat)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            let _ = stop_rx.await;
        });
    let mut server = std::pin::pin!(server);

    tokio::select! {
        r = &mut server => return r.map_err(|e| Error::internal(format!("server: {e}"))),
        () = shutdown => {}
    }
    tracing::info!(
        grace_secs = grace.as_secs_f64(),
        "shutting down: NOT_SERVING, draining in-flight calls"
    );
    draining.store(true, std::sync::atomic::Ordering::Relaxed);
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    health
        .set_service_status(SERVICE_NAME, ServingStatus::NotServing)
        .await;
    let _ = stop_tx.send(());
    match tokio::time::timeout(grace, &mut server).await {
        Ok(r) => r.map_err(|e| Error::internal(format!("server: {e}"))),
        Err(_) => {
            tracing::warn!("grace period over: ending the calls still in flight");
            Ok(())
        }
    }
}
