//! The fake provider's script format (`fake:script` takes one as the last user
//! message; `[fake.scripts.NAME]` in the file names one, served as `fake:NAME`).
//! It lives here because the config file carries scripts and `check-config`
//! must catch their mistakes; the fake provider plays them.

use serde::Deserialize;

use crate::error::Kind;

/// A scripted response, in proto3-JSON-style camelCase.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Script {
    /// The message id (default `run-<runId>`).
    #[serde(default)]
    pub id: String,
    /// The chunks, each one of `text`, `refusal`, `reasoning`, `toolCall`.
    #[serde(default)]
    pub chunks: Vec<ScriptChunk>,
    pub usage: Option<ScriptUsage>,
    /// `end_turn` (default), `max_tokens`, `stop_sequence`, `tool_use`, `content_filter`, `other`.
    pub stop_reason: Option<ScriptStop>,
    /// Delay before each chunk, in milliseconds.
    #[serde(default)]
    pub delay_ms: u64,
    /// Fail instead of finishing.
    pub fail: Option<ScriptFailure>,
}

/// One scripted chunk.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum ScriptChunk {
    Text(String),
    Refusal(String),
    Reasoning {
        #[serde(default)]
        text: String,
        #[serde(default)]
        signature: String,
    },
    ToolCall {
        index: u32,
        #[serde(default)]
        id: String,
        #[serde(default)]
        name: String,
        #[serde(default)]
        arguments: String,
    },
}

/// A scripted stop reason (lower or upper case).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ScriptStop {
    #[serde(alias = "END_TURN")]
    EndTurn,
    #[serde(alias = "MAX_TOKENS")]
    MaxTokens,
    #[serde(alias = "STOP_SEQUENCE")]
    StopSequence,
    #[serde(alias = "TOOL_USE")]
    ToolUse,
    #[serde(alias = "CONTENT_FILTER")]
    ContentFilter,
    #[serde(alias = "OTHER")]
    Other,
}

/// Scripted usage (proto JSON names).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ScriptUsage {
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub total_tokens: u32,
    pub cache_read_tokens: u32,
    pub cache_creation_tokens: u32,
    pub reasoning_tokens: u32,
}

/// A scripted failure.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScriptFailure {
    /// Fail after this many chunks were sent (0: before the first one).
    #[serde(default)]
    pub after_chunks: usize,
    /// A gRPC code name (`UNAVAILABLE`, ...); default UNAVAILABLE.
    pub code: Option<String>,
    /// Behave as an upstream HTTP error with this status (mapped as the contract says).
    pub http_status: Option<u16>,
    /// With `httpStatus`: the upstream's retry-after, in seconds.
    pub retry_after_secs: Option<u64>,
    #[serde(default)]
    pub message: String,
}

impl ScriptFailure {
    /// The code name asked for, and the kind that ends a call with it.
    pub fn code(&self) -> Result<(&str, Kind), String> {
        let name = self.code.as_deref().unwrap_or("UNAVAILABLE");
        Kind::for_code_name(name).map(|k| (name, k)).ok_or_else(|| {
            format!("fail.code {name:?} is not a gRPC code name this fake can produce")
        })
    }
}

impl Script {
    /// Parses and checks a script; the error says what is wrong, for the caller.
    pub fn parse(v: &serde_json::Value) -> Result<Self, String> {
        let s = Script::deserialize(v).map_err(|e| e.to_string())?;
        if let Some(f) = &s.fail {
            f.code()?;
        }
        Ok(s)
    }
}
