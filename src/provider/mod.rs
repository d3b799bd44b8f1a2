//! The provider seam: one object-safe trait (`Provider`) and the pure decoder
//! trait (`Decoder`), with what sits around them — the registry that routes a
//! model name to an `Arc<dyn Provider>`, the relay (decoder parts → client
//! chunks), the pump (framer → decoder → relay, the one driver), the http shell
//! and each provider's module.
//!
//! Layer: imports `error`, `chat` and `config`; never `pipeline`, `api` or
//! `server`. No provider module imports another.

pub mod anthropic;
pub mod bedrock;
pub mod clients;
pub mod codec;
pub mod connect_gate;
pub mod eventstream;
pub mod fake;
pub mod frame;
pub mod gemini;
pub mod google_auth;
pub mod http;
pub mod json_str;
pub mod ollama;
pub mod openai;
pub mod pump;
pub mod registry;
pub mod relay;
pub mod settings;
pub mod vertex;

use std::{future::Future, pin::Pin, sync::Arc};

use futures_util::Stream;

pub use crate::config::ModelOptions;
use crate::{
    chat::{
        budget::Budget,
        types::{ChatRequest, Chunk, Part},
    },
    error::Error,
};
pub use frame::{Frame, Framing};
pub use registry::{pending, Registry, Route};
pub use relay::Relay;
pub use settings::{
    display_url, is_secret_header, post, secret_header, with_extra_headers, Settings,
};

/// The chunks of one answer, pulled by the client (backpressure) and dropped
/// when the client goes away (cancellation reaches the upstream connection).
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<Chunk, Error>> + Send>>;
/// A boxed, sendable future (keeps the trait object-safe without macros).
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// One call to a provider.
#[derive(Clone, Debug)]
pub struct Call {
    /// The model as the provider names it (after the `provider:` prefix).
    pub model: String,
    /// Shared by every attempt of a call (retries and fallbacks copy nothing).
    pub request: Arc<ChatRequest>,
    pub options: ModelOptions,
    /// The message id to use when the provider gives none (`run-<runId>`).
    pub fallback_id: String,
    /// The replica's budget of buffered bytes (a partial upstream event counts).
    pub budget: Budget,
}

/// What ListModels says about a provider.
#[derive(Clone, Debug)]
pub struct ProviderInfo {
    /// The name before the colon in `provider:model`.
    pub name: &'static str,
    /// LangChain's chat class name, used as the StreamEvents `name`.
    pub chat_class: &'static str,
    pub configured: bool,
    pub base_url: String,
    pub features: Vec<&'static str>,
    /// Models this provider always knows (the fake's); others pass through.
    pub models: Vec<String>,
    /// What to set to configure it (for the FAILED_PRECONDITION message).
    pub how_to_configure: &'static str,
}

/// A chat-model provider.
pub trait Provider: Send + Sync + 'static {
    fn info(&self) -> &ProviderInfo;

    /// LangChain's chat class for one model (the StreamEvents `name`): the
    /// provider's, unless its models span classes (Vertex AI: Gemini models
    /// are `ChatVertexAI`, Claude models `ChatAnthropicVertex`).
    fn chat_class(&self, _model: &str) -> &'static str {
        self.info().chat_class
    }

    /// Starts a call. Failures before the first chunk (HTTP status, content
    /// type, connection) are the future's error, so they become the RPC status.
    fn stream(&self, call: Call) -> BoxFuture<Result<ChunkStream, Error>>;
}

/// A pure decoder of one provider's frames (see DESIGN: no I/O, no async).
pub trait Decoder: Send {
    /// One upstream frame in; the parts it produces are appended to `out`, a
    /// buffer the pump reuses (no allocation per frame). After an error,
    /// whatever the decoder appended is the caller's to discard.
    fn decode(&mut self, frame: &Frame, out: &mut Vec<Part>) -> Result<(), Error>;

    /// The upstream ended without its terminal event: parts to flush (and
    /// `Part::Done`) when that is a normal end for this provider, else an error.
    fn finish(&mut self) -> Result<Vec<Part>, Error>;

    /// `decode` into a new `Vec` (for tests).
    fn on_frame(&mut self, frame: &Frame) -> Result<Vec<Part>, Error> {
        let mut out = Vec::new();
        self.decode(frame, &mut out)?;
        Ok(out)
    }
}
