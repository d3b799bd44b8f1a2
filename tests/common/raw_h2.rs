//! A raw HTTP/2 client for tests that must see frames and streams as they
//! are (GOAWAY, many streams on one connection), below tonic's channel.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use bytes::{Buf, Bytes, BytesMut};
use chatwire::pb;
use prost::Message;

/// A gRPC request body: one length-prefixed, uncompressed message.
pub fn grpc_body(req: &pb::ChatRequest) -> Bytes {
    let m = req.encode_to_vec();
    let mut b = BytesMut::with_capacity(5 + m.len());
    b.extend_from_slice(&[0]);
    b.extend_from_slice(&(m.len() as u32).to_be_bytes());
    b.extend_from_slice(&m);
    b.freeze()
}

pub fn grpc_request(method: &str) -> http::Request<()> {
    http::Request::builder()
        .method("POST")
        .uri(format!(
            "http://localhost/chatwire.v1.ChatModelService/{method}"
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}

pub type H2Client = h2::client::SendRequest<Bytes>;

pub async fn h2_connect(addr: std::net::SocketAddr) -> H2Client {
    h2_connect_with(addr, h2::client::Builder::new()).await
}

/// Connects with the given client settings (windows, stream limits).
pub async fn h2_connect_with(addr: std::net::SocketAddr, builder: h2::client::Builder) -> H2Client {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, conn) = builder.handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// Sends one request, END_STREAM on the message's DATA frame; returns the
/// response (headers) future's result.
pub fn h2_send(
    client: &mut H2Client,
    method: &str,
    req: &pb::ChatRequest,
) -> Result<h2::client::ResponseFuture, h2::Error> {
    send(client, method, req, true)
}

/// Sends one request as tonic's client does: the message in one DATA frame,
/// END_STREAM in a second, empty one. (Only DATA frames that do not end their
/// stream count against h2's small-frame budget.)
pub fn h2_send_then_end(
    client: &mut H2Client,
    method: &str,
    req: &pb::ChatRequest,
) -> Result<h2::client::ResponseFuture, h2::Error> {
    send(client, method, req, false)
}

fn send(
    client: &mut H2Client,
    method: &str,
    req: &pb::ChatRequest,
    end_with_message: bool,
) -> Result<h2::client::ResponseFuture, h2::Error> {
    let (resp, mut stream) = client.send_request(grpc_request(method), false)?;
    stream.send_data(grpc_body(req), end_with_message)?;
    if !end_with_message {
        stream.send_data(Bytes::new(), true)?;
    }
    Ok(resp)
}

/// Reads a response body to its end: the decoded chunks, and the trailers'
/// (or a trailers-only response's) grpc-status and grpc-message.
pub async fn read_stream(
    resp: h2::client::ResponseFuture,
) -> (Vec<pb::MessageChunk>, String, String) {
    let (chunks, code, message, _) = read_stream_frames(resp).await;
    (chunks, code, message)
}

/// As [`read_stream`], with the number of DATA frames the body came in.
pub async fn read_stream_frames(
    resp: h2::client::ResponseFuture,
) -> (Vec<pb::MessageChunk>, String, String, usize) {
    let resp = match resp.await {
        Ok(r) => r,
        // Sent after the final GOAWAY named a lower last stream: not
        // processed, and the client is told so (h2 reports it as the GOAWAY).
        Err(e) if e.is_go_away() && e.reason() == Some(h2::Reason::NO_ERROR) => {
            return (Vec::new(), "goaway".into(), e.to_string(), 0)
        }
        Err(e) => panic!("response headers: {e:?}"),
    };
    assert_eq!(resp.status(), 200);
    let header = |h: &http::HeaderMap, k: &str| {
        h.get(k)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    if let Some(code) = resp.headers().get("grpc-status") {
        let h = resp.headers();
        return (
            Vec::new(),
            code.to_str().unwrap().into(),
            header(h, "grpc-message"),
            0,
        );
    }
    let mut body = resp.into_body();
    let mut buf = BytesMut::new();
    let mut frames = 0;
    while let Some(d) = body.data().await {
        let d = d.expect("body data");
        frames += 1;
        let _ = body.flow_control().release_capacity(d.len());
        buf.extend_from_slice(&d);
    }
    let trailers = body
        .trailers()
        .await
        .expect("trailers")
        .expect("trailers present");
    let mut chunks = Vec::new();
    let mut b = buf.freeze();
    while b.has_remaining() {
        assert_eq!(b.get_u8(), 0, "uncompressed message");
        let n = b.get_u32() as usize;
        chunks.push(pb::MessageChunk::decode(b.split_to(n)).unwrap());
    }
    (
        chunks,
        header(&trailers, "grpc-status"),
        header(&trailers, "grpc-message"),
        frames,
    )
}
