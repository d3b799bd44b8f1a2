//! Model routing: `provider:model` names and configured aliases → routes to an
//! `Arc<dyn Provider>`, and the one place the set of providers is built.

use std::{collections::BTreeMap, sync::Arc};

use super::{
    anthropic, bedrock, fake::Fake, gemini, ollama, openai, vertex, Provider, ProviderInfo,
};
use crate::{
    config::{Alias, Config, Env, ModelOptions},
    error::{Error, Kind},
};

/// Model routing: `provider:model` names and configured aliases.
pub struct Registry {
    providers: BTreeMap<&'static str, Registered>,
    aliases: BTreeMap<String, Alias>,
    options: BTreeMap<String, ModelOptions>,
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
        self.add(Registered::Ready(p));
    }

    /// Adds a provider, ready or known-but-unconfigured.
    pub fn add(&mut self, r: Registered) {
        self.providers.insert(r.info().name, r);
    }

    pub fn add_alias(&mut self, name: impl Into<String>, alias: Alias) {
        self.aliases.insert(name.into(), alias);
    }

    /// Options for a `provider:model` name used directly.
    pub fn set_model_options(&mut self, qualified: impl Into<String>, o: ModelOptions) {
        self.options.insert(qualified.into(), o);
    }

    /// What every known provider says about itself (ListModels, the start-up log).
    pub fn infos(&self) -> impl Iterator<Item = &ProviderInfo> {
        self.providers.values().map(Registered::info)
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
        let Some(registered) = self.providers.get(prov) else {
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
        let info = registered.info();
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
        let Registered::Ready(provider) = registered else {
            return Err(Error::new(
                Kind::FailedPrecondition,
                "PROVIDER_NOT_CONFIGURED",
                format!(
                    "provider {prov} is not configured on this server: set {}",
                    info.how_to_configure
                ),
            )
            .with_provider(prov));
        };
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

/// A provider as the registry holds it: ready to stream, or known but not
/// configured here (no credentials or endpoint), so its name gives
/// FAILED_PRECONDITION saying what to set, not NOT_FOUND.
pub enum Registered {
    Ready(Arc<dyn Provider>),
    Unconfigured(ProviderInfo),
}

impl Registered {
    pub fn info(&self) -> &ProviderInfo {
        match self {
            Registered::Ready(p) => p.info(),
            Registered::Unconfigured(info) => info,
        }
    }
}

/// How a remote provider module builds itself from the file and the environment.
type Constructor = fn(&Config, &Env) -> Result<Registered, Error>;

/// Every provider this server knows, configured from the file and the
/// environment: the fake first, then each remote provider (registered as
/// unconfigured when its credentials are missing, so its name gives
/// FAILED_PRECONDITION, not NOT_FOUND); then the aliases and model switches.
pub fn build(config: &Config, env: &Env) -> Result<Registry, Error> {
    // A bad upstream CA file stops the server even when no provider uses it yet.
    if let Some(ca) = &config.upstream_ca {
        super::clients::Clients::new(Some(ca))?;
    }
    let mut reg = Registry::new();
    reg.add_provider(Arc::new(Fake::with_scripts(
        config.fake_token_delay,
        config.fake_scripts.clone(),
    )));
    let remote: &[Constructor] = &[
        anthropic::provider,
        openai::provider,
        gemini::provider,
        ollama::provider,
        openai::responses::provider,
        openai::azure::provider,
        bedrock::provider,
        vertex::provider,
    ];
    for make in remote {
        reg.add(make(config, env)?);
    }
    for (name, alias) in &config.aliases {
        reg.add_alias(name.clone(), alias.clone());
    }
    for (name, o) in &config.model_options {
        reg.set_model_options(name.clone(), o.clone());
    }
    Ok(reg)
}

/// A provider whose credentials are missing: known, listed, not routable.
pub fn pending(name: &'static str, class: &'static str, how: &'static str) -> Registered {
    Registered::Unconfigured(ProviderInfo {
        name,
        chat_class: class,
        configured: false,
        base_url: String::new(),
        features: Vec::new(),
        models: Vec::new(),
        how_to_configure: how,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_registry_builds_exactly_the_providers_the_config_knows() {
        let reg = super::build(&crate::config::Config::default(), &Default::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = reg.infos().map(|i| i.name).collect();
        let mut known = crate::config::KNOWN_PROVIDERS.to_vec();
        known.sort_unstable();
        assert_eq!(names, known);
    }
}
