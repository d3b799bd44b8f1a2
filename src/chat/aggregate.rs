//! The one aggregator: folds chunks into the final message the way LangChain's
//! `AIMessageChunk + AIMessageChunk` does. Invoke is this fold over the Stream
//! chunks, and StreamEvents' `end.output` / `error.partial` come from it too,
//! so the three RPCs cannot disagree.

use super::types::{
    Chunk, Citation, Content, Delta, End, InvalidToolCall, Reasoning, StopReason, ToolCall, Usage,
};

/// The folded answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FinalMessage {
    pub id: String,
    pub model: String,
    pub provider: &'static str,
    pub content: Vec<Content>,
    pub tool_calls: Vec<ToolCall>,
    pub invalid_tool_calls: Vec<InvalidToolCall>,
    pub usage: Option<Usage>,
    pub stop_reason: Option<StopReason>,
    pub finish_reason: String,
    pub stop_sequence: String,
    pub metadata: Vec<(String, String)>,
    /// Citations with the content block each belongs to.
    pub citations: Vec<(u32, Citation)>,
}

/// Where content deltas go: the one rule deciding when a delta starts a new
/// content block, shared by the relay (which stamps each chunk's block index)
/// and the aggregator (which folds by it), so the two always agree. A block
/// continues while deltas of its kind follow each other; a tool call in
/// between, a signed or redacted reasoning block, or another kind starts a new one.
#[derive(Clone, Copy, Debug, Default)]
pub struct Blocks {
    count: u32,
    open: Option<Open>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Open {
    Text,
    Refusal,
    /// Reasoning that may still grow (no signature, not redacted).
    Reasoning,
}

/// Where one delta lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// Appended to block `n`.
    Append(u32),
    /// Starts block `n`.
    New(u32),
    /// Not a content block (a tool call), or a citation of block `n`.
    Beside(u32),
}

impl Blocks {
    /// Places a delta (and moves the rule's state on).
    pub fn place(&mut self, d: &Delta) -> Place {
        let (kind, closes) = match d {
            Delta::Text(_) => (Open::Text, false),
            Delta::Refusal(_) => (Open::Refusal, false),
            Delta::Reasoning(r) => (
                Open::Reasoning,
                !r.signature.is_empty() || !r.redacted.is_empty(),
            ),
            Delta::ToolCall { .. } => {
                self.open = None;
                return Place::Beside(self.count.saturating_sub(1));
            }
            Delta::Citation(_) => return Place::Beside(self.count.saturating_sub(1)),
        };
        let redacted = matches!(d, Delta::Reasoning(r) if !r.redacted.is_empty());
        let place = if self.open == Some(kind) && !redacted {
            Place::Append(self.count - 1)
        } else {
            self.count += 1;
            Place::New(self.count - 1)
        };
        self.open = (!closes).then_some(kind);
        place
    }
}

#[derive(Debug, Default)]
struct PendingCall {
    index: u32,
    id: String,
    name: String,
    arguments: String,
}

/// Accumulates chunks; `finish` parses tool arguments once, at the end.
#[derive(Debug, Default)]
pub struct Aggregator {
    /// Bytes of content folded so far (text, reasoning, arguments, ids).
    bytes: usize,
    id: String,
    model: String,
    provider: &'static str,
    blocks: Blocks,
    content: Vec<Content>,
    calls: Vec<PendingCall>,
    usage: Option<Usage>,
    stop_reason: Option<StopReason>,
    finish_reason: String,
    stop_sequence: String,
    metadata: Vec<(String, String)>,
    citations: Vec<(u32, Citation)>,
}

impl Aggregator {
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            ..Self::default()
        }
    }

    /// The model that answered (known once a fallback was chosen).
    pub fn set_model(&mut self, model: String) {
        self.model = model;
    }

    /// The bytes of content folded so far: what a cap on folded answers reads.
    pub fn size(&self) -> usize {
        self.bytes
    }

    /// Adds one chunk.
    pub fn push(&mut self, chunk: &Chunk) {
        self.bytes += chunk.delta.as_ref().map_or(0, delta_size);
        if self.id.is_empty() && !chunk.id.is_empty() {
            self.id.clone_from(&chunk.id);
        }
        if !chunk.model.is_empty() && chunk.model != self.model {
            self.model.clone_from(&chunk.model);
        }
        if !chunk.provider.is_empty() {
            self.provider = chunk.provider;
        }
        if let Some(end) = &chunk.end {
            if let Some(usage) = end.usage {
                self.usage = Some(usage);
            }
            if end.stop_reason.is_some() {
                self.stop_reason = end.stop_reason;
            }
            if !end.finish_reason.is_empty() {
                self.finish_reason.clone_from(&end.finish_reason);
            }
            if !end.stop_sequence.is_empty() {
                self.stop_sequence.clone_from(&end.stop_sequence);
            }
            self.metadata.extend(end.metadata.iter().cloned());
        }
        let Some(delta) = &chunk.delta else {
            return;
        };
        let place = self.blocks.place(delta);
        match (delta, place) {
            (Delta::Text(t), Place::Append(_)) | (Delta::Refusal(t), Place::Append(_)) => {
                if let Some(Content::Text(prev) | Content::Refusal(prev)) = self.content.last_mut()
                {
                    prev.push_str(t);
                }
            }
            (Delta::Text(t), _) => self.content.push(Content::Text(t.clone())),
            (Delta::Refusal(t), _) => self.content.push(Content::Refusal(t.clone())),
            (Delta::Reasoning(r), Place::Append(_)) => {
                if let Some(Content::Reasoning(prev)) = self.content.last_mut() {
                    prev.text.push_str(&r.text);
                    prev.signature.push_str(&r.signature);
                }
            }
            (Delta::Reasoning(r), _) => self.content.push(Content::Reasoning(Reasoning {
                text: r.text.clone(),
                signature: r.signature.clone(),
                redacted: r.redacted.clone(),
            })),
            (Delta::Citation(c), place) => {
                let (Place::Append(n) | Place::New(n) | Place::Beside(n)) = place;
                self.citations.push((n, (**c).clone()));
            }
            (
                Delta::ToolCall {
                    index,
                    id,
                    name,
                    arguments,
                },
                _,
            ) => match self.calls.last_mut().filter(|c| c.index == *index) {
                // Fragments almost always continue the latest call: no scan per fragment.
                Some(call) => call.arguments.push_str(arguments),
                None => match self.calls.iter_mut().find(|c| c.index == *index) {
                    Some(call) => {
                        if call.id.is_empty() {
                            call.id.clone_from(id);
                        }
                        if call.name.is_empty() {
                            call.name.clone_from(name);
                        }
                        call.arguments.push_str(arguments);
                    }
                    None => self.calls.push(PendingCall {
                        index: *index,
                        id: id.clone(),
                        name: name.clone(),
                        arguments: arguments.clone(),
                    }),
                },
            },
        }
    }

    /// The whole answer as chunks, one per content block and tool call, the last
    /// one carrying usage, stop reason and `last` (non-streaming models). The
    /// answer moves into the chunks: nothing is copied.
    pub fn into_collapsed(self) -> std::collections::VecDeque<Chunk> {
        let id = self.id;
        let model = self.model;
        let mut citations = self.citations.into_iter().peekable();
        let mut deltas: Vec<(u32, Delta)> = Vec::new();
        for (n, c) in self.content.into_iter().enumerate() {
            let n = u32::try_from(n).unwrap_or(u32::MAX);
            match c {
                Content::Text(t) => deltas.push((n, Delta::Text(t))),
                Content::Refusal(t) => deltas.push((n, Delta::Refusal(t))),
                Content::Reasoning(r) => deltas.push((n, Delta::Reasoning(r))),
                _ => {}
            }
            while let Some((_, c)) = citations.next_if(|(b, _)| *b == n) {
                deltas.push((n, Delta::Citation(Box::new(c))));
            }
        }
        deltas.extend(citations.map(|(b, c)| (b, Delta::Citation(Box::new(c)))));
        let last_block = deltas.last().map_or(0, |(n, _)| *n);
        deltas.extend(self.calls.into_iter().map(|c| {
            (
                last_block,
                Delta::ToolCall {
                    index: c.index,
                    id: c.id,
                    name: c.name,
                    arguments: c.arguments,
                },
            )
        }));
        let mut out: std::collections::VecDeque<Chunk> = deltas
            .into_iter()
            .map(|(n, d)| Chunk {
                id: id.clone(),
                model: model.clone(),
                provider: self.provider,
                block_index: n,
                delta: Some(d),
                ..Chunk::default()
            })
            .collect();
        if out.is_empty() {
            out.push_back(Chunk {
                id,
                model,
                provider: self.provider,
                ..Chunk::default()
            });
        }
        if let Some(last) = out.back_mut() {
            last.end = Some(Box::new(End {
                usage: self.usage,
                stop_reason: self.stop_reason,
                finish_reason: self.finish_reason,
                stop_sequence: self.stop_sequence,
                metadata: self.metadata,
            }));
            last.last = true;
        }
        out
    }

    /// The message so far, leaving the aggregator as it is (tests and checks).
    pub fn snapshot(&self) -> FinalMessage {
        Self {
            bytes: self.bytes,
            id: self.id.clone(),
            model: self.model.clone(),
            provider: self.provider,
            blocks: self.blocks,
            finish_reason: self.finish_reason.clone(),
            stop_sequence: self.stop_sequence.clone(),
            metadata: self.metadata.clone(),
            citations: self.citations.clone(),
            content: self.content.clone(),
            calls: self
                .calls
                .iter()
                .map(|c| PendingCall {
                    index: c.index,
                    id: c.id.clone(),
                    name: c.name.clone(),
                    arguments: c.arguments.clone(),
                })
                .collect(),
            usage: self.usage,
            stop_reason: self.stop_reason,
        }
        .finish()
    }

    /// The final message (or `error.partial`): the answer moves into it; tool
    /// arguments are parsed once, here. Arguments nested deeper than
    /// `MAX_JSON_DEPTH` are an invalid call: as a Struct they would make the
    /// whole answer undecodable for most gRPC clients.
    pub fn finish(self) -> FinalMessage {
        let mut tool_calls = Vec::new();
        let mut invalid_tool_calls = Vec::new();
        for call in self.calls {
            // No arguments at all means "no arguments": `{}` (as LangChain's parser does).
            let raw = if call.arguments.trim().is_empty() {
                "{}"
            } else {
                call.arguments.as_str()
            };
            match serde_json::from_str::<serde_json::Value>(raw) {
                Ok(serde_json::Value::Object(arguments))
                    if nesting_of(&arguments, super::MAX_JSON_DEPTH + 1)
                        > super::MAX_JSON_DEPTH =>
                {
                    invalid_tool_calls.push(InvalidToolCall {
                        error: format!(
                            "arguments nest objects and arrays more than {} levels deep, more than a gRPC client can decode as a google.protobuf.Struct (most stop at 100 protobuf levels, about 3 per JSON level); the text is kept here",
                            super::MAX_JSON_DEPTH
                        ),
                        id: call.id,
                        name: call.name,
                        arguments: call.arguments,
                    });
                }
                Ok(serde_json::Value::Object(arguments)) => tool_calls.push(ToolCall {
                    id: call.id,
                    name: call.name,
                    arguments,
                    // The exact text the model produced ("{}" for none at all).
                    arguments_json: if call.arguments.trim().is_empty() {
                        "{}".to_string()
                    } else {
                        call.arguments
                    },
                }),
                Ok(other) => invalid_tool_calls.push(InvalidToolCall {
                    error: format!("arguments are not a JSON object but {}", kind_of(&other)),
                    id: call.id,
                    name: call.name,
                    arguments: call.arguments,
                }),
                Err(e) => invalid_tool_calls.push(InvalidToolCall {
                    error: format!("arguments are not valid JSON: {e}"),
                    id: call.id,
                    name: call.name,
                    arguments: call.arguments,
                }),
            }
        }
        FinalMessage {
            id: self.id,
            model: self.model,
            provider: self.provider,
            content: self.content,
            tool_calls,
            invalid_tool_calls,
            usage: self.usage,
            stop_reason: self.stop_reason,
            finish_reason: self.finish_reason,
            stop_sequence: self.stop_sequence,
            metadata: self.metadata,
            citations: self.citations,
        }
    }
}

/// The bytes a delta adds to a folded answer.
pub fn delta_size(d: &Delta) -> usize {
    match d {
        Delta::Text(t) | Delta::Refusal(t) => t.len(),
        Delta::Reasoning(r) => r.text.len() + r.signature.len() + r.redacted.len(),
        Delta::ToolCall {
            id,
            name,
            arguments,
            ..
        } => id.len() + name.len() + arguments.len(),
        Delta::Citation(c) => c.cited_text.len() + c.url.len() + c.title.len() + c.kind.len(),
    }
}

/// How deeply objects and arrays nest in `object` (itself one level), without
/// recursion; the walk stops once `enough` levels are found.
fn nesting_of(object: &serde_json::Map<String, serde_json::Value>, enough: usize) -> usize {
    let mut deepest = 1;
    let mut stack: Vec<(&serde_json::Value, usize)> = object.values().map(|v| (v, 2)).collect();
    while let Some((v, depth)) = stack.pop() {
        if deepest >= enough {
            break;
        }
        match v {
            serde_json::Value::Object(m) => {
                deepest = deepest.max(depth);
                stack.extend(m.values().map(|c| (c, depth + 1)));
            }
            serde_json::Value::Array(a) => {
                deepest = deepest.max(depth);
                stack.extend(a.iter().map(|c| (c, depth + 1)));
            }
            _ => {}
        }
    }
    deepest
}

fn kind_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
#[path = "aggregate_tests.rs"]
mod tests;
