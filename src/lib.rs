//! chatwire: every chat-model provider behind one typed streaming gRPC API.
//!
//! - `api`: the gRPC edge (service, proto ⇄ domain, status mapping)
//! - `chat`: domain types, the aggregator, the one pipeline
//! - `provider`: the provider trait, registry, http shell, framing, providers
//! - `config`, `server`, `cli`: running it
pub mod api;
pub mod chat;
pub mod cli;
pub mod config;
pub mod error;
pub mod provider;
pub mod server;
pub mod shutdown;

/// Generated protobuf and gRPC code for `chatwire.v1`.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("chatwire.v1");
    /// The encoded descriptor set, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("chatwire_descriptor");
}
