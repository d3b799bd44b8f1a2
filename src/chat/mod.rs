//! The provider-neutral core: domain types, the aggregator, the pipeline.
pub mod aggregate;
pub mod pipeline;
pub mod types;
