//! chatwire: every chat-model provider behind one typed streaming gRPC API.
//!
//! The layers, lowest first. A module imports only from lower layers or its
//! own folder (`tests/layers.rs` enforces it):
//!
//! ```text
//! error      Error, Kind, redaction, THE table: upstream HTTP status / gRPC name → Kind
//! chat/      domain types and the aggregator: pure, no I/O, no protobuf, no provider
//! config/    Config, Env, timers, retry policy, limits, model switches, aliases, fake scripts
//! observe/   metrics (Prometheus) and traces (OpenTelemetry), just above config: the
//!            layers above record into it; it knows nothing of them (no pb, no Status)
//! provider/  the Provider and Decoder traits, registry, relay, pump, http shell, framers
//!            (SSE / NDJSON, AWS event-stream), shared cloud auth (google_auth);
//!            one module per provider, none importing another (vertex.rs, like
//!            registry.rs, only composes the Vertex modes of gemini/ and anthropic/)
//! pipeline   retries, fallbacks, timers, collapse: drives providers through the trait
//! api/       service, StreamEvents, proto ⇄ domain, auth, drain, status (the only Status builder)
//! server     listener, health, reflection, TLS, drain; then `cli` and the binary on top
//! ```
//!
//! - `error` and `chat` import nothing of the crate but each other downward.
//! - `config` imports only `error`; `observe` imports `error`, `chat` and
//!   `config` (its Env type).
//! - `provider` imports `error`, `chat` and `config`.
//! - `pipeline` imports `provider` and everything below it.
//! - `api` imports `pipeline` and everything below it; with `server` and `cli`,
//!   it alone touches `pb` and `tonic::Status`.
//! - `server` imports `api` and everything below; `cli` is a gRPC client of
//!   `pb` (and `api::convert` for printing).
// Items only the crate uses are pub(crate), so dead code shows as dead.
#![warn(unreachable_pub)]

pub mod api;
pub mod chat;
pub mod cli;
pub mod config;
pub mod error;
pub mod observe;
pub mod pipeline;
pub mod provider;
pub mod server;

/// Generated protobuf and gRPC code for `chatwire.v1`.
#[allow(missing_docs, clippy::all, unreachable_pub)]
pub mod pb {
    tonic::include_proto!("chatwire.v1");
    /// The encoded descriptor set, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("chatwire_descriptor");
}
