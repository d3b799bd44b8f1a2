//! The gRPC edge: the service, proto ⇄ domain conversions, status mapping.
pub mod auth;
pub mod convert;
pub mod service;
pub mod status;
