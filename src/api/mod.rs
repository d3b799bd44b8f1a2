//! The gRPC edge: the service, StreamEvents' state machine, proto ⇄ domain
//! conversions, callers' auth, the drain guard, and `status` — the only place a
//! `tonic::Status` is built.
//!
//! Layer: above `pipeline`; with `server` and `cli`, the only code that touches
//! `pb` or `tonic::Status`.
pub mod auth;
pub mod convert;
pub mod drain;
pub mod events;
pub mod service;
pub mod status;
