//! The pure decoder of Anthropic's Messages SSE stream: one event in, the
//! domain parts it produces out. Wire types (`super::event`) are borrowed
//! serde enums; nothing is buffered beyond the block kinds, the usage counters
//! and the citations that came before their text block's first text (a few,
//! bounded).

use std::collections::{HashMap, HashSet};

use crate::{
    chat::types::{Citation, Delta, Part, Reasoning, StopReason, Usage},
    error::{log_safe, redact, Error},
    provider::{Decoder, Frame},
};

use super::{
    event::{Block, BlockDelta, Event, WireUsage},
    token::{token_delta, Kind, TokenDelta},
};

use crate::provider::json_str::JsonStr;

/// Citations held for a text block that has no text yet, at most: past it
/// they go out at once (placed beside the block before).
const MAX_HELD_CITATIONS: usize = 64;

/// What a content block index holds (deltas are routed by it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BlockKind {
    Text,
    Tool,
    Thinking,
    Other,
}

/// The decoder state for one response.
#[derive(Debug, Default)]
pub struct AnthropicDecoder {
    /// What each block index holds (a map: an upstream may open many blocks).
    blocks: HashMap<u32, BlockKind>,
    /// Text blocks that have produced text (a citation then goes out at once).
    texted: HashSet<u32>,
    /// Citations that came before their text block's first text: the relay
    /// places a citation beside the current block, so they wait for it.
    held: Vec<(u32, Citation)>,
    input: u32,
    output: u32,
    cache_read: u32,
    cache_creation: u32,
}

impl AnthropicDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    fn kind(&self, index: u32) -> Option<BlockKind> {
        self.blocks.get(&index).copied()
    }

    fn set_kind(&mut self, index: u32, kind: BlockKind) {
        self.blocks.insert(index, kind);
    }

    /// A citation of text block `index`: out now when the block has text (or
    /// too many wait), else held until its first text.
    fn cite(&mut self, index: u32, c: Citation, out: &mut Vec<Part>) {
        if self.texted.contains(&index) || self.held.len() >= MAX_HELD_CITATIONS {
            out.push(Part::Delta(Delta::Citation(Box::new(c))));
        } else {
            self.held.push((index, c));
        }
    }

    /// Text of block `index`, then the citations that waited for it.
    fn text(&mut self, index: u32, text: String, out: &mut Vec<Part>) {
        out.push(Part::Delta(Delta::Text(text)));
        self.texted.insert(index);
        self.release(Some(index), out);
    }

    /// The held citations of block `index` (of every block with None).
    fn release(&mut self, index: Option<u32>, out: &mut Vec<Part>) {
        if self.held.is_empty() {
            return;
        }
        let (go, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(i, _)| index.is_none_or(|x| x == *i));
        self.held = keep;
        out.extend(
            go.into_iter()
                .map(|(_, c)| Part::Delta(Delta::Citation(Box::new(c)))),
        );
    }

    /// Counts are cumulative: a later report replaces an earlier one.
    fn take_usage(&mut self, u: WireUsage) -> Part {
        if let Some(v) = u.input_tokens {
            self.input = v;
        }
        if let Some(v) = u.output_tokens {
            self.output = v;
        }
        if let Some(v) = u.cache_read_input_tokens {
            self.cache_read = v;
        }
        if let Some(v) = u.cache_creation_input_tokens {
            self.cache_creation = v;
        }
        let input = self
            .input
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_creation);
        Part::Usage(Usage {
            input,
            output: self.output,
            total: input.saturating_add(self.output),
            cache_read: self.cache_read,
            cache_creation: self.cache_creation,
            reasoning: 0,
        })
    }
}

fn reasoning(text: &str, signature: &str, redacted: &str) -> Part {
    Part::Delta(Delta::Reasoning(Reasoning {
        text: text.to_string(),
        signature: signature.to_string(),
        redacted: redacted.to_string(),
    }))
}

/// Anthropic's stop reason in the contract's terms.
pub(super) fn stop_reason(s: &str) -> StopReason {
    match s {
        "end_turn" => StopReason::EndTurn,
        "max_tokens" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence,
        "tool_use" => StopReason::ToolUse,
        "refusal" => StopReason::ContentFilter,
        _ => StopReason::Other,
    }
}

impl Decoder for AnthropicDecoder {
    fn decode(&mut self, frame: &Frame, out: &mut Vec<Part>) -> Result<(), Error> {
        if frame.data.trim().is_empty() {
            return Ok(());
        }
        // The per-token event, read flat (`super::token`); the rest in full.
        let fast = (frame.event == "content_block_delta")
            .then(|| token_delta(&frame.data))
            .flatten();
        let event: Event<'_> = match fast {
            Some(t) => t.into(),
            None => serde_json::from_str(&frame.data).map_err(|e| {
                Error::protocol(format!(
                    "anthropic sent an event{} that is not the expected JSON: {e}",
                    if frame.event.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", frame.event)
                    }
                ))
            })?,
        };
        match event {
            Event::MessageStart { message } => {
                out.push(Part::Meta {
                    id: message.id.into_owned(),
                    model: message.model.into_owned(),
                });
                if let Some(u) = message.usage {
                    out.push(self.take_usage(u));
                }
            }
            Event::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                Block::Text { text, citations } => {
                    self.set_kind(index, BlockKind::Text);
                    self.texted.remove(&index);
                    for c in citations.into_iter().flatten() {
                        self.cite(index, c.into_citation(), out);
                    }
                    if !text.is_empty() {
                        self.text(index, text.into_owned(), out);
                    }
                }
                Block::ToolUse { id, name } => {
                    self.set_kind(index, BlockKind::Tool);
                    out.push(Part::Delta(Delta::ToolCall {
                        index,
                        id: id.into_owned(),
                        name: name.into_owned(),
                        arguments: String::new(),
                    }));
                }
                Block::Thinking {
                    thinking,
                    signature,
                } => {
                    self.set_kind(index, BlockKind::Thinking);
                    if !thinking.is_empty() || !signature.is_empty() {
                        out.push(reasoning(&thinking, &signature, ""));
                    }
                }
                Block::RedactedThinking { data } => {
                    self.set_kind(index, BlockKind::Other);
                    out.push(reasoning("", "", &data));
                }
                Block::Other => {
                    tracing::debug!(index, "anthropic: skipping a non-client content block");
                    self.set_kind(index, BlockKind::Other);
                }
            },
            Event::ContentBlockDelta { index, delta } => {
                let kind = self.kind(index);
                match delta {
                    BlockDelta::TextDelta { text } => {
                        if kind != Some(BlockKind::Other) && !text.is_empty() {
                            self.text(index, text.into_owned(), out);
                        }
                    }
                    BlockDelta::InputJsonDelta { partial_json } => {
                        // Only the client's tool_use blocks: server tools' input is not a tool call.
                        if kind == Some(BlockKind::Tool) && !partial_json.is_empty() {
                            out.push(Part::Delta(Delta::ToolCall {
                                index,
                                id: String::new(),
                                name: String::new(),
                                arguments: partial_json.into_owned(),
                            }));
                        }
                    }
                    BlockDelta::ThinkingDelta { thinking } => {
                        if kind != Some(BlockKind::Other) && !thinking.is_empty() {
                            out.push(reasoning(&thinking, "", ""));
                        }
                    }
                    BlockDelta::SignatureDelta { signature } => {
                        if kind != Some(BlockKind::Other) && !signature.is_empty() {
                            out.push(reasoning("", &signature, ""));
                        }
                    }
                    BlockDelta::CitationsDelta { citation } => match citation {
                        Some(c) if kind != Some(BlockKind::Other) => {
                            self.cite(index, c.into_citation(), out);
                        }
                        _ => {
                            tracing::debug!(index, "anthropic: skipping a citation it cannot place")
                        }
                    },
                    BlockDelta::Other => {
                        tracing::debug!(index, "anthropic: skipping a delta type it does not use");
                    }
                }
            }
            // A block that ended without text lets its citations go (beside the block before).
            Event::ContentBlockStop { index } => self.release(index, out),
            Event::Ping => {}
            Event::MessageDelta { delta, usage } => {
                if let Some(u) = usage {
                    out.push(self.take_usage(u));
                }
                if let Some(s) = delta.stop_reason {
                    out.push(Part::Stop(stop_reason(&s)));
                    out.push(Part::Finish {
                        reason: s.into_owned(),
                        stop_sequence: delta
                            .stop_sequence
                            .map(JsonStr::into_owned)
                            .unwrap_or_default(),
                    });
                }
            }
            Event::MessageStop => {
                self.release(None, out);
                out.push(Part::Done);
            }
            Event::Error { error } => return Err(super::stream_error(&error.kind, &error.message)),
            Event::Unknown => {
                tracing::debug!(
                    event = %log_safe(&redact(&frame.event), 100),
                    "anthropic: skipping an unknown event type"
                );
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<Vec<Part>, Error> {
        Err(Error::truncated(
            "the anthropic stream ended before message_stop (truncated answer)",
        ))
    }
}

impl<'a> From<TokenDelta<'a>> for Event<'a> {
    fn from(t: TokenDelta<'a>) -> Self {
        let delta = match t.kind {
            Kind::Text => BlockDelta::TextDelta { text: t.text },
            Kind::InputJson => BlockDelta::InputJsonDelta {
                partial_json: t.text,
            },
            Kind::Thinking => BlockDelta::ThinkingDelta { thinking: t.text },
            Kind::Signature => BlockDelta::SignatureDelta { signature: t.text },
        };
        Event::ContentBlockDelta {
            index: t.index,
            delta,
        }
    }
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
