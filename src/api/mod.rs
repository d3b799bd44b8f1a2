//! The gRPC edge: the service, StreamEvents' state machine, proto ⇄ domain
//! conversions, callers' auth, the drain guard, and `status` — the only place a
//! `tonic::Status` is built.
//!
//! Layer: above `pipeline`; with `server` and `cli`, the only code that touches
//! `pb` or `tonic::Status`.
pub(crate) mod auth;
pub mod codec;
pub mod convert;
pub(crate) mod drain;
mod events;
pub(crate) mod service;
pub(crate) mod status;
