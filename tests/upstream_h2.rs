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
use chatwire::config::Config;
use common::*;
use serde_json::json;
use tokio::{net::TcpListener, sync::watch};
use tokio_rustls::rustls;

/// The upstream's `SETTINGS_MAX_CONCURRENT_STREAMS` (the RFC's recommended minimum).
const STREAM_LIMIT: u32 = 100;
/// Calls open at once: half as many again as one connection may carry.
const CALLS: usize = 150;

fn event(delta: serde_json::Value, finish: serde_json::Value) -> Bytes {
    let c = json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    Bytes::from(format!("data: {c}\n\n"))
}

/// An OpenAI-compatible upstream over TLS + HTTP/2 (ALPN `h2` only) with a
/// stream limit per connection: every call gets its first token at once, the
/// rest when `release` turns true.
struct H2Upstream {
    url: String,
    ca: PathBuf,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    /// Bytes of long answers the windows have let the upstream send.
    stalled: Arc<AtomicUsize>,
    release: watch::Sender<bool>,
}

impl H2Upstream {
    async fn start() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
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
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let stalled = Arc::new(AtomicUsize::new(0));
        let (release, released) = watch::channel(false);
        let (conns, reqs, sent) = (connections.clone(), requests.clone(), stalled.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, conns, reqs, sent, released) = (
                    acceptor.clone(),
                    conns.clone(),
                    reqs.clone(),
                    sent.clone(),
                    released.clone(),
                );
                tokio::spawn(async move {
                    // A client that does not trust the certificate hangs up here.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    conns.fetch_add(1, Ordering::SeqCst);
                    let Ok(mut h2) = h2::server::Builder::new()
                        .max_concurrent_streams(STREAM_LIMIT)
                        .handshake::<_, Bytes>(tls)
                        .await
                    else {
                        return;
                    };
                    while let Some(Ok((request, mut respond))) = h2.accept().await {
                        reqs.fetch_add(1, Ordering::SeqCst);
                        let mut released = released.clone();
                        let stalled = sent.clone();
                        tokio::spawn(async move {
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
                                // A long answer, sent as fast as flow control lets it.
                                let text = "x".repeat(STALL_EVENT);
                                for _ in 0..STALL_BYTES / STALL_EVENT {
                                    let ev = event(json!({"content": text}), json!(null));
                                    body.reserve_capacity(ev.len());
                                    while body.capacity() < ev.len() {
                                        let granted =
                                            std::future::poll_fn(|cx| body.poll_capacity(cx)).await;
                                        if !matches!(granted, Some(Ok(_))) {
                                            return;
                                        }
                                    }
                                    stalled.fetch_add(ev.len(), Ordering::SeqCst);
                                    let _ = body.send_data(ev, false);
                                }
                                let _ =
                                    body.send_data(Bytes::from_static(b"data: [DONE]\n\n"), true);
                                return;
                            }
                            let _ = body
                                .send_data(event(json!({"content": "first"}), json!(null)), false);
                            let _ = released.wait_for(|r| *r).await;
                            let _ = body
                                .send_data(event(json!({"content": " rest"}), json!(null)), false);
                            let _ = body.send_data(event(json!({}), json!("stop")), false);
                            let _ = body.send_data(Bytes::from_static(b"data: [DONE]\n\n"), true);
                        });
                    }
                });
            }
        });
        Self {
            url,
            ca: ca_path,
            connections,
            requests,
            stalled,
            release,
        }
    }
}

/// A prompt holding this gets a long answer ([`STALL_BYTES`]) at once.
const STALL: &str = "stall";
const STALL_BYTES: usize = 4 << 20;
const STALL_EVENT: usize = 64 << 10;

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
    // Long enough for 150 calls in a debug build; what a parked call would meet.
    c.timers.first_chunk = Duration::from_secs(10);
    c
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

    // Every call open at once, each reporting its first chunk (or its failure).
    let (first_tx, mut first_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut calls = Vec::new();
    for i in 0..CALLS {
        let mut client = client.clone();
        let first_tx = first_tx.clone();
        calls.push(tokio::spawn(async move {
            let mut s = match client.stream(text_request("openai:gpt-x", "hi")).await {
                Ok(r) => r.into_inner(),
                Err(e) => {
                    let _ = first_tx.send(Err(format!("call {i}: {e:?}")));
                    return (Vec::new(), Some(e));
                }
            };
            let mut chunks = Vec::new();
            let mut status = None;
            while let Some(item) = futures_util::StreamExt::next(&mut s).await {
                match item {
                    Ok(c) => {
                        if chunks.is_empty() {
                            let _ = first_tx.send(Ok(()));
                        }
                        chunks.push(c);
                    }
                    Err(e) => {
                        let _ = first_tx.send(Err(format!("call {i}: {e:?}")));
                        status = Some(e);
                        break;
                    }
                }
            }
            (chunks, status)
        }));
    }
    drop(first_tx);

    // Every call has its first token while none has been let finish: none
    // waited for another's stream to free.
    let mut firsts = 0;
    while firsts < CALLS {
        match tokio::time::timeout(Duration::from_secs(60), first_rx.recv()).await {
            Ok(Some(Ok(()))) => firsts += 1,
            Ok(Some(Err(e))) => panic!("after {firsts} first chunks, a call failed: {e}"),
            Ok(None) => panic!("the calls ended with {firsts} first chunks"),
            Err(_) => panic!("only {firsts} of {CALLS} calls got their first chunk"),
        }
    }
    assert_eq!(up.requests.load(Ordering::SeqCst), CALLS);
    let connections = up.connections.load(Ordering::SeqCst);
    assert!(
        connections >= CALLS.div_ceil(STREAM_LIMIT as usize),
        "{CALLS} calls over {connections} HTTP/2 connection(s) with a limit of {STREAM_LIMIT} streams each"
    );

    up.release.send(true).unwrap();
    for call in calls {
        let (chunks, status) = call.await.unwrap();
        assert!(status.is_none(), "{status:?}");
        assert_eq!(chunk_text(&chunks), "first rest");
    }
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_that_stop_reading_do_not_stall_other_calls_on_the_shared_connection() {
    let up = H2Upstream::start().await;
    up.release.send(true).unwrap();
    let srv = TestServer::start(
        config(Some(up.ca.clone())),
        env(&[("OPENAI_BASE_URL", &up.url), ("OPENAI_API_KEY", "sk-test")]),
    )
    .await;
    // Four callers (a connection each, as separate clients would be) ask for
    // long answers and then read nothing: what chatwire cannot pass on waits
    // in its upstream stream's receive window, on the upstream connection the
    // other calls share.
    let mut stalled = Vec::new();
    for _ in 0..4 {
        // A caller's HTTP/2 windows at the protocol's 64 KiB default.
        let channel = tonic::transport::Channel::from_shared(srv.url())
            .unwrap()
            .initial_stream_window_size(65_535)
            .initial_connection_window_size(65_535)
            .connect()
            .await
            .unwrap();
        let mut client =
            chatwire::pb::chat_model_service_client::ChatModelServiceClient::new(channel);
        let mut s = client
            .stream(text_request("openai:gpt-x", STALL))
            .await
            .unwrap()
            .into_inner();
        let first = futures_util::StreamExt::next(&mut s)
            .await
            .unwrap()
            .unwrap();
        assert!(chunk_text(&[first]).starts_with('x'));
        stalled.push((client, s));
    }
    // Until the upstream has sent all the windows let it.
    let mut sent = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = up.stalled.load(Ordering::SeqCst);
        if now == sent {
            break;
        }
        sent = now;
    }
    assert!(
        sent < 4 * STALL_BYTES,
        "the long answers were held up ({sent} bytes sent)"
    );

    // Another caller's call on the same upstream connection still streams.
    let mut client = srv.client().await;
    let (chunks, status) = collect_stream(&mut client, text_request("openai:gpt-x", "hi")).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(chunk_text(&chunks), "first rest");
    assert_eq!(
        up.connections.load(Ordering::SeqCst),
        1,
        "the calls shared one upstream connection"
    );
    drop(stalled);
}
