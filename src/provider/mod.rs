//! The provider seam: one object-safe trait, the registry that routes a model
//! name to an `Arc<dyn Provider>`, and the relay that turns a decoder's parts
//! into client chunks. Each provider lives in its own module; the fake is just
//! another implementation.

pub mod anthropic;
pub mod codec;
pub mod fake;
pub mod frame;
pub mod gemini;
pub mod http;
pub mod ollama;
pub mod openai;

use std::{collections::BTreeMap, collections::VecDeque, future::Future, pin::Pin, sync::Arc};

use futures_util::Stream;

use crate::{
    chat::types::{ChatRequest, Chunk, Part, StopReason, Usage},
    error::{Error, Kind},
};
pub use frame::{Frame, Framing};

/// The chunks of one answer, pulled by the client (backpressure) and dropped
/// when the client goes away (cancellation reaches the upstream connection).
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<Chunk, Error>> + Send>>;
/// A boxed, sendable future (keeps the trait object-safe without macros).
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Per-model switches, from the config (defaults otherwise).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelOptions {
    /// False marks the model non-streaming (LangChain's `disable_streaming`).
    pub streaming: bool,
    /// OpenAI-compatible: send `stream_options.include_usage`.
    pub include_usage: bool,
    /// OpenAI: send `max_completion_tokens` instead of `max_tokens`.
    pub max_completion_tokens: bool,
    /// Sent when the request has no maxTokens and the provider demands one.
    pub default_max_tokens: Option<u32>,
    /// Concurrent calls to this model name (None: only the server-wide cap).
    pub max_concurrent: Option<usize>,
    /// Per-model overrides of the server's timers (first chunk, idle, total).
    pub first_chunk_timeout: Option<std::time::Duration>,
    pub idle_timeout: Option<std::time::Duration>,
    pub total_timeout: Option<std::time::Duration>,
}

impl Default for ModelOptions {
    fn default() -> Self {
        Self {
            streaming: true,
            include_usage: true,
            max_completion_tokens: false,
            default_max_tokens: None,
            max_concurrent: None,
            first_chunk_timeout: None,
            idle_timeout: None,
            total_timeout: None,
        }
    }
}

/// One call to a provider.
#[derive(Clone, Debug)]
pub struct Call {
    /// The model as the provider names it (after the `provider:` prefix).
    pub model: String,
    pub request: ChatRequest,
    pub options: ModelOptions,
    /// The message id to use when the provider gives none (`run-<runId>`).
    pub fallback_id: String,
}

/// What ListModels says about a provider.
#[derive(Clone, Debug)]
pub struct ProviderInfo {
    /// The name before the colon in `provider:model`.
    pub name: &'static str,
    /// LangChain's chat class name, used as the StreamEvents `name`.
    pub chat_class: &'static str,
    pub configured: bool,
    pub base_url: String,
    pub features: &'static [&'static str],
    /// Models this provider always knows (the fake's); others pass through.
    pub models: Vec<String>,
    /// What to set to configure it (for the FAILED_PRECONDITION message).
    pub how_to_configure: &'static str,
}

/// A chat-model provider.
pub trait Provider: Send + Sync + 'static {
    fn info(&self) -> &ProviderInfo;

    /// Starts a call. Failures before the first chunk (HTTP status, content
    /// type, connection) are the future's error, so they become the RPC status.
    fn stream(&self, call: Call) -> BoxFuture<Result<ChunkStream, Error>>;
}

/// A pure decoder of one provider's frames (see DESIGN: no I/O, no async).
pub trait Decoder: Send {
    /// One upstream frame in, the parts it produces out.
    fn on_frame(&mut self, frame: &Frame) -> Result<Vec<Part>, Error>;

    /// The upstream ended without its terminal event: parts to flush (and
    /// `Part::Done`) when that is a normal end for this provider, else an error.
    fn finish(&mut self) -> Result<Vec<Part>, Error>;
}

/// Turns decoder parts into client chunks: the message id on every chunk,
/// deltas forwarded at once, and one final chunk with usage, stop reason and
/// `last` when the terminal part arrives.
#[derive(Debug)]
pub struct Relay {
    id: String,
    fallback_id: String,
    model: String,
    model_sent: bool,
    usage: Option<Usage>,
    stop: Option<StopReason>,
    done: bool,
}

impl Relay {
    pub fn new(fallback_id: impl Into<String>) -> Self {
        Self {
            id: String::new(),
            fallback_id: fallback_id.into(),
            model: String::new(),
            model_sent: false,
            usage: None,
            stop: None,
            done: false,
        }
    }

    /// True once the terminal part was relayed: nothing more may follow.
    pub fn is_done(&self) -> bool {
        self.done
    }

    pub fn push(&mut self, parts: Vec<Part>, out: &mut VecDeque<Chunk>) {
        for part in parts {
            if self.done {
                return;
            }
            match part {
                Part::Meta { id, model } => {
                    if self.id.is_empty() && !id.is_empty() {
                        self.id = id;
                    }
                    if self.model.is_empty() && !model.is_empty() {
                        self.model = model;
                    }
                }
                Part::Delta(delta) => {
                    let id = self.id().to_string();
                    let model = self.model_once();
                    out.push_back(Chunk {
                        id,
                        model,
                        delta: Some(delta),
                        ..Chunk::default()
                    });
                }
                Part::Usage(u) => self.usage = Some(u),
                Part::Stop(s) => self.stop = Some(s),
                Part::Done => {
                    let id = self.id().to_string();
                    let model = self.model_once();
                    out.push_back(Chunk {
                        id,
                        model,
                        delta: None,
                        usage: self.usage,
                        stop_reason: Some(self.stop.unwrap_or(StopReason::Other)),
                        last: true,
                    });
                    self.done = true;
                }
            }
        }
    }

    /// The provider's model name, on the first chunk that can carry it.
    fn model_once(&mut self) -> String {
        if self.model_sent || self.model.is_empty() {
            return String::new();
        }
        self.model_sent = true;
        self.model.clone()
    }

    fn id(&mut self) -> &str {
        if self.id.is_empty() {
            self.id.clone_from(&self.fallback_id);
        }
        &self.id
    }
}

/// Model routing: `provider:model` names and configured aliases.
pub struct Registry {
    providers: BTreeMap<&'static str, Arc<dyn Provider>>,
    aliases: BTreeMap<String, Alias>,
    options: BTreeMap<String, ModelOptions>,
}

/// An alias: a list of `provider:model` targets (the first is tried first;
/// the rest are fallbacks) and the switches it sets, laid over each target's own.
#[derive(Clone, Debug)]
pub struct Alias {
    pub targets: Vec<String>,
    pub options: OptionsPatch,
}

/// Switches set in one config entry; unset ones keep the value underneath.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptionsPatch {
    pub streaming: Option<bool>,
    pub include_usage: Option<bool>,
    pub max_completion_tokens: Option<bool>,
    pub default_max_tokens: Option<u32>,
    pub max_concurrent: Option<usize>,
    pub first_chunk_timeout: Option<std::time::Duration>,
    pub idle_timeout: Option<std::time::Duration>,
    pub total_timeout: Option<std::time::Duration>,
}

impl ModelOptions {
    /// These options with the patch's set fields laid over them.
    pub fn patched(&self, p: &OptionsPatch) -> Self {
        Self {
            streaming: p.streaming.unwrap_or(self.streaming),
            include_usage: p.include_usage.unwrap_or(self.include_usage),
            max_completion_tokens: p
                .max_completion_tokens
                .unwrap_or(self.max_completion_tokens),
            default_max_tokens: p.default_max_tokens.or(self.default_max_tokens),
            max_concurrent: p.max_concurrent.or(self.max_concurrent),
            first_chunk_timeout: p.first_chunk_timeout.or(self.first_chunk_timeout),
            idle_timeout: p.idle_timeout.or(self.idle_timeout),
            total_timeout: p.total_timeout.or(self.total_timeout),
        }
    }
}

/// A resolved route.
#[derive(Clone)]
pub struct Route {
    pub provider: Arc<dyn Provider>,
    /// `provider:model`.
    pub qualified: String,
    /// The model as the provider names it.
    pub model: String,
    pub options: ModelOptions,
}

impl Registry {
    pub fn new() -> Self {
        Self {
            providers: BTreeMap::new(),
            aliases: BTreeMap::new(),
            options: BTreeMap::new(),
        }
    }

    pub fn add_provider(&mut self, p: Arc<dyn Provider>) {
        self.providers.insert(p.info().name, p);
    }

    pub fn add_alias(&mut self, name: impl Into<String>, alias: Alias) {
        self.aliases.insert(name.into(), alias);
    }

    /// Options for a `provider:model` name used directly.
    pub fn set_model_options(&mut self, qualified: impl Into<String>, o: ModelOptions) {
        self.options.insert(qualified.into(), o);
    }

    pub fn providers(&self) -> impl Iterator<Item = &Arc<dyn Provider>> {
        self.providers.values()
    }

    pub fn aliases(&self) -> impl Iterator<Item = (&String, &Alias)> {
        self.aliases.iter()
    }

    pub fn options_for(&self, qualified: &str) -> ModelOptions {
        self.options.get(qualified).cloned().unwrap_or_default()
    }

    /// The routes for a name: one for `provider:model`, one per fallback for an
    /// alias. An alias skips targets whose provider is not configured here (so a
    /// replica without one key still serves the alias from its fallbacks); it
    /// fails only when no target can be used, with the first target's error.
    pub fn resolve(&self, name: &str) -> Result<Vec<Route>, Error> {
        let Some(alias) = self.aliases.get(name) else {
            return Ok(vec![self.resolve_qualified(name)?]);
        };
        let mut routes = Vec::new();
        let mut first_err = None;
        for t in &alias.targets {
            match self.resolve_qualified(t) {
                Ok(mut r) => {
                    r.options = r.options.patched(&alias.options);
                    routes.push(r);
                }
                Err(e) => {
                    tracing::debug!(alias = name, target = %t, error = %e, "alias target skipped");
                    first_err.get_or_insert(e);
                }
            }
        }
        match (routes.is_empty(), first_err) {
            (true, Some(e)) => Err(e),
            (true, None) => Err(Error::internal(format!("alias {name:?} has no targets"))),
            _ => Ok(routes),
        }
    }

    /// Whether `name` (an alias or provider:model) streams.
    pub fn streams(&self, name: &str) -> bool {
        match self.aliases.get(name) {
            Some(a) => {
                let target = a.targets.first().map(String::as_str).unwrap_or_default();
                self.options_for(target).patched(&a.options).streaming
            }
            None => self.options_for(name).streaming,
        }
    }

    fn resolve_qualified(&self, name: &str) -> Result<Route, Error> {
        let Some((prov, model)) = name.split_once(':') else {
            return Err(Error::new(
                Kind::NotFound,
                "UNKNOWN_MODEL",
                format!("model: unknown model or alias {name:?}; use provider:model (e.g. fake:echo) or a configured alias"),
            ));
        };
        let Some(provider) = self.providers.get(prov) else {
            let known: Vec<_> = self.providers.keys().copied().collect();
            return Err(Error::new(
                Kind::NotFound,
                "UNKNOWN_PROVIDER",
                format!(
                    "model: unknown provider {prov:?} in {name:?}; known providers: {}",
                    known.join(", ")
                ),
            ));
        };
        let info = provider.info();
        if model.is_empty() {
            return Err(Error::invalid(format!(
                "model: {name:?} names no model after \"{prov}:\""
            )));
        }
        if !info.models.is_empty() && !info.models.iter().any(|m| m == model) {
            return Err(Error::new(
                Kind::NotFound,
                "UNKNOWN_MODEL",
                format!(
                    "model: {prov} has no model {model:?}; it has: {}",
                    info.models.join(", ")
                ),
            ));
        }
        if !info.configured {
            return Err(Error::new(
                Kind::FailedPrecondition,
                "PROVIDER_NOT_CONFIGURED",
                format!(
                    "provider {prov} is not configured on this server: set {}",
                    info.how_to_configure
                ),
            )
            .with_provider(prov));
        }
        Ok(Route {
            provider: provider.clone(),
            qualified: name.to_string(),
            model: model.to_string(),
            options: self.options_for(name),
        })
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

/// A provider this server knows but cannot use: no credentials / endpoint.
pub struct Unconfigured {
    info: ProviderInfo,
}

impl Unconfigured {
    pub fn new(info: ProviderInfo) -> Self {
        Self {
            info: ProviderInfo {
                configured: false,
                ..info
            },
        }
    }
}

impl Provider for Unconfigured {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn stream(&self, _call: Call) -> BoxFuture<Result<ChunkStream, Error>> {
        let e = Error::new(
            Kind::FailedPrecondition,
            "PROVIDER_NOT_CONFIGURED",
            format!(
                "provider {} is not configured on this server: set {}",
                self.info.name, self.info.how_to_configure
            ),
        );
        Box::pin(async move { Err(e) })
    }
}

/// A header value holding a credential: marked sensitive, so HTTP logging skips it.
pub fn secret_header(key: &str) -> Result<reqwest::header::HeaderValue, Error> {
    let mut v = reqwest::header::HeaderValue::from_str(key).map_err(|_| {
        Error::new(
            Kind::FailedPrecondition,
            "PROVIDER_KEY_INVALID",
            "the provider's API key in this server's environment contains characters a header cannot carry",
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// Header names that carry credentials (by the words in them).
pub fn is_secret_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["auth", "key", "token", "secret", "cookie"]
        .iter()
        .any(|w| n.contains(w))
}

/// Adds the config file's extra headers; credential-like ones are marked sensitive.
pub fn with_extra_headers(
    mut rb: reqwest::RequestBuilder,
    headers: &[(String, String)],
) -> Result<reqwest::RequestBuilder, Error> {
    for (k, v) in headers {
        rb = if is_secret_header(k) {
            rb.header(k.as_str(), secret_header(v)?)
        } else {
            rb.header(k.as_str(), v.as_str())
        };
    }
    Ok(rb)
}

/// A URL for display: any `user:password@` removed.
pub fn display_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, path) = rest.split_at(end);
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_string(),
    }
}

/// A remote provider's resolved settings: file < environment (flags have none).
#[derive(Clone, Default)]
pub struct Settings {
    /// The base URL, without a trailing slash.
    pub base_url: String,
    /// The API key, if any. Never logged, never in an error.
    pub api_key: Option<String>,
    /// Extra headers sent on every request (from the file).
    pub headers: Vec<(String, String)>,
    /// Default max tokens (from the file).
    pub default_max_tokens: Option<u32>,
    /// True when the base URL was given explicitly (file or environment).
    pub explicit_base_url: bool,
    /// The cap on one upstream frame.
    pub max_frame: usize,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("base_url", &display_url(&self.base_url))
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("default_max_tokens", &self.default_max_tokens)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// `key_envs` are tried in order (the file's `api_key_env` first);
    /// `base_env` overrides the file's `base_url`, which overrides `default_base`.
    pub fn resolve(
        config: &crate::config::Config,
        env: &crate::server::Env,
        name: &str,
        key_envs: &[&str],
        base_env: &str,
        default_base: &str,
    ) -> Self {
        let file = config.providers.get(name).cloned().unwrap_or_default();
        let non_empty = |k: &str| {
            env.get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let api_key = file
            .api_key_env
            .as_deref()
            .and_then(non_empty)
            .or_else(|| key_envs.iter().find_map(|k| non_empty(k)));
        let explicit = non_empty(base_env).or(file.base_url.clone());
        let base_url = explicit
            .clone()
            .unwrap_or_else(|| default_base.to_string())
            .trim_end_matches('/')
            .to_string();
        if let Some(k) = &api_key {
            crate::error::register_secret(k);
        }
        for (k, v) in &file.headers {
            if is_secret_header(k) {
                crate::error::register_secret(v);
                // "Bearer sk-…": upstreams echo the token alone.
                if let Some(last) = v.split_whitespace().last() {
                    crate::error::register_secret(last);
                }
            }
        }
        Self {
            base_url,
            api_key,
            headers: file.headers.into_iter().collect(),
            default_max_tokens: file.default_max_tokens,
            explicit_base_url: explicit.is_some(),
            max_frame: config.max_frame_bytes,
        }
    }
}

/// The shared HTTP client settings for providers.
pub fn http_client() -> Result<reqwest::Client, Error> {
    http::client(std::time::Duration::from_secs(10))
}

/// The remote providers, each configured from the file and the environment
/// (or registered as unconfigured, so its name gives FAILED_PRECONDITION, not NOT_FOUND).
pub fn remote(
    config: &crate::config::Config,
    env: &crate::server::Env,
) -> Result<Vec<Arc<dyn Provider>>, Error> {
    Ok(vec![
        anthropic::provider(config, env)?,
        openai::provider(config, env)?,
        gemini::provider(config, env)?,
        ollama::provider(config, env)?,
    ])
}

/// An unconfigured placeholder (used until a provider module is implemented).
pub fn pending(name: &'static str, class: &'static str, how: &'static str) -> Arc<dyn Provider> {
    Arc::new(Unconfigured::new(ProviderInfo {
        name,
        chat_class: class,
        configured: false,
        base_url: String::new(),
        features: &[],
        models: Vec::new(),
        how_to_configure: how,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_urls_drop_credentials() {
        assert_eq!(
            display_url("https://user:pw@proxy.example/v1"),
            "https://proxy.example/v1"
        );
        assert_eq!(display_url("https://host?x=a@b"), "https://host?x=a@b");
        assert_eq!(
            display_url("http://127.0.0.1:11434"),
            "http://127.0.0.1:11434"
        );
        assert!(is_secret_header("X-Api-Key") && is_secret_header("Authorization"));
        assert!(!is_secret_header("HTTP-Referer"));
    }
}
