//! Configuration: flags > environment > optional TOML file. The file never holds
//! a secret: a provider's key is read from the env var the file names.
//!
//! Layer: a leaf above `error`. Every setting the lower layers run with is
//! defined here (timers, retries, limits, model switches, aliases, the fake's
//! scripts), so `provider`, `pipeline` and `api` read config, never each other.

mod file;
mod options;
pub mod script;

use std::{collections::BTreeMap, net::SocketAddr, path::Path, time::Duration};

pub use file::{AuthFile, FakeFile, FileConfig, ProviderFile, RetryFile, TimersFile, TlsFiles};
pub use options::{Alias, Limits, ModelOptions, OptionsPatch, RetryPolicy, Timers};

use serde::Deserialize;

use crate::error::Error;

/// A snapshot of the environment (injected, so tests never mutate the process's).
pub type Env = BTreeMap<String, String>;

/// Default cap on one upstream SSE event / NDJSON line.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// The resolved configuration the server runs with.
#[derive(Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub json_logs: bool,
    pub max_frame_bytes: usize,
    pub max_request_bytes: usize,
    /// Open client connections at most; at the cap new ones wait in the
    /// listen backlog until one closes.
    pub max_connections: usize,
    /// A new connection that has not sent the HTTP/2 preface (or, with TLS,
    /// answered the server's handshake) within this is closed.
    pub preface_timeout: Duration,
    pub limits: Limits,
    pub timers: Timers,
    pub retry: RetryPolicy,
    pub shutdown_grace: Duration,
    /// From the start of a drain (health already NOT_SERVING) to the HTTP/2
    /// GOAWAY on every connection and the listener's close (at most the grace).
    pub drain_goaway_delay: Duration,
    /// A plaintext listener serving grpc.health.v1 only (kubelet probes under mTLS).
    pub health_addr: Option<SocketAddr>,
    /// Origins allowed to call through gRPC-Web from a browser (CORS); empty:
    /// cross-origin calls refused.
    pub cors_origins: Vec<String>,
    /// Serve the browser playground at `/` and `/playground`.
    pub playground: bool,
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
    /// Where `/metrics` is served (Prometheus text); None: no metrics.
    pub metrics_addr: Option<SocketAddr>,
    /// Extra CA certificates (PEM file) trusted for upstream TLS, beside the
    /// built-in web roots (self-hosted upstreams behind a private CA).
    pub upstream_ca: Option<std::path::PathBuf>,
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
            .field("upstream_ca", &self.upstream_ca)
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            json_logs: false,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_request_bytes: 32 * 1024 * 1024,
            max_connections: 10_000,
            preface_timeout: Duration::from_secs(10),
            limits: Limits::default(),
            timers: Timers::default(),
            retry: RetryPolicy::default(),
            shutdown_grace: Duration::from_secs(30),
            drain_goaway_delay: Duration::ZERO,
            health_addr: None,
            cors_origins: Vec::new(),
            playground: false,
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
            metrics_addr: None,
            upstream_ca: None,
        }
    }
}

/// The longest timer or grace period accepted (a year): no setting can overflow a clock.
pub const MAX_SECS: u64 = 365 * 24 * 3600;
/// The longest retry backoff accepted (an hour).
pub const MAX_BACKOFF_MS: u64 = 3_600_000;

/// Every provider this server knows: the fake, then the remote ones (the
/// provider registry builds exactly these; a test there keeps the two in step).
pub const KNOWN_PROVIDERS: &[&str] = &[
    "fake",
    "anthropic",
    "openai",
    "gemini",
    "ollama",
    "openai-responses",
    "azure",
    "bedrock",
    "vertex",
];

/// A number of seconds from the file: positive, finite, at most `MAX_SECS`.
pub(crate) fn seconds(s: f64) -> Result<Duration, String> {
    if s.is_finite() && s > 0.0 && s <= MAX_SECS as f64 {
        Ok(Duration::from_secs_f64(s))
    } else {
        Err(format!("{s} must be a positive number of seconds"))
    }
}

/// A CORS origin as browsers send it: `scheme://host[:port]`, nothing after
/// (no path, no trailing slash, no wildcard), so it is compared exactly.
pub fn check_origin(origin: &str) -> Result<String, String> {
    let o = origin.trim();
    let bad = || {
        format!("{origin:?} is not an origin (scheme://host[:port], e.g. https://app.example.com)")
    };
    let (scheme, rest) = o.split_once("://").ok_or_else(bad)?;
    if !matches!(scheme, "http" | "https")
        || rest.is_empty()
        || rest.contains(['/', '*', '?', '#', '@', ' ', ','])
        || !o.is_ascii()
        || o.chars().any(|c| c.is_ascii_control())
    {
        return Err(bad());
    }
    Ok(o.to_string())
}

/// Callers' tokens from a comma- or newline-separated list (the env var and
/// token file format; `#` starts a comment line).
pub fn parse_token_list(list: &str) -> Vec<String> {
    list.split([',', '\n'])
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.starts_with('#'))
        .map(str::to_string)
        .collect()
}

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
        if let Some(a) = f.health_addr {
            c.health_addr = Some(
                a.parse()
                    .map_err(|e| format!("health_addr: {a:?} is not host:port ({e})"))?,
            );
        }
        for o in f.cors_origins {
            c.cors_origins
                .push(check_origin(&o).map_err(|e| format!("cors_origins: {e}"))?);
        }
        c.playground = f.playground.unwrap_or(false);
        if let Some(a) = f.metrics_addr {
            c.metrics_addr = Some(
                a.parse()
                    .map_err(|e| format!("metrics_addr: {a:?} is not host:port ({e})"))?,
            );
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
        if let Some(v) = f.max_connections {
            if v == 0 {
                return Err("max_connections: must be at least 1".to_string());
            }
            c.max_connections = v;
        }
        if let Some(v) = f.preface_timeout_secs {
            c.preface_timeout = seconds(v).map_err(|e| format!("preface_timeout_secs: {e}"))?;
        }
        if let Some(v) = f.max_concurrent_streams {
            c.limits.max_concurrent = v;
        }
        if let Some(v) = f.max_answer_bytes {
            if v == 0 {
                return Err("max_answer_bytes: must be greater than 0".into());
            }
            c.limits.max_answer_bytes = v;
        }
        if let Some(v) = f.max_buffered_bytes {
            c.limits.max_buffered_bytes = v;
        }
        if let Some(v) = f.shutdown_grace_secs {
            c.shutdown_grace = Duration::from_secs(v.min(MAX_SECS));
        }
        if let Some(v) = f.drain_goaway_delay_secs {
            if !(v.is_finite() && (0.0..=MAX_SECS as f64).contains(&v)) {
                return Err(format!(
                    "drain_goaway_delay_secs: {v} must be 0 or a positive number of seconds"
                ));
            }
            c.drain_goaway_delay = Duration::from_secs_f64(v);
        }
        if let Some(t) = f.timers {
            let secs = |name: &str, v: Option<f64>, d: Duration| -> Result<Duration, String> {
                v.map_or(Ok(d), seconds)
                    .map_err(|e| format!("timers.{name}: {e}"))
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
        c.upstream_ca = f.upstream_ca;
        if let Some(fake) = f.fake {
            c.fake_token_delay = Duration::from_millis(fake.token_delay_ms.unwrap_or(0));
            for (name, script) in &fake.scripts {
                if name == "echo" || name == "script" || name.contains(':') || name.is_empty() {
                    return Err(format!("fake.scripts.{name}: the name must not be echo, script, empty or contain ':'"));
                }
                script::Script::parse(script).map_err(|e| format!("fake.scripts.{name}: {e}"))?;
            }
            c.fake_scripts = fake.scripts;
        }
        for name in f.providers.keys() {
            if !KNOWN_PROVIDERS.contains(&name.as_str()) || name == "fake" {
                return Err(format!(
                    "providers.{name}: unknown provider; configurable ones are {}",
                    KNOWN_PROVIDERS[1..].join(", ")
                ));
            }
        }
        c.providers = f.providers;
        for (name, mut table) in f.models {
            let target = match table.remove("target") {
                None => None,
                Some(toml::Value::String(t)) => Some(t),
                Some(_) => return Err(format!("models.{name}.target: must be a string")),
            };
            let fallbacks: Vec<String> = match table.remove("fallbacks") {
                None => Vec::new(),
                Some(v) => v
                    .try_into()
                    .map_err(|e| format!("models.{name}.fallbacks: {e}"))?,
            };
            let options = OptionsPatch::deserialize(toml::Value::Table(table))
                .map_err(|e| format!("models.{name}: {e}"))?;
            let check = |t: &str, key: &str| -> Result<(), String> {
                match t.split_once(':') {
                    Some((p, m)) if KNOWN_PROVIDERS.contains(&p) && !m.is_empty() => Ok(()),
                    _ => Err(format!(
                        "models.{name}.{key}: {t:?} is not provider:model with a known provider"
                    )),
                }
            };
            match target {
                Some(target) => {
                    if name.contains(':') {
                        return Err(format!(
                            "models.{name:?}: an alias name must not contain ':'"
                        ));
                    }
                    check(&target, "target")?;
                    for fb in &fallbacks {
                        check(fb, "fallbacks")?;
                    }
                    let mut targets = vec![target];
                    targets.extend(fallbacks);
                    c.aliases.insert(name, Alias { targets, options });
                }
                None => {
                    check(&name, "(name)").map_err(|_| {
                        format!("models.{name}: needs `target` (an alias) or a provider:model name (switches for that model)")
                    })?;
                    if !fallbacks.is_empty() {
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
    pub fn resolve_auth(&mut self, env: &Env) -> Result<(), Error> {
        let mut tokens = env
            .get(&self.auth_tokens_env)
            .map(|v| parse_token_list(v))
            .unwrap_or_default();
        if let Some(path) = &self.auth_tokens_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::invalid(format!(
                    "auth.tokens_file: cannot read {}: {e}",
                    path.display()
                ))
            })?;
            tokens.extend(parse_token_list(&text));
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
            "drain_goaway_delay_secs = -0.5",
            "drain_goaway_delay_secs = nan",
        ] {
            assert!(Config::from_toml(t).is_err(), "{t}");
        }
        let c = Config::from_toml("shutdown_grace_secs = 18446744073709551615\n[retry]\nmax_backoff_ms = 18446744073709551615");
        let c = c.unwrap_or_default_for_test();
        assert_eq!(c.shutdown_grace, Duration::from_secs(MAX_SECS));
        assert_eq!(c.retry.max_backoff, Duration::from_millis(MAX_BACKOFF_MS));
        let c = Config::from_toml("drain_goaway_delay_secs = 0.25").unwrap_or_default_for_test();
        assert_eq!(c.drain_goaway_delay, Duration::from_millis(250));
    }

    #[test]
    fn cors_origins_and_the_health_address_are_checked() {
        let c = Config::from_toml(
            "health_addr = \"0.0.0.0:8081\"\ncors_origins = [\"https://app.example.com\", \"http://127.0.0.1:3000\"]\nplayground = true",
        )
        .unwrap_or_default_for_test();
        assert_eq!(c.health_addr, Some(SocketAddr::from(([0, 0, 0, 0], 8081))));
        assert_eq!(
            c.cors_origins,
            ["https://app.example.com", "http://127.0.0.1:3000"]
        );
        assert!(c.playground);
        for bad in [
            "*",
            "https://*.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "app.example.com",
            "ftp://app.example.com",
            "https://",
            "https://a.example, https://b.example",
            "https://user@app.example.com",
            "https://bücher.example",
        ] {
            assert!(check_origin(bad).is_err(), "{bad}");
        }
        assert!(Config::from_toml("cors_origins = [\"*\"]").is_err());
        assert!(Config::from_toml("health_addr = \"8081\"").is_err());
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
