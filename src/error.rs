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
    /// The upstream answered with an HTTP status the contract does not list
    /// (a redirect, 418, 304...): UNKNOWN, and the message names the status.
    UpstreamUnexpected,
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
            301 | 302 | 303 | 307 | 308 => (Kind::UpstreamUnexpected, "UPSTREAM_REDIRECT"),
            _ => (Kind::UpstreamUnexpected, "UPSTREAM_UNEXPECTED_STATUS"),
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
        let message = match (kind, reason) {
            (Kind::PermissionDenied, _) => {
                format!("the upstream refused the server's credentials (HTTP {status}){detail}")
            }
            (_, "UPSTREAM_REDIRECT") => format!(
                "the upstream answered HTTP {status}, a redirect{detail}; chatwire never follows redirects (the provider's credentials would go to another origin): point the base URL at the final address"
            ),
            _ => format!("upstream returned HTTP {status}{detail}"),
        };
        Self::new(kind, reason, message).with_status(status)
    }
}

/// Logs show the message redacted and capped (a caller's own text included:
/// logs are the operator's, and redacting there reveals nothing to a caller).
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&cap(&redact(&self.message)))
    }
}

/// The longest message a status carries: upstream error text can be large, and
/// `grpc-message` travels in a trailer that clients cap (often at 16 KiB).
pub const MAX_MESSAGE: usize = 2048;

/// How much of a secret's start, echoed alone, is redacted (an upstream may
/// echo a key cut or masked at the end: `sk-ant-api03-AbCd…`).
const SECRET_PREFIX: usize = 12;

/// Credentials this process holds (provider keys, callers' tokens, secret
/// headers, passwords in base URLs). Upstream-derived text is redacted where it
/// enters an `Error` (the http shell, the pump, transport errors) and in logs;
/// a caller's own text is not, so redaction never answers "is this a key?".
static SECRETS: std::sync::RwLock<Vec<String>> = std::sync::RwLock::new(Vec::new());

/// Registers a credential for redaction (values under 8 bytes are ignored:
/// they would redact ordinary words).
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

/// The text with every registered credential replaced by `<redacted>`: the
/// whole secret, and any run of at least its first 12 characters (a cut or
/// masked echo). Linear in the text per secret. Redact first, then cut.
pub fn redact(text: &str) -> String {
    let Ok(list) = SECRETS.read() else {
        return text.to_string();
    };
    let mut out = text.to_string();
    for secret in list.iter() {
        out = redact_one(&out, secret);
    }
    out
}

fn redact_one(text: &str, secret: &str) -> String {
    let anchor_len = (0..=SECRET_PREFIX.min(secret.len()))
        .rev()
        .find(|&n| secret.is_char_boundary(n))
        .unwrap_or(0);
    let anchor = &secret[..anchor_len];
    if anchor.is_empty() || !text.contains(anchor) {
        return text.to_string();
    }
    let (t, s) = (text.as_bytes(), secret.as_bytes());
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(pos) = text[from..].find(anchor) {
        let start = from + pos;
        let mut end = start + anchor_len;
        while end < t.len() && end - start < s.len() && t[end] == s[end - start] {
            end += 1;
        }
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        out.push_str(&text[copied..start]);
        out.push_str("<redacted>");
        copied = end;
        from = end.max(start + 1);
        while !text.is_char_boundary(from) {
            from += 1;
        }
        if from >= text.len() {
            break;
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// The text cut to `MAX_MESSAGE` bytes (on a character boundary), marked.
pub fn cap(text: &str) -> String {
    if text.len() <= MAX_MESSAGE {
        return text.to_string();
    }
    let mut cut = MAX_MESSAGE;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… (truncated)", &text[..cut])
}

/// A caller- or upstream-supplied value made safe for a log field: control
/// characters escaped (no forged lines), at most `max` characters kept.
pub fn log_safe(value: &str, max: usize) -> String {
    let mut out = String::with_capacity(value.len().min(max) + 8);
    for (n, c) in value.chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
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
        let r = cap(&redact(&long));
        assert!(r.len() <= MAX_MESSAGE + 20 && r.ends_with("(truncated)"));
    }

    #[test]
    fn a_cut_or_masked_echo_of_a_key_is_redacted_too() {
        register_secret("sk-ant-api03-SECRETSECRETSECRET-xyz");
        // Cut at the end, masked at the end, and cut by a truncated body.
        for echo in [
            "key sk-ant-api03-SECRETSEC… was refused",
            "key sk-ant-api03-SECRET****** was refused",
            "…sk-ant-api03-S",
        ] {
            let r = redact(echo);
            assert!(
                !r.contains("SECRET") && !r.contains("api03-S"),
                "{echo} -> {r}"
            );
        }
        // Shorter than the anchor: an ordinary prefix stays.
        assert_eq!(redact("sk-ant-api0"), "sk-ant-api0");
        // Redaction is linear: a long text of near misses.
        let near = "sk-ant-api03-SECRETSECRETSECRET-xy_".repeat(20_000);
        assert_eq!(redact(&near).matches("<redacted>").count(), 20_000);
    }

    #[test]
    fn log_values_cannot_forge_lines() {
        assert_eq!(log_safe("a\r\nb", 100), "a\\r\\nb");
        assert_eq!(log_safe(&"x".repeat(10), 4), "xxxx…");
        assert_eq!(log_safe("日本語", 2), "日本…");
    }
}
