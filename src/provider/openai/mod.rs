//! The `openai` provider: Chat Completions over SSE, for OpenAI itself and for
//! every server that speaks it (vLLM, llama.cpp, Ollama's `/v1`, Groq,
//! Together, DeepSeek, OpenRouter, LM Studio, Mistral), chosen by
//! `OPENAI_BASE_URL`. A base URL without a key is enough: local servers need none.
//!
//! `wire` builds the request body, `decode` is the pure stream decoder; this
//! file plugs them into the http shell.

pub mod azure;
mod chunk;
pub mod decode;
pub mod responses;
mod token;
pub mod wire;

pub use decode::OpenAiDecoder;

use super::{http::Wire, Call, Decoder, Framing, ProviderInfo, Settings};
use crate::{
    chat::types::Chunk,
    error::{Error, Kind},
};

/// Where OpenAI itself lives.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
const HOW: &str = "OPENAI_API_KEY, or OPENAI_BASE_URL for a local OpenAI-compatible server";

/// The provider, configured from the file and the environment.
pub fn provider(
    config: &crate::config::Config,
    env: &crate::config::Env,
) -> Result<super::registry::Registered, Error> {
    let settings = Settings::resolve(
        config,
        env,
        "openai",
        &["OPENAI_API_KEY"],
        "OPENAI_BASE_URL",
        DEFAULT_BASE_URL,
    );
    if settings.api_key.is_none() && !settings.explicit_base_url {
        return Ok(super::pending("openai", "ChatOpenAI", HOW));
    }
    if settings.api_key.is_some() && settings.has_userinfo() {
        tracing::warn!(
            base_url = %super::display_url(&settings.base_url),
            "the base URL's user:pass@ is not sent: the API key is, as the one Authorization header"
        );
    }
    super::http::ready(settings, OpenAi::new)
}

/// The Chat Completions wire.
pub struct OpenAi {
    info: ProviderInfo,
    settings: Settings,
}

impl OpenAi {
    pub fn new(settings: Settings) -> Self {
        Self {
            info: ProviderInfo {
                name: "openai",
                chat_class: "ChatOpenAI",
                configured: true,
                base_url: settings.base_url.clone(),
                features: super::codec::features(
                    &["tools", "images", "refusal", "usage"],
                    wire::SUPPORTS,
                ),
                models: Vec::new(),
                how_to_configure: HOW,
            },
            settings,
        }
    }
}

impl Wire for OpenAi {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn request(
        &self,
        client: &reqwest::Client,
        call: &Call,
    ) -> Result<reqwest::RequestBuilder, Error> {
        let body = wire::body(
            &call.model,
            &call.request,
            &call.options,
            self.settings.default_max_tokens,
        )?;
        sse_post(client, &self.settings, "/chat/completions", &body)
    }

    fn decoder(&self, call: &Call) -> Box<dyn Decoder> {
        Box::new(OpenAiDecoder::with_usage_requested(
            call.options.include_usage,
        ))
    }

    /// `{"error": {"message", "type", "code"}}`: the message, with the code
    /// (e.g. `model_not_found`, `insufficient_quota`) when there is one.
    fn http_error(&self, status: u16, body: &str) -> Error {
        http_error(status, body)
    }
}

/// The streaming POST both OpenAI APIs take: JSON in, SSE out, the key as a
/// bearer token, the configured extra headers.
fn sse_post(
    client: &reqwest::Client,
    settings: &Settings,
    path: &str,
    body: &serde_json::Value,
) -> Result<reqwest::RequestBuilder, Error> {
    let mut rb = crate::provider::post(client, &settings.bearer_endpoint(path))
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(crate::provider::codec::json_body(body, "openai")?);
    if let Some(key) = &settings.api_key {
        rb = rb.bearer_auth(key);
    }
    super::with_extra_headers(rb, &settings.headers)
}

/// An OpenAI-shaped error body (Chat Completions, Responses, Azure) → the
/// contract's error, with the provider's code (e.g. `model_not_found`) named.
pub fn http_error(status: u16, body: &str) -> Error {
    let mut message = super::http::generic_error_message(body);
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        let code = v
            .get("error")
            .and_then(|e| e.get("code").or_else(|| e.get("type")))
            .and_then(|c| c.as_str())
            .filter(|c| !c.is_empty() && !message.contains(*c));
        if let Some(c) = code {
            message = format!("{message} ({c})");
        }
    }
    Error::from_upstream_status(status, &message)
}

/// An `error` object (or string) sent inside the stream. The HTTP status of
/// the stream was 200, so the class comes from the error's own status/code
/// (a number: HTTP-like; a string: OpenAI's error types); an error that says
/// nothing usable is UNAVAILABLE (the upstream failed mid-answer).
pub fn stream_error(e: &serde_json::Value) -> Error {
    let s = |k: &str| e.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let num = |k: &str| {
        e.get(k).and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        })
    };
    let message = match e.as_str() {
        Some(m) => m.to_string(),
        None if !s("message").is_empty() => s("message").to_string(),
        None => e.to_string().chars().take(500).collect(),
    };
    let status = ["status_code", "status", "code"]
        .iter()
        .filter_map(|k| num(k))
        .find(|n| (400..600).contains(n))
        .map(|n| n as u16);
    let words = format!("{} {}", s("type"), s("code")).to_ascii_lowercase();
    let status = status.or_else(|| {
        if words.contains("rate_limit") || words.contains("quota") || words.contains("too_many") {
            Some(429)
        } else if words.contains("invalid_request")
            || words.contains("context_length")
            || words.contains("tool_use_failed")
        {
            Some(400)
        } else if words.contains("authentication") || words.contains("permission") {
            Some(401)
        } else if words.contains("server_error") || words.contains("overloaded") {
            Some(503)
        } else {
            None
        }
    });
    let what = match (s("type"), s("code")) {
        ("", "") => String::new(),
        (t, "") | ("", t) => format!(" ({t})"),
        (t, c) => format!(" ({t}, {c})"),
    };
    let message = format!("the upstream reported an error mid-stream{what}: {message}");
    match status {
        Some(st) => {
            let base = Error::from_upstream_status(st, "");
            Error::new(base.kind, base.reason, message).with_status(st)
        }
        None => Error::new(Kind::Unavailable, "UPSTREAM_ERROR", message),
    }
}

/// Framer → decoder → relay over a whole body, as the http shell does it (the
/// body split at `splits`): the chunks a client would get, and the error that
/// would end the stream. For the fixture check and split tests.
pub fn decode_body(body: &[u8], splits: &[usize]) -> (Vec<Chunk>, Option<Error>) {
    super::codec::decode_body(
        Framing::Sse,
        &mut OpenAiDecoder::new(),
        body,
        splits,
        "run-fallback",
    )
}

#[cfg(test)]
mod tests;
