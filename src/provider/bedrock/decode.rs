//! The pure decoder of Bedrock's ConverseStream events (one event-stream
//! message in, its parts out; the framing and its CRCs are `eventstream`'s).
//!
//! The stream is `messageStart`, per block `contentBlockStart` (tool use only)
//! / `contentBlockDelta` (text, `toolUse.input` fragments, `reasoningContent`
//! text / signature / redactedContent) / `contentBlockStop`, then
//! `messageStop` (the stop reason) and `metadata` (usage, latency), the last
//! event. The answer is complete at `metadata`; a stream that ends after
//! `messageStop` but before `metadata` still has its whole content and stop
//! reason, so that end is accepted (without usage); any earlier end is a
//! truncated answer (UNAVAILABLE). An exception message mid-stream ends the
//! call with its class (see `super::exception_error`).

use std::{borrow::Cow, collections::HashSet};

use serde::Deserialize;

use crate::{
    chat::types::{Delta, Part, Reasoning, StopReason, Usage},
    error::{log_safe, redact, Error},
    provider::{Decoder, Frame},
};

use crate::provider::json_str::JsonStr;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStart<'a> {
    content_block_index: u32,
    #[serde(default, borrow)]
    start: Option<Start<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Start<'a> {
    #[serde(default, borrow)]
    tool_use: Option<ToolUseStart<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolUseStart<'a> {
    #[serde(default, borrow)]
    tool_use_id: Cow<'a, str>,
    #[serde(default, borrow)]
    name: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockDelta<'a> {
    content_block_index: u32,
    #[serde(borrow)]
    delta: DeltaBody<'a>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DeltaBody<'a> {
    #[serde(default, borrow)]
    text: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    tool_use: Option<ToolUseDelta<'a>>,
    #[serde(default, borrow)]
    reasoning_content: Option<ReasoningDelta<'a>>,
}

#[derive(Deserialize)]
struct ToolUseDelta<'a> {
    #[serde(default, borrow)]
    input: Cow<'a, str>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ReasoningDelta<'a> {
    #[serde(default, borrow)]
    text: Cow<'a, str>,
    #[serde(default, borrow)]
    signature: Cow<'a, str>,
    /// A blob: base64 in the JSON form.
    #[serde(default, borrow)]
    redacted_content: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageStop<'a> {
    #[serde(default, borrow)]
    stop_reason: Cow<'a, str>,
    #[serde(default)]
    additional_model_response_fields: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    metrics: Option<Metrics>,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct WireUsage {
    #[serde(default)]
    input_tokens: u32,
    #[serde(default)]
    output_tokens: u32,
    #[serde(default)]
    cache_read_input_tokens: u32,
    #[serde(default)]
    cache_write_input_tokens: u32,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Metrics {
    #[serde(default)]
    latency_ms: Option<u64>,
}

/// Bedrock's stop reason in the contract's terms.
pub fn stop_reason(s: &str) -> StopReason {
    match s {
        "end_turn" => StopReason::EndTurn,
        "tool_use" => StopReason::ToolUse,
        "max_tokens" | "model_context_window_exceeded" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence,
        "guardrail_intervened" | "content_filtered" => StopReason::ContentFilter,
        _ => StopReason::Other,
    }
}

/// The decoder state for one response.
#[derive(Debug, Default)]
pub struct BedrockDecoder {
    /// Blocks opened as tool use (their deltas are tool-call fragments).
    tools: HashSet<u32>,
    /// `messageStop` came: the content and the stop reason are whole.
    stopped: bool,
}

impl BedrockDecoder {
    pub fn new() -> Self {
        Self::default()
    }
}

fn parse<'a, T: Deserialize<'a>>(frame: &'a Frame) -> Result<T, Error> {
    serde_json::from_str(&frame.data).map_err(|e| {
        Error::protocol(format!(
            "bedrock sent a {} event that is not the expected JSON: {e}",
            log_safe(&frame.event, 60)
        ))
    })
}

impl Decoder for BedrockDecoder {
    fn decode(&mut self, frame: &Frame, out: &mut Vec<Part>) -> Result<(), Error> {
        if let Some(kind) = frame.event.strip_prefix("exception:") {
            return Err(super::exception_error(kind, &frame.data));
        }
        if let Some(code) = frame.event.strip_prefix("error:") {
            return Err(super::exception_error(code, &frame.data));
        }
        match frame.event.as_str() {
            "messageStart" => {}
            "contentBlockStart" => {
                let s: BlockStart<'_> = parse(frame)?;
                if let Some(t) = s.start.and_then(|s| s.tool_use) {
                    self.tools.insert(s.content_block_index);
                    out.push(Part::Delta(Delta::ToolCall {
                        index: s.content_block_index,
                        id: t.tool_use_id.into_owned(),
                        name: t.name.into_owned(),
                        arguments: String::new(),
                    }));
                }
            }
            "contentBlockDelta" => {
                let d: BlockDelta<'_> = parse(frame)?;
                let index = d.content_block_index;
                if let Some(t) = d.delta.text.filter(|t| !t.is_empty()) {
                    out.push(Part::Delta(Delta::Text(t.into_owned())));
                }
                if let Some(t) = d.delta.tool_use {
                    if !self.tools.contains(&index) {
                        return Err(Error::protocol(format!(
                            "bedrock sent tool input for block {index}, which no contentBlockStart opened as a tool use"
                        )));
                    }
                    if !t.input.is_empty() {
                        out.push(Part::Delta(Delta::ToolCall {
                            index,
                            id: String::new(),
                            name: String::new(),
                            arguments: t.input.into_owned(),
                        }));
                    }
                }
                if let Some(r) = d.delta.reasoning_content {
                    if !(r.text.is_empty()
                        && r.signature.is_empty()
                        && r.redacted_content.is_empty())
                    {
                        out.push(Part::Delta(Delta::Reasoning(Reasoning {
                            text: r.text.into_owned(),
                            signature: r.signature.into_owned(),
                            redacted: r.redacted_content.into_owned(),
                        })));
                    }
                }
            }
            "contentBlockStop" => {}
            "messageStop" => {
                let s: MessageStop<'_> = parse(frame)?;
                self.stopped = true;
                out.push(Part::Stop(stop_reason(&s.stop_reason)));
                // Anthropic models on Bedrock name the matched stop sequence here.
                let stop_sequence = s
                    .additional_model_response_fields
                    .as_ref()
                    .and_then(|f| f.get("stop_sequence"))
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string();
                out.push(Part::Finish {
                    reason: s.stop_reason.into_owned(),
                    stop_sequence,
                });
            }
            "metadata" => {
                let m: Metadata = parse(frame)?;
                if let Some(u) = m.usage {
                    let input = u
                        .input_tokens
                        .saturating_add(u.cache_read_input_tokens)
                        .saturating_add(u.cache_write_input_tokens);
                    out.push(Part::Usage(Usage {
                        input,
                        output: u.output_tokens,
                        total: input.saturating_add(u.output_tokens),
                        cache_read: u.cache_read_input_tokens,
                        cache_creation: u.cache_write_input_tokens,
                        reasoning: 0,
                    }));
                }
                if let Some(ms) = m.metrics.and_then(|m| m.latency_ms) {
                    out.push(Part::Metadata("latency_ms", ms.to_string()));
                }
                if !self.stopped {
                    return Err(Error::truncated(
                        "bedrock sent its metadata before messageStop (truncated answer)",
                    ));
                }
                out.push(Part::Done);
            }
            other => {
                tracing::debug!(
                    event = %log_safe(&redact(other), 100),
                    "bedrock: skipping an unknown event type"
                );
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<Vec<Part>, Error> {
        if self.stopped {
            return Ok(vec![Part::Done]);
        }
        Err(Error::truncated(
            "the bedrock stream ended before messageStop (truncated answer)",
        ))
    }
}
