//! The HTTP shell's error paths: a non-2xx answer (its body read capped and
//! redacted, a redirect named by its origin), a 2xx of the wrong content type
//! (its body quoted briefly), a lost connection. None of it is on a chunk's path.

use std::time::Duration;

use super::Wire;
use crate::{
    error::{log_safe, redact, Error, Kind},
    provider::frame::Framing,
};

/// How much of an error body is read to find the provider's message.
const MAX_ERROR_BODY: usize = 64 * 1024;

pub(super) fn transport_error(e: &reqwest::Error, mid_stream: bool) -> Error {
    // The client sets no request timeout (the pipeline's timers bound a call),
    // so a timeout here is a connect timeout: a connection error, retryable.
    let what = if mid_stream {
        "the upstream connection was lost mid-stream"
    } else if e.is_connect() {
        "could not connect to the upstream"
    } else {
        "sending the request to the upstream failed"
    };
    // The innermost cause, not reqwest's Display (which repeats the URL).
    let mut source = String::new();
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = cur {
        source = s.to_string();
        cur = s.source();
    }
    let message = if source.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {}", redact(&source))
    };
    Error::new(Kind::Unavailable, "UPSTREAM_UNAVAILABLE", message)
}

pub(super) fn check_content_type(
    framing: Framing,
    headers: &reqwest::header::HeaderMap,
) -> Result<(), Error> {
    if let Some(enc) = content_encoding(headers) {
        return Err(Error::protocol(format!(
            "the upstream sent its stream compressed with {enc}, which chatwire does not ask for"
        )));
    }
    let ct = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let ok = match framing {
        Framing::Sse => ct.starts_with("text/event-stream"),
        Framing::Ndjson => {
            ct.starts_with("application/x-ndjson")
                || ct.starts_with("application/json")
                || ct.starts_with("application/jsonl")
        }
        Framing::EventStream => ct.starts_with("application/vnd.amazon.eventstream"),
    };
    if ok {
        Ok(())
    } else {
        let want = match framing {
            Framing::Sse => "text/event-stream",
            Framing::Ndjson => "application/x-ndjson",
            Framing::EventStream => "application/vnd.amazon.eventstream",
        };
        Err(Error::protocol(format!(
            "the upstream answered with content type {:?}, not {want}",
            if ct.is_empty() {
                "(none)".to_string()
            } else {
                log_safe(&redact(&ct), 100)
            }
        )))
    }
}

/// The error for a non-2xx answer. The body is redacted whole before anything
/// cuts it (so no cut can leave part of an echoed key); a redirect names only
/// where it points (its origin), and a compressed body says so.
pub(super) async fn status_error<W: Wire + ?Sized>(wire: &W, response: reqwest::Response) -> Error {
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers());
    if matches!(status, 301 | 302 | 303 | 307 | 308) {
        let target = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| format!("to {}", redact(&origin(l))))
            .unwrap_or_else(|| "without a Location".to_string());
        return Error::from_upstream_status(status, &target);
    }
    let encoding = content_encoding(response.headers());
    let headers = response.headers().clone();
    // Redacted whole as it is read (`read_capped`).
    let body = read_capped(response, MAX_ERROR_BODY).await;
    let body = match encoding {
        Some(enc) => format!("(a body compressed with {enc}, which chatwire does not ask for)"),
        None => body,
    };
    let mut error = wire.http_error_with_headers(status, &headers, &body);
    // The body was redacted as bytes, but the message read from its JSON can
    // spell a key the bytes did not show (`\u0073k-…`, a JSON encoder's escapes).
    error.message = redact(&error.message);
    error.with_retry_after(retry_after)
}

/// The scheme, host and port of a URL (a redirect target's path and query may
/// carry tokens; the origin is what a person needs to fix the base URL).
fn origin(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "a relative URL".to_string();
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}")
}

/// A `content-encoding` other than identity (chatwire sends no Accept-Encoding,
/// so a compressed body is the upstream's mistake; say so, not "bad UTF-8").
pub(super) fn content_encoding(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let v = headers
        .get(reqwest::header::CONTENT_ENCODING)?
        .to_str()
        .ok()?;
    let v = v.trim().to_ascii_lowercase();
    (!v.is_empty() && v != "identity").then(|| log_safe(&v, 40))
}

/// `retry-after` in seconds (the HTTP-date form is rare from APIs and ignored).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: f64 = v.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// How much of a wrong-typed 2xx body is read to quote it, and for how long:
/// a gateway's JSON error is short and whole at once, while a real stream
/// mislabelled (`text/plain`, none) would go on, generating and billing, for
/// as long as it was read.
const QUOTE_BYTES: usize = 4096;
const QUOTE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// A 2xx answer of the wrong content type, its body quoted (redacted, capped):
/// a gateway or proxy that answers 200 with a JSON error says why there. At
/// most `QUOTE_BYTES` within `QUOTE_WAIT`; else nothing is quoted.
pub(super) async fn quote_body(mut error: Error, response: reqwest::Response) -> Error {
    if content_encoding(response.headers()).is_some() {
        return error;
    }
    let Ok(body) = tokio::time::timeout(QUOTE_WAIT, read_capped(response, QUOTE_BYTES)).await
    else {
        return error;
    };
    let said = redact(&generic_error_message(&body));
    let said: String = said.trim().chars().take(500).collect();
    if !said.is_empty() {
        error.message = format!("{}; its body: {said}", error.message);
    }
    error
}

/// At most `max` bytes of an error body (read a little further, so an echoed
/// key at the edge is whole when it is redacted; cut after that).
async fn read_capped(mut response: reqwest::Response, max: usize) -> String {
    const SLACK: usize = 1024;
    let mut body = Vec::new();
    while let Ok(Some(bytes)) = response.chunk().await {
        body.extend_from_slice(&bytes);
        if body.len() >= max + SLACK {
            body.truncate(max + SLACK);
            break;
        }
    }
    let text = redact(&String::from_utf8_lossy(&body));
    match text.char_indices().nth(max) {
        Some((cut, _)) => text[..cut].to_string(),
        None => text,
    }
}

/// The message in the usual `{"error": {"message": ...}}` / `{"error": "..."}` envelopes.
pub fn generic_error_message(body: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return body.trim().chars().take(500).collect();
    };
    let e = v.get("error").unwrap_or(&v);
    if let Some(s) = e.as_str() {
        return s.to_string();
    }
    e.get("message")
        .and_then(|m| m.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| body.trim().chars().take(500).collect())
}
