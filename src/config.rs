//! Configuration: flags > environment > optional TOML file. The file never holds
//! a secret: a provider's key is read from the env var the file names.

use std::{collections::BTreeMap, net::SocketAddr, path::Path, time::Duration};

use serde::Deserialize;

use crate::{
    chat::pipeline::{Limits, RetryPolicy, Timers},
    error::Error,
    provider::{Alias, ModelOptions, OptionsPatch},
};

/// The TOML file, as written (every table rejects unknown keys by name).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub addr: Option<String>,
    pub log_format: Option<String>,
    pub max_frame_bytes: Option<usize>,
    pub max_request_bytes: Option<usize>,
    pub max_concurrent_streams: Option<usize>,
    pub shutdown_grace_secs: Option<u64>,
    pub timers: Option<TimersFile>,
    pub retry: Option<RetryFile>,
    pub fake: Option<FakeFile>,
    pub auth: Option<AuthFile>,
    pub tls: Option<TlsFiles>,
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderFile>,
    #[serde(default)]
    pub models: BTreeMap<String, ModelFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimersFile {
    pub first_chunk_secs: Option<f64>,
    pub idle_secs: Option<f64>,
    pub total_secs: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryFile {
    pub max_retries: Option<u32>,
    pub base_backoff_ms: Option<u64>,
    pub max_backoff_ms: Option<u64>,
}

/// Callers' tokens: never in this file; read from an env var or a token file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    /// The env var holding comma-separated tokens (default `CHATWIRE_API_KEYS`).
    pub tokens_env: Option<String>,
    /// A file with one token per line (e.g. a mounted secret).
    pub tokens_file: Option<std::path::PathBuf>,
}

/// TLS files (PEM).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    /// When set, clients must present a certificate signed by this CA (mTLS).
    pub client_ca: Option<std::path::PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FakeFile {
    pub token_delay_ms: Option<u64>,
    /// Named scripts (the `fake:script` format), each served as `fake:<name>`.
    #[serde(default)]
    pub scripts: BTreeMap<String, serde_json::Value>,
}

/// A provider's settings. `api_key_env` names the variable holding the key.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderFile {
    pub base_url: Option<String>,
    pub api_key_env: Option<String>,
    pub default_max_tokens: Option<u32>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A model entry: an alias (`target`, with optional `fallbacks`) or, when the
/// table's name is itself `provider:model`, switches for that model.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    pub target: Option<String>,
    #[serde(default)]
    pub fallbacks: Vec<String>,
    pub streaming: Option<bool>,
    pub include_usage: Option<bool>,
    pub max_completion_tokens: Option<bool>,
    pub default_max_tokens: Option<u32>,
    /// Concurrent calls to this name (0 or unset: only the server-wide cap).
    pub max_concurrent: Option<usize>,
    /// Timer overrides for this model, in seconds.
    pub first_chunk_secs: Option<f64>,
    pub idle_secs: Option<f64>,
    pub total_secs: Option<f64>,
}

/// The resolved configuration the server runs with.
#[derive(Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub json_logs: bool,
    pub max_frame_bytes: usize,
    pub max_request_bytes: usize,
    pub limits: Limits,
    pub timers: Timers,
    pub retry: RetryPolicy,
    pub shutdown_grace: Duration,
    pub fake_token_delay: Duration,
    pub fake_scripts: BTreeMap<String, serde_json::Value>,
    pub providers: BTreeMap<String, ProviderFile>,
    pub aliases: BTreeMap<String, Alias>,
    pub model_options: BTreeMap<String, ModelOptions>,
    /// Callers' bearer tokens (empty: auth off). Resolved at startup.
    pub auth_tokens: Vec<String>,
    /// Where auth tokens come from (resolved by `resolve_auth`).
    pub auth_tokens_env: String,
    pub auth_tokens_file: Option<std::path::PathBuf>,
    pub tls: Option<TlsFiles>,
    /// Allow a non-loopback address without auth.
    pub insecure_no_auth: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("limits", &self.limits)
            .field("timers", &self.timers)
            .field("retry", &self.retry)
            .field("aliases", &self.aliases)
            .field(
                "auth_tokens",
                &format_args!("<{} redacted>", self.auth_tokens.len()),
            )
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            json_logs: false,
            max_frame_bytes: crate::provider::http::DEFAULT_MAX_FRAME,
            max_request_bytes: 32 * 1024 * 1024,
            limits: Limits::default(),
            timers: Timers::default(),
            retry: RetryPolicy::default(),
            shutdown_grace: Duration::from_secs(30),
            fake_token_delay: Duration::ZERO,
            fake_scripts: BTreeMap::new(),
            providers: BTreeMap::new(),
            aliases: BTreeMap::new(),
            model_options: BTreeMap::new(),
            auth_tokens: Vec::new(),
            auth_tokens_env: "CHATWIRE_API_KEYS".to_string(),
            auth_tokens_file: None,
            tls: None,
            insecure_no_auth: false,
        }
    }
}

/// The longest timer or grace period accepted (a year): no setting can overflow a clock.
pub const MAX_SECS: u64 = 365 * 24 * 3600;
/// The longest retry backoff accepted (an hour).
pub const MAX_BACKOFF_MS: u64 = 3_600_000;

pub const KNOWN_PROVIDERS: &[&str] = &["fake", "anthropic", "openai", "gemini", "ollama"];

impl Config {
    /// Reads and validates a TOML file; errors name the file, the key and where.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::invalid(format!("{}: cannot read: {e}", path.display())))?;
        Self::from_toml(&text).map_err(|e| Error::invalid(format!("{}: {e}", path.display())))
    }

    pub fn from_toml(text: &str) -> Result<Self, String> {
        let f: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut c = Config::default();
        if let Some(a) = f.addr {
            c.addr = a
                .parse()
                .map_err(|e| format!("addr: {a:?} is not host:port ({e})"))?;
        }
        match f.log_format.as_deref() {
            None | Some("text") => {}
            Some("json") => c.json_logs = true,
            Some(o) => return Err(format!("log_format: {o:?} is not \"text\" or \"json\"")),
        }
        if let Some(v) = f.max_frame_bytes {
            c.max_frame_bytes = v;
        }
        if let Some(v) = f.max_request_bytes {
            c.max_request_bytes = v;
        }
        if let Some(v) = f.max_concurrent_streams {
            c.limits.max_concurrent = v;
        }
        if let Some(v) = f.shutdown_grace_secs {
            c.shutdown_grace = Duration::from_secs(v.min(MAX_SECS));
        }
        if let Some(t) = f.timers {
            let secs = |name: &str, v: Option<f64>, d: Duration| -> Result<Duration, String> {
                match v {
                    None => Ok(d),
                    Some(s) if s.is_finite() && s > 0.0 && s <= MAX_SECS as f64 => {
                        Ok(Duration::from_secs_f64(s))
                    }
                    Some(s) => Err(format!(
                        "timers.{name}: {s} must be a positive number of seconds"
                    )),
                }
            };
            c.timers.first_chunk =
                secs("first_chunk_secs", t.first_chunk_secs, c.timers.first_chunk)?;
            c.timers.idle = secs("idle_secs", t.idle_secs, c.timers.idle)?;
            c.timers.total = secs("total_secs", t.total_secs, c.timers.total)?;
        }
        if let Some(r) = f.retry {
            if let Some(v) = r.max_retries {
                c.retry.max_retries = v;
            }
            if let Some(v) = r.base_backoff_ms {
                c.retry.base_backoff = Duration::from_millis(v.min(MAX_BACKOFF_MS));
            }
            if let Some(v) = r.max_backoff_ms {
                c.retry.max_backoff = Duration::from_millis(v.min(MAX_BACKOFF_MS));
            }
        }
        if let Some(a) = f.auth {
            if let Some(e) = a.tokens_env {
                c.auth_tokens_env = e;
            }
            c.auth_tokens_file = a.tokens_file;
        }
        c.tls = f.tls;
        if let Some(fake) = f.fake {
            c.fake_token_delay = Duration::from_millis(fake.token_delay_ms.unwrap_or(0));
            for (name, script) in &fake.scripts {
                if name == "echo" || name == "script" || name.contains(':') || name.is_empty() {
                    return Err(format!("fake.scripts.{name}: the name must not be echo, script, empty or contain ':'"));
                }
                crate::provider::fake::check_script(script)
                    .map_err(|e| format!("fake.scripts.{name}: {e}"))?;
            }
            c.fake_scripts = fake.scripts;
        }
        for name in f.providers.keys() {
            if !KNOWN_PROVIDERS.contains(&name.as_str()) || name == "fake" {
                return Err(format!(
                    "providers.{name}: unknown provider; configurable ones are anthropic, openai, gemini, ollama"
                ));
            }
        }
        c.providers = f.providers;
        for (name, m) in f.models {
            let secs = |key: &str, v: Option<f64>| -> Result<Option<Duration>, String> {
                match v {
                    None => Ok(None),
                    Some(s) if s.is_finite() && s > 0.0 && s <= MAX_SECS as f64 => {
                        Ok(Some(Duration::from_secs_f64(s)))
                    }
                    Some(s) => Err(format!(
                        "models.{name}.{key}: {s} must be a positive number of seconds"
                    )),
                }
            };
            let first_chunk_timeout = secs("first_chunk_secs", m.first_chunk_secs)?;
            let idle_timeout = secs("idle_secs", m.idle_secs)?;
            let total_timeout = secs("total_secs", m.total_secs)?;
            let options = OptionsPatch {
                streaming: m.streaming,
                include_usage: m.include_usage,
                max_completion_tokens: m.max_completion_tokens,
                default_max_tokens: m.default_max_tokens,
                max_concurrent: m.max_concurrent.filter(|&n| n > 0),
                first_chunk_timeout,
                idle_timeout,
                total_timeout,
            };
            let check = |t: &str, key: &str| -> Result<(), String> {
                match t.split_once(':') {
                    Some((p, m)) if KNOWN_PROVIDERS.contains(&p) && !m.is_empty() => Ok(()),
                    _ => Err(format!(
                        "models.{name}.{key}: {t:?} is not provider:model with a known provider"
                    )),
                }
            };
            match m.target {
                Some(target) => {
                    if name.contains(':') {
                        return Err(format!(
                            "models.{name:?}: an alias name must not contain ':'"
                        ));
                    }
                    check(&target, "target")?;
                    for fb in &m.fallbacks {
                        check(fb, "fallbacks")?;
                    }
                    let mut targets = vec![target];
                    targets.extend(m.fallbacks);
                    c.aliases.insert(name, Alias { targets, options });
                }
                None => {
                    check(&name, "(name)").map_err(|_| {
                        format!("models.{name}: needs `target` (an alias) or a provider:model name (switches for that model)")
                    })?;
                    if !m.fallbacks.is_empty() {
                        return Err(format!(
                            "models.{name}.fallbacks: only an alias (with `target`) has fallbacks"
                        ));
                    }
                    c.model_options
                        .insert(name, ModelOptions::default().patched(&options));
                }
            }
        }
        Ok(c)
    }
}

impl Config {
    /// Reads callers' tokens from the configured env var and token file.
    pub fn resolve_auth(&mut self, env: &crate::server::Env) -> Result<(), Error> {
        use crate::api::auth::Tokens;
        let mut tokens = env
            .get(&self.auth_tokens_env)
            .map(|v| Tokens::parse_list(v))
            .unwrap_or_default();
        if let Some(path) = &self.auth_tokens_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::invalid(format!(
                    "auth.tokens_file: cannot read {}: {e}",
                    path.display()
                ))
            })?;
            tokens.extend(Tokens::parse_list(&text));
        }
        self.auth_tokens = tokens;
        Ok(())
    }

    /// Refuses to expose an unauthenticated server beyond loopback.
    pub fn check_exposure(&self) -> Result<(), Error> {
        if !self.addr.ip().is_loopback() && self.auth_tokens.is_empty() && !self.insecure_no_auth {
            return Err(Error::invalid(format!(
                "refusing to listen on {} without callers' auth: set {} (or [auth] tokens_file), or pass --insecure-no-auth",
                self.addr, self.auth_tokens_env
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_named() {
        let e = Config::from_toml("adress = \"x\"")
            .err()
            .unwrap_or_default();
        assert!(e.contains("adress"), "{e}");
        let e = Config::from_toml("[timers]\nidle = 3")
            .err()
            .unwrap_or_default();
        assert!(e.contains("idle"), "{e}");
    }

    #[test]
    fn absurd_durations_are_refused_not_panics() {
        for t in [
            "[timers]\ntotal_secs = 1e20",
            "[timers]\nidle_secs = -1",
            "[models.x]\ntarget = \"fake:echo\"\nidle_secs = 1e300",
        ] {
            assert!(Config::from_toml(t).is_err(), "{t}");
        }
        let c = Config::from_toml("shutdown_grace_secs = 18446744073709551615\n[retry]\nmax_backoff_ms = 18446744073709551615");
        let c = c.unwrap_or_default_for_test();
        assert_eq!(c.shutdown_grace, Duration::from_secs(MAX_SECS));
        assert_eq!(c.retry.max_backoff, Duration::from_millis(MAX_BACKOFF_MS));
    }

    #[test]
    fn aliases_and_switches() {
        let c = Config::from_toml(
            "[models.fast]\ntarget = \"fake:echo\"\nfallbacks = [\"fake:script\"]\nstreaming = false\n[models.\"openai:llama\"]\ninclude_usage = false\n",
        );
        let c = c.unwrap_or_default_for_test();
        assert_eq!(c.aliases["fast"].targets, vec!["fake:echo", "fake:script"]);
        assert_eq!(c.aliases["fast"].options.streaming, Some(false));
        assert!(!c.model_options["openai:llama"].include_usage);
        assert!(Config::from_toml("[models.x]\ntarget = \"nope\"").is_err());
    }

    trait OrDefault {
        fn unwrap_or_default_for_test(self) -> Config;
    }
    impl OrDefault for Result<Config, String> {
        fn unwrap_or_default_for_test(self) -> Config {
            match self {
                Ok(c) => c,
                Err(e) => panic!("{e}"),
            }
        }
    }
}
