//! The `ollama` provider: Ollama's native `/api/chat`, streamed as NDJSON.
//!
//! Wire facts this module relies on (ollama `docs/api.md`): one JSON object per
//! line; `message.content` / `message.thinking` carry text and reasoning pieces;
//! `message.tool_calls` come whole, with `arguments` as a JSON *object* (so they
//! are serialized once, here); the last line has `done: true`, `done_reason` and
//! the counters (`prompt_eval_count`, `eval_count`); a failure after the 200 is a
//! line `{"error": "..."}`. EOF before `done: true` is a truncated answer.
//! Ollama gives no message id: the relay's fallback id (`run-<runId>`) is used.
//!
//! Choices the contract leaves open:
//! - `think`: sent only when the request has a `reasoning` field (see
//!   `wire`'s table); without one the model's own default applies (thinking
//!   models then still stream `message.thinking`). No guess is made from the
//!   conversation: `think: true` makes Ollama fail (HTTP 400) on models
//!   without thinking support, so it is the caller's to ask for.
//! - `toolChoice`: Ollama has none. `none` sends no tools, a named tool sends
//!   only that tool, `auto` / `any` send them all (`any` cannot be enforced).
//! - Images: Ollama takes base64 only; a `data:` URL is unpacked, any other URL
//!   is INVALID_ARGUMENT (the server does not fetch URLs for the caller).
//!
//! `wire` builds the request body (its module doc has the table of how the
//! request's fields map), `decode` is the pure stream decoder; this
//! file plugs them into the http shell.

mod decode;
mod wire;

pub use decode::{stop_reason, stream_error, OllamaDecoder};
pub use wire::request_body;

use super::{frame::Framing, http::Wire, Call, Decoder, ProviderInfo, Settings};
use crate::error::Error;

const NAME: &str = "ollama";
const CLASS: &str = "ChatOllama";
const HOW: &str = "OLLAMA_HOST (e.g. 127.0.0.1:11434)";
const DEFAULT_HOST: &str = "http://127.0.0.1:11434";

/// The provider: configured only when `OLLAMA_HOST` is set or the file has a
/// `[providers.ollama]` section (a local server needs no key).
pub fn provider(
    config: &crate::config::Config,
    env: &crate::config::Env,
) -> Result<super::registry::Registered, Error> {
    let mut settings = Settings::resolve(
        config,
        env,
        NAME,
        &["OLLAMA_API_KEY"],
        "OLLAMA_HOST",
        DEFAULT_HOST,
    );
    if !settings.explicit_base_url && !config.providers.contains_key(NAME) {
        return Ok(super::pending(NAME, CLASS, HOW));
    }
    settings.base_url = normalize_host(&settings.base_url);
    if settings.api_key.is_some() && settings.has_userinfo() {
        tracing::warn!(
            base_url = %super::display_url(&settings.base_url),
            "the base URL's user:pass@ is not sent: the API key is, as the one Authorization header"
        );
    }
    super::http::ready(settings, Ollama::new)
}

/// `OLLAMA_HOST` as Ollama itself reads it: the scheme defaults to http, the port
/// to 11434 without a scheme (80 / 443 with an explicit http / https).
pub fn normalize_host(host: &str) -> String {
    let s = host.trim();
    // `user:pass@` (a proxy's basic auth) is kept aside while the host and
    // port are worked out, then put back.
    let (scheme_part, after) = match s.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, s),
    };
    let auth_end = after.find('/').unwrap_or(after.len());
    if let Some((userinfo, hostpart)) = after[..auth_end].rsplit_once('@') {
        let rest = format!("{hostpart}{}", &after[auth_end..]);
        let plain = match scheme_part {
            Some(scheme) => normalize_host(&format!("{scheme}://{rest}")),
            None => normalize_host(&rest),
        };
        return match plain.split_once("://") {
            Some((scheme, tail)) => format!("{scheme}://{userinfo}@{tail}"),
            None => plain,
        };
    }
    let (scheme, rest, default_port) = match s.split_once("://") {
        None => ("http", s, "11434"),
        Some(("https", rest)) => ("https", rest, "443"),
        Some((scheme, rest)) => (scheme, rest, if scheme == "http" { "80" } else { "11434" }),
    };
    let (hostport, path) = match rest.split_once('/') {
        Some((h, p)) => (h, p.trim_end_matches('/')),
        None => (rest, ""),
    };
    let has_port = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split_once(']')
            .is_some_and(|(_, after)| after.starts_with(':'))
    } else {
        hostport.contains(':') && hostport.matches(':').count() == 1
    };
    let hostport = if hostport.is_empty() {
        format!("127.0.0.1:{default_port}")
    } else if has_port {
        hostport.to_string()
    } else if hostport.contains(':') && !hostport.starts_with('[') {
        format!("[{hostport}]:{default_port}") // a bare IPv6 address
    } else {
        format!("{hostport}:{default_port}")
    };
    if path.is_empty() {
        format!("{scheme}://{hostport}")
    } else {
        format!("{scheme}://{hostport}/{path}")
    }
}

/// The Ollama wire format.
pub struct Ollama {
    info: ProviderInfo,
    settings: Settings,
}

impl Ollama {
    pub fn new(settings: Settings) -> Self {
        Self {
            info: ProviderInfo {
                name: NAME,
                chat_class: CLASS,
                configured: true,
                base_url: settings.base_url.clone(),
                features: super::codec::features(&["tools", "images", "usage"], wire::SUPPORTS),
                models: Vec::new(),
                how_to_configure: HOW,
            },
            settings,
        }
    }
}

impl Wire for Ollama {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn framing(&self) -> Framing {
        Framing::Ndjson
    }

    fn request(
        &self,
        client: &reqwest::Client,
        call: &Call,
    ) -> Result<reqwest::RequestBuilder, Error> {
        let body = request_body(call, self.settings.default_max_tokens)?;
        let mut req = super::post(client, &self.settings.bearer_endpoint("/api/chat"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(crate::provider::codec::json_body(&body, NAME)?);
        req = super::with_extra_headers(req, &self.settings.headers)?;
        // A key only matters behind an authenticating proxy or on ollama.com.
        if let Some(key) = &self.settings.api_key {
            req = req.bearer_auth(key);
        }
        Ok(req)
    }

    fn decoder(&self, _call: &Call) -> Box<dyn Decoder> {
        Box::new(OllamaDecoder::default())
    }
}

/// Runs a whole NDJSON body through framer → decoder → relay (fixture check, tests).
pub fn decode_body(body: &[u8]) -> (Vec<crate::chat::types::Chunk>, Option<Error>) {
    super::codec::decode_body(
        Framing::Ndjson,
        &mut OllamaDecoder::default(),
        body,
        &[],
        "run-fallback",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_normalize_like_ollama() {
        for (i, o) in [
            ("127.0.0.1:11434", "http://127.0.0.1:11434"),
            ("0.0.0.0", "http://0.0.0.0:11434"),
            ("example.com", "http://example.com:11434"),
            ("http://example.com", "http://example.com:80"),
            ("https://example.com/", "https://example.com:443"),
            ("http://127.0.0.1:9999", "http://127.0.0.1:9999"),
            ("https://h:8443/proxy/", "https://h:8443/proxy"),
            ("[::1]:5000", "http://[::1]:5000"),
            ("::1", "http://[::1]:11434"),
            ("", "http://127.0.0.1:11434"),
        ] {
            assert_eq!(normalize_host(i), o, "{i}");
        }
    }
}
