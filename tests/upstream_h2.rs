//! An upstream that speaks HTTP/2 over TLS (as real providers do, by ALPN)
//! and caps the streams open at once on a connection: calls beyond the cap
//! are not parked on the one shared connection until the first-chunk timer
//! fails them; they go out on another connection at once. Callers who stop
//! reading do not stall the other calls on a shared connection (flow-control
//! windows). And the upstream's certificate is trusted only through `upstream_ca`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use bytes::Bytes;
use chatwire::{config::Config, pb::chat_model_service_client::ChatModelServiceClient};
use common::*;
use futures_util::StreamExt;
use serde_json::json;
use tokio::{net::TcpListener, sync::watch};
use tokio_rustls::rustls;

/// The upstream's `SETTINGS_MAX_CONCURRENT_STREAMS` (the RFC's recommended minimum).
const STREAM_LIMIT: u32 = 100;

fn event(delta: serde_json::Value, finish: serde_json::Value) -> Bytes {
    let c = json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    Bytes::from(format!("data: {c}\n\n"))
}

/// A prompt holding this gets a long answer at once, as fast as flow control
/// lets the upstream send it.
const STALL: &str = "stall";
/// Longer than anything the windows let through: the answer never ends.
const STALL_EVENTS: usize = 4096;
const STALL_EVENT_TEXT: usize = 1024;
/// The answer's DATA frames: an upstream writing its events in small pieces.
const STALL_FRAME: usize = 16;

/// An OpenAI-compatible upstream over TLS + HTTP/2 (ALPN `h2` only) with a
/// stream limit per connection: every call gets its first token at once, the
/// rest when `release` turns true; a `STALL` prompt gets a long answer in
/// small frames.
struct H2Upstream {
    url: String,
    ca: PathBuf,
    /// Connections that carried at least one request (a client's handshakes
    /// that lost the race to an already shared connection carry none).
    used_connections: Arc<AtomicUsize>,
    /// TCP connections accepted, whatever became of them (counted before
    /// the TLS handshake, so none in progress is missed).
    tcp_connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    /// Bytes of long answers the windows have let the upstream send.
    stalled: Arc<AtomicUsize>,
    release: watch::Sender<bool>,
    dir: PathBuf,
}

#[derive(Clone)]
struct Shared {
    used_connections: Arc<AtomicUsize>,
    tcp_connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    stalled: Arc<AtomicUsize>,
    released: watch::Receiver<bool>,
}

impl H2Upstream {
    async fn start() -> Self {
        let ca = test_ca();
        let (cert, key) = issue(&ca, "127.0.0.1");
        let dir = std::env::temp_dir().join(format!("chatwire-h2up-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_path = dir.join("upstream-ca.pem");
        std::fs::write(&ca_path, ca.pem()).unwrap();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        tls.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}/v1", listener.local_addr().unwrap());
        let (release, released) = watch::channel(false);
        let shared = Shared {
            used_connections: Arc::new(AtomicUsize::new(0)),
            tcp_connections: Arc::new(AtomicUsize::new(0)),
            requests: Arc::new(AtomicUsize::new(0)),
            stalled: Arc::new(AtomicUsize::new(0)),
            released,
        };
        let up = Self {
            url,
            ca: ca_path,
            used_connections: shared.used_connections.clone(),
            tcp_connections: shared.tcp_connections.clone(),
            requests: shared.requests.clone(),
            stalled: shared.stalled.clone(),
            release,
            dir,
        };
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                shared.tcp_connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve_connection(acceptor.clone(), tcp, shared.clone()));
            }
        });
        up
    }
}

impl Drop for H2Upstream {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn serve_connection(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    shared: Shared,
) {
    // A client that does not trust the certificate hangs up here.
    let Ok(tls) = acceptor.accept(tcp).await else {
        return;
    };
    let Ok(mut h2) = h2::server::Builder::new()
        .max_concurrent_streams(STREAM_LIMIT)
        .handshake::<_, Bytes>(tls)
        .await
    else {
        return;
    };
    let mut first = true;
    while let Some(Ok((request, respond))) = h2.accept().await {
        if std::mem::take(&mut first) {
            shared.used_connections.fetch_add(1, Ordering::SeqCst);
        }
        shared.requests.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(answer(request, respond, shared.clone()));
    }
}

async fn answer(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    mut shared: Shared,
) {
    let stall = read_body(request.into_body()).await.contains(STALL);
    let head = http::Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .body(())
        .unwrap();
    let Ok(mut body) = respond.send_response(head, false) else {
        return;
    };
    if stall {
        let text = "x".repeat(STALL_EVENT_TEXT);
        for _ in 0..STALL_EVENTS {
            let ev = event(json!({"content": text}), json!(null));
            for piece in ev.chunks(STALL_FRAME) {
                body.reserve_capacity(piece.len());
                while body.capacity() < piece.len() {
                    let granted = std::future::poll_fn(|cx| body.poll_capacity(cx)).await;
                    if !matches!(granted, Some(Ok(_))) {
                        return;
                    }
                }
                shared.stalled.fetch_add(piece.len(), Ordering::SeqCst);
                if body
                    .send_data(Bytes::copy_from_slice(piece), false)
                    .is_err()
                {
                    return;
                }
            }
        }
        let _ = body.send_data(Bytes::from_static(b"data: [DONE]\n\n"), true);
        return;
    }
    let _ = body.send_data(event(json!({"content": "first"}), json!(null)), false);
    let _ = shared.released.wait_for(|r| *r).await;
    let _ = body.send_data(event(json!({"content": " rest"}), json!(null)), false);
    let _ = body.send_data(event(json!({}), json!("stop")), false);
    let _ = body.send_data(Bytes::from_static(b"data: [DONE]\n\n"), true);
}

/// A request body as text (its flow-control capacity given back as it comes).
async fn read_body(mut body: h2::RecvStream) -> String {
    let mut out = Vec::new();
    while let Some(Ok(data)) = body.data().await {
        let _ = body.flow_control().release_capacity(data.len());
        out.extend_from_slice(&data);
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn config(ca: Option<PathBuf>) -> Config {
    let mut c = Config {
        upstream_ca: ca,
        ..Config::default()
    };
    // What a parked call would meet (long enough for a loaded debug build).
    c.timers.first_chunk = Duration::from_secs(60);
    c
}

/// Opens `n` Stream calls at once; each reports its first chunk (or its
/// failure) on `firsts` and returns its chunks and final status.
fn open_calls(
    client: &ChatModelServiceClient<tonic::transport::Channel>,
    n: usize,
    firsts: &tokio::sync::mpsc::UnboundedSender<Result<(), String>>,
) -> Vec<tokio::task::JoinHandle<(Vec<chatwire::pb::MessageChunk>, Option<tonic::Status>)>> {
    (0..n)
        .map(|i| {
            let mut client = client.clone();
            let firsts = firsts.clone();
            tokio::spawn(async move {
                let mut s = match client.stream(text_request("openai:gpt-x", "hi")).await {
                    Ok(r) => r.into_inner(),
                    Err(e) => {
                        let _ = firsts.send(Err(format!("call {i}: {e:?}")));
                        return (Vec::new(), Some(e));
                    }
                };
                let mut chunks = Vec::new();
                while let Some(item) = s.next().await {
                    match item {
                        Ok(c) => {
                            if chunks.is_empty() {
                                let _ = firsts.send(Ok(()));
                            }
                            chunks.push(c);
                        }
                        Err(e) => {
                            let _ = firsts.send(Err(format!("call {i}: {e:?}")));
                            return (chunks, Some(e));
                        }
                    }
                }
                (chunks, None)
            })
        })
        .collect()
}

/// Waits for `n` first chunks; any failure first fails the test.
async fn await_firsts(
    firsts: &mut tokio::sync::mpsc::UnboundedReceiver<Result<(), String>>,
    n: usize,
) {
    for got in 0..n {
        match tokio::time::timeout(Duration::from_secs(120), firsts.recv()).await {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(e))) => panic!("after {got} of {n} first chunks, a call failed: {e}"),
            Ok(None) => panic!("the calls ended with {got} of {n} first chunks"),
            Err(_) => panic!("only {got} of {n} calls got their first chunk"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_an_http2_upstreams_stream_limit_open_another_connection() {
    let up = H2Upstream::start().await;
    let srv = TestServer::start(
        config(Some(up.ca.clone())),
        env(&[("OPENAI_BASE_URL", &up.url), ("OPENAI_API_KEY", "sk-test")]),
    )
    .await;
    let client = srv.client().await;
    let (tx, mut firsts) = tokio::sync::mpsc::unbounded_channel();

    // As many calls as one connection may carry, each with its first token
    // and none let finish: they hold every stream of that connection.
    let limit = STREAM_LIMIT as usize;
    let mut calls = open_calls(&client, limit, &tx);
    await_firsts(&mut firsts, limit).await;
    assert_eq!(up.used_connections.load(Ordering::SeqCst), 1);
    // They reached a cold client at once and shared one connect (without the
    // connect gate, up to one each, all but one then dropped).
    let connects = up.tcp_connections.load(Ordering::SeqCst);
    assert_eq!(
        connects, 1,
        "connections for {limit} calls on a cold client"
    );
    // Half as many again, while the first ones are still streaming: they get
    // their first token too, on another connection, not parked behind them.
    let more = limit / 2;
    calls.extend(open_calls(&client, more, &tx));
    await_firsts(&mut firsts, more).await;
    assert_eq!(up.requests.load(Ordering::SeqCst), limit + more);
    assert_eq!(up.used_connections.load(Ordering::SeqCst), 2);
    // So did the 50 on the new client.
    assert_eq!(
        up.tcp_connections.load(Ordering::SeqCst) - connects,
        1,
        "connections for {more} calls on a new client"
    );

    up.release.send(true).unwrap();
    for call in calls {
        let (chunks, status) = call.await.unwrap();
        assert!(status.is_none(), "{status:?}");
        assert_eq!(chunk_text(&chunks), "first rest");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_that_stop_reading_do_not_stall_or_break_the_shared_connection() {
    const STALLERS: usize = 6;
    let up = H2Upstream::start().await;
    up.release.send(true).unwrap();
    let srv = TestServer::start(
        config(Some(up.ca.clone())),
        env(&[("OPENAI_BASE_URL", &up.url), ("OPENAI_API_KEY", "sk-test")]),
    )
    .await;
    // Callers (a connection each, as separate clients would be, with HTTP/2's
    // default 64 KiB windows) ask for long answers and then read nothing:
    // what chatwire cannot pass on waits in its upstream stream's receive
    // window, in 16-byte DATA frames, on the upstream connection all these
    // calls share.
    let mut stalled = Vec::new();
    for _ in 0..STALLERS {
        let channel = tonic::transport::Channel::from_shared(srv.url())
            .unwrap()
            .initial_stream_window_size(65_535)
            .initial_connection_window_size(65_535)
            .connect()
            .await
            .unwrap();
        let mut client = ChatModelServiceClient::new(channel);
        let mut s = client
            .stream(text_request("openai:gpt-x", STALL))
            .await
            .unwrap()
            .into_inner();
        let first = s.next().await.unwrap().unwrap();
        assert!(chunk_text(&[first]).starts_with('x'));
        stalled.push((client, s));
    }
    // Until the upstream has sent all that the windows let it (no progress
    // for half a second).
    let (mut sent, mut quiet) = (0, 0);
    while quiet < 5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = up.stalled.load(Ordering::SeqCst);
        quiet = if now == sent { quiet + 1 } else { 0 };
        sent = now;
    }
    let answer = STALL_EVENTS * STALL_EVENT_TEXT;
    assert!(
        sent < STALLERS * answer / 2,
        "the long answers were held up ({sent} bytes sent)"
    );

    // Another caller's call on the same upstream connection still streams.
    let mut client = srv.client().await;
    let (chunks, status) = collect_stream(&mut client, text_request("openai:gpt-x", "hi")).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(chunk_text(&chunks), "first rest");
    assert_eq!(
        up.used_connections.load(Ordering::SeqCst),
        1,
        "the calls shared one upstream connection (a second one: the first was closed, as by h2's flood protection)"
    );
    // And the stalled calls are still alive: a caller that reads again gets
    // the rest of its answer from where it stopped.
    let (_, mut s) = stalled.pop().unwrap();
    let more = s.next().await.unwrap().unwrap();
    assert!(chunk_text(&[more]).starts_with('x'));
    drop(stalled);
}

#[tokio::test]
async fn an_upstream_certificate_outside_the_web_roots_needs_upstream_ca() {
    let up = H2Upstream::start().await;
    let srv = TestServer::start(
        config(None),
        env(&[("OPENAI_BASE_URL", &up.url), ("OPENAI_API_KEY", "sk-test")]),
    )
    .await;
    let mut client = srv.client().await;
    let (chunks, status) = collect_stream(&mut client, text_request("openai:gpt-x", "hi")).await;
    let status = status.expect("an untrusted upstream certificate fails the call");
    assert!(chunks.is_empty());
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("certificate"),
        "{}",
        status.message()
    );
    assert_eq!(up.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_bad_upstream_ca_file_stops_the_server_naming_it() {
    let dir = std::env::temp_dir().join(format!("chatwire-badca-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("not-a-ca.pem");
    std::fs::write(&path, "hello\n").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let e = chatwire::server::run(config(Some(path)), env(&[]), listener, async {})
        .await
        .expect_err("the server must not start");
    assert!(e.to_string().contains("not-a-ca.pem"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
