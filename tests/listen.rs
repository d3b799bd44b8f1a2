//! The accept loop (`server::listen`): TCP_NODELAY on accepted sockets, the
//! preface deadline for connections that never speak, the connection cap as
//! backpressure, and backoff when accept fails. Through the real server where
//! the behaviour is the server's, at the stream level where it is the stream's.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use std::{
    io,
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll},
    time::Duration,
};

use chatwire::{
    config::Config,
    pb::{self, chat_model_service_client::ChatModelServiceClient},
    server::{
        self,
        listen::{self, Accept, Backoff, Incoming, Settings},
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::oneshot,
    task::JoinHandle,
    time::{timeout, Instant},
};
use tokio_stream::StreamExt;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

/// Bounds for things that must happen: generous, so a loaded machine passes.
const EVENTUALLY: Duration = Duration::from_secs(20);
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// ---------------------------------------------------------------- harness

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), chatwire::error::Error>>,
}

impl Server {
    async fn start(config: Config) -> Self {
        let listener =
            listen::bind("127.0.0.1:0".parse().unwrap(), listen::DEFAULT_BACKLOG).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(server::run(
            config,
            server::Env::new(),
            listener,
            async move {
                let _ = rx.await;
            },
        ));
        Self {
            addr,
            stop: Some(tx),
            handle,
        }
    }

    async fn client(&self) -> ChatModelServiceClient<Channel> {
        let url = format!("http://{}", self.addr);
        let ch = Channel::from_shared(url).unwrap().connect().await.unwrap();
        ChatModelServiceClient::new(ch)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.handle.abort();
    }
}

fn echo_request(text: &str) -> pb::ChatRequest {
    pb::ChatRequest {
        model: "fake:echo".to_string(),
        messages: vec![pb::Message {
            role: pb::Role::User as i32,
            content: vec![pb::ContentBlock {
                block: Some(pb::content_block::Block::Text(text.to_string())),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

async fn echo(client: &mut ChatModelServiceClient<Channel>, text: &str) {
    let m = timeout(EVENTUALLY, client.invoke(echo_request(text)))
        .await
        .expect("the call was not answered")
        .expect("the call failed")
        .into_inner();
    assert_eq!(
        m.content[0].block,
        Some(pb::content_block::Block::Text(text.to_string()))
    );
}

/// Reads until the peer closes (EOF or reset); returns what it sent first.
/// Panics if the connection is still open after `EVENTUALLY`.
async fn until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = timeout(EVENTUALLY, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server kept a connection open for {EVENTUALLY:?}"
    );
    got
}

/// One HTTP/2 frame: (type, flags, payload); None when the peer closed.
async fn read_frame(s: &mut TcpStream) -> Option<(u8, u8, Vec<u8>)> {
    let mut h = [0u8; 9];
    s.read_exact(&mut h).await.ok()?;
    let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await.ok()?;
    Some((h[3], h[4], payload))
}

fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags, 0, 0, 0, 0];
    f.extend_from_slice(payload);
    f
}

const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const ACK: u8 = 0x1;

/// Log lines written while `f` runs on this thread.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let logs = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || logs.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn lines(&self, level: &str, containing: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(level) && l.contains(containing))
            .count()
    }
}

fn settings(max_connections: usize) -> Settings {
    Settings {
        max_connections,
        preface_timeout: Duration::from_secs(60),
        tls: false,
    }
}

// ---------------------------------------------------------------- TCP_NODELAY

#[tokio::test]
async fn accepted_sockets_have_tcp_nodelay() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut incoming = Incoming::new(listener, settings(10));
    let _client = TcpStream::connect(addr).await.unwrap();
    let conn = timeout(EVENTUALLY, incoming.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(conn.get_ref().nodelay().unwrap(), "TCP_NODELAY is off");
}

// ---------------------------------------------------------------- preface deadline

#[tokio::test]
async fn a_connection_that_never_speaks_is_closed_and_others_are_served() {
    let srv = Server::start(Config {
        preface_timeout: Duration::from_millis(200),
        ..Config::default()
    })
    .await;
    let mut silent = TcpStream::connect(srv.addr).await.unwrap();
    let mut client = srv.client().await;
    echo(&mut client, "while a silent one waits").await;
    until_closed(&mut silent).await;
    echo(&mut client, "after it was closed").await;
}

#[tokio::test]
async fn a_connection_that_sent_the_preface_may_idle() {
    let srv = Server::start(Config {
        preface_timeout: Duration::from_millis(200),
        ..Config::default()
    })
    .await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, &[]));
    s.write_all(&hello).await.unwrap();
    // The server's SETTINGS: the connection is being served.
    timeout(EVENTUALLY, async {
        loop {
            match read_frame(&mut s).await {
                Some((SETTINGS, 0, _)) => break,
                Some(_) => {}
                None => panic!("closed before the server's SETTINGS"),
            }
        }
    })
    .await
    .unwrap();
    s.write_all(&frame(SETTINGS, ACK, &[])).await.unwrap();

    // Idle for five times the preface deadline, then ping: still answered.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let payload = *b"chatwire";
    s.write_all(&frame(PING, 0, &payload)).await.unwrap();
    timeout(EVENTUALLY, async {
        loop {
            match read_frame(&mut s).await {
                Some((PING, ACK, p)) => break assert_eq!(p, payload),
                Some(_) => {}
                None => panic!("an idle connection that sent the preface was closed"),
            }
        }
    })
    .await
    .unwrap();
}

/// A certificate for "localhost" signed by a fresh CA, written to a temp dir.
fn tls_files() -> (chatwire::config::TlsFiles, String, std::path::PathBuf) {
    let ca = common::test_ca();
    let (cert, key) = common::issue(&ca, "localhost");
    let dir = std::env::temp_dir().join(format!("chatwire-listen-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, pem: String| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p
    };
    let files = chatwire::config::TlsFiles {
        cert: write("server.pem", cert.pem()),
        key: write("server.key", key.serialize_pem()),
        client_ca: None,
    };
    (files, ca.pem(), dir)
}

fn tls_channel(port: u16, ca_pem: &str) -> tonic::transport::Endpoint {
    Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca_pem))
                .domain_name("localhost"),
        )
        .unwrap()
}

#[tokio::test]
async fn a_tls_handshake_that_stalls_after_the_client_hello_is_closed() {
    let (files, ca_pem, dir) = tls_files();
    let srv = Server::start(Config {
        tls: Some(files),
        preface_timeout: Duration::from_secs(2),
        ..Config::default()
    })
    .await;

    // A real ClientHello, recorded from tonic's TLS client.
    let recorder = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = recorder.local_addr().unwrap().port();
    let endpoint = tls_channel(port, &ca_pem);
    let dialer = tokio::spawn(async move { endpoint.connect().await });
    let (mut s, _) = timeout(EVENTUALLY, recorder.accept())
        .await
        .unwrap()
        .unwrap();
    let mut hello = vec![0u8; 5];
    s.read_exact(&mut hello).await.unwrap();
    assert_eq!(hello[0], 0x16, "not a TLS handshake record");
    let len = usize::from(u16::from_be_bytes([hello[3], hello[4]]));
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.unwrap();
    hello.extend(body);
    dialer.abort();
    assert!(hello.len() > listen::PREFACE_LEN);

    // Replayed, then silence: the server answers, then closes.
    let mut stalled = TcpStream::connect(srv.addr).await.unwrap();
    stalled.write_all(&hello).await.unwrap();
    let answer = until_closed(&mut stalled).await;
    assert_eq!(
        answer.first(),
        Some(&0x16),
        "the server sent no ServerHello"
    );

    // A real TLS client is served.
    let ch = timeout(EVENTUALLY, tls_channel(srv.addr.port(), &ca_pem).connect())
        .await
        .unwrap()
        .unwrap();
    echo(&mut ChatModelServiceClient::new(ch), "over tls").await;
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------- connection cap

#[tokio::test]
async fn at_the_cap_new_connections_wait_in_the_backlog_until_one_closes() {
    let srv = Server::start(Config {
        max_connections: 2,
        // The silent connections must outlive the test.
        preface_timeout: Duration::from_secs(600),
        ..Config::default()
    })
    .await;
    // Two silent connections take both slots (accepted in backlog order).
    let first = TcpStream::connect(srv.addr).await.unwrap();
    let _second = TcpStream::connect(srv.addr).await.unwrap();
    let mut client = srv.client().await;

    // The third is not served: no answer, and no error either (it is not
    // accepted and closed, it waits).
    let waiting = timeout(
        Duration::from_millis(500),
        client.invoke(echo_request("third")),
    )
    .await;
    assert!(
        waiting.is_err(),
        "a connection over the cap was answered: {waiting:?}"
    );

    // One closes: the waiting connection is accepted and served.
    drop(first);
    echo(&mut client, "third, later").await;
}

#[tokio::test]
async fn a_slot_is_released_when_the_connection_is_dropped() {
    let logs = Logs::default();
    let _g = logs.capture();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut incoming = Incoming::new(listener, settings(1));
    let _a = TcpStream::connect(addr).await.unwrap();
    let _b = TcpStream::connect(addr).await.unwrap();
    let a = timeout(EVENTUALLY, incoming.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(incoming.open_connections(), 1);
    for _ in 0..3 {
        let at_cap = timeout(Duration::from_millis(100), incoming.next()).await;
        assert!(at_cap.is_err(), "accepted over the cap");
    }
    assert_eq!(logs.lines("WARN", "connection cap reached"), 1);
    drop(a);
    assert_eq!(incoming.open_connections(), 0);
    let b = timeout(EVENTUALLY, incoming.next())
        .await
        .expect("the slot was not released")
        .unwrap()
        .unwrap();
    assert_eq!(incoming.open_connections(), 1);
    drop(b);
}

// ---------------------------------------------------------------- accept errors

#[test]
fn backoff_doubles_from_5ms_to_1s_and_resets() {
    let mut b = Backoff::default();
    let ms: Vec<u128> = (0..11).map(|_| b.next_delay().as_millis()).collect();
    assert_eq!(
        ms,
        [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000],
        "backoff sequence"
    );
    b.reset();
    assert_eq!(b.next_delay(), Duration::from_millis(5));
}

/// A listener whose first `fail` accepts fail with EMFILE.
struct Failing {
    listener: TcpListener,
    fail: usize,
    calls: Arc<AtomicUsize>,
}

impl Accept for Failing {
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<TcpStream>> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n < self.fail {
            return Poll::Ready(Err(io::Error::from_raw_os_error(24)));
        }
        Accept::poll_accept(&mut self.listener, cx)
    }
}

#[tokio::test]
async fn failing_accepts_back_off_and_warn_rate_limited() {
    let logs = Logs::default();
    let _g = logs.capture();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    // (tokio's paused clock needs its test-util feature, which this crate does
    // not enable: a shorter backoff on the real clock, lower bounds only.)
    let mut incoming = Incoming::new(
        Failing {
            listener,
            fail: 14,
            calls: calls.clone(),
        },
        settings(10),
    )
    .with_backoff(Backoff::new(
        Duration::from_millis(1),
        Duration::from_millis(64),
    ));
    let _client = TcpStream::connect(addr).await.unwrap();

    let t0 = Instant::now();
    let conn = timeout(EVENTUALLY, incoming.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let waited = t0.elapsed();
    // 14 failures, one attempt each, then the accept: no spinning in between,
    // and at least 1+2+…+32 ms, then 64 ms eight times, of sleeping.
    assert_eq!(calls.load(Ordering::SeqCst), 15);
    assert!(
        waited >= Duration::from_millis(575),
        "14 failed accepts retried within {waited:?}"
    );
    // Warned at the first failure, then at most once per WARN_EVERY.
    let warns = logs.lines("WARN", "accept failed");
    let allowed = 1 + waited.as_secs() / listen::WARN_EVERY.as_secs();
    assert!(
        (1..=allowed).contains(&(warns as u64)),
        "{warns} warn lines for 14 failures in {waited:?}"
    );
    assert_eq!(logs.lines("INFO", "accepting again"), 1);
    assert!(conn.get_ref().nodelay().unwrap());
}

// ---------------------------------------------------------------- config

#[test]
fn config_knobs_have_defaults_and_are_checked() {
    let d = Config::default();
    assert_eq!(d.max_connections, 10_000);
    assert_eq!(d.preface_timeout, Duration::from_secs(10));
    let c = Config::from_toml("max_connections = 5\npreface_timeout_secs = 0.25").unwrap();
    assert_eq!(c.max_connections, 5);
    assert_eq!(c.preface_timeout, Duration::from_millis(250));
    assert!(Config::from_toml("max_connections = 0").is_err());
    assert!(Config::from_toml("preface_timeout_secs = 0").is_err());
}
