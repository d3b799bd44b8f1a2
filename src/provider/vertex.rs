//! The `vertex` provider: Google Vertex AI, one name for two publishers.
//! `vertex:gemini-…` (any model not starting with `claude`) goes to Gemini on
//! Vertex (`gemini::vertex`, StreamEvents name `ChatVertexAI`);
//! `vertex:claude-…` goes to Claude on Vertex (`anthropic::vertex`,
//! `ChatAnthropicVertex`). Each is a mode of its provider's own folder, reusing
//! that folder's request builder and decoder (no provider imports another);
//! this file only composes the two, as the registry composes all providers.
//! Both share one cached, single-flight OAuth2 token source (`google_auth`).

use std::sync::Arc;

use super::{
    anthropic::vertex::AnthropicVertex,
    gemini::vertex::GeminiVertex,
    google_auth::{default_base_url, TokenSource, VertexSite},
    http::HttpProvider,
    registry::Registered,
    BoxFuture, Call, ChunkStream, Provider, ProviderInfo, Settings,
};
use crate::error::Error;

const NAME: &str = "vertex";
const CLASS: &str = "ChatVertexAI";
const CLAUDE_CLASS: &str = "ChatAnthropicVertex";
const HOW: &str = "GOOGLE_CLOUD_PROJECT (or a key file's project_id) with GOOGLE_APPLICATION_CREDENTIALS (a service-account key file; on Google Cloud the metadata server serves tokens without one)";
/// Vertex AI's default location when none is set (LangChain's too).
const DEFAULT_LOCATION: &str = "us-central1";

/// The two publishers behind one provider name.
pub struct Vertex {
    info: ProviderInfo,
    gemini: Arc<dyn Provider>,
    claude: Arc<dyn Provider>,
}

fn is_claude(model: &str) -> bool {
    model.starts_with("claude")
}

impl Provider for Vertex {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn chat_class(&self, model: &str) -> &'static str {
        if is_claude(model) {
            CLAUDE_CLASS
        } else {
            CLASS
        }
    }

    fn stream(&self, call: Call) -> BoxFuture<Result<ChunkStream, Error>> {
        if is_claude(&call.model) {
            self.claude.stream(call)
        } else {
            self.gemini.stream(call)
        }
    }
}

/// The provider, configured from the file and the environment: the project
/// from `GOOGLE_CLOUD_PROJECT` (or the key file's `project_id`), the location
/// from `GOOGLE_CLOUD_LOCATION` / `GOOGLE_CLOUD_REGION` (default us-central1),
/// the base URL from `VERTEX_BASE_URL` or the file (default the location's
/// regional endpoint), tokens from `GOOGLE_APPLICATION_CREDENTIALS` or the
/// metadata server.
pub fn provider(
    config: &crate::config::Config,
    env: &crate::config::Env,
) -> Result<Registered, Error> {
    let get = |k: &str| {
        env.get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let has_key_file = get("GOOGLE_APPLICATION_CREDENTIALS").is_some();
    let explicit_project = get("GOOGLE_CLOUD_PROJECT");
    if !has_key_file && explicit_project.is_none() {
        return Ok(super::pending(NAME, CLASS, HOW));
    }
    let location = get("GOOGLE_CLOUD_LOCATION")
        .or_else(|| get("GOOGLE_CLOUD_REGION"))
        .unwrap_or_else(|| DEFAULT_LOCATION.to_string());
    let settings = Settings::resolve(
        config,
        env,
        NAME,
        &[],
        "VERTEX_BASE_URL",
        &default_base_url(&location),
    );
    let clients = settings.clients()?;
    let found = match TokenSource::discover(env, clients.any()) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(provider = NAME, error = %e, "vertex is not configured");
            return Ok(super::pending(NAME, CLASS, HOW));
        }
    };
    let Some(project) = explicit_project.or(found.project_id) else {
        return Ok(super::pending(NAME, CLASS, HOW));
    };
    let site = VertexSite {
        base_url: settings.base_url.clone(),
        project,
        location,
        tokens: found.tokens,
    };
    let mut features = GeminiVertex::features();
    for f in AnthropicVertex::features() {
        if !features.contains(&f) {
            features.push(f);
        }
    }
    let info = ProviderInfo {
        name: NAME,
        chat_class: CLASS,
        configured: true,
        base_url: settings.base_url.clone(),
        features,
        models: Vec::new(),
        how_to_configure: HOW,
    };
    let max_frame = settings.max_frame;
    let gemini = HttpProvider::new(
        GeminiVertex::new(info.clone(), site.clone(), settings.clone()),
        clients.clone(),
        max_frame,
    );
    let claude = HttpProvider::new(
        AnthropicVertex::new(info.clone(), site, settings),
        clients,
        max_frame,
    );
    Ok(Registered::Ready(Arc::new(Vertex {
        info,
        gemini: Arc::new(gemini),
        claude: Arc::new(claude),
    })))
}
