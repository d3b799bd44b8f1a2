//! The one async shell around every HTTP provider: it sends the request,
//! checks status and content type *before* returning the stream (so those
//! failures become the RPC status), frames SSE / NDJSON with a cap on frame
//! size, and drives the provider's pure decoder. Reading is pull-based: the
//! upstream is read only when the client has taken every chunk produced so far,
//! and dropping the stream drops the HTTP response: over HTTP/1.1 that closes
//! the connection, over HTTP/2 it resets the call's stream.

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};

use bytes::Bytes;
use futures_util::Stream;

use super::{
    clients::{Clients, Lease},
    frame::Framing,
    pump::Pump,
    BoxFuture, Call, ChunkStream, Decoder, Provider, ProviderInfo,
};
use crate::{
    chat::types::Chunk,
    error::{log_safe, Error},
};
pub use errors::generic_error_message;
use errors::{check_content_type, quote_body, status_error, transport_error};

/// What a provider module supplies: its wire format, nothing async.
pub trait Wire: Send + Sync + 'static {
    fn info(&self) -> &ProviderInfo;
    /// How the response body is framed (most providers stream SSE).
    fn framing(&self) -> Framing {
        Framing::Sse
    }
    /// The HTTP request for a call (URL, headers, JSON body).
    fn request(
        &self,
        client: &reqwest::Client,
        call: &Call,
    ) -> Result<reqwest::RequestBuilder, Error>;
    /// A bearer token to fetch (async, cached by the wire) before each
    /// request: sent as `Authorization: Bearer`, marked sensitive (Vertex AI's
    /// OAuth2 access token). None: the request carries its own credentials.
    fn bearer(&self) -> Option<BoxFuture<Result<String, Error>>> {
        None
    }
    /// A fresh decoder for one response.
    fn decoder(&self, call: &Call) -> Box<dyn Decoder>;
    /// The error for a non-2xx answer, from its status and body.
    fn http_error(&self, status: u16, body: &str) -> Error {
        Error::from_upstream_status(status, &generic_error_message(body))
    }
    /// The error for a non-2xx answer whose headers say more than its body
    /// (AWS names the error type in `x-amzn-errortype`); by default the body decides.
    fn http_error_with_headers(
        &self,
        status: u16,
        _headers: &reqwest::header::HeaderMap,
        body: &str,
    ) -> Error {
        self.http_error(status, body)
    }
}

/// A wire built from its provider's settings, served through this shell with
/// the clients and frame cap those settings give, as the registry holds it
/// (every remote provider's `provider()` but Vertex's ends here).
pub fn ready<W: Wire>(
    settings: super::Settings,
    wire: impl FnOnce(super::Settings) -> W,
) -> Result<super::registry::Registered, Error> {
    let (clients, max_frame) = (settings.clients()?, settings.max_frame);
    Ok(super::registry::Registered::Ready(Arc::new(
        HttpProvider::new(wire(settings), clients, max_frame),
    )))
}

/// A provider speaking HTTP through this shell.
pub struct HttpProvider<W> {
    wire: Arc<W>,
    clients: Clients,
    max_frame: usize,
}

impl<W: Wire> HttpProvider<W> {
    pub fn new(wire: W, clients: Clients, max_frame: usize) -> Self {
        Self {
            wire: Arc::new(wire),
            clients,
            max_frame,
        }
    }
}

impl<W: Wire> Provider for HttpProvider<W> {
    fn info(&self) -> &ProviderInfo {
        self.wire.info()
    }

    fn stream(&self, call: Call) -> BoxFuture<Result<ChunkStream, Error>> {
        let wire = self.wire.clone();
        let clients = self.clients.clone();
        let max_frame = self.max_frame;
        Box::pin(async move {
            let name = wire.info().name;
            let attempt = crate::observe::Attempt::current();
            // Built on any client of the set (they are alike); sent on a
            // leased one once it is complete, so a slow token fetch holds
            // no client's slot.
            let mut request = wire.request(&clients.any(), &call)?;
            // After the request is built: a request refused as invalid costs no token.
            let token = match wire.bearer() {
                Some(fetch) => Some(fetch.await.map_err(|e| e.with_provider(name))?),
                None => None,
            };
            if let Some(t) = token {
                request = request.header(
                    reqwest::header::AUTHORIZATION,
                    super::secret_header(&format!("Bearer {t}"))?,
                );
            }
            // W3C trace context: the upstream's spans join the caller's trace.
            if let Some((parent, state)) = attempt.traceparent() {
                request = request.header("traceparent", parent);
                if !state.is_empty() {
                    request = request.header("tracestate", state);
                }
            }
            let request = request
                .build()
                .map_err(|e| transport_error(&e, false).with_provider(name))?;
            // Held until the upstream's answer ends (or the body is dropped):
            // the call counts against its client's streams meanwhile.
            let lease = clients.lease().await?;
            let response = lease
                .client()
                .execute(request)
                .await
                .map_err(|e| transport_error(&e, false).with_provider(name))?;
            let status = response.status().as_u16();
            attempt.response(status);
            if !(200..300).contains(&status) {
                // Boxed: this error path's future is the largest of this
                // one's, and would size every call's future while it waits.
                return Err(Box::pin(status_error(&*wire, response))
                    .await
                    .with_provider(name)
                    .with_status(status));
            }
            if let Err(e) = check_content_type(wire.framing(), response.headers()) {
                return Err(Box::pin(quote_body(e, response)).await.with_provider(name));
            }
            let mut pump = Pump::new(
                wire.framing(),
                max_frame,
                wire.decoder(&call),
                call.fallback_id,
            )
            .with_budget(&call.budget)
            .with_model(&call.model);
            if let Some(id) = request_id(response.headers()) {
                pump.note("request_id", id);
            }
            Ok(Box::pin(Body {
                bytes: Box::pin(response.bytes_stream()),
                pump,
                pending: VecDeque::with_capacity(1),
                error: None,
                ended: false,
                provider: name,
                turns: 0,
                fresh: false,
                delivered: false,
                lease: Some(lease),
            }) as ChunkStream)
        })
    }
}

/// Scheduler turns a decoded chunk may wait for the ones behind it.
///
/// hyper's HTTP/1.1 client hands a response body over one chunk per wake-up,
/// even when one read brought many SSE events; passed on as they come, each
/// chunk became its own HTTP/2 DATA frame and its own socket write (1.01
/// writes per chunk at 32 streams). Before giving tonic a decoded chunk the
/// body polls the upstream again and, if that is not ready, yields once so
/// that the connection's task can decode the next chunk it has already read;
/// it yields again (up to this many turns in all) only while each turn brings
/// more, and reads no further ahead once `READ_AHEAD` chunks wait.
/// The yield is a self-wake: tokio puts the task at the back of its worker's
/// queue, where the other worker may take it. (tokio's deferred yield measured
/// no better, and a deferred task cannot move to the other worker while this
/// one is busy with a long poll, such as converting a very large request.)
/// An answer's first chunk waits for none: under load a turn waits for every
/// other ready task, and turns held the first token for as long as they kept
/// bringing more (time to first token p50 at 256 streams: 47-58 ms, now 12-14).
/// A lone chunk after it waits one turn of the scheduler, and a burst leaves
/// in a few writes: 0.21 writes per chunk at 4 turns, 0.07 at 16, with the
/// same time to first token at one stream and the same CPU for streams that
/// trickle (README, Performance).
const COALESCE_TURNS: u32 = 16;

/// Decoded chunks waiting at which the body stops reading ahead (the read
/// that reaches it may add a few more): the upstream connection's task can run
/// on the other worker thread and keep the body ready, so without a cap a fast
/// endless upstream would be read ahead without bound before any chunk went out.
const READ_AHEAD: usize = 64;

/// The decoded chunks' queue starts with one chunk's room (a chunk is at most
/// 160 bytes; one per read is what an open, slow stream needs) and keeps at
/// most this many between bursts. Without the cap a queue grown by a burst held
/// up to `READ_AHEAD` chunks' room (~10 KiB) for the rest of the stream; with it,
/// bursts of up to 16 chunks cost no reallocation after the first.
const PENDING_KEEP: usize = 16;

/// The response body as chunks: bytes in, through the pump, chunks out. A
/// plain `Stream` (no future rebuilt per item): what the upstream has ready is
/// taken before the chunks already decoded go out (see [`COALESCE_TURNS`]).
struct Body {
    bytes: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    pump: Pump<'static>,
    pending: VecDeque<Chunk>,
    error: Option<Error>,
    ended: bool,
    provider: &'static str,
    /// Turns yielded for the chunks now pending (see [`COALESCE_TURNS`]).
    turns: u32,
    /// Bytes arrived since the last turn yielded.
    fresh: bool,
    /// A chunk went out: the first one waits for no turn (the time to the
    /// first token is what a caller feels; the ones after it are coalesced).
    delivered: bool,
    /// The client this call's request went out on (see [`Clients`]), let go
    /// when the upstream's answer ends or fails.
    lease: Option<Lease>,
}

impl Stream for Body {
    type Item = Result<Chunk, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            // Chunks are waiting: first take what the upstream has ready too,
            // so that tonic encodes them together and they leave in one write.
            if this.delivered
                && !this.pending.is_empty()
                && this.pending.len() < READ_AHEAD
                && !this.ended
                && this.error.is_none()
                && !this.pump.is_done()
            {
                match this.bytes.as_mut().poll_next(cx) {
                    // An error or the end is sent after the chunks already decoded.
                    Poll::Ready(read) => {
                        this.take(read);
                        this.fresh = true;
                        continue;
                    }
                    // Not ready: give the upstream connection's task one turn
                    // (it decodes the next chunk already read, if any), at
                    // most COALESCE_TURNS times and only while turns bring more.
                    Poll::Pending
                        if this.turns < COALESCE_TURNS && (this.turns == 0 || this.fresh) =>
                    {
                        this.turns += 1;
                        this.fresh = false;
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    Poll::Pending => {}
                }
            }
            // Chunks already decoded go first, even when a later frame failed.
            if let Some(chunk) = this.pending.pop_front() {
                this.delivered = true;
                if this.pending.is_empty() {
                    this.turns = 0;
                    // A large burst grew the queue: it gives back the excess.
                    if this.pending.capacity() > PENDING_KEEP {
                        this.pending.shrink_to(PENDING_KEEP);
                    }
                }
                return Poll::Ready(Some(Ok(chunk)));
            }
            if let Some(e) = this.error.take() {
                this.ended = true;
                return Poll::Ready(Some(Err(e.with_provider(this.provider))));
            }
            if this.ended || this.pump.is_done() {
                return Poll::Ready(None);
            }
            let read = ready!(this.bytes.as_mut().poll_next(cx));
            this.take(read);
        }
    }
}

impl Body {
    /// One read from the upstream, through the pump: its chunks join
    /// `pending`; a failure (or a cut) is kept to follow them.
    fn take(&mut self, read: Option<reqwest::Result<Bytes>>) {
        let fed = match read {
            Some(Ok(bytes)) => self.pump.feed(&bytes, &mut self.pending),
            None => {
                self.ended = true;
                self.lease = None;
                self.pump.finish(&mut self.pending)
            }
            Some(Err(e)) => {
                self.lease = None;
                Err(transport_error(&e, true))
            }
        };
        if let Err(e) = fed {
            self.error = Some(e);
        }
    }
}

/// The upstream's request id (Anthropic `request-id`, OpenAI `x-request-id`,
/// Google `x-goog-request-id`, AWS `x-amzn-requestid`), for the response metadata.
fn request_id(headers: &reqwest::header::HeaderMap) -> Option<String> {
    [
        "request-id",
        "x-request-id",
        "x-goog-request-id",
        "x-amzn-requestid",
    ]
    .iter()
    .find_map(|h| headers.get(*h)?.to_str().ok())
    .map(|v| log_safe(v, 200))
}

#[path = "http_errors.rs"]
mod errors;

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
