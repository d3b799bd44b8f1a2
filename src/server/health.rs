//! The optional plaintext health-only listener (`--health-addr`): serves
//! grpc.health.v1 and nothing else (no chat service, no reflection), with the
//! very statuses the main port reports (one reporter feeds both), for probes
//! that cannot present a client certificate (kubelet's gRPC probes under
//! mTLS). It keeps answering through the drain (NOT_SERVING) until the process
//! exits; any other method gets UNIMPLEMENTED.

use std::{future::Future, time::Duration};

use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic_health::pb::health_server::{Health, HealthServer};

use super::listen;
use crate::error::Error;

/// Connections the health listener keeps open at most (probes open one per
/// check and close it; more than this wait in the listen backlog).
pub(super) const MAX_CONNECTIONS: usize = 64;
/// Its listen backlog.
pub(super) const BACKLOG: u32 = 128;

/// Serves health on `listener` until `stop` completes.
pub(crate) async fn serve<H: Health>(
    listener: TcpListener,
    health: HealthServer<H>,
    preface_timeout: Duration,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let incoming = listen::Incoming::new(
        listener,
        listen::Settings {
            max_connections: MAX_CONNECTIONS,
            preface_timeout,
            tls: false,
        },
    );
    Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .max_concurrent_streams(16)
        .add_service(health)
        .serve_with_incoming_shutdown(incoming, stop)
        .await
        .map_err(|e| Error::internal(format!("health listener: {e}")))
}
