//! The provider-neutral core: domain types and the aggregator. Pure: no I/O,
//! no protobuf, no provider JSON.
//!
//! Layer: the lowest, beside `error`; imports nothing of the crate but `error`.
/// How deeply JSON (objects and arrays) may nest where it travels as a
/// `google.protobuf.Struct`: requests much deeper than this cannot be decoded
/// (prost's limit of 100 protobuf levels, two or three per JSON level; about
/// 32 levels of objects still decode), and an answer's tool-call arguments
/// deeper than this are an invalid call.
pub const MAX_JSON_DEPTH: usize = 30;

pub mod aggregate;
pub mod budget;
pub mod types;
