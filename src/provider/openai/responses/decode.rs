//! The response side of the Responses API: typed SSE events → parts. Pure and
//! synchronous (see DESIGN).
//!
//! Output items are tracked by `output_index`: `message` items give text and
//! refusal deltas (and url citations); `reasoning` items give their summary
//! (`response.reasoning_summary_text.delta`, parts separated by a blank line)
//! or raw reasoning text (`response.reasoning_text.delta`, gpt-oss servers), and
//! at `output_item.done` their `encrypted_content` as the signature of a
//! reasoning chunk (`<item id>:<encrypted content>`, sent back by wire.rs);
//! `function_call` items are the client's tool calls (call_id and name from
//! `output_item.added`, arguments from `response.function_call_arguments.delta`).
//! Every other item type (web_search_call, file_search_call,
//! code_interpreter_call, image_generation_call, mcp_call...) is a tool the
//! provider runs itself: never a client tool call. Unknown event types are
//! skipped. The stream is whole only with `response.completed` or
//! `response.incomplete`; `response.failed` and `error` end it with an error.

use super::events::{Event, Item, Response, WireUsage};
use crate::{
    chat::types::{Citation, Delta, Part, Reasoning, StopReason, Usage},
    error::{log_safe, redact, Error},
    provider::{Decoder, Frame},
};

/// More output items than any answer has: beyond it an upstream is broken.
const MAX_ITEMS: u32 = 4096;

/// What one output item is, as far as the decoder cares.
#[derive(Debug, Default)]
enum Slot {
    /// Not announced (yet), or a built-in tool's item.
    #[default]
    Other,
    Message {
        streamed: bool,
    },
    Reasoning {
        streamed: bool,
        summary_index: Option<u32>,
    },
    Call {
        index: u32,
        id: String,
        name: String,
        sent: bool,
    },
}

/// The decoder for one response.
#[derive(Debug, Default)]
pub struct ResponsesDecoder {
    meta_sent: bool,
    slots: Vec<Slot>,
    calls: u32,
    refusal_seen: bool,
    done: bool,
}

impl ResponsesDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    fn slot(&mut self, index: Option<u32>) -> Result<&mut Slot, Error> {
        let i = index.unwrap_or(0);
        if i >= MAX_ITEMS {
            return Err(Error::protocol(format!(
                "the upstream named output item {i}; more than {MAX_ITEMS} items is not an answer"
            )));
        }
        let i = i as usize;
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, Slot::default);
        }
        Ok(&mut self.slots[i])
    }

    fn meta(&mut self, r: &Response, out: &mut Vec<Part>) {
        if !self.meta_sent && !r.id.is_empty() {
            out.push(Part::Meta {
                id: r.id.clone(),
                model: r.model.clone(),
            });
            self.meta_sent = true;
        }
    }

    fn event(&mut self, e: Event<'_>, out: &mut Vec<Part>) -> Result<(), Error> {
        match e.kind.as_ref() {
            "response.output_text.delta" => {
                if let Some(d) = e.delta.filter(|d| !d.is_empty()) {
                    if let Slot::Message { streamed } = self.slot(e.output_index)? {
                        *streamed = true;
                    }
                    out.push(Part::Delta(Delta::Text(d.into_owned())));
                }
            }
            "response.refusal.delta" => {
                if let Some(d) = e.delta.filter(|d| !d.is_empty()) {
                    if let Slot::Message { streamed } = self.slot(e.output_index)? {
                        *streamed = true;
                    }
                    self.refusal_seen = true;
                    out.push(Part::Delta(Delta::Refusal(d.into_owned())));
                }
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                let summary = e.kind.as_ref() == "response.reasoning_summary_text.delta";
                let Some(d) = e.delta.filter(|d| !d.is_empty()) else {
                    return Ok(());
                };
                let mut text = d.into_owned();
                let slot = self.slot(e.output_index)?;
                if !matches!(slot, Slot::Reasoning { .. }) {
                    *slot = Slot::Reasoning {
                        streamed: false,
                        summary_index: None,
                    };
                }
                if let Slot::Reasoning {
                    streamed,
                    summary_index,
                } = slot
                {
                    // Summary parts are paragraphs of one block: a blank line between.
                    if summary && *streamed && *summary_index != e.summary_index {
                        text.insert_str(0, "\n\n");
                    }
                    *summary_index = e.summary_index;
                    *streamed = true;
                }
                out.push(reasoning(text, String::new()));
            }
            "response.function_call_arguments.delta" => {
                let Some(d) = e.delta.filter(|d| !d.is_empty()) else {
                    return Ok(());
                };
                match self.slot(e.output_index)? {
                    Slot::Call {
                        index,
                        id,
                        name,
                        sent,
                    } => {
                        let first = !*sent;
                        *sent = true;
                        out.push(Part::Delta(Delta::ToolCall {
                            index: *index,
                            id: if first { std::mem::take(id) } else { String::new() },
                            name: if first { std::mem::take(name) } else { String::new() },
                            arguments: d.into_owned(),
                        }));
                    }
                    _ => {
                        return Err(Error::protocol(
                            "the upstream sent function-call arguments for an output item it never announced as a function_call",
                        ))
                    }
                }
            }
            "response.output_text.annotation.added" => {
                if let Some(a) = e.annotation.filter(|a| !a.url.is_empty()) {
                    out.push(Part::Delta(Delta::Citation(Box::new(Citation {
                        kind: a.kind,
                        cited_text: String::new(),
                        url: a.url,
                        title: a.title,
                        start: a.start_index,
                        end: a.end_index,
                    }))));
                }
            }
            "response.output_item.added" => {
                let item = e.item.unwrap_or_default();
                let calls = self.calls;
                let slot = self.slot(e.output_index)?;
                *slot = match item.kind.as_str() {
                    "message" => Slot::Message { streamed: false },
                    "reasoning" => Slot::Reasoning {
                        streamed: false,
                        summary_index: None,
                    },
                    "function_call" => Slot::Call {
                        index: calls,
                        id: if item.call_id.is_empty() {
                            item.id
                        } else {
                            item.call_id
                        },
                        name: item.name,
                        sent: false,
                    },
                    _ => Slot::Other,
                };
                if let Slot::Call { .. } = slot {
                    self.calls += 1;
                }
            }
            "response.output_item.done" => {
                let item = e.item.unwrap_or_default();
                self.item_done(e.output_index, item, out)?;
            }
            "response.created" | "response.in_progress" | "response.queued" => {
                if let Some(r) = &e.response {
                    self.meta(r, out);
                }
            }
            "response.completed" | "response.incomplete" => {
                let Some(r) = e.response else {
                    return Err(Error::protocol(format!(
                        "the upstream's {} event has no response object",
                        e.kind
                    )));
                };
                self.meta(&r, out);
                self.flush_calls(out);
                let (reason, stop) = match r.incomplete_details.as_ref().map(|d| d.reason.as_str())
                {
                    None if e.kind.as_ref() == "response.completed" => {
                        let stop = if self.calls > 0 {
                            StopReason::ToolUse
                        } else if self.refusal_seen {
                            StopReason::ContentFilter
                        } else {
                            StopReason::EndTurn
                        };
                        ("completed".to_string(), stop)
                    }
                    Some("max_output_tokens") => {
                        ("max_output_tokens".to_string(), StopReason::MaxTokens)
                    }
                    Some("content_filter") => {
                        ("content_filter".to_string(), StopReason::ContentFilter)
                    }
                    other => {
                        let other = other.unwrap_or("");
                        tracing::debug!(
                            reason = %log_safe(&redact(other), 100),
                            "openai-responses: unmapped incomplete reason"
                        );
                        (other.to_string(), StopReason::Other)
                    }
                };
                out.push(Part::Finish {
                    reason,
                    stop_sequence: String::new(),
                });
                if let Some(t) = r.service_tier.filter(|t| !t.is_empty()) {
                    out.push(Part::Metadata("service_tier", t));
                }
                if let Some(u) = &r.usage {
                    out.push(Part::Usage(usage(u)));
                }
                out.push(Part::Stop(stop));
                out.push(Part::Done);
                self.done = true;
            }
            "response.failed" => {
                let err = e
                    .response
                    .and_then(|r| r.error)
                    .unwrap_or(serde_json::Value::Null);
                return Err(stream_error(&err));
            }
            "error" | "" if e.kind == "error" || e.error.is_some() => {
                let err = match e.error {
                    Some(v) if v.is_object() => v,
                    _ => serde_json::json!({
                        "code": e.code.unwrap_or(serde_json::Value::Null),
                        "message": e.message.unwrap_or_default(),
                    }),
                };
                return Err(stream_error(&err));
            }
            _ => {}
        }
        Ok(())
    }

    fn item_done(
        &mut self,
        index: Option<u32>,
        item: Item,
        out: &mut Vec<Part>,
    ) -> Result<(), Error> {
        match item.kind.as_str() {
            "reasoning" => {
                let streamed = matches!(self.slot(index)?, Slot::Reasoning { streamed: true, .. });
                if !streamed {
                    // A server that streamed nothing: the item's own text.
                    let parts = if item.summary.is_empty() {
                        &item.content
                    } else {
                        &item.summary
                    };
                    let text: Vec<&str> = parts
                        .iter()
                        .map(|p| p.text.as_str())
                        .filter(|t| !t.is_empty())
                        .collect();
                    if !text.is_empty() {
                        out.push(reasoning(text.join("\n\n"), String::new()));
                    }
                }
                if let Some(enc) = item.encrypted_content.filter(|e| !e.is_empty()) {
                    out.push(reasoning(
                        String::new(),
                        super::wire::signature(&item.id, &enc),
                    ));
                }
                *self.slot(index)? = Slot::Other;
            }
            "message" => {
                let streamed = matches!(self.slot(index)?, Slot::Message { streamed: true });
                if !streamed {
                    for p in &item.content {
                        match p.kind.as_str() {
                            "output_text" if !p.text.is_empty() => {
                                out.push(Part::Delta(Delta::Text(p.text.clone())))
                            }
                            "refusal" if !p.refusal.is_empty() => {
                                self.refusal_seen = true;
                                out.push(Part::Delta(Delta::Refusal(p.refusal.clone())));
                            }
                            _ => {}
                        }
                    }
                }
                *self.slot(index)? = Slot::Other;
            }
            "function_call" => {
                if let Slot::Call {
                    index: i,
                    id,
                    name,
                    sent,
                } = self.slot(index)?
                {
                    if !*sent {
                        // No argument deltas: the whole call at once.
                        *sent = true;
                        out.push(Part::Delta(Delta::ToolCall {
                            index: *i,
                            id: std::mem::take(id),
                            name: std::mem::take(name),
                            arguments: item.arguments,
                        }));
                    }
                } else {
                    // Done without added: the whole call from the done item.
                    let i = self.calls;
                    self.calls += 1;
                    out.push(Part::Delta(Delta::ToolCall {
                        index: i,
                        id: if item.call_id.is_empty() {
                            item.id
                        } else {
                            item.call_id
                        },
                        name: item.name,
                        arguments: item.arguments,
                    }));
                }
                *self.slot(index)? = Slot::Other;
            }
            _ => {}
        }
        Ok(())
    }

    /// Calls announced but never given arguments (nor a done item) are sent
    /// before the end, with empty arguments (an invalid call, visibly).
    fn flush_calls(&mut self, out: &mut Vec<Part>) {
        for s in &mut self.slots {
            if let Slot::Call {
                index,
                id,
                name,
                sent: sent @ false,
            } = s
            {
                *sent = true;
                out.push(Part::Delta(Delta::ToolCall {
                    index: *index,
                    id: std::mem::take(id),
                    name: std::mem::take(name),
                    arguments: String::new(),
                }));
            }
        }
    }
}

fn reasoning(text: String, signature: String) -> Part {
    Part::Delta(Delta::Reasoning(Reasoning {
        text,
        signature,
        redacted: String::new(),
    }))
}

fn usage(u: &WireUsage) -> Usage {
    Usage {
        input: u.input_tokens,
        output: u.output_tokens,
        total: u
            .total_tokens
            .unwrap_or(u.input_tokens.saturating_add(u.output_tokens)),
        cache_read: u
            .input_tokens_details
            .as_ref()
            .map_or(0, |d| d.cached_tokens),
        cache_creation: 0,
        reasoning: u
            .output_tokens_details
            .as_ref()
            .map_or(0, |d| d.reasoning_tokens),
    }
}

/// A Responses error object (`response.failed`'s `response.error`, or an
/// `error` event) → the contract's code. The Responses API's error codes are
/// words (`rate_limit_exceeded`, `server_error`, `invalid_prompt`,
/// `invalid_image`...): each is given its HTTP-like status, then the Chat
/// Completions mid-stream rules apply (an unclassified error is UNAVAILABLE).
pub fn stream_error(e: &serde_json::Value) -> Error {
    let code = e
        .get("code")
        .and_then(|c| c.as_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let status = if code.contains("rate_limit") || code.contains("quota") {
        Some(429)
    } else if code == "server_error" || code.contains("timeout") || code.contains("overloaded") {
        Some(503)
    } else if code.starts_with("invalid_")
        || code.starts_with("image_")
        || code.starts_with("unsupported_")
        || code.starts_with("empty_")
        || code.starts_with("failed_to_download")
        || code.ends_with("_not_found") && code.starts_with("image")
        || code == "context_length_exceeded"
    {
        Some(400)
    } else {
        None
    };
    match (status, e.as_object()) {
        (Some(st), Some(o)) => {
            let mut o = o.clone();
            o.insert("status".into(), st.into());
            super::super::stream_error(&serde_json::Value::Object(o))
        }
        _ => super::super::stream_error(e),
    }
}

impl Decoder for ResponsesDecoder {
    fn decode(&mut self, frame: &Frame, out: &mut Vec<Part>) -> Result<(), Error> {
        let data = frame.data.trim();
        // OpenRouter ends with [DONE] after response.completed; the answer is
        // whole (or not) by the typed events alone.
        if data.is_empty() || data == "[DONE]" || self.done {
            return Ok(());
        }
        let event: Event<'_> = match serde_json::from_str(data) {
            Ok(e) => e,
            Err(_) if frame.event == "error" => {
                return Err(stream_error(&serde_json::Value::String(data.to_string())))
            }
            Err(e) => {
                return Err(Error::protocol(format!(
                    "the upstream sent an event that is not valid Responses API JSON: {e}"
                )))
            }
        };
        self.event(event, out)?;
        Ok(())
    }

    fn finish(&mut self) -> Result<Vec<Part>, Error> {
        if self.done {
            return Ok(Vec::new());
        }
        Err(Error::truncated(
            "the upstream stream ended before response.completed, response.incomplete or response.failed (truncated answer)",
        ))
    }
}
