//! An upstream that speaks HTTP/2 over TLS (as real providers do, by ALPN)
//! and caps the streams open at once on a connection: calls beyond the cap
//! are not parked on the one shared connection until the first-chunk timer
//! fails them; they go out on another connection at once. And the upstream's
//! certificate is trusted only through `upstream_ca`.
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
        let (release, released) = watch::channel(false);
        let (conns, reqs) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, conns, reqs, released) = (
                    acceptor.clone(),
                    conns.clone(),
                    reqs.clone(),
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
                    while let Some(Ok((_request, mut respond))) = h2.accept().await {
                        reqs.fetch_add(1, Ordering::SeqCst);
                        let mut released = released.clone();
                        tokio::spawn(async move {
                            let head = http::Response::builder()
                                .status(200)
                                .header("content-type", "text/event-stream")
                                .body(())
                                .unwrap();
                            let Ok(mut body) = respond.send_response(head, false) else {
                                return;
                            };
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
            release,
        }
    }
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
