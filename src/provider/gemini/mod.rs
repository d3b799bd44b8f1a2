//! The `gemini` provider: Google's Gemini API, `streamGenerateContent?alt=sse`.
//!
//! Wire facts this module relies on (Gemini API reference, `GenerateContentResponse`):
//! every SSE `data:` line is one whole response object; text comes as `parts[].text`
//! (with `thought: true` for thought summaries), function calls come whole (never
//! in fragments), `usageMetadata` repeats on every chunk (the last one wins),
//! and there is no terminal event: the stream simply ends after the chunk with a
//! `finishReason`. So EOF after a finishReason (or a blocked prompt) is the end;
//! EOF before it is a truncated answer (UNAVAILABLE).
//!
//! Thought signatures: Gemini puts `thoughtSignature` on the part that *follows*
//! the model's thinking (the first answer text part or the first functionCall),
//! and wants it back on that same part. The decoder turns a signature on a
//! non-thought part into a `Reasoning { text: "", signature }` delta emitted just
//! before that part's own delta (so the aggregator closes the preceding thought
//! block with it, or keeps it as a signature-only block). The request builder does
//! the inverse: a reasoning block's signature is put on the next non-thought part
//! of the same message (text or functionCall); with no such part it stays on the
//! thought part itself. Tool calls therefore carry no signature of their own: the
//! reasoning block that preceded them does.
//!
//! Search grounding: a candidate's `groundingMetadata` becomes one `grounding`
//! citation per (supported segment, source) pair: `groundingSupports[].segment`
//! gives the cited text and its byte range in the answer (`startIndex`,
//! `endIndex`), `groundingChunks[].web` (or `retrievedContext`) the URL and
//! title. They follow the candidate's parts, so the relay puts them on the
//! current text block; the same grounding repeated on a later chunk is not
//! reported twice.
//!
//! `wire` builds the request body (its module doc has the table of how the
//! request's fields map), `decode` is the pure stream decoder; this
//! file plugs them into the http shell and maps Google's error object (in an
//! HTTP error body or mid-stream).

mod decode;
mod thinking;
pub mod vertex;
mod wire;

use serde::Deserialize;
use serde_json::Value;

pub use decode::{stop_reason, GeminiDecoder};
pub use wire::request_body;

use super::{frame::Framing, http::Wire, Call, Decoder, ProviderInfo, Settings};
use crate::error::{Error, Kind};

use crate::provider::json_str::JsonStr;

const NAME: &str = "gemini";
const CLASS: &str = "ChatGoogleGenerativeAI";
const HOW: &str = "GEMINI_API_KEY (or GOOGLE_API_KEY)";
const DEFAULT_BASE: &str = "https://generativelanguage.googleapis.com";
/// Ids this module makes up when Gemini gives none; they are not sent back.
const GENERATED_ID_PREFIX: &str = "call_";

/// The provider, configured from the file and the environment.
pub fn provider(
    config: &crate::config::Config,
    env: &crate::config::Env,
) -> Result<super::registry::Registered, Error> {
    let settings = Settings::resolve(
        config,
        env,
        NAME,
        &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
        "GEMINI_BASE_URL",
        DEFAULT_BASE,
    );
    if settings.api_key.is_none() {
        return Ok(super::pending(NAME, CLASS, HOW));
    }
    super::http::ready(settings, Gemini::new)
}

/// The Gemini wire format.
pub struct Gemini {
    info: ProviderInfo,
    settings: Settings,
}

impl Gemini {
    pub fn new(settings: Settings) -> Self {
        Self {
            info: ProviderInfo {
                name: NAME,
                chat_class: CLASS,
                configured: true,
                base_url: settings.base_url.clone(),
                features: super::codec::features(
                    &["tools", "images", "usage", "citations"],
                    wire::SUPPORTS,
                ),
                models: Vec::new(),
                how_to_configure: HOW,
            },
            settings,
        }
    }

    fn url(&self, model: &str) -> Result<String, Error> {
        let model = model.strip_prefix("models/").unwrap_or(model);
        if model.is_empty()
            || !model
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        {
            return Err(Error::invalid(format!(
                "model: {model:?} is not a Gemini model name (letters, digits, '-', '.', '_')"
            )));
        }
        let (base, query) = super::settings::split_query(&self.settings.base_url);
        let base = base.trim_end_matches('/');
        // A base URL that already names the API version is used as given.
        let prefix = if base.ends_with("/v1beta") || base.ends_with("/v1") {
            base.to_string()
        } else {
            format!("{base}/v1beta")
        };
        // The base URL's own query (a proxy's token, say) is kept beside alt=sse.
        let extra = query
            .strip_prefix('?')
            .map_or(String::new(), |q| format!("&{q}"));
        Ok(format!(
            "{prefix}/models/{model}:streamGenerateContent?alt=sse{extra}"
        ))
    }
}

impl Wire for Gemini {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn request(
        &self,
        client: &reqwest::Client,
        call: &Call,
    ) -> Result<reqwest::RequestBuilder, Error> {
        let url = self.url(&call.model)?;
        let body = request_body(call, self.settings.default_max_tokens)?;
        let mut req = super::post(client, &url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(crate::provider::codec::json_body(&body, NAME)?);
        req = super::with_extra_headers(req, &self.settings.headers)?;
        // The key goes in a header, never in the URL (URLs end up in logs).
        if let Some(key) = &self.settings.api_key {
            req = req.header("x-goog-api-key", super::secret_header(key)?);
        }
        Ok(req)
    }

    fn decoder(&self, _call: &Call) -> Box<dyn Decoder> {
        Box::new(GeminiDecoder::default())
    }

    fn http_error(&self, status: u16, body: &str) -> Error {
        http_error(status, body)
    }
}

/// Google's `{"error": {"code", "message", "status", "details"}}` envelope.
#[derive(Debug, Deserialize)]
struct ErrorEnvelope<'a> {
    #[serde(borrow)]
    error: ApiError<'a>,
}

#[derive(Debug, Deserialize)]
struct ApiError<'a> {
    #[serde(default)]
    code: Option<u16>,
    #[serde(default, borrow)]
    message: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    status: Option<JsonStr<'a>>,
    #[serde(default)]
    details: Vec<Value>,
}

impl ApiError<'_> {
    fn text(&self) -> String {
        let message = self.message.as_deref().unwrap_or("").trim();
        match self.status.as_deref() {
            Some(s) if !s.is_empty() && !message.is_empty() => format!("{message} ({s})"),
            Some(s) if !s.is_empty() => s.to_string(),
            _ => message.to_string(),
        }
    }

    /// Gemini answers a bad key with HTTP 400 `API_KEY_INVALID`, not 401.
    fn bad_key(&self) -> bool {
        self.details
            .iter()
            .any(|d| d.get("reason").and_then(Value::as_str) == Some("API_KEY_INVALID"))
    }
}

/// The error for a non-2xx answer: mapped by HTTP status, with Google's message.
pub fn http_error(status: u16, body: &str) -> Error {
    match serde_json::from_str::<ErrorEnvelope<'_>>(body) {
        Ok(env) if env.error.bad_key() => Error::new(
            Kind::PermissionDenied,
            "UPSTREAM_PERMISSION_DENIED",
            format!(
                "the upstream refused the server's credentials (HTTP {status}): {}",
                env.error.text()
            ),
        )
        .with_status(status),
        Ok(env) => Error::from_upstream_status(status, &env.error.text()),
        Err(_) => Error::from_upstream_status(status, &super::http::generic_error_message(body)),
    }
}

/// A mid-stream `error` object: classed by its gRPC-style `status`, else its code.
fn stream_error(e: &ApiError<'_>) -> Error {
    let text = e.text();
    let (kind, reason) = match e.status.as_deref().unwrap_or("") {
        "" => {
            let mut err = Error::from_upstream_status(e.code.unwrap_or(500), &text);
            err.message = format!("the upstream reported an error mid-stream: {text}");
            return err;
        }
        name => {
            Kind::from_upstream_grpc_name(name).unwrap_or((Kind::Unavailable, "UPSTREAM_ERROR"))
        }
    };
    let mut err = Error::new(
        kind,
        reason,
        format!("the upstream reported an error mid-stream: {text}"),
    );
    err.upstream_status = e.code;
    err
}

/// Runs a whole body through framer → decoder → relay, as the http shell does
/// (used by the fixture check and the unit tests).
pub fn decode_body(body: &[u8]) -> (Vec<crate::chat::types::Chunk>, Option<Error>) {
    super::codec::decode_body(
        Framing::Sse,
        &mut GeminiDecoder::default(),
        body,
        &[],
        "run-fallback",
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn http_errors_use_googles_message() {
        let e = http_error(
            400,
            r#"{"error":{"code":400,"message":"Invalid value at 'x'","status":"INVALID_ARGUMENT"}}"#,
        );
        assert_eq!(e.kind, Kind::InvalidArgument);
        assert!(e.message.contains("Invalid value at 'x'"));
        let e = http_error(
            400,
            r#"{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}"#,
        );
        assert_eq!(e.kind, Kind::PermissionDenied);
        assert_eq!(http_error(503, "oops").kind, Kind::Unavailable);
        assert_eq!(http_error(404, "{}").kind, Kind::NotFound);
    }

    #[test]
    fn decode_body_handles_crlf_and_missing_end() {
        let body = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"A\"}]},\"finishReason\":\"STOP\"}],\"responseId\":\"x\"}\r\n\r\n";
        let (chunks, err) = decode_body(body.as_bytes());
        assert!(err.is_none());
        assert_eq!(chunks.len(), 2);
        assert!(chunks.iter().all(|c| c.id == "x"));
        assert!(chunks[1].last);
        let (_, err) = decode_body(b"data: {\"candidates\":[]}\n\n");
        assert_eq!(err.unwrap().reason, "UPSTREAM_TRUNCATED");
    }

    #[test]
    fn url_uses_v1beta_and_rejects_odd_model_names() {
        let g = Gemini::new(Settings {
            base_url: "http://h".into(),
            ..Settings::default()
        });
        assert_eq!(
            g.url("models/gemini-2.0-flash").unwrap(),
            "http://h/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
        );
        assert!(g.url("a/../b").is_err());
    }
}
