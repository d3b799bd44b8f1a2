//! The one place a `tonic::Status` is built: an `Error` becomes the code, the
//! message (redacted, capped), and the `google.rpc.ErrorInfo` (+ `RetryInfo`)
//! details. Auth refusals and drain refusals come through here too.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::{Error, Kind};

pub(crate) fn code(kind: Kind) -> Code {
    match kind {
        Kind::InvalidArgument => Code::InvalidArgument,
        Kind::NotFound => Code::NotFound,
        Kind::FailedPrecondition => Code::FailedPrecondition,
        Kind::Unauthenticated => Code::Unauthenticated,
        Kind::PermissionDenied => Code::PermissionDenied,
        Kind::ResourceExhausted | Kind::RateLimited => Code::ResourceExhausted,
        Kind::Unavailable | Kind::UpstreamProtocol | Kind::Draining => Code::Unavailable,
        Kind::UpstreamUnexpected => Code::Unknown,
        Kind::DeadlineExceeded => Code::DeadlineExceeded,
        Kind::Internal => Code::Internal,
    }
}

pub(crate) fn to_status(e: &Error) -> Status {
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
    // Upstream text was redacted where it entered the Error; a caller's own text
    // comes back as sent (redacting it would tell a caller which strings are keys).
    Status::with_error_details(code(e.kind), crate::error::cap(&e.message), details)
}

/// A request that could not be decoded (see `api::codec`).
pub(crate) fn invalid_message(message: &str) -> Status {
    to_status(&Error::new(
        Kind::InvalidArgument,
        "INVALID_MESSAGE",
        message,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scripted_code_name_gives_that_code() {
        for name in [
            "INVALID_ARGUMENT",
            "NOT_FOUND",
            "FAILED_PRECONDITION",
            "UNAUTHENTICATED",
            "PERMISSION_DENIED",
            "RESOURCE_EXHAUSTED",
            "UNAVAILABLE",
            "DEADLINE_EXCEEDED",
            "INTERNAL",
        ] {
            let kind = Kind::for_code_name(name).unwrap_or(Kind::Internal);
            let got = code(kind);
            assert_eq!(
                format!("{got:?}").to_ascii_uppercase(),
                name.replace('_', ""),
                "{name}"
            );
        }
    }
}
