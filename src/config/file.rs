//! The TOML file as written: every table rejects unknown keys by name.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The TOML file, as written (every table rejects unknown keys by name).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub addr: Option<String>,
    /// Where `/metrics` is served (off when unset).
    pub metrics_addr: Option<String>,
    pub log_format: Option<String>,
    pub max_frame_bytes: Option<usize>,
    pub max_request_bytes: Option<usize>,
    pub max_concurrent_streams: Option<usize>,
    pub max_answer_bytes: Option<usize>,
    pub max_buffered_bytes: Option<usize>,
    /// Open client connections at most (accepting pauses at the cap).
    pub max_connections: Option<usize>,
    /// Seconds a new connection has to send the HTTP/2 preface (or TLS handshake).
    pub preface_timeout_secs: Option<f64>,
    pub shutdown_grace_secs: Option<u64>,
    /// Seconds from the drain's start to the GOAWAY (0: at once).
    pub drain_goaway_delay_secs: Option<f64>,
    /// A plaintext grpc.health.v1-only listener, `host:port`.
    pub health_addr: Option<String>,
    /// Browser origins allowed to call through gRPC-Web (CORS).
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Serve the browser playground.
    pub playground: Option<bool>,
    pub timers: Option<TimersFile>,
    pub retry: Option<RetryFile>,
    pub fake: Option<FakeFile>,
    pub auth: Option<AuthFile>,
    pub tls: Option<TlsFiles>,
    /// Extra CA certificates (PEM) trusted for upstream TLS, beside the web roots.
    pub upstream_ca: Option<std::path::PathBuf>,
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderFile>,
    /// `[models.NAME]`: an alias (`target`, `fallbacks`) or a `provider:model`'s
    /// switches; the switches are `OptionsPatch`, read after `target` and
    /// `fallbacks` are taken out (so unknown keys are still refused by name).
    #[serde(default)]
    pub models: BTreeMap<String, toml::Table>,
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
