//! The one place an `Error` becomes a `tonic::Status`: the code, the message,
//! and the `google.rpc.ErrorInfo` (+ `RetryInfo`) details.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::{Error, Kind};

pub fn code(kind: Kind) -> Code {
    match kind {
        Kind::InvalidArgument => Code::InvalidArgument,
        Kind::NotFound => Code::NotFound,
        Kind::FailedPrecondition => Code::FailedPrecondition,
        Kind::Unauthenticated => Code::Unauthenticated,
        Kind::PermissionDenied => Code::PermissionDenied,
        Kind::ResourceExhausted => Code::ResourceExhausted,
        Kind::Unavailable => Code::Unavailable,
        Kind::DeadlineExceeded => Code::DeadlineExceeded,
        Kind::Cancelled => Code::Cancelled,
        Kind::Internal => Code::Internal,
    }
}

pub fn to_status(e: &Error) -> Status {
    let mut metadata = HashMap::new();
    if let Some(p) = &e.provider {
        metadata.insert("provider".to_string(), p.clone());
    }
    if let Some(s) = e.upstream_status {
        metadata.insert("upstream_status".to_string(), s.to_string());
    }
    let mut details = ErrorDetails::with_error_info(e.reason, "chatwire", metadata);
    if let Some(after) = e.retry_after {
        details.set_retry_info(Some(after));
    }
    Status::with_error_details(code(e.kind), crate::error::redact(&e.message), details)
}
