//! The settings the pipeline and the providers run with: the three timers, the
//! retry policy, the server's limits, and the per-model switches (a model's own
//! `ModelOptions`, and the `OptionsPatch` a config entry or an alias lays over it).

use std::time::Duration;

use serde::Deserialize;

/// The three stream timers (linkerd's initial / idle / lifetime).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timers {
    /// From the request to the first chunk (includes connecting and retries).
    pub first_chunk: Duration,
    /// Longest gap between two chunks.
    pub idle: Duration,
    /// The whole call.
    pub total: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            first_chunk: Duration::from_secs(120),
            idle: Duration::from_secs(120),
            total: Duration::from_secs(900),
        }
    }
}

impl Timers {
    /// These timers with a model's overrides laid over them.
    pub fn for_model(&self, o: &ModelOptions) -> Self {
        Self {
            first_chunk: o.first_chunk_timeout.unwrap_or(self.first_chunk),
            idle: o.idle_timeout.unwrap_or(self.idle),
            total: o.total_timeout.unwrap_or(self.total),
        }
    }
}

/// Retries before the first chunk.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// Limits on concurrent calls and on what they may hold in memory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Concurrent calls on this server (0: unlimited).
    pub max_concurrent: usize,
    /// The largest answer Invoke, StreamEvents or a non-streaming model folds
    /// (Stream folds nothing and has no such cap).
    pub max_answer_bytes: usize,
    /// Bytes all calls together may hold of answers not yet sent: partial
    /// upstream events and folded answers (0: unlimited).
    pub max_buffered_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrent: 1024,
            max_answer_bytes: 64 * 1024 * 1024,
            max_buffered_bytes: 512 * 1024 * 1024,
        }
    }
}

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
    pub first_chunk_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub total_timeout: Option<Duration>,
    /// Merged into every upstream body for this model (the request's own
    /// providerOptions are laid over these).
    pub provider_options: serde_json::Map<String, serde_json::Value>,
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
            provider_options: serde_json::Map::new(),
        }
    }
}

/// Switches set in one config entry (`[models.NAME]`, as written in the file);
/// unset ones keep the value underneath.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionsPatch {
    pub streaming: Option<bool>,
    pub include_usage: Option<bool>,
    pub max_completion_tokens: Option<bool>,
    pub default_max_tokens: Option<u32>,
    /// 0 means "only the server-wide cap".
    #[serde(default, deserialize_with = "non_zero")]
    pub max_concurrent: Option<usize>,
    #[serde(default, rename = "first_chunk_secs", deserialize_with = "secs")]
    pub first_chunk_timeout: Option<Duration>,
    #[serde(default, rename = "idle_secs", deserialize_with = "secs")]
    pub idle_timeout: Option<Duration>,
    #[serde(default, rename = "total_secs", deserialize_with = "secs")]
    pub total_timeout: Option<Duration>,
    /// `[models.NAME.provider_options]`: merged into the upstream body.
    pub provider_options: Option<serde_json::Map<String, serde_json::Value>>,
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
            provider_options: match &p.provider_options {
                None => self.provider_options.clone(),
                Some(o) => {
                    let mut merged = self.provider_options.clone();
                    merged.extend(o.iter().map(|(k, v)| (k.clone(), v.clone())));
                    merged
                }
            },
        }
    }
}

/// An alias: a list of `provider:model` targets (the first is tried first;
/// the rest are fallbacks) and the switches it sets, laid over each target's own.
#[derive(Clone, Debug)]
pub struct Alias {
    pub targets: Vec<String>,
    pub options: OptionsPatch,
}

fn non_zero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    Ok(Option::<usize>::deserialize(d)?.filter(|&n| n > 0))
}

fn secs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    match Option::<f64>::deserialize(d)? {
        None => Ok(None),
        Some(s) => super::seconds(s)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}
