//! Browsers and probes: gRPC-Web (HTTP/1.1 and HTTP/2) through a plain HTTP
//! client, CORS, the playground page, and the plaintext health-only listener.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use chatwire::{config::Config, pb, server};
use common::*;
use futures_util::StreamExt;
use prost::Message;
use tokio::net::TcpListener;
use tonic::{transport::Channel, Code};
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

fn script(chunks: usize, delay_ms: u64, fail: Option<serde_json::Value>) -> pb::ChatRequest {
    let chunks: Vec<serde_json::Value> = (0..chunks)
        .map(|i| serde_json::json!({"text": format!("t{i} ")}))
        .collect();
    let mut s = serde_json::json!({"chunks": chunks, "delayMs": delay_ms});
    if let Some(f) = fail {
        s["fail"] = f;
    }
    text_request("fake:script", &s.to_string())
}

/// One gRPC-Web request body: a data frame (flag 0, 4-byte length, message).
fn web_body(m: &impl Message) -> Vec<u8> {
    let m = m.encode_to_vec();
    let mut b = vec![0u8];
    b.extend_from_slice(&(m.len() as u32).to_be_bytes());
    b.extend_from_slice(&m);
    b
}

/// A gRPC-Web response as a browser's script sees it.
#[derive(Debug, Default)]
struct WebResponse {
    http_status: u16,
    headers: reqwest::header::HeaderMap,
    /// Data frames' payloads, in order.
    messages: Vec<Bytes>,
    /// The trailer frame's lines, parsed (lower-case names).
    trailers: Vec<(String, String)>,
    /// Trailer frames seen (exactly one is right for a streamed answer).
    trailer_frames: usize,
    /// Body reads it took (a streamed answer arrives in many).
    reads: usize,
}

impl WebResponse {
    /// grpc-status / grpc-message from the trailer frame, or from the headers
    /// of a trailers-only response.
    fn status(&self) -> (String, String) {
        let find = |k: &str| {
            self.trailers
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .or_else(|| self.headers.get(k).map(|v| v.to_str().unwrap().to_string()))
                .unwrap_or_default()
        };
        (find("grpc-status"), find("grpc-message"))
    }

    fn trailer(&self, k: &str) -> Option<&str> {
        self.trailers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    fn chunks(&self) -> Vec<pb::MessageChunk> {
        self.messages
            .iter()
            .map(|m| pb::MessageChunk::decode(m.clone()).unwrap())
            .collect()
    }
}

/// Posts one gRPC-Web call and parses the framed response as it streams in
/// (frames split across reads are reassembled; the trailer frame is the
/// flag-0x80 frame of `name: value\r\n` lines).
async fn grpc_web(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    body: Vec<u8>,
    extra: &[(&str, &str)],
) -> WebResponse {
    let mut req = client
        .post(format!("{base}/chatwire.v1.ChatModelService/{method}"))
        .header("content-type", "application/grpc-web+proto")
        .header("accept", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(body);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let mut out = WebResponse {
        http_status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        ..Default::default()
    };
    let mut stream = resp.bytes_stream();
    let mut buf = BytesMut::new();
    while let Some(piece) = stream.next().await {
        let piece = piece.unwrap();
        out.reads += 1;
        buf.extend_from_slice(&piece);
        while buf.len() >= 5 {
            let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
            if buf.len() < 5 + len {
                break;
            }
            let flag = buf[0];
            buf.advance(5);
            let payload = buf.split_to(len).freeze();
            match flag {
                0 => {
                    assert_eq!(out.trailer_frames, 0, "a data frame after the trailers");
                    out.messages.push(payload);
                }
                0x80 => {
                    out.trailer_frames += 1;
                    for line in std::str::from_utf8(&payload).unwrap().split("\r\n") {
                        if let Some((k, v)) = line.split_once(':') {
                            out.trailers
                                .push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                        }
                    }
                }
                f => panic!("unexpected frame flag {f:#x}"),
            }
        }
    }
    assert!(buf.is_empty(), "a partial frame at the end: {buf:?}");
    out
}

fn http1() -> reqwest::Client {
    reqwest::Client::builder().http1_only().build().unwrap()
}

fn h2c() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
}

#[tokio::test]
async fn grpc_web_over_http1_streams_chunks_then_a_trailer_frame() {
    let srv = TestServer::start(Config::default(), env(&[])).await;
    srv.channel().await;
    let r = grpc_web(
        &http1(),
        &srv.url(),
        "Stream",
        web_body(&script(6, 80, None)),
        &[],
    )
    .await;
    assert_eq!(r.http_status, 200);
    assert_eq!(
        r.headers["content-type"], "application/grpc-web+proto",
        "{:?}",
        r.headers
    );
    let chunks = r.chunks();
    assert_eq!(chunk_text(&chunks), "t0 t1 t2 t3 t4 t5 ");
    assert!(chunks.last().unwrap().last);
    // Streamed as produced, not buffered to the end: the 6 chunks, 80 ms
    // apart, arrive in separate reads.
    assert!(r.reads >= 6, "{} reads", r.reads);
    assert_eq!(r.trailer_frames, 1);
    assert_eq!(r.status(), ("0".to_string(), String::new()));

    // The same over HTTP/2 (cleartext, prior knowledge) on the same port.
    let r = grpc_web(
        &h2c(),
        &srv.url(),
        "Stream",
        web_body(&script(3, 0, None)),
        &[],
    )
    .await;
    assert_eq!(chunk_text(&r.chunks()), "t0 t1 t2 ");
    assert_eq!(r.status().0, "0");

    // A unary call, ListModels, decodes too.
    let r = grpc_web(
        &http1(),
        &srv.url(),
        "ListModels",
        web_body(&pb::ListModelsRequest {}),
        &[],
    )
    .await;
    assert_eq!(r.status().0, "0");
    let list = pb::ListModelsResponse::decode(r.messages[0].clone()).unwrap();
    assert!(
        list.models.iter().any(|m| m.name == "fake:echo"),
        "{list:?}"
    );
}

#[tokio::test]
async fn grpc_web_errors_arrive_as_status_with_details() {
    let srv = TestServer::start(Config::default(), env(&[])).await;
    srv.channel().await;
    // Mid-stream: two chunks, then the trailer frame carries the error.
    let fail =
        serde_json::json!({"afterChunks": 2, "code": "RESOURCE_EXHAUSTED", "message": "scripted"});
    let r = grpc_web(
        &http1(),
        &srv.url(),
        "Stream",
        web_body(&script(5, 0, Some(fail))),
        &[],
    )
    .await;
    assert_eq!(r.http_status, 200);
    assert_eq!(chunk_text(&r.chunks()), "t0 t1 ");
    assert_eq!(r.trailer_frames, 1);
    let (code, message) = r.status();
    assert_eq!(code, "8", "RESOURCE_EXHAUSTED: {message}");
    assert!(message.contains("scripted"), "{message}");
    let details = r
        .trailer("grpc-status-details-bin")
        .expect("error details travel in the trailer frame");
    assert!(!details.is_empty());

    // Before any message: an unknown model.
    let r = grpc_web(
        &http1(),
        &srv.url(),
        "Stream",
        web_body(&text_request("nope:nothing", "hi")),
        &[],
    )
    .await;
    assert!(r.messages.is_empty());
    assert_eq!(r.status().0, "5", "NOT_FOUND: {r:?}");

    // Plain gRPC over HTTP/1.1 is not served: only gRPC-Web is.
    let resp = http1()
        .post(format!("{}/chatwire.v1.ChatModelService/Invoke", srv.url()))
        .header("content-type", "application/grpc")
        .body(web_body(&text_request("fake:echo", "x")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn grpc_web_keeps_auth_and_request_limits() {
    let config = Config {
        max_request_bytes: 64 * 1024,
        ..Config::default()
    };
    let srv = TestServer::start(config, env(&[])).await;
    srv.channel().await;
    let big = text_request("fake:echo", &"y".repeat(200 * 1024));
    let r = grpc_web(&http1(), &srv.url(), "Invoke", web_body(&big), &[]).await;
    assert_eq!(r.status().0, "11", "OUT_OF_RANGE: {r:?}");

    let mut config = Config::default();
    config
        .resolve_auth(&env(&[("CHATWIRE_API_KEYS", "s3cret-token")]))
        .unwrap();
    let srv = TestServer::start(config, env(&[])).await;
    srv.channel().await;
    let req = web_body(&text_request("fake:echo", "hi"));
    let r = grpc_web(&http1(), &srv.url(), "Invoke", req.clone(), &[]).await;
    assert_eq!(r.status().0, "16", "UNAUTHENTICATED: {r:?}");
    let r = grpc_web(
        &http1(),
        &srv.url(),
        "Invoke",
        req,
        &[("authorization", "Bearer s3cret-token")],
    )
    .await;
    assert_eq!(r.status().0, "0", "{r:?}");
}

async fn preflight(base: &str, origin: &str) -> reqwest::Response {
    http1()
        .request(
            reqwest::Method::OPTIONS,
            format!("{base}/chatwire.v1.ChatModelService/StreamEvents"),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-grpc-web,x-user-agent,authorization",
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn cors_allows_configured_origins_only_and_is_closed_by_default() {
    let allowed = "https://app.example.com";
    let config = Config {
        cors_origins: vec![allowed.to_string()],
        ..Config::default()
    };
    let srv = TestServer::start(config, env(&[])).await;
    srv.channel().await;
    let r = preflight(&srv.url(), allowed).await;
    assert!(r.status().is_success(), "{}", r.status());
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], allowed);
    let allow_headers = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_string();
    for needed in ["content-type", "x-grpc-web", "authorization"] {
        assert!(allow_headers.contains(needed), "{allow_headers}");
    }
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    assert!(h.get("access-control-allow-credentials").is_none());

    // The call itself: the status headers are readable by the page.
    let r = grpc_web(
        &http1(),
        &srv.url(),
        "Stream",
        web_body(&script(2, 0, None)),
        &[("origin", allowed)],
    )
    .await;
    assert_eq!(r.headers["access-control-allow-origin"], allowed);
    let exposed = r.headers["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_string();
    for h in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        assert!(exposed.contains(h), "{exposed}");
    }

    // Another origin (even a look-alike) gets no allow-origin: the browser refuses.
    for other in [
        "https://evil.example.com",
        "https://app.example.com.evil.net",
        "http://app.example.com",
        "null",
    ] {
        let r = preflight(&srv.url(), other).await;
        assert!(
            r.headers().get("access-control-allow-origin").is_none(),
            "{other}: {:?}",
            r.headers()
        );
    }

    // Default: no origin allowed at all.
    let srv = TestServer::start(Config::default(), env(&[])).await;
    srv.channel().await;
    let r = preflight(&srv.url(), allowed).await;
    assert!(
        r.headers().get("access-control-allow-origin").is_none(),
        "{:?}",
        r.headers()
    );
}

#[tokio::test]
async fn the_playground_is_served_only_when_enabled() {
    let srv = TestServer::start(Config::default(), env(&[])).await;
    srv.channel().await;
    for path in ["/", "/playground"] {
        let r = http1()
            .get(format!("{}{path}", srv.url()))
            .send()
            .await
            .unwrap();
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        assert!(!ct.starts_with("text/html"), "{path}: {ct}");
    }

    let config = Config {
        playground: true,
        ..Config::default()
    };
    let srv = TestServer::start(config, env(&[])).await;
    srv.channel().await;
    for path in ["/", "/playground"] {
        let r = http1()
            .get(format!("{}{path}", srv.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(csp.contains("connect-src 'self'"), "{csp}");
        let html = r.text().await.unwrap();
        assert!(html.contains("chatwire playground"));
        assert!(html.contains("application/grpc-web+proto"));
    }
    let r = http1()
        .post(format!("{}/playground", srv.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    // gRPC is untouched beside it.
    let mut c = srv.client().await;
    let (chunks, status) = collect_stream(&mut c, text_request("fake:echo", "a b")).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(chunk_text(&chunks), "a b");
}

#[tokio::test]
async fn http1_connections_still_meet_the_preface_deadline() {
    let config = Config {
        preface_timeout: Duration::from_millis(300),
        ..Config::default()
    };
    let srv = TestServer::start(config, env(&[])).await;
    srv.channel().await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    // Fewer than 24 bytes of a request head, then silence.
    s.write_all(b"POST /chatwire").await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("the server closes a connection stalled before 24 bytes");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
}

async fn health_check(addr: std::net::SocketAddr, service: &str) -> Result<i32, tonic::Status> {
    // A new connection per check, as kubelet's probe does.
    let ch = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    HealthClient::new(ch)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .map(|r| r.into_inner().status)
}

/// The server with a health-only listener, both on 127.0.0.1:0, once the
/// health port answers SERVING: (main address, health address, the shutdown
/// trigger, the server's task).
async fn serve_with_health() -> (
    std::net::SocketAddr,
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), chatwire::error::Error>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let health_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let health_addr = health_listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(server::run_with_health(
        Config::default(),
        env(&[]),
        listener,
        Some(health_listener),
        async move {
            let _ = rx.await;
        },
    ));
    let mut up = Err(tonic::Status::unavailable("not yet"));
    for _ in 0..100 {
        up = health_check(health_addr, "").await;
        if up.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(up.unwrap(), ServingStatus::Serving as i32);
    (addr, health_addr, tx, handle)
}

#[tokio::test]
async fn the_health_only_listener_serves_health_and_nothing_else_through_the_drain() {
    let (addr, health_addr, tx, handle) = serve_with_health().await;
    let serving = ServingStatus::Serving as i32;
    assert_eq!(
        health_check(health_addr, "chatwire.v1.ChatModelService")
            .await
            .unwrap(),
        serving
    );
    assert_eq!(
        health_check(health_addr, "no.such.Service")
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );

    // Nothing else there: the chat service and reflection are UNIMPLEMENTED.
    let ch = Channel::from_shared(format!("http://{health_addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut chat = pb::chat_model_service_client::ChatModelServiceClient::new(ch.clone());
    let e = chat
        .invoke(text_request("fake:echo", "hi"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented, "{e:?}");
    let e = chat
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented, "{e:?}");
    let mut grpc = tonic::client::Grpc::new(ch);
    grpc.ready().await.unwrap();
    let e = grpc
        .unary::<pb::ListModelsRequest, pb::ListModelsResponse, _>(
            tonic::Request::new(pb::ListModelsRequest {}),
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
                .parse()
                .unwrap(),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented, "{e:?}");

    // A stream in flight on the main port keeps the drain going.
    let mut main = ChatModelServiceClientExt::connect(addr).await;
    let mut s = main
        .stream(script(10, 100, None))
        .await
        .unwrap()
        .into_inner();
    s.next().await.unwrap().unwrap();
    tx.send(()).unwrap();
    // The health port keeps answering, NOT_SERVING, while the main port has
    // closed its listener.
    let mut status = health_check(health_addr, "").await.unwrap();
    for _ in 0..50 {
        if status != serving {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        status = health_check(health_addr, "").await.unwrap();
    }
    assert_eq!(status, ServingStatus::NotServing as i32);
    assert_eq!(
        health_check(health_addr, "chatwire.v1.ChatModelService")
            .await
            .unwrap(),
        ServingStatus::NotServing as i32
    );
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    while let Some(c) = s.next().await {
        c.expect("the in-flight stream completes");
    }
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // Gone with the server (its task is aborted as `run` returns).
    let mut closed = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(health_addr).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(closed, "the health listener closes with the server");
}

/// The health port asks no auth: anyone who reaches it can open connections
/// and leave them idle. Past its cap of 64 a new connection closes the oldest,
/// so a probe is still answered after 200 idle connections were opened (with
/// a cap that waited for a free slot, every probe hung).
#[tokio::test]
async fn idle_connections_cannot_keep_probes_off_the_health_port() {
    use tokio::io::AsyncWriteExt;
    let (_, health_addr, tx, handle) = serve_with_health().await;
    let serving = ServingStatus::Serving as i32;

    // Idle HTTP/2 connections, past the preface deadline's reach: the client
    // preface and an empty SETTINGS frame, then nothing.
    let mut held = Vec::new();
    for _ in 0..200 {
        let mut c = tokio::net::TcpStream::connect(health_addr).await.unwrap();
        c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .await
            .unwrap();
        held.push(c);
        // Each is accepted (and served) before the next, as a slow attacker's would be.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for i in 0..3 {
        let probe =
            tokio::time::timeout(Duration::from_secs(10), health_check(health_addr, "")).await;
        assert_eq!(
            probe
                .map_err(|_| "timed out")
                .and_then(|r| r.map_err(|_| "failed")),
            Ok(serving),
            "probe {i} with 200 idle connections opened"
        );
    }
    drop(held);

    // A long-lived connection that spoke (a Watch subscriber, a load
    // balancer's checker) outlives bare TCP connects that never sent the
    // preface: those are closed first. (Raw HTTP/2: tonic's channel would
    // reconnect unseen.)
    let health_check_raw = |h2: &mut common::raw_h2::H2Client| {
        let req = http::Request::builder()
            .method("POST")
            .uri("http://localhost/grpc.health.v1.Health/Check")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (resp, mut stream) = h2.send_request(req, false)?;
        let m = HealthCheckRequest {
            service: String::new(),
        }
        .encode_to_vec();
        let mut body = vec![0u8];
        body.extend_from_slice(&(m.len() as u32).to_be_bytes());
        body.extend_from_slice(&m);
        stream.send_data(Bytes::from(body), true)?;
        Ok::<_, h2::Error>(resp)
    };
    let mut kept = common::raw_h2::h2_connect(health_addr).await;
    let resp = health_check_raw(&mut kept).unwrap();
    assert_eq!(resp.await.unwrap().status(), 200);
    let mut silent = Vec::new();
    for _ in 0..200 {
        silent.push(tokio::net::TcpStream::connect(health_addr).await.unwrap());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let again = match health_check_raw(&mut kept) {
        Ok(resp) => tokio::time::timeout(Duration::from_secs(10), resp)
            .await
            .map_err(|_| "timed out".to_string())
            .and_then(|r| r.map(|r| r.status().as_u16()).map_err(|e| e.to_string())),
        Err(e) => Err(e.to_string()),
    };
    assert_eq!(
        again,
        Ok(200),
        "the connection that spoke was kept through 200 silent connects"
    );
    drop(silent);
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

struct ChatModelServiceClientExt;

impl ChatModelServiceClientExt {
    async fn connect(
        addr: std::net::SocketAddr,
    ) -> pb::chat_model_service_client::ChatModelServiceClient<Channel> {
        let ch = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        pb::chat_model_service_client::ChatModelServiceClient::new(ch)
    }
}
