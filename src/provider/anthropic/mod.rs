//! The `anthropic` provider: Claude's Messages API, streamed as SSE and
//! translated event by event. `wire` builds the request, `decode` is the pure
//! decoder; this file plugs them into the http shell.

mod decode;
mod event;
mod thinking;
mod token;
pub mod vertex;
mod wire;

pub use decode::AnthropicDecoder;

use super::{codec, http::Wire, Call, Decoder, Framing, ProviderInfo, Settings};
use crate::{
    chat::types::Chunk,
    error::{Error, Kind},
};

/// The Messages API version this module speaks.
pub const API_VERSION: &str = "2023-06-01";
/// Where Anthropic lives when `ANTHROPIC_BASE_URL` is not set.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

const HOW: &str = "ANTHROPIC_API_KEY";

/// Anthropic's wire format, for the http shell.
pub struct Anthropic {
    info: ProviderInfo,
    settings: Settings,
}

impl Anthropic {
    pub fn new(settings: Settings) -> Self {
        Self {
            info: ProviderInfo {
                name: "anthropic",
                chat_class: "ChatAnthropic",
                configured: true,
                base_url: settings.base_url.clone(),
                features: super::codec::features(
                    &["tools", "images", "usage", "cache_usage", "citations"],
                    wire::SUPPORTS,
                ),
                models: Vec::new(),
                how_to_configure: HOW,
            },
            settings,
        }
    }
}

/// The provider, configured from the file and the environment (unconfigured
/// without an API key: its models then answer FAILED_PRECONDITION).
pub fn provider(
    config: &crate::config::Config,
    env: &crate::config::Env,
) -> Result<super::registry::Registered, Error> {
    let settings = Settings::resolve(
        config,
        env,
        "anthropic",
        &["ANTHROPIC_API_KEY"],
        "ANTHROPIC_BASE_URL",
        DEFAULT_BASE_URL,
    );
    if settings.api_key.is_none() {
        return Ok(super::pending("anthropic", "ChatAnthropic", HOW));
    }
    super::http::ready(settings, Anthropic::new)
}

impl Wire for Anthropic {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn request(
        &self,
        client: &reqwest::Client,
        call: &Call,
    ) -> Result<reqwest::RequestBuilder, Error> {
        codec::refuse_unsupported(&call.request, "anthropic", wire::SUPPORTS)?;
        let mut body = wire::body(call, self.settings.default_max_tokens)?;
        // The model's options from the config file first, the request's over them.
        for options in [
            &call.options.provider_options,
            &call.request.provider_options,
        ] {
            codec::merge_provider_options(&mut body, options, wire::OWNED, "anthropic")?;
        }
        let body = codec::json_body(&body, "anthropic")?;
        let mut rb = super::post(client, &self.settings.endpoint("/v1/messages"))
            .header("anthropic-version", API_VERSION)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(key) = &self.settings.api_key {
            rb = rb.header("x-api-key", super::secret_header(key)?);
        }
        // One `anthropic-beta` header: the configured betas, then the ones
        // this request needs (structured outputs).
        let (beta, other): (Vec<_>, Vec<_>) = self
            .settings
            .headers
            .iter()
            .cloned()
            .partition(|(k, _)| k.eq_ignore_ascii_case("anthropic-beta"));
        let mut betas: Vec<String> = beta
            .into_iter()
            .flat_map(|(_, v)| {
                v.split(',')
                    .map(|b| b.trim().to_string())
                    .filter(|b| !b.is_empty())
                    .collect::<Vec<_>>()
            })
            .collect();
        for b in wire::betas(&call.request) {
            if !betas.iter().any(|x| x == b) {
                betas.push(b.to_string());
            }
        }
        rb = super::with_extra_headers(rb, &other)?;
        if !betas.is_empty() {
            rb = rb.header("anthropic-beta", betas.join(","));
        }
        Ok(rb.body(body))
    }

    fn decoder(&self, _call: &Call) -> Box<dyn Decoder> {
        Box::new(AnthropicDecoder::new())
    }

    fn http_error(&self, status: u16, body: &str) -> Error {
        http_error(status, body)
    }
}

/// The error for a non-2xx answer: Anthropic's own message
/// (`{"type":"error","error":{"type":..,"message":..}}`), classed by status,
/// and by `error.type` where that says more (overloaded, rate limited).
pub fn http_error(status: u16, body: &str) -> Error {
    #[derive(serde::Deserialize)]
    struct Envelope {
        error: Body,
    }
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default, rename = "type")]
        kind: String,
        #[serde(default)]
        message: String,
    }
    let Ok(Envelope { error }) = serde_json::from_str::<Envelope>(body) else {
        return Error::from_upstream_status(status, &super::http::generic_error_message(body));
    };
    let detail = match (error.kind.is_empty(), error.message.is_empty()) {
        (true, _) => error.message,
        (false, true) => error.kind.clone(),
        (false, false) => format!("{} ({})", error.message, error.kind),
    };
    // The status decides, except where the type says more: overloaded or rate
    // limited under another status, or a status the table does not list.
    let mut e = Error::from_upstream_status(status, &detail);
    let overrides = matches!(error.kind.as_str(), "overloaded_error" | "rate_limit_error")
        || e.kind == crate::error::Kind::UpstreamUnexpected;
    if let Some(typed) = error_status(&error.kind).filter(|_| overrides) {
        (e.kind, e.reason) = crate::error::Kind::from_http_status(typed);
    }
    e
}

/// The HTTP status Anthropic documents for an error type (`error.type`), so
/// an error event mid-stream is classed by the one table as its HTTP twin is.
fn error_status(kind: &str) -> Option<u16> {
    Some(match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "api_error" => 500,
        "timeout_error" => 408,
        "overloaded_error" => 529,
        _ => return None,
    })
}

/// The error for an `error` event in the stream.
pub(super) fn stream_error(kind: &str, message: &str) -> Error {
    let (k, reason) = error_status(kind).map_or(
        (Kind::Unavailable, "UPSTREAM_ERROR"),
        Kind::from_http_status,
    );
    let kind = if kind.is_empty() { "error" } else { kind };
    let message = if message.is_empty() {
        "(no message)"
    } else {
        message
    };
    Error::new(
        k,
        reason,
        format!("anthropic reported an error mid-stream ({kind}): {message}"),
    )
}

/// Decodes a whole SSE body as the shell would (framer → decoder → relay):
/// the chunks produced, and the error that ended the stream, if any. For
/// fixture checks and tests; the server streams instead.
pub fn decode_body(body: &[u8], fallback_id: &str) -> (Vec<Chunk>, Option<Error>) {
    super::codec::decode_body(
        Framing::Sse,
        &mut AnthropicDecoder::new(),
        body,
        &[],
        fallback_id,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::error::Kind;

    #[test]
    fn http_errors_carry_anthropic_message_and_class() {
        let body = |t: &str, m: &str| {
            format!(
                r#"{{"type":"error","error":{{"type":"{t}","message":"{m}"}},"request_id":"req_1"}}"#
            )
        };
        let cases = [
            (400, "invalid_request_error", Kind::InvalidArgument),
            (401, "authentication_error", Kind::PermissionDenied),
            (403, "permission_error", Kind::PermissionDenied),
            (404, "not_found_error", Kind::NotFound),
            (413, "request_too_large", Kind::InvalidArgument),
            (429, "rate_limit_error", Kind::RateLimited),
            (500, "api_error", Kind::Unavailable),
            (529, "overloaded_error", Kind::Unavailable),
            (500, "overloaded_error", Kind::Unavailable),
        ];
        for (status, t, kind) in cases {
            let e = http_error(status, &body(t, "Something specific"));
            assert_eq!(e.kind, kind, "{status} {t}");
            assert!(e.message.contains("Something specific"), "{}", e.message);
            assert!(e.message.contains(t), "{}", e.message);
            assert_eq!(e.upstream_status, Some(status));
        }
        assert_eq!(
            http_error(529, &body("overloaded_error", "x")).reason,
            "UPSTREAM_OVERLOADED"
        );
        assert_eq!(
            http_error(500, &body("overloaded_error", "x")).reason,
            "UPSTREAM_OVERLOADED"
        );
        let e = http_error(502, "<html>bad gateway</html>");
        assert_eq!(e.kind, Kind::Unavailable);
        assert!(e.message.contains("bad gateway"));
    }
}
