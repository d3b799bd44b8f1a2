//! The optional plaintext health-only listener (`--health-addr`): serves
//! grpc.health.v1 and nothing else (no chat service, no reflection), with the
//! very statuses the main port reports (one reporter feeds both), for probes
//! that cannot present a client certificate (kubelet's gRPC probes under
//! mTLS). It keeps answering through the drain (NOT_SERVING) until the process
//! exits; any other method gets UNIMPLEMENTED.
//!
//! It asks no auth, so anyone who reaches it can open connections and leave
//! them idle (answering keepalive pings). Under a cap that waits for a slot,
//! a few dozen such connections would keep every probe out and have the pod
//! marked unready and restarted; here, at the cap, a new connection closes
//! another instead: the oldest of those that never sent the HTTP/2 preface,
//! else the oldest. A probe opens a connection per check and is done within
//! milliseconds, so it is served unless more than 64 new connections that
//! speak HTTP/2 arrive while it is in flight.

use std::{
    collections::VecDeque,
    future::Future,
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Weak,
    },
    task::{Context, Poll},
    time::Duration,
};

use futures_util::{task::AtomicWaker, Stream};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
};
use tonic::transport::{server::Connected, Server};
use tonic_health::pb::health_server::{Health, HealthServer};

use super::listen;
use crate::error::Error;

/// Connections the health listener keeps open: at the cap, a new connection
/// closes the oldest one.
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
    let incoming = Evicting {
        // Room for the connections being closed to make way for new ones
        // (their slots come back once their task has seen the close).
        inner: listen::Incoming::new(
            listener,
            listen::Settings {
                max_connections: 2 * MAX_CONNECTIONS,
                preface_timeout,
                tls: false,
            },
        ),
        open: VecDeque::with_capacity(MAX_CONNECTIONS + 1),
    };
    Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .max_concurrent_streams(16)
        .add_service(health)
        .serve_with_incoming_shutdown(incoming, stop)
        .await
        .map_err(|e| Error::internal(format!("health listener: {e}")))
}

/// The accepted connections, oldest first; a new one past the cap closes the oldest.
struct Evicting {
    inner: listen::Incoming,
    open: VecDeque<Weak<Close>>,
}

impl Stream for Evicting {
    type Item = io::Result<Evictable>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let conn = match std::task::ready!(Pin::new(&mut this.inner).poll_next(cx)) {
            Some(Ok(conn)) => conn,
            Some(Err(e)) => return Poll::Ready(Some(Err(e))),
            None => return Poll::Ready(None),
        };
        this.open.retain(|c| c.strong_count() > 0);
        if this.open.len() >= MAX_CONNECTIONS {
            // A connection that never spoke first (a bare TCP connect costs an
            // attacker least), else the oldest (a probe is the newest).
            let silent = this.open.iter().position(|c| {
                c.upgrade()
                    .is_some_and(|c| !c.spoke.load(Ordering::Relaxed))
            });
            let victim = this.open.remove(silent.unwrap_or(0));
            if let Some(victim) = victim.and_then(|c| c.upgrade()) {
                tracing::debug!(
                    max_connections = MAX_CONNECTIONS,
                    "health listener: closing a connection to serve a new one"
                );
                victim.close();
            }
        }
        let close = Arc::new(Close::default());
        this.open.push_back(Arc::downgrade(&close));
        Poll::Ready(Some(Ok(Evictable { conn, close })))
    }
}

/// Closes one connection from outside it: its reads and writes fail from then on.
#[derive(Default)]
struct Close {
    closed: AtomicBool,
    /// The connection sent the HTTP/2 preface.
    spoke: AtomicBool,
    /// The connection's task, woken to see the close while it waits to read.
    reader: AtomicWaker,
}

impl Close {
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.reader.wake();
    }

    fn check(&self) -> io::Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed to make room for a newer connection (health listener's cap)",
            ));
        }
        Ok(())
    }
}

/// An accepted health connection that the listener can close.
struct Evictable {
    conn: listen::Conn<TcpStream>,
    close: Arc<Close>,
}

impl AsyncRead for Evictable {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Registered before the check, so a close in between still wakes it.
        this.close.reader.register(cx.waker());
        this.close.check()?;
        let read = Pin::new(&mut this.conn).poll_read(cx, buf);
        if !this.conn.awaiting_preface() {
            this.close.spoke.store(true, Ordering::Relaxed);
        }
        read
    }
}

impl AsyncWrite for Evictable {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.close.check()?;
        Pin::new(&mut this.conn).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.close.check()?;
        Pin::new(&mut this.conn).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.conn.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.close.check()?;
        Pin::new(&mut this.conn).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().conn).poll_shutdown(cx)
    }
}

impl Connected for Evictable {
    type ConnectInfo = <listen::Conn<TcpStream> as Connected>::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.conn.connect_info()
    }
}
