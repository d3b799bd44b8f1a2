//! The accept loop tonic serves from, in place of tonic's `TcpIncoming`:
//!
//! - every accepted socket gets `TCP_NODELAY` (TLS is layered by tonic on top of
//!   the IO yielded here, so TLS connections get it too);
//! - at most `max_connections` are open at once: at the cap the listener is not
//!   polled at all, so new connections wait in the kernel's listen backlog
//!   (backpressure) instead of being accepted and closed; one warn line per
//!   episode (at most one per [`WARN_EVERY`]);
//! - a failed `accept` (EMFILE, ENFILE, ENOBUFS, …) is logged at warn (at most
//!   once per [`WARN_EVERY`]) and retried after a backoff of 5 ms doubling to
//!   1 s, never in a busy loop;
//! - a connection that has not spoken within `preface_timeout` is closed: its
//!   reads fail with `TimedOut` until the client has sent the 24 bytes of the
//!   HTTP/2 preface (plaintext) or, with TLS, 24 bytes in answer to the server's
//!   first flight (so a handshake stalled after the ClientHello is closed too);
//!   after that the deadline no longer applies (idle HTTP/2 connections are
//!   kept by keepalive pings);
//! - a connection's slot is released when its IO is dropped.
//!
//! The listen backlog is not set here: it is fixed by `listen(2)` where the
//! socket is bound ([`bind`] binds with a chosen backlog).

use std::{
    future::Future,
    io::{self, IoSlice},
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::{ready, Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpSocket, TcpStream},
    sync::{AcquireError, OwnedSemaphorePermit, Semaphore, TryAcquireError},
    time::{Instant, Sleep},
};
use tokio_stream::Stream;
use tonic::transport::server::Connected;

/// The HTTP/2 client preface, `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, is 24 bytes.
pub const PREFACE_LEN: usize = 24;

/// Repeated warnings (accept failures, connection cap) at most this often.
pub const WARN_EVERY: Duration = Duration::from_secs(5);

/// The listen backlog [`bind`] asks for (the kernel caps it at
/// `net.core.somaxconn`, 4096 by default since Linux 5.4).
pub const DEFAULT_BACKLOG: u32 = 4096;

/// Binds a listener with an explicit backlog (tokio's `TcpListener::bind`
/// uses 1024). `SO_REUSEADDR` is set as tokio does, so a restart can rebind
/// while old connections sit in TIME_WAIT.
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// How the accept loop treats connections.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Open connections at most; at the cap, accepting pauses (at least 1).
    pub max_connections: usize,
    /// How long a new connection has to send its first [`PREFACE_LEN`] bytes.
    pub preface_timeout: Duration,
    /// The server speaks TLS: count the bytes only once the server has
    /// written its first flight (the ClientHello alone does not count).
    pub tls: bool,
}

/// Exponential backoff for a failing `accept`: 5 ms doubling to 1 s by default.
#[derive(Clone, Debug)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(5), Duration::from_secs(1))
    }
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            next: first,
        }
    }

    /// The delay before the next attempt (each failure doubles it, up to the max).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(self.max);
        d
    }

    /// After a success: the next failure waits the first delay again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// A source of accepted sockets: a `TcpListener`, or in tests one that fails.
pub trait Accept: Send + Unpin + 'static {
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<TcpStream>>;
}

impl Accept for TcpListener {
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<TcpStream>> {
        TcpListener::poll_accept(self, cx).map_ok(|(stream, _peer)| stream)
    }
}

type Acquire = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

/// The stream of accepted connections handed to tonic's `serve_with_incoming*`.
pub struct Incoming<A = TcpListener> {
    accept: A,
    slots: Arc<Semaphore>,
    max_connections: usize,
    preface_timeout: Duration,
    tls: bool,
    /// Connections yielded and not yet dropped.
    open: Arc<AtomicUsize>,
    /// A slot held for the next connection.
    slot: Option<OwnedSemaphorePermit>,
    /// Waiting for a slot (at the cap).
    waiting: Option<Acquire>,
    last_cap_warn: Option<Instant>,
    backoff: Backoff,
    /// Sleeping after a failed accept.
    paused: Option<Pin<Box<Sleep>>>,
    /// Failed accepts since the last success.
    failures: u64,
    /// Failed accepts since the last warn line.
    unlogged_failures: u64,
    last_failure_warn: Option<Instant>,
    /// A warn line went out since the last "accepting again" (so that line,
    /// too, comes at most once per `WARN_EVERY` when accept keeps flapping).
    warned: bool,
}

impl<A: Accept> Incoming<A> {
    pub fn new(accept: A, settings: Settings) -> Self {
        let max_connections = settings.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            accept,
            slots: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            preface_timeout: settings.preface_timeout,
            tls: settings.tls,
            open: Arc::new(AtomicUsize::new(0)),
            slot: None,
            waiting: None,
            last_cap_warn: None,
            backoff: Backoff::default(),
            paused: None,
            failures: 0,
            unlogged_failures: 0,
            last_failure_warn: None,
            warned: false,
        }
    }

    /// Replaces the accept-failure backoff (5 ms doubling to 1 s).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Connections yielded whose IO is still alive.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn accept_failed(&mut self, e: &io::Error, retry_in: Duration) {
        self.failures += 1;
        let now = Instant::now();
        if self
            .last_failure_warn
            .is_none_or(|t| now.duration_since(t) >= WARN_EVERY)
        {
            tracing::warn!(
                error = %e,
                failures = self.failures,
                not_logged = self.unlogged_failures,
                retry_in_ms = u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX),
                "accept failed (out of file descriptors or memory?): backing off"
            );
            self.last_failure_warn = Some(now);
            self.unlogged_failures = 0;
            self.warned = true;
        } else {
            self.unlogged_failures += 1;
        }
    }

    fn at_cap(&mut self) {
        let now = Instant::now();
        if self
            .last_cap_warn
            .is_none_or(|t| now.duration_since(t) >= WARN_EVERY)
        {
            tracing::warn!(
                max_connections = self.max_connections,
                "connection cap reached: not accepting until a connection closes (new ones wait in the listen backlog)"
            );
            self.last_cap_warn = Some(now);
        }
    }
}

/// Errors that concern one pending connection, not the listener: take the next.
fn one_connection_failed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::NetworkDown
    )
}

/// Consecutive per-connection accept errors handled in one poll before yielding.
const ERRORS_PER_POLL: usize = 64;

impl<A: Accept> Stream for Incoming<A> {
    type Item = io::Result<Conn<TcpStream>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let mut budget = ERRORS_PER_POLL;
        loop {
            if let Some(sleep) = this.paused.as_mut() {
                ready!(sleep.as_mut().poll(cx));
                this.paused = None;
            }
            if this.slot.is_none() {
                if let Some(waiting) = this.waiting.as_mut() {
                    let slot = ready!(waiting.as_mut().poll(cx));
                    this.waiting = None;
                    match slot {
                        Ok(slot) => {
                            tracing::debug!("below the connection cap again: accepting");
                            this.slot = Some(slot);
                        }
                        Err(_) => return Poll::Ready(None),
                    }
                } else {
                    match this.slots.clone().try_acquire_owned() {
                        Ok(slot) => this.slot = Some(slot),
                        Err(TryAcquireError::NoPermits) => {
                            this.at_cap();
                            this.waiting = Some(Box::pin(this.slots.clone().acquire_owned()));
                            continue;
                        }
                        Err(TryAcquireError::Closed) => return Poll::Ready(None),
                    }
                }
            }
            match ready!(this.accept.poll_accept(cx)) {
                Ok(stream) => {
                    if this.warned {
                        tracing::info!(failures = this.failures, "accepting again");
                        this.warned = false;
                    }
                    this.failures = 0;
                    this.backoff.reset();
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::warn!(error = %e, "cannot set TCP_NODELAY on an accepted connection");
                    }
                    let deadline = Preface {
                        timeout: this.preface_timeout,
                        after_first_write: this.tls,
                    };
                    let mut conn = Conn::new(stream, deadline);
                    if let Some(permit) = this.slot.take() {
                        this.open.fetch_add(1, Ordering::Relaxed);
                        conn.slot = Some(Slot {
                            _permit: permit,
                            open: this.open.clone(),
                        });
                    }
                    return Poll::Ready(Some(Ok(conn)));
                }
                Err(e) if one_connection_failed(&e) => {
                    tracing::debug!(error = %e, "accept: a pending connection failed");
                    budget -= 1;
                    if budget == 0 {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                }
                Err(e) => {
                    let delay = this.backoff.next_delay();
                    this.accept_failed(&e, delay);
                    this.paused = Some(Box::pin(tokio::time::sleep(delay)));
                }
            }
        }
    }
}

/// The rule a new connection's first bytes must meet.
#[derive(Clone, Copy, Debug)]
pub struct Preface {
    /// From accept: the time the client has to send [`PREFACE_LEN`] bytes.
    pub timeout: Duration,
    /// Count only bytes read after the server's first write (TLS: the
    /// ClientHello precedes it; the client's answer to the ServerHello is what
    /// shows a live handshake).
    pub after_first_write: bool,
}

struct Deadline {
    sleep: Pin<Box<Sleep>>,
    timeout: Duration,
    missing: usize,
    counting: bool,
}

/// A place under the connection cap, given back on drop.
struct Slot {
    _permit: OwnedSemaphorePermit,
    open: Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An accepted connection: the socket, its preface deadline (until met), and
/// its slot under the connection cap (released on drop).
pub struct Conn<IO = TcpStream> {
    io: IO,
    deadline: Option<Deadline>,
    slot: Option<Slot>,
}

impl<IO> Conn<IO> {
    /// Wraps `io` with a preface deadline starting now (and no slot).
    pub fn new(io: IO, preface: Preface) -> Self {
        Self {
            io,
            deadline: Some(Deadline {
                sleep: Box::pin(tokio::time::sleep(preface.timeout)),
                timeout: preface.timeout,
                missing: PREFACE_LEN,
                counting: !preface.after_first_write,
            }),
            slot: None,
        }
    }

    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// The preface deadline still applies.
    pub fn awaiting_preface(&self) -> bool {
        self.deadline.is_some()
    }

    fn wrote(&mut self, n: usize) {
        if let Some(d) = self.deadline.as_mut() {
            if n > 0 {
                d.counting = true;
            }
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Conn<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        // Bytes already here count even if the deadline has passed meanwhile.
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        let Some(d) = this.deadline.as_mut() else {
            return polled;
        };
        match polled {
            Poll::Ready(Ok(())) => {
                if d.counting {
                    d.missing = d.missing.saturating_sub(buf.filled().len() - before);
                    if d.missing == 0 {
                        this.deadline = None;
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                ready!(d.sleep.as_mut().poll(cx));
                tracing::debug!(
                    timeout_ms = u64::try_from(d.timeout.as_millis()).unwrap_or(u64::MAX),
                    "closing a connection that did not send the HTTP/2 preface (or TLS handshake) in time"
                );
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no HTTP/2 preface or TLS handshake within {:?}", d.timeout),
                )))
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Conn<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.io).poll_write(cx, buf))?;
        this.wrote(n);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.io).poll_write_vectored(cx, bufs))?;
        this.wrote(n);
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl<IO: Connected> Connected for Conn<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}
