//! The one error type of the pipeline, and the one table that classes upstream
//! answers. `api::status` maps an `Error` to a `tonic::Status` (with `ErrorInfo`
//! / `RetryInfo`); nothing else builds statuses. Messages are written for the
//! caller: they never contain a credential.
//!
//! Layer: the lowest. This module imports nothing of the crate.

use std::{fmt, time::Duration};

/// The class of a failure: it decides the gRPC code (in `api::status`) and
/// whether the pipeline may try again (before the first chunk only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    InvalidArgument,
    NotFound,
    FailedPrecondition,
    Unauthenticated,
    PermissionDenied,
    /// A limit of this server (concurrency, sizes): another try here is refused the same way.
    ResourceExhausted,
    /// The upstream's rate limit or quota (HTTP 429): retried after a backoff, then fallbacks.
    RateLimited,
    /// The upstream is down, overloaded, unreachable or cut the stream: retried, then fallbacks.
    Unavailable,
    /// The upstream broke its own protocol (bad JSON, bad UTF-8, an oversized event):
    /// the same request would break the same way, so it is not retried.
    UpstreamProtocol,
    /// This replica is shutting down: the caller retries on another one.
    Draining,
    DeadlineExceeded,
    Internal,
}

impl Kind {
    /// Worth another try of the same upstream (before the first chunk was sent).
    pub fn retryable(self) -> bool {
        matches!(self, Kind::RateLimited | Kind::Unavailable)
    }

    /// Worth moving on to an alias's next target once retries are spent.
    pub fn worth_a_fallback(self) -> bool {
        self.retryable() || matches!(self, Kind::DeadlineExceeded | Kind::PermissionDenied)
    }

    /// THE table for upstream HTTP statuses: the class and the ErrorInfo reason.
    pub fn from_http_status(status: u16) -> (Kind, &'static str) {
        match status {
            400 | 413 | 422 => (Kind::InvalidArgument, "UPSTREAM_INVALID_REQUEST"),
            401 | 403 => (Kind::PermissionDenied, "UPSTREAM_PERMISSION_DENIED"),
            404 => (Kind::NotFound, "UPSTREAM_NOT_FOUND"),
            408 => (Kind::DeadlineExceeded, "UPSTREAM_TIMEOUT"),
            429 => (Kind::RateLimited, "UPSTREAM_RATE_LIMITED"),
            529 => (Kind::Unavailable, "UPSTREAM_OVERLOADED"),
            500..=599 => (Kind::Unavailable, "UPSTREAM_UNAVAILABLE"),
            _ => (Kind::Internal, "UPSTREAM_UNEXPECTED_STATUS"),
        }
    }

    /// THE table for gRPC status names that an upstream reports in its error
    /// bodies (Gemini's `"status": "UNAVAILABLE"`): the HTTP status Google's API
    /// design guide pairs with each name, then the HTTP table, so both agree.
    pub fn from_upstream_grpc_name(name: &str) -> Option<(Kind, &'static str)> {
        let status = match name {
            "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => 400,
            "UNAUTHENTICATED" => 401,
            "PERMISSION_DENIED" => 403,
            "NOT_FOUND" => 404,
            "RESOURCE_EXHAUSTED" => 429,
            "INTERNAL" | "UNKNOWN" | "DATA_LOSS" => 500,
            "UNAVAILABLE" => 503,
            "DEADLINE_EXCEEDED" => 408,
            _ => return None,
        };
        Some(Kind::from_http_status(status))
    }

    /// The kind that ends a call with the gRPC code `name` (for the fake's
    /// scripted failures, which ask for a code, not an upstream class).
    pub fn for_code_name(name: &str) -> Option<Kind> {
        Some(match name {
            "INVALID_ARGUMENT" => Kind::InvalidArgument,
            "NOT_FOUND" => Kind::NotFound,
            "FAILED_PRECONDITION" => Kind::FailedPrecondition,
            "UNAUTHENTICATED" => Kind::Unauthenticated,
            "PERMISSION_DENIED" => Kind::PermissionDenied,
            "RESOURCE_EXHAUSTED" => Kind::ResourceExhausted,
            "UNAVAILABLE" => Kind::Unavailable,
            "DEADLINE_EXCEEDED" => Kind::DeadlineExceeded,
            "INTERNAL" => Kind::Internal,
            _ => return None,
        })
    }
}

/// A failure, with enough context for an actionable status.
#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    pub kind: Kind,
    /// UPPER_SNAKE_CASE reason for `google.rpc.ErrorInfo`.
    pub reason: &'static str,
    /// A message a person can act on.
    pub message: String,
    /// The provider involved, when there is one.
    pub provider: Option<String>,
    /// The upstream HTTP status, when there is one.
    pub upstream_status: Option<u16>,
    /// When the upstream said to retry.
    pub retry_after: Option<Duration>,
}

impl Error {
    pub fn new(kind: Kind, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            reason,
            message: message.into(),
            provider: None,
            upstream_status: None,
            retry_after: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Kind::InvalidArgument, "INVALID_REQUEST", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Kind::Internal, "INTERNAL", message)
    }

    /// The upstream broke its own protocol (bad JSON, bad UTF-8, oversized event).
    pub fn protocol(message: impl Into<String>) -> Self {
        Self::new(Kind::UpstreamProtocol, "UPSTREAM_PROTOCOL_ERROR", message)
    }

    /// The upstream stream ended before its terminal event.
    pub fn truncated(message: impl Into<String>) -> Self {
        Self::new(Kind::Unavailable, "UPSTREAM_TRUNCATED", message)
    }

    pub fn with_provider(mut self, provider: &str) -> Self {
        if self.provider.is_none() {
            self.provider = Some(provider.to_string());
        }
        self
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.upstream_status = Some(status);
        self
    }

    pub fn with_retry_after(mut self, after: Option<Duration>) -> Self {
        self.retry_after = after;
        self
    }

    /// An upstream HTTP error, classed by THE table, with the provider's own message.
    pub fn from_upstream_status(status: u16, provider_message: &str) -> Self {
        let (kind, reason) = Kind::from_http_status(status);
        let detail = if provider_message.is_empty() {
            String::new()
        } else {
            format!(": {provider_message}")
        };
        let message = match kind {
            Kind::PermissionDenied => {
                format!("the upstream refused the server's credentials (HTTP {status}){detail}")
            }
            _ => format!("upstream returned HTTP {status}{detail}"),
        };
        Self::new(kind, reason, message).with_status(status)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.message))
    }
}

/// The longest message a status carries: upstream error text can be large, and
/// `grpc-message` travels in a trailer that clients cap (often at 16 KiB).
pub const MAX_MESSAGE: usize = 2048;

/// Credentials this process holds (provider keys, callers' tokens, secret
/// headers). Any of them found in a message is replaced before the message
/// reaches a caller or a log: an upstream may echo the key it was sent.
static SECRETS: std::sync::RwLock<Vec<String>> = std::sync::RwLock::new(Vec::new());

/// Registers a credential for redaction (short values are ignored: they would
/// redact ordinary words; a placeholder key such as "not-needed" for a local
/// server is redacted too, which is harmless).
pub fn register_secret(secret: &str) {
    let secret = secret.trim();
    if secret.len() < 8 {
        return;
    }
    if let Ok(mut list) = SECRETS.write() {
        if !list.iter().any(|s| s == secret) {
            list.push(secret.to_string());
            // Longest first: a secret that is a prefix of another must not leave its tail.
            list.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }
}

/// The message with every registered credential replaced, cut to `MAX_MESSAGE`.
pub fn redact(message: &str) -> String {
    let mut out = message.to_string();
    if let Ok(list) = SECRETS.read() {
        for s in list.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "<redacted>");
            }
        }
    }
    if out.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("… (truncated)");
    }
    out
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_never_leave_in_messages_and_long_text_is_cut() {
        register_secret("sk-test-0123456789abcdef");
        register_secret("short");
        register_secret("abcdefgh");
        register_secret("abcdefgh12345678");
        assert_eq!(
            redact("token abcdefgh12345678 sent"),
            "token <redacted> sent"
        );
        let e = Error::from_upstream_status(
            401,
            "Incorrect API key provided: sk-test-0123456789abcdef",
        );
        assert!(!e.to_string().contains("0123456789abcdef"), "{e}");
        assert!(e.to_string().contains("<redacted>"));
        assert!(redact("a short word").contains("short"));
        let long = "é".repeat(5000);
        let r = redact(&long);
        assert!(r.len() <= MAX_MESSAGE + 20 && r.ends_with("(truncated)"));
    }
}
