//! Gemini on Vertex AI: the same request body and decoder as the Gemini API,
//! at `{base}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:streamGenerateContent?alt=sse`,
//! with a Google OAuth2 access token (`super::super::google_auth`) instead of
//! an API key. Composed with Claude on Vertex into the `vertex` provider by
//! `provider::vertex`.

use super::{request_body, GeminiDecoder};
use crate::{
    error::Error,
    provider::{
        google_auth::VertexSite, http::Wire, BoxFuture, Call, Decoder, ProviderInfo, Settings,
    },
};

/// Gemini models on Vertex AI, for the http shell.
pub struct GeminiVertex {
    info: ProviderInfo,
    site: VertexSite,
    settings: Settings,
}

impl GeminiVertex {
    pub fn new(info: ProviderInfo, site: VertexSite, settings: Settings) -> Self {
        Self {
            info,
            site,
            settings,
        }
    }

    /// The feature words Gemini on Vertex has (the Gemini API's).
    pub fn features() -> Vec<&'static str> {
        crate::provider::codec::features(
            &["tools", "images", "usage", "citations"],
            super::wire::SUPPORTS,
        )
    }
}

impl Wire for GeminiVertex {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn request(
        &self,
        client: &reqwest::Client,
        call: &Call,
    ) -> Result<reqwest::RequestBuilder, Error> {
        let model = call.model.strip_prefix("models/").unwrap_or(&call.model);
        let url = self
            .site
            .model_url("google", model, "streamGenerateContent?alt=sse")?;
        let body = request_body(call, self.settings.default_max_tokens)?;
        let req = crate::provider::post(client, &url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(crate::provider::codec::json_body(&body, "vertex")?);
        crate::provider::with_extra_headers(req, &self.settings.headers)
    }

    fn bearer(&self) -> Option<BoxFuture<Result<String, Error>>> {
        let tokens = self.site.tokens.clone();
        Some(Box::pin(async move { tokens.token().await }))
    }

    fn decoder(&self, _call: &Call) -> Box<dyn Decoder> {
        Box::new(GeminiDecoder::default())
    }

    fn http_error(&self, status: u16, body: &str) -> Error {
        super::http_error(status, body)
    }
}
