//! The `openai-responses` provider: OpenAI's Responses API (`POST
//! {base}/responses`, typed SSE events), the only way OpenAI's reasoning models
//! return reasoning summaries and encrypted reasoning. A provider name of its
//! own (`openai-responses:o4-mini`), not a per-model switch on `openai`: a
//! name routes exactly like every other provider (aliases, fallbacks, model
//! options, LangChain-style `provider:model` config), and the request mapping
//! differs in what it accepts (no stop sequences, seed or penalties). It lives
//! in the openai folder because it shares OpenAI's credentials and environment
//! (`OPENAI_API_KEY`, `OPENAI_BASE_URL`, the file's `[providers.openai]`, or
//! `[providers.openai-responses]` when that exists) and OpenAI's error envelope.

pub mod decode;
mod events;
pub mod wire;

pub use decode::ResponsesDecoder;

use crate::{
    chat::types::Chunk,
    error::Error,
    provider::{http::Wire, Call, Decoder, Framing, ProviderInfo, Settings},
};

const NAME: &str = "openai-responses";
const HOW: &str = "OPENAI_API_KEY (the openai-responses provider shares the openai provider's key and OPENAI_BASE_URL)";

/// The provider, configured from the file and the environment.
pub fn provider(
    config: &crate::config::Config,
    env: &crate::config::Env,
) -> Result<crate::provider::registry::Registered, Error> {
    let section = if config.providers.contains_key(NAME) {
        NAME
    } else {
        "openai"
    };
    let settings = Settings::resolve(
        config,
        env,
        section,
        &["OPENAI_API_KEY"],
        "OPENAI_BASE_URL",
        super::DEFAULT_BASE_URL,
    );
    if settings.api_key.is_none() && !settings.explicit_base_url {
        return Ok(crate::provider::pending(NAME, "ChatOpenAI", HOW));
    }
    crate::provider::http::ready(settings, Responses::new)
}

/// The Responses API wire.
pub struct Responses {
    info: ProviderInfo,
    settings: Settings,
}

impl Responses {
    pub fn new(settings: Settings) -> Self {
        Self {
            info: ProviderInfo {
                name: NAME,
                // LangChain: ChatOpenAI(use_responses_api=True).
                chat_class: "ChatOpenAI",
                configured: true,
                base_url: settings.base_url.clone(),
                features: crate::provider::codec::features(
                    &[
                        "tools",
                        "images",
                        "refusal",
                        "usage",
                        "citations",
                        "reasoning_summaries",
                        "encrypted_reasoning",
                    ],
                    wire::SUPPORTS,
                ),
                models: Vec::new(),
                how_to_configure: HOW,
            },
            settings,
        }
    }
}

impl Wire for Responses {
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
        super::sse_post(client, &self.settings, "/responses", &body)
    }

    fn decoder(&self, _call: &Call) -> Box<dyn Decoder> {
        Box::new(ResponsesDecoder::new())
    }

    /// The same `{"error": {"message", "type", "code"}}` envelope as Chat Completions.
    fn http_error(&self, status: u16, body: &str) -> Error {
        super::http_error(status, body)
    }
}

/// Framer → decoder → relay over a whole body (the body split at `splits`),
/// as the http shell does it: for the fixture checks and split tests.
pub fn decode_body(body: &[u8], splits: &[usize]) -> (Vec<Chunk>, Option<Error>) {
    crate::provider::codec::decode_body(
        Framing::Sse,
        &mut ResponsesDecoder::new(),
        body,
        splits,
        "run-fallback",
    )
}

#[cfg(test)]
mod tests;
