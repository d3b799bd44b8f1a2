//! The one error type of the pipeline. `api::status` maps it to a `tonic::Status`
//! (with `ErrorInfo` / `RetryInfo`); nothing else builds statuses. Messages are
//! written for the caller: they never contain a credential.

use std::{fmt, time::Duration};

/// The gRPC-level class of a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    InvalidArgument,
    NotFound,
    FailedPrecondition,
    Unauthenticated,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
    DeadlineExceeded,
    Cancelled,
    Internal,
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
        Self::new(Kind::Unavailable, "UPSTREAM_PROTOCOL_ERROR", message)
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

    /// Maps an upstream HTTP status to the contract's class, with the provider's own message.
    pub fn from_upstream_status(status: u16, provider_message: &str) -> Self {
        let (kind, reason) = match status {
            400 | 413 | 422 => (Kind::InvalidArgument, "UPSTREAM_INVALID_REQUEST"),
            401 | 403 => (Kind::PermissionDenied, "UPSTREAM_PERMISSION_DENIED"),
            404 => (Kind::NotFound, "UPSTREAM_NOT_FOUND"),
            408 => (Kind::DeadlineExceeded, "UPSTREAM_TIMEOUT"),
            429 => (Kind::ResourceExhausted, "UPSTREAM_RATE_LIMITED"),
            529 => (Kind::Unavailable, "UPSTREAM_OVERLOADED"),
            500..=599 => (Kind::Unavailable, "UPSTREAM_UNAVAILABLE"),
            _ => (Kind::Internal, "UPSTREAM_UNEXPECTED_STATUS"),
        };
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
