//! Shared test harness: the real server on 127.0.0.1:0 with a real tonic
//! client, and a mock upstream speaking raw HTTP/1.1 (chunked bodies delivered
//! in pieces at chosen split points, optional cuts, observable disconnects);
//! a test CA and certificates for TLS.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

pub mod raw_h2;

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use chatwire::{
    config::Config,
    pb::{self, chat_model_service_client::ChatModelServiceClient},
    server::{self, Env},
};
use futures_util::StreamExt;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{oneshot, Notify},
    task::JoinHandle,
};
use tonic::transport::Channel;

// ---------------------------------------------------------------- server

/// A chatwire server running inside the test.
pub struct TestServer {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), chatwire::error::Error>>>,
}

impl TestServer {
    pub async fn start(config: Config, env: Env) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(server::run(config, env, listener, async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        for _ in 0..100 {
            if let Ok(c) = Channel::from_shared(self.url()).unwrap().connect().await {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("server did not come up on {}", self.addr);
    }

    pub async fn client(&self) -> ChatModelServiceClient<Channel> {
        ChatModelServiceClient::new(self.channel().await)
    }

    /// Triggers shutdown (as SIGTERM does) without waiting.
    pub fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Triggers shutdown and waits for the server to return.
    pub async fn stop(mut self) -> Result<(), chatwire::error::Error> {
        self.trigger_shutdown();
        self.handle.take().unwrap().await.unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.trigger_shutdown();
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

/// An environment snapshot from pairs.
pub fn env(pairs: &[(&str, &str)]) -> Env {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ---------------------------------------------------------------- requests

pub fn text(t: &str) -> pb::ContentBlock {
    pb::ContentBlock {
        block: Some(pb::content_block::Block::Text(t.to_string())),
        ..Default::default()
    }
}

pub fn msg(role: pb::Role, blocks: Vec<pb::ContentBlock>) -> pb::Message {
    pb::Message {
        role: role as i32,
        content: blocks,
        ..Default::default()
    }
}

pub fn text_request(model: &str, user: &str) -> pb::ChatRequest {
    pb::ChatRequest {
        model: model.to_string(),
        messages: vec![msg(pb::Role::User, vec![text(user)])],
        ..Default::default()
    }
}

/// Calls Stream and collects every chunk and the final status (None = OK).
pub async fn collect_stream(
    client: &mut ChatModelServiceClient<Channel>,
    req: impl tonic::IntoRequest<pb::ChatRequest>,
) -> (Vec<pb::MessageChunk>, Option<tonic::Status>) {
    let mut out = Vec::new();
    let mut s = match client.stream(req).await {
        Ok(r) => r.into_inner(),
        Err(e) => return (out, Some(e)),
    };
    while let Some(item) = s.next().await {
        match item {
            Ok(c) => out.push(c),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

/// Calls StreamEvents and collects every event and the final status (None = OK).
pub async fn collect_events(
    client: &mut ChatModelServiceClient<Channel>,
    req: pb::ChatRequest,
) -> (Vec<pb::ChatEvent>, Option<tonic::Status>) {
    let mut out = Vec::new();
    let mut s = match client.stream_events(req).await {
        Ok(r) => r.into_inner(),
        Err(e) => return (out, Some(e)),
    };
    while let Some(item) = s.next().await {
        match item {
            Ok(c) => out.push(c),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

/// Concatenates chunks the way a client would (independent of the server's
/// aggregator): text, refusal and reasoning appended to the content block
/// their `blockIndex` names, tool-call fragments joined by index (the exact
/// arguments text kept), citations collected, usage, stop and finish reasons
/// and response metadata from the last chunk, the provider and the model
/// from the chunks.
pub fn fold(chunks: &[pb::MessageChunk]) -> pb::ChatMessage {
    use pb::{content_block::Block, message_chunk::Delta};
    let mut m = pb::ChatMessage::default();
    let mut calls: Vec<(u32, String, String, String)> = Vec::new();
    for c in chunks {
        if m.id.is_empty() {
            m.id = c.id.clone();
        }
        if m.provider.is_empty() {
            m.provider = c.provider.clone();
        }
        // Every chunk names the model (API 1.1): the fold takes it from them.
        if m.model.is_empty() {
            m.model = c.model.clone();
        }
        let at = c.block_index as usize;
        let new_block = at == m.content.len();
        match &c.delta {
            Some(Delta::Text(t)) => match m.content.get_mut(at).and_then(|b| b.block.as_mut()) {
                Some(Block::Text(prev)) if !new_block => prev.push_str(t),
                _ => m.content.push(pb::ContentBlock {
                    block: Some(Block::Text(t.clone())),
                    ..Default::default()
                }),
            },
            Some(Delta::Refusal(t)) => match m.content.get_mut(at).and_then(|b| b.block.as_mut()) {
                Some(Block::Refusal(prev)) if !new_block => prev.push_str(t),
                _ => m.content.push(pb::ContentBlock {
                    block: Some(Block::Refusal(t.clone())),
                    ..Default::default()
                }),
            },
            Some(Delta::Reasoning(r)) => match m.content.get_mut(at).and_then(|b| b.block.as_mut())
            {
                Some(Block::Reasoning(prev)) if !new_block => {
                    prev.text.push_str(&r.text);
                    prev.signature.push_str(&r.signature);
                }
                _ => m.content.push(pb::ContentBlock {
                    block: Some(Block::Reasoning(pb::Reasoning {
                        text: r.text.clone(),
                        signature: r.signature.clone(),
                        redacted: r.redacted.clone(),
                    })),
                    ..Default::default()
                }),
            },
            Some(Delta::Citation(ct)) => m.citations.push(ct.clone()),
            Some(Delta::ToolCall(t)) => match calls.iter_mut().find(|c| c.0 == t.index) {
                Some(c) => {
                    if c.1.is_empty() {
                        c.1 = t.id.clone();
                    }
                    if c.2.is_empty() {
                        c.2 = t.name.clone();
                    }
                    c.3.push_str(&t.arguments);
                }
                None => calls.push((t.index, t.id.clone(), t.name.clone(), t.arguments.clone())),
            },
            None => {}
        }
        if c.usage.is_some() {
            m.usage = c.usage;
        }
        if c.stop_reason != 0 {
            m.stop_reason = c.stop_reason;
        }
        if !c.finish_reason.is_empty() {
            m.finish_reason = c.finish_reason.clone();
        }
        if !c.stop_sequence.is_empty() {
            m.stop_sequence = c.stop_sequence.clone();
        }
        m.response_metadata.extend(
            c.response_metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    }
    for (_, id, name, args) in calls {
        let raw = if args.trim().is_empty() {
            "{}"
        } else {
            args.as_str()
        };
        match serde_json::from_str::<serde_json::Value>(raw) {
            Ok(serde_json::Value::Object(o)) => m.tool_calls.push(pb::ToolCall {
                id,
                name,
                arguments: Some(chatwire::api::convert::json_to_struct(&o)),
                arguments_json: raw.to_string(),
            }),
            _ => m.invalid_tool_calls.push(pb::InvalidToolCall {
                id,
                name,
                arguments: args,
                error: String::new(),
            }),
        }
    }
    m
}

/// The message with invalid-call errors blanked, to compare with `fold`.
pub fn comparable(m: &pb::ChatMessage) -> pb::ChatMessage {
    let mut m = m.clone();
    for c in &mut m.invalid_tool_calls {
        c.error.clear();
    }
    m
}

/// The text of all `text` chunks.
pub fn chunk_text(chunks: &[pb::MessageChunk]) -> String {
    chunks
        .iter()
        .filter_map(|c| match &c.delta {
            Some(pb::message_chunk::Delta::Text(t)) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

/// The google.rpc.ErrorInfo reason of a status.
pub fn reason(s: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    s.get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}

// ---------------------------------------------------------------- splits

/// Deterministic pseudo-random split points in 1..len (xorshift).
pub fn random_splits(len: usize, seed: u64) -> Vec<usize> {
    if len < 2 {
        return Vec::new();
    }
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let n = (next() % (len as u64).min(64)) as usize + 1;
    let mut v: Vec<usize> = (0..n)
        .map(|_| (next() % (len as u64 - 1)) as usize + 1)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Every position: the body one byte at a time.
pub fn byte_splits(len: usize) -> Vec<usize> {
    (1..len).collect()
}

// ---------------------------------------------------------------- mock upstream

/// A request the mock upstream received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// What the mock answers.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub splits: Vec<usize>,
    pub delay: Duration,
    pub cut: bool,
    pub hold_open: bool,
}

impl Reply {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
            splits: Vec::new(),
            delay: Duration::ZERO,
            cut: false,
            hold_open: false,
        }
    }
    pub fn sse(body: impl Into<Vec<u8>>) -> Self {
        Self::new(200, "text/event-stream", body)
    }
    pub fn ndjson(body: impl Into<Vec<u8>>) -> Self {
        Self::new(200, "application/x-ndjson", body)
    }
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self::new(status, "application/json", body)
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_ascii_lowercase(), v.to_string()));
        self
    }
    /// Split points: the body is written as separate pieces at these offsets.
    pub fn splits(mut self, s: Vec<usize>) -> Self {
        self.splits = s;
        self
    }
    /// Pause before each piece.
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
    /// Close the connection after the body without ending it (a cut stream).
    pub fn cut(mut self) -> Self {
        self.cut = true;
        self
    }
    /// After the body, keep the connection open until the client closes it.
    pub fn hold_open(mut self) -> Self {
        self.hold_open = true;
        self
    }
}

type Handler = dyn Fn(&Recorded) -> Reply + Send + Sync + 'static;

/// A mock upstream on 127.0.0.1:0.
pub struct MockUpstream {
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    closed: Arc<AtomicUsize>,
    closed_notify: Arc<Notify>,
    written: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl MockUpstream {
    pub async fn start<F>(handler: F) -> Self
    where
        F: Fn(&Recorded) -> Reply + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(AtomicUsize::new(0));
        let closed_notify = Arc::new(Notify::new());
        let handler: Arc<Handler> = Arc::new(handler);
        let written = Arc::new(AtomicUsize::new(0));
        let (r, c, n, w) = (
            requests.clone(),
            closed.clone(),
            closed_notify.clone(),
            written.clone(),
        );
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (r, c, n, h, w) = (r.clone(), c.clone(), n.clone(), handler.clone(), w.clone());
                tokio::spawn(async move {
                    if serve_conn(sock, r, h, w).await == Outcome::ClientClosed {
                        c.fetch_add(1, Ordering::SeqCst);
                        n.notify_waiters();
                    }
                });
            }
        });
        Self {
            url,
            requests,
            closed,
            closed_notify,
            written,
            task,
        }
    }

    /// Body bytes written to clients so far (pieces the socket accepted).
    pub fn bytes_written(&self) -> usize {
        self.written.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Connections the client closed before the mock finished its answer.
    pub fn closed_count(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }

    /// Waits until the client closed a connection before its answer ended.
    pub async fn wait_closed(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.closed_notify.notified();
            if self.closed_count() > 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.closed_count() > 0;
            }
        }
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(PartialEq, Eq)]
enum Outcome {
    Finished,
    ClientClosed,
}

async fn serve_conn(
    sock: TcpStream,
    requests: Arc<Mutex<Vec<Recorded>>>,
    handler: Arc<Handler>,
    written: Arc<AtomicUsize>,
) -> Outcome {
    let _ = sock.set_nodelay(true);
    let (mut rd, mut wr) = sock.into_split();
    // Read the request head and a content-length body.
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        match rd.read(&mut tmp).await {
            Ok(0) | Err(_) => return Outcome::Finished,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        match rd.read(&mut tmp).await {
            Ok(0) | Err(_) => return Outcome::Finished,
            Ok(n) => body.extend_from_slice(&tmp[..n]),
        }
    }
    let rec = Recorded {
        method,
        path,
        headers,
        body,
    };
    let reply = handler(&rec);
    requests.lock().unwrap().push(rec);

    let write = async {
        let mut head = format!(
            "HTTP/1.1 {} X\r\ntransfer-encoding: chunked\r\nconnection: close\r\n",
            reply.status
        );
        for (k, v) in &reply.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        wr.write_all(head.as_bytes()).await?;
        wr.flush().await?;
        let mut at = 0;
        let mut points = reply.splits.clone();
        points.retain(|&p| p > 0 && p < reply.body.len());
        points.push(reply.body.len());
        for p in points {
            if p <= at {
                continue;
            }
            if !reply.delay.is_zero() {
                tokio::time::sleep(reply.delay).await;
            }
            let piece = &reply.body[at..p];
            wr.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                .await?;
            wr.write_all(piece).await?;
            wr.write_all(b"\r\n").await?;
            wr.flush().await?;
            written.fetch_add(piece.len(), Ordering::SeqCst);
            at = p;
        }
        if reply.cut {
            return Ok::<bool, std::io::Error>(false);
        }
        if reply.hold_open {
            std::future::pending::<()>().await;
        }
        wr.write_all(b"0\r\n\r\n").await?;
        wr.flush().await?;
        Ok(true)
    };
    // Watch for the client going away while the answer is being written.
    let watch = async {
        loop {
            match rd.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::select! {
        r = write => {
            match r {
                Ok(_) => Outcome::Finished,
                Err(_) => Outcome::ClientClosed,
            }
        }
        () = watch => Outcome::ClientClosed,
    }
}

// ---------------------------------------------------------------- TLS

/// A fresh CA (for tests that serve or call over TLS).
pub fn test_ca() -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A certificate for `name` (a DNS name or an IP address) signed by `ca`, and its key.
pub fn issue(
    ca: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    name: &str,
) -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .signed_by(&key, ca)
        .unwrap();
    (cert, key)
}
