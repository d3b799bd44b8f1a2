//! The provider-neutral core: domain types and the aggregator. Pure: no I/O,
//! no protobuf, no provider JSON.
//!
//! Layer: the lowest, beside `error`; imports nothing of the crate but `error`.
pub mod aggregate;
pub mod budget;
pub mod types;
