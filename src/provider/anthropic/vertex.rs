//! Claude on Vertex AI: the Messages API body without `model` and with
//! `anthropic_version: "vertex-2023-10-16"`, posted to
//! `{base}/v1/projects/{project}/locations/{location}/publishers/anthropic/models/{model}:streamRawPredict`
//! with a Google OAuth2 access token; the answer is Anthropic's SSE stream,
//! decoded by the same decoder. Composed with Gemini on Vertex into the
//! `vertex` provider by `provider::vertex`.

use super::{wire, AnthropicDecoder};
use crate::{
    error::Error,
    provider::{
        codec, google_auth::VertexSite, http::Wire, BoxFuture, Call, Decoder, ProviderInfo,
        Settings,
    },
};

/// The Messages API version Vertex AI takes in the body.
pub const VERTEX_VERSION: &str = "vertex-2023-10-16";

/// Claude models on Vertex AI, for the http shell.
pub struct AnthropicVertex {
    info: ProviderInfo,
    site: VertexSite,
    settings: Settings,
}

impl AnthropicVertex {
    pub fn new(info: ProviderInfo, site: VertexSite, settings: Settings) -> Self {
        Self {
            info,
            site,
            settings,
        }
    }

    /// The feature words Claude on Vertex has (the Messages API's).
    pub fn features() -> Vec<&'static str> {
        codec::features(
            &["tools", "images", "usage", "cache_usage", "citations"],
            wire::SUPPORTS,
        )
    }
}

impl Wire for AnthropicVertex {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn request(
        &self,
        client: &reqwest::Client,
        call: &Call,
    ) -> Result<reqwest::RequestBuilder, Error> {
        codec::refuse_unsupported(&call.request, "vertex", wire::SUPPORTS)?;
        let url = self
            .site
            .model_url("anthropic", &call.model, "streamRawPredict")?;
        let mut body = wire::body(call, self.settings.default_max_tokens)?;
        for options in [
            &call.options.provider_options,
            &call.request.provider_options,
        ] {
            codec::merge_provider_options(&mut body, options, wire::OWNED, "vertex")?;
        }
        // Vertex names the model in the URL and the API version in the body.
        body.remove("model");
        body.insert("anthropic_version".into(), VERTEX_VERSION.into());
        let body = crate::provider::codec::json_body(&body, "vertex")?;
        let mut rb = crate::provider::post(client, &url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "text/event-stream");
        rb = crate::provider::with_extra_headers(rb, &self.settings.headers)?;
        let betas = wire::betas(&call.request);
        if !betas.is_empty() {
            rb = rb.header("anthropic-beta", betas.join(","));
        }
        Ok(rb.body(body))
    }

    fn bearer(&self) -> Option<BoxFuture<Result<String, Error>>> {
        let tokens = self.site.tokens.clone();
        Some(Box::pin(async move { tokens.token().await }))
    }

    fn decoder(&self, _call: &Call) -> Box<dyn Decoder> {
        Box::new(AnthropicDecoder::new())
    }

    fn http_error(&self, status: u16, body: &str) -> Error {
        super::http_error(status, body)
    }
}
