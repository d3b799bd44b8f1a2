//! Serves the gRPC surface (chat service, health, reflection; gRPC-Web and the
//! optional playground for browsers) on a listener the caller binds, plus an
//! optional plaintext health-only listener, with the registry built from config + environment, until the
//! caller's shutdown future completes; then drains within the grace period.
//!
//! Layer: the top of the library (above `api`); `main` and `cli` sit on it.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tonic::{
    server::NamedService,
    service::{interceptor::InterceptedService, LayerExt, Routes, RoutesBuilder},
    transport::{Certificate, Identity, Server, ServerTlsConfig},
};
use tonic_health::ServingStatus;

use crate::{
    api::{auth::Tokens, drain::Drain, service::ChatService},
    config::{Config, TlsFiles},
    error::Error,
    pb::{self, chat_model_service_server::ChatModelServiceServer},
    pipeline::Pipeline,
    provider,
};

mod health;
pub mod listen;
mod telemetry;
mod web;

/// HTTP/2 connection-level flow-control window (and so h2's budget for small
/// DATA frames not yet read: half of it).
const HTTP2_CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;
/// Concurrent streams one client connection may open.
const HTTP2_MAX_STREAMS_PER_CONNECTION: u32 = 16_384;

/// The fully-qualified service name health reports on (from the generated code).
const SERVICE_NAME: &str = <ChatModelServiceServer<ChatService> as NamedService>::NAME;

/// The environment snapshot the server is configured from.
pub use crate::config::Env;

/// Serves until `shutdown` completes, then turns health NOT_SERVING, refuses
/// new calls, and gives in-flight calls `config.shutdown_grace` to finish.
pub async fn run(
    config: Config,
    env: Env,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let health = match config.health_addr {
        Some(addr) => Some(listen::bind(addr, health::BACKLOG).map_err(|e| {
            Error::invalid(format!("health listener: cannot listen on {addr}: {e}"))
        })?),
        None => None,
    };
    run_with_health(config, env, listener, health, shutdown).await
}

/// [`run`], with the health-only listener (`config.health_addr`) bound by the caller.
pub async fn run_with_health(
    config: Config,
    env: Env,
    listener: TcpListener,
    health_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    for token in &config.auth_tokens {
        crate::error::register_secret(token);
    }
    let registry = provider::registry::build(&config, &env)?;
    for info in registry.infos() {
        tracing::info!(provider = info.name, configured = info.configured, base_url = %provider::display_url(&info.base_url), "provider");
    }
    let (observer, telemetry) = telemetry::Telemetry::start(&config, &env, &registry).await?;
    let pipeline = Arc::new(
        Pipeline::new(registry, config.timers, config.retry, config.limits).with_observer(observer),
    );
    let drain = Drain::new();
    let service = ChatService::new(pipeline, drain.clone());

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
    let tokens = Tokens::new(config.auth_tokens.clone());
    tracing::info!(
        auth = tokens.is_enabled(),
        tls = config.tls.is_some(),
        "callers' auth and TLS"
    );
    let chat = InterceptedService::new(chat, move |req| tokens.check(req));

    // The health-only listener shares the reporter: the same statuses, the
    // same flip at the drain; it serves until this function returns.
    let _health_task = match health_listener {
        Some(l) => {
            let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
            tracing::info!(%addr, "health-only listener (plaintext, grpc.health.v1 only)");
            let task = tokio::spawn(health::serve(
                l,
                health_service.clone(),
                config.preface_timeout,
                std::future::pending(),
            ));
            Some(AbortOnDrop(task))
        }
        None => None,
    };

    // gRPC-Web (tonic-web) in front of each gRPC service: a gRPC-Web request
    // (HTTP/1.1 or HTTP/2) is translated to gRPC and served by the same
    // service, with the same limits and auth; an HTTP/1.1 request that is not
    // gRPC-Web gets 400; HTTP/2 gRPC passes through untouched.
    let grpc_web = tonic_web::GrpcWebLayer::new();
    let mut routes = RoutesBuilder::default();
    routes
        .add_service(grpc_web.named_layer(health_service))
        .add_service(grpc_web.named_layer(reflection_v1))
        .add_service(grpc_web.named_layer(reflection_v1alpha))
        .add_service(grpc_web.named_layer(chat));
    let mut router = routes.routes().into_axum_router();
    if config.playground {
        for path in web::PLAYGROUND_PATHS {
            router = router.route_service(path, web::Playground);
        }
    }
    let routes = Routes::from(router);
    let cors = web::cors(&config.cors_origins)?;
    tracing::info!(
        cors_origins = config.cors_origins.len(),
        playground = config.playground,
        "gRPC-Web (HTTP/1.1 and HTTP/2)"
    );

    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let worker_threads = tokio::runtime::Handle::current().metrics().num_workers();
    tracing::info!(%addr, worker_threads, "chatwire serving");

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let grace = config.shutdown_grace;
    let mut builder = Server::builder();
    if let Some(tls) = &config.tls {
        builder = builder
            .tls_config(tls_config(tls)?)
            .map_err(|e| Error::invalid(format!("tls: {e}")))?;
    }
    // The listener is the caller's, so the builder's own TCP_NODELAY setting
    // would never reach accepted sockets: `listen` sets it on each one (Nagle
    // plus delayed ACKs cost tens of milliseconds per streamed token
    // otherwise), caps open connections, closes silent ones, backs off when
    // accept fails.
    let incoming = listen::Incoming::new(
        listener,
        listen::Settings {
            max_connections: config.max_connections,
            preface_timeout: config.preface_timeout,
            tls: config.tls.is_some(),
        },
    );
    let server = builder
        // A mesh sidecar multiplexes thousands of calls on one connection. h2
        // closes a connection (ENHANCE_YOUR_CALM) when small DATA frames it has
        // not handed over yet exceed half the connection window: at hyper's
        // 1 MiB that is ~2,600 request frames in flight. 8 MiB allows ~20,000;
        // streams per connection are bounded explicitly (h2 sets no limit).
        .initial_connection_window_size(HTTP2_CONNECTION_WINDOW)
        .max_concurrent_streams(HTTP2_MAX_STREAMS_PER_CONNECTION)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        // gRPC-Web from browsers, over HTTP/1.1 too (the accept loop's caps
        // and preface deadline apply to every connection alike; hyper's HTTP/1
        // header-read timeout bounds a slow request head).
        .accept_http1(true)
        .layer(cors)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stop_rx.await;
        });
    let mut server = std::pin::pin!(server);

    tokio::select! {
        r = &mut server => return r.map_err(|e| Error::internal(format!("server: {e}"))),
        () = shutdown => {}
    }
    let deadline = tokio::time::Instant::now() + grace;
    // Drain: NOT_SERVING at once, new calls refused with UNAVAILABLE (DRAINING).
    drain.start_drain();
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    health
        .set_service_status(SERVICE_NAME, ServingStatus::NotServing)
        .await;
    tracing::info!(
        grace_secs = grace.as_secs_f64(),
        goaway_delay_secs = config.drain_goaway_delay.as_secs_f64(),
        in_flight = drain.in_flight(),
        "shutting down: NOT_SERVING, draining"
    );
    // Then (after the configured delay, 0 by default) the listener closes and
    // every connection gets an HTTP/2 GOAWAY (hyper's graceful shutdown: a
    // GOAWAY naming no stream limit and a PING, then the final GOAWAY once the
    // PING is answered, so streams already on the wire are served, and refused
    // with DRAINING). Proxies and clients open new streams elsewhere; streams
    // in flight keep running; the server future ends when every connection
    // has closed.
    let delay = config.drain_goaway_delay.min(grace);
    if !delay.is_zero() {
        tokio::select! {
            r = &mut server => return r.map_err(|e| Error::internal(format!("server: {e}"))),
            () = tokio::time::sleep(delay) => {}
        }
    }
    let _ = stop_tx.send(());
    tracing::info!(
        in_flight = drain.in_flight(),
        "listener closed, GOAWAY sent on every connection"
    );
    let drained = tokio::select! {
        r = &mut server => return r.map_err(|e| Error::internal(format!("server: {e}"))),
        r = tokio::time::timeout_at(deadline, drain.wait_idle()) => r.is_ok(),
    };
    if !drained {
        tracing::warn!(
            in_flight = drain.in_flight(),
            "grace period over: ending the calls still in flight with UNAVAILABLE"
        );
        drain.hard_stop();
        // Calls end with UNAVAILABLE now; a client that stopped reading cannot
        // take even that, so it gets half a second, not more.
        let _ = tokio::time::timeout(Duration::from_millis(500), drain.wait_idle()).await;
    }
    // Connections still open (a health Watch, a reflection stream, a client
    // that stopped reading) close gracefully if they can within half a second,
    // or are dropped with the server (exit within the grace period plus a second).
    let result = match tokio::time::timeout(Duration::from_millis(500), &mut server).await {
        Ok(r) => r.map_err(|e| Error::internal(format!("server: {e}"))),
        Err(_) => Ok(()),
    };
    telemetry.shutdown().await;
    result
}

/// Aborts a spawned task when dropped (the health listener ends with `run`).
struct AbortOnDrop(tokio::task::JoinHandle<Result<(), Error>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn tls_config(files: &TlsFiles) -> Result<ServerTlsConfig, Error> {
    let read = |what: &str, p: &std::path::Path| {
        std::fs::read(p)
            .map_err(|e| Error::invalid(format!("tls {what}: cannot read {}: {e}", p.display())))
    };
    let identity = Identity::from_pem(read("cert", &files.cert)?, read("key", &files.key)?);
    let mut tls = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &files.client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read("client CA", ca)?));
    }
    Ok(tls)
}
