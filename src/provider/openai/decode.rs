//! The response side: Chat Completions `chat.completion.chunk` frames → parts.
//! Pure and synchronous (see DESIGN). Reads choice 0 only (`n` is never
//! requested, so other choices are someone else's answer).
//!
//! Dialects handled here, all seen on real servers: `reasoning_content`
//! (DeepSeek, vLLM, llama.cpp) and `reasoning` (OpenRouter, Groq); tool-call
//! deltas without `index` (Mistral: their position is the index); name
//! fragments split over several deltas; the legacy `function_call`; Mistral's
//! typed `content` arrays (`text` / `thinking` parts); Azure's first chunk with
//! empty `choices` and empty `id`; usage on a chunk that still has choices;
//! an `error` object in a data line, with or without `event: error`.

use std::borrow::Cow;

use super::{
    chunk::{ContentField, ContentPart, WireChunk, WireDelta, WireUsage},
    token::{token_chunk, TokenChunk, TokenDelta},
};

use crate::{
    chat::types::{Delta, Part, Reasoning, StopReason, Usage},
    error::{log_safe, redact, Error},
    provider::{json_str::JsonStr, Decoder, Frame},
};

/// A tool call whose id/name were seen but not yet sent: held until its
/// first argument fragment (or the end), so that a name split over several
/// deltas still arrives whole on the first fragment, as the contract says.
#[derive(Debug, Default)]
struct Call {
    index: u32,
    id: String,
    name: String,
    sent: bool,
}

/// The decoder for one response.
#[derive(Debug, Default)]
pub struct OpenAiDecoder {
    pub(super) meta_sent: bool,
    calls: Vec<Call>,
    finish_seen: bool,
    /// The response metadata (fingerprint, service tier) was reported.
    metadata_sent: bool,
    /// `stream_options.include_usage` was sent: the usage chunk comes after
    /// the finish_reason, so the answer is whole only with it or `[DONE]`.
    usage_requested: bool,
    usage_seen: bool,
    refusal_seen: bool,
    stop: Option<StopReason>,
    /// Tests: every chunk through the full parse, to compare with the shape read.
    pub(super) full_parse_only: bool,
}

impl OpenAiDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder for a request that asked for usage (`include_usage`).
    pub fn with_usage_requested(requested: bool) -> Self {
        Self {
            usage_requested: requested,
            ..Self::default()
        }
    }

    fn chunk(&mut self, c: WireChunk<'_>, out: &mut Vec<Part>) -> Result<(), Error> {
        if let Some(e) = c.error {
            return Err(super::stream_error(&e));
        }
        self.head(
            c.id.as_deref(),
            c.model.as_deref(),
            c.system_fingerprint,
            c.service_tier,
            out,
        );
        for choice in c.choices.unwrap_or_default() {
            if choice.index.unwrap_or(0) != 0 {
                continue;
            }
            if let Some(d) = choice.delta {
                self.delta(d, out);
            }
            if let Some(reason) = choice.finish_reason.as_deref() {
                out.push(Part::Finish {
                    reason: reason.to_string(),
                    stop_sequence: String::new(),
                });
                self.finish_seen = true;
                self.flush_calls(None, out);
                let stop = match reason {
                    "stop" | "end_turn" | "eos" => StopReason::EndTurn,
                    "length" | "max_tokens" => StopReason::MaxTokens,
                    "tool_calls" | "function_call" => StopReason::ToolUse,
                    "content_filter" => StopReason::ContentFilter,
                    other => {
                        tracing::debug!(
                            finish_reason = %log_safe(&redact(other), 100),
                            "openai: unmapped finish_reason"
                        );
                        StopReason::Other
                    }
                };
                self.stop = Some(stop);
                out.push(Part::Stop(self.effective_stop(stop)));
            }
        }
        if let Some(u) = c.usage {
            self.usage_seen = true;
            out.push(Part::Usage(usage(&u)));
        }
        Ok(())
    }

    /// The id and model (once), the fingerprint and service tier (once).
    fn head(
        &mut self,
        id: Option<&str>,
        model: Option<&str>,
        system_fingerprint: Option<JsonStr<'_>>,
        service_tier: Option<JsonStr<'_>>,
        out: &mut Vec<Part>,
    ) {
        if !self.meta_sent {
            let id = id.unwrap_or("");
            if !id.is_empty() {
                out.push(Part::Meta {
                    id: id.to_string(),
                    model: model.unwrap_or("").to_string(),
                });
                self.meta_sent = true;
            }
        }
        // Repeated on every chunk by OpenAI: reported once, not copied per token.
        if !self.metadata_sent {
            if let Some(f) = system_fingerprint.filter(|f| !f.is_empty()) {
                out.push(Part::Metadata("system_fingerprint", f.into_owned()));
                self.metadata_sent = true;
            }
            if let Some(t) = service_tier.filter(|t| !t.is_empty()) {
                out.push(Part::Metadata("service_tier", t.into_owned()));
                self.metadata_sent = true;
            }
        }
    }

    /// A token chunk read by its shape (`super::token`): what `chunk` makes of
    /// the same JSON (a text, or a tool call's next arguments).
    fn token(&mut self, t: TokenChunk<'_>, out: &mut Vec<Part>) {
        self.head(
            Some(&t.id),
            Some(&t.model),
            t.system_fingerprint,
            t.service_tier,
            out,
        );
        match t.delta {
            TokenDelta::Content(c) if !c.is_empty() => {
                out.push(Part::Delta(Delta::Text(c.into_owned())));
            }
            TokenDelta::Content(_) => {}
            TokenDelta::Arguments { index, arguments } => {
                self.tool_fragment(index, None, None, Some(arguments.0), out);
            }
        }
    }

    /// A refused answer ends with CONTENT_FILTER (contract), though OpenAI says `stop`.
    fn effective_stop(&self, stop: StopReason) -> StopReason {
        if self.refusal_seen && stop == StopReason::EndTurn {
            StopReason::ContentFilter
        } else {
            stop
        }
    }

    fn delta(&mut self, d: WireDelta<'_>, out: &mut Vec<Part>) {
        // Servers moving from one name to the other may send both, same text: one is read.
        let r = d
            .reasoning_content
            .filter(|r| !r.is_empty())
            .or(d.reasoning.filter(|r| !r.is_empty()));
        if let Some(r) = r {
            out.push(reasoning(r.into_owned()));
        }
        match d.content {
            Some(ContentField::Text(t)) if !t.is_empty() => out.push(Part::Delta(Delta::Text(t))),
            Some(ContentField::Parts(parts)) => {
                for p in parts {
                    match p {
                        ContentPart::Text { text } if !text.is_empty() => {
                            out.push(Part::Delta(Delta::Text(text)))
                        }
                        ContentPart::Thinking { thinking } => {
                            for t in thinking.into_iter().filter(|t| !t.text.is_empty()) {
                                out.push(reasoning(t.text));
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        if let Some(r) = d.refusal.filter(|r| !r.is_empty()) {
            self.refusal_seen = true;
            out.push(Part::Delta(Delta::Refusal(r.into_owned())));
            if let Some(stop) = self.stop {
                out.push(Part::Stop(self.effective_stop(stop)));
            }
        }
        for (pos, tc) in d.tool_calls.into_iter().flatten().enumerate() {
            let index = tc.index.unwrap_or(pos as u32);
            let (name, args) = match tc.function {
                Some(f) => (f.name, f.arguments),
                None => (None, None),
            };
            self.tool_fragment(index, cow(tc.id), cow(name), cow(args), out);
        }
        if let Some(f) = d.function_call {
            self.tool_fragment(0, None, cow(f.name), cow(f.arguments), out);
        }
    }

    fn tool_fragment(
        &mut self,
        index: u32,
        id: Option<Cow<'_, str>>,
        name: Option<Cow<'_, str>>,
        args: Option<Cow<'_, str>>,
        out: &mut Vec<Part>,
    ) {
        // Another call starting closes the ones before it.
        self.flush_calls(Some(index), out);
        let pos = match self.calls.iter().position(|c| c.index == index) {
            Some(p) => p,
            None => {
                self.calls.push(Call {
                    index,
                    ..Call::default()
                });
                self.calls.len() - 1
            }
        };
        let call = &mut self.calls[pos];
        let args = args.map(Cow::into_owned).unwrap_or_default();
        if call.sent {
            if name.as_deref().is_some_and(|n| !n.is_empty()) {
                tracing::debug!(
                    index,
                    "openai: tool name fragment after arguments started; ignored"
                );
            }
            if !args.is_empty() {
                out.push(Part::Delta(Delta::ToolCall {
                    index,
                    id: String::new(),
                    name: String::new(),
                    arguments: args,
                }));
            }
            return;
        }
        if let Some(id) = id.filter(|i| !i.is_empty()) {
            if call.id.is_empty() {
                call.id = id.into_owned();
            }
        }
        if let Some(n) = name {
            call.name.push_str(&n);
        }
        if !args.is_empty() {
            call.sent = true;
            out.push(Part::Delta(Delta::ToolCall {
                index,
                id: std::mem::take(&mut call.id),
                name: std::mem::take(&mut call.name),
                arguments: args,
            }));
        }
    }

    /// Sends the held id/name of calls that have no arguments yet (all but `keep`).
    fn flush_calls(&mut self, keep: Option<u32>, out: &mut Vec<Part>) {
        for call in self.calls.iter_mut() {
            if !call.sent && Some(call.index) != keep {
                call.sent = true;
                out.push(Part::Delta(Delta::ToolCall {
                    index: call.index,
                    id: std::mem::take(&mut call.id),
                    name: std::mem::take(&mut call.name),
                    arguments: String::new(),
                }));
            }
        }
    }
}

fn cow(s: Option<JsonStr<'_>>) -> Option<Cow<'_, str>> {
    s.map(|s| s.0)
}

fn reasoning(text: String) -> Part {
    Part::Delta(Delta::Reasoning(Reasoning {
        text,
        ..Reasoning::default()
    }))
}

fn usage(u: &WireUsage) -> Usage {
    let input = u.prompt_tokens.unwrap_or(0);
    let output = u.completion_tokens.unwrap_or(0);
    Usage {
        input,
        output,
        total: u.total_tokens.unwrap_or(input.saturating_add(output)),
        cache_read: u
            .prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .or(u.prompt_cache_hit_tokens)
            .unwrap_or(0),
        cache_creation: 0,
        reasoning: u
            .completion_tokens_details
            .as_ref()
            .and_then(|d| d.reasoning_tokens)
            .unwrap_or(0),
    }
}

impl Decoder for OpenAiDecoder {
    fn decode(&mut self, frame: &Frame, out: &mut Vec<Part>) -> Result<(), Error> {
        let data = frame.data.trim();
        if data == "[DONE]" {
            self.flush_calls(None, out);
            out.push(Part::Done);
            return Ok(());
        }
        if data.is_empty() {
            return Ok(());
        }
        // The per-token chunk, read by its exact shape (the usual case); any
        // other chunk, or an `error` event, takes the full parse.
        if frame.event.is_empty() && !self.full_parse_only {
            if let Some(t) = token_chunk(data) {
                self.token(t, out);
                return Ok(());
            }
        }
        let chunk: WireChunk<'_> = match serde_json::from_str(data) {
            Ok(c) => c,
            Err(e) => {
                if frame.event == "error" {
                    return Err(super::stream_error(&serde_json::Value::String(
                        data.to_string(),
                    )));
                }
                return Err(Error::protocol(format!(
                    "the upstream sent a chunk that is not valid Chat Completions JSON: {e}"
                )));
            }
        };
        if frame.event == "error" && chunk.error.is_none() {
            return Err(super::stream_error(&serde_json::Value::String(
                data.to_string(),
            )));
        }
        self.chunk(chunk, out)?;
        Ok(())
    }

    /// EOF without `[DONE]`: many compatible servers omit it, so a stream
    /// that gave its finish_reason is complete; one that did not was cut. When
    /// usage was asked for, the usage chunk follows the finish_reason: without
    /// it (and without `[DONE]`) the stream was cut in that last gap.
    fn finish(&mut self) -> Result<Vec<Part>, Error> {
        if self.finish_seen && self.usage_requested && !self.usage_seen {
            return Err(Error::truncated(
                "the upstream stream ended after its finish_reason but before the usage chunk and [DONE] it was asked for (truncated answer)",
            ));
        }
        if self.finish_seen {
            let mut out = Vec::new();
            self.flush_calls(None, &mut out);
            out.push(Part::Done);
            Ok(out)
        } else {
            Err(Error::truncated(
                "the upstream stream ended before [DONE] and before any finish_reason (truncated answer)",
            ))
        }
    }
}
