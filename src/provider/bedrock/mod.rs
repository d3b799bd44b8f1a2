//! The `bedrock` provider: AWS Bedrock's ConverseStream
//! (`POST {endpoint}/model/{modelId}/converse-stream`), answered in AWS's
//! binary event-stream framing (`super::eventstream`, CRCs checked by AWS's
//! own decoder). `wire` builds the Converse body, `decode` is the pure event
//! decoder, `auth` finds credentials and signs (SigV4 by `aws-sigv4`, or an
//! `AWS_BEARER_TOKEN_BEDROCK` API key); this file plugs them into the http
//! shell and classes AWS's errors (an `x-amzn-errortype` header with a JSON
//! `message` before the stream, an exception message in it).

pub mod auth;
mod decode;
mod wire;

use std::time::SystemTime;

pub use decode::{stop_reason, BedrockDecoder};

use super::{codec, http::Wire, Call, Decoder, Framing, ProviderInfo, Settings};
use crate::{
    chat::types::Chunk,
    error::{Error, Kind},
};

const NAME: &str = "bedrock";
const CLASS: &str = "ChatBedrockConverse";
const HOW: &str = "AWS_REGION and AWS credentials (AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY, a profile in ~/.aws/credentials, or AWS_BEARER_TOKEN_BEDROCK)";

/// Bedrock's wire format, for the http shell.
pub struct Bedrock {
    info: ProviderInfo,
    settings: Settings,
    region: String,
    auth: auth::Auth,
}

impl Bedrock {
    /// `settings.base_url` is the endpoint (`https://bedrock-runtime.{region}.amazonaws.com`
    /// unless overridden); `region` signs (SigV4's scope).
    pub fn new(settings: Settings, region: String, auth: auth::Auth) -> Self {
        Self {
            info: ProviderInfo {
                name: NAME,
                chat_class: CLASS,
                configured: true,
                base_url: settings.base_url.clone(),
                features: codec::features(
                    &["tools", "images", "usage", "cache_usage"],
                    wire::SUPPORTS,
                ),
                models: Vec::new(),
                how_to_configure: HOW,
            },
            settings,
            region,
            auth,
        }
    }

    /// The ConverseStream URL: the model id (or inference profile id / ARN)
    /// percent-encoded as one path segment (`:` and `/` included).
    pub fn url(&self, model: &str) -> String {
        self.settings
            .endpoint(&format!("/model/{}/converse-stream", encode_segment(model)))
    }
}

/// Every byte but RFC 3986's unreserved characters percent-encoded.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The provider, configured from the file and the environment.
pub fn provider(
    config: &crate::config::Config,
    env: &crate::config::Env,
) -> Result<super::registry::Registered, Error> {
    let set = |k: &str| env.get(k).is_some_and(|v| !v.trim().is_empty());
    // The service-specific endpoint variable first, then AWS's general one.
    let base_env = if set("AWS_ENDPOINT_URL_BEDROCK_RUNTIME") {
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME"
    } else {
        "AWS_ENDPOINT_URL"
    };
    let found = auth::discover(env);
    let region = found.region.clone().unwrap_or_default();
    let default_base = format!("https://bedrock-runtime.{region}.amazonaws.com");
    let settings = Settings::resolve(
        config,
        env,
        NAME,
        &["AWS_BEARER_TOKEN_BEDROCK"],
        base_env,
        &default_base,
    );
    let auth = match (&settings.api_key, found.credentials) {
        (Some(token), _) => auth::Auth::Bearer(token.clone()),
        (None, Some(c)) => auth::Auth::SigV4(c),
        (None, None) => {
            if let Some(p) = found.problem {
                tracing::warn!(provider = NAME, "{p}");
            }
            return Ok(super::pending(NAME, CLASS, HOW));
        }
    };
    let needs_region = matches!(auth, auth::Auth::SigV4(_)) || !settings.explicit_base_url;
    if region.is_empty() && needs_region {
        tracing::warn!(
            provider = NAME,
            "AWS credentials found but no region: set AWS_REGION (or AWS_DEFAULT_REGION, or region in the profile)"
        );
        return Ok(super::pending(NAME, CLASS, HOW));
    }
    super::http::ready(settings, |s| Bedrock::new(s, region, auth))
}

impl Wire for Bedrock {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn framing(&self) -> Framing {
        Framing::EventStream
    }

    fn request(
        &self,
        client: &reqwest::Client,
        call: &Call,
    ) -> Result<reqwest::RequestBuilder, Error> {
        codec::refuse_unsupported(&call.request, NAME, wire::SUPPORTS)?;
        let body = wire::body(call, self.settings.default_max_tokens)?;
        let body = codec::json_body(&body, "bedrock")?;
        let url = self.url(&call.model);
        // Signed: the content type, accept and the file's plain extra headers
        // (a credential header from the file is sent, unsigned).
        let mut signed: Vec<(&str, &str)> = vec![
            ("content-type", "application/json"),
            ("accept", "application/vnd.amazon.eventstream"),
        ];
        let (secret, plain): (Vec<_>, Vec<_>) = self
            .settings
            .headers
            .iter()
            .cloned()
            .partition(|(k, _)| super::is_secret_header(k));
        signed.extend(plain.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut rb = super::post(client, &url);
        for (k, v) in &signed {
            rb = rb.header(*k, *v);
        }
        rb = super::with_extra_headers(rb, &secret)?;
        match &self.auth {
            auth::Auth::Bearer(token) => {
                rb = rb.header(
                    reqwest::header::AUTHORIZATION,
                    super::secret_header(&format!("Bearer {token}"))?,
                );
            }
            auth::Auth::SigV4(c) => {
                let headers = auth::sign(c, &self.region, &url, &signed, &body, SystemTime::now())?;
                for (name, value, sensitive) in headers {
                    rb = if sensitive || name == "authorization" {
                        rb.header(name, super::secret_header(&value)?)
                    } else {
                        rb.header(name, value)
                    };
                }
            }
        }
        Ok(rb.body(body))
    }

    fn decoder(&self, _call: &Call) -> Box<dyn Decoder> {
        Box::new(BedrockDecoder::new())
    }

    fn http_error_with_headers(
        &self,
        status: u16,
        headers: &reqwest::header::HeaderMap,
        body: &str,
    ) -> Error {
        let kind = headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        http_error(status, kind.as_deref(), body)
    }
}

/// The HTTP status AWS documents for an error type, so an exception message
/// mid-stream is classed by the one table as its HTTP twin is. The type is
/// matched without its namespace and case of the first letter
/// (`ThrottlingException` in a header, `throttlingException` in the stream).
fn error_status(kind: &str) -> Option<u16> {
    let kind = kind.split(':').next().unwrap_or_default();
    let kind = kind.rsplit('#').next().unwrap_or_default();
    let mut chars = kind.chars();
    let first = chars.next()?.to_ascii_lowercase();
    let kind: String = std::iter::once(first).chain(chars).collect();
    Some(match kind.as_str() {
        "validationException" => 400,
        "accessDeniedException" | "unrecognizedClientException" => 403,
        "resourceNotFoundException" => 404,
        "modelTimeoutException" => 408,
        "throttlingException" | "serviceQuotaExceededException" | "modelNotReadyException" => 429,
        "internalServerException" => 500,
        // 424 in AWS's docs: the model failed; another try may not.
        "modelStreamErrorException" | "modelErrorException" => 503,
        "serviceUnavailableException" => 503,
        _ => return None,
    })
}

/// The `message` of AWS's JSON error body (`message` or `Message`).
fn aws_message(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    ["message", "Message"]
        .iter()
        .find_map(|k| v.get(*k)?.as_str())
        .map(str::to_string)
}

/// The error for a non-2xx answer: classed by status, and by the error type
/// where that says more (throttling or unavailable under another status, or a
/// status the table does not list), with AWS's message and type.
pub fn http_error(status: u16, kind: Option<&str>, body: &str) -> Error {
    let kind = kind
        .map(|k| k.split(':').next().unwrap_or_default().trim().to_string())
        .filter(|k| !k.is_empty())
        .or_else(|| {
            let v: serde_json::Value = serde_json::from_str(body).ok()?;
            let t = v.get("__type")?.as_str()?;
            Some(t.rsplit('#').next().unwrap_or(t).to_string())
        });
    let message = aws_message(body).unwrap_or_else(|| super::http::generic_error_message(body));
    let detail = match &kind {
        Some(k) if !message.is_empty() => format!("{message} ({k})"),
        Some(k) => k.clone(),
        None => message,
    };
    let mut e = Error::from_upstream_status(status, &detail);
    if let Some(typed) = kind.as_deref().and_then(error_status) {
        let overrides = matches!(typed, 429 | 503) || e.kind == Kind::UpstreamUnexpected;
        if overrides {
            (e.kind, e.reason) = Kind::from_http_status(typed);
        }
    }
    e
}

/// The error for an exception (or error) message in the stream.
pub(super) fn exception_error(kind: &str, payload: &str) -> Error {
    let (k, reason) = error_status(kind).map_or(
        (Kind::Unavailable, "UPSTREAM_ERROR"),
        Kind::from_http_status,
    );
    let message =
        aws_message(payload).unwrap_or_else(|| payload.trim().chars().take(500).collect());
    let message = if message.is_empty() {
        "(no message)".to_string()
    } else {
        message
    };
    Error::new(
        k,
        reason,
        format!(
            "bedrock reported {} mid-stream: {message}",
            crate::error::log_safe(kind, 80)
        ),
    )
}

/// Decodes a whole event-stream body as the shell would, cut at `splits`:
/// the chunks produced, and the error that ended the stream, if any.
pub fn decode_body(body: &[u8], splits: &[usize]) -> (Vec<Chunk>, Option<Error>) {
    codec::decode_body(
        Framing::EventStream,
        &mut BedrockDecoder::new(),
        body,
        splits,
        "run-fallback",
    )
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
