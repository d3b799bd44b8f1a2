//! The one aggregator: folds chunks into the final message the way LangChain's
//! `AIMessageChunk + AIMessageChunk` does. Invoke is this fold over the Stream
//! chunks, and StreamEvents' `end.output` / `error.partial` come from it too,
//! so the three RPCs cannot disagree.

use super::types::{
    Chunk, Content, Delta, InvalidToolCall, Reasoning, StopReason, ToolCall, Usage,
};

/// The folded answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FinalMessage {
    pub id: String,
    pub model: String,
    pub content: Vec<Content>,
    pub tool_calls: Vec<ToolCall>,
    pub invalid_tool_calls: Vec<InvalidToolCall>,
    pub usage: Option<Usage>,
    pub stop_reason: Option<StopReason>,
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
    content: Vec<Content>,
    calls: Vec<PendingCall>,
    usage: Option<Usage>,
    stop_reason: Option<StopReason>,
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
        if !chunk.model.is_empty() {
            self.model.clone_from(&chunk.model);
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage);
        }
        if chunk.stop_reason.is_some() {
            self.stop_reason = chunk.stop_reason;
        }
        match &chunk.delta {
            None => {}
            Some(Delta::Text(t)) => match self.content.last_mut() {
                Some(Content::Text(prev)) => prev.push_str(t),
                _ => self.content.push(Content::Text(t.clone())),
            },
            Some(Delta::Refusal(t)) => match self.content.last_mut() {
                Some(Content::Refusal(prev)) => prev.push_str(t),
                _ => self.content.push(Content::Refusal(t.clone())),
            },
            Some(Delta::Reasoning(r)) => match self.content.last_mut() {
                // A signature closes a reasoning block; redacted data is a block of its own.
                Some(Content::Reasoning(prev))
                    if prev.signature.is_empty()
                        && prev.redacted.is_empty()
                        && r.redacted.is_empty() =>
                {
                    prev.text.push_str(&r.text);
                    prev.signature.push_str(&r.signature);
                }
                _ => self.content.push(Content::Reasoning(Reasoning {
                    text: r.text.clone(),
                    signature: r.signature.clone(),
                    redacted: r.redacted.clone(),
                })),
            },
            Some(Delta::ToolCall {
                index,
                id,
                name,
                arguments,
            }) => match self.calls.last_mut().filter(|c| c.index == *index) {
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
        let mut out: std::collections::VecDeque<Chunk> = self
            .content
            .into_iter()
            .filter_map(|c| match c {
                Content::Text(t) => Some(Delta::Text(t)),
                Content::Refusal(t) => Some(Delta::Refusal(t)),
                Content::Reasoning(r) => Some(Delta::Reasoning(r)),
                _ => None,
            })
            .chain(self.calls.into_iter().map(|c| Delta::ToolCall {
                index: c.index,
                id: c.id,
                name: c.name,
                arguments: c.arguments,
            }))
            .map(|d| Chunk {
                id: id.clone(),
                delta: Some(d),
                ..Chunk::default()
            })
            .collect();
        if out.is_empty() {
            out.push_back(Chunk {
                id,
                ..Chunk::default()
            });
        }
        if let Some(first) = out.front_mut() {
            first.model = self.model;
        }
        if let Some(last) = out.back_mut() {
            last.usage = self.usage;
            last.stop_reason = self.stop_reason;
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
    /// arguments are parsed once, here.
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
                Ok(serde_json::Value::Object(arguments)) => tool_calls.push(ToolCall {
                    id: call.id,
                    name: call.name,
                    arguments,
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
            content: self.content,
            tool_calls,
            invalid_tool_calls,
            usage: self.usage,
            stop_reason: self.stop_reason,
        }
    }
}

/// The bytes a delta adds to a folded answer.
fn delta_size(d: &Delta) -> usize {
    match d {
        Delta::Text(t) | Delta::Refusal(t) => t.len(),
        Delta::Reasoning(r) => r.text.len() + r.signature.len() + r.redacted.len(),
        Delta::ToolCall {
            id,
            name,
            arguments,
            ..
        } => id.len() + name.len() + arguments.len(),
    }
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
mod tests {
    use super::*;

    fn delta(d: Delta) -> Chunk {
        Chunk {
            id: "m1".into(),
            delta: Some(d),
            ..Chunk::default()
        }
    }

    #[test]
    fn merges_text_and_joins_tool_fragments_by_index() {
        let mut agg = Aggregator::new("fake:x");
        let call = |index, id: &str, name: &str, args: &str| Delta::ToolCall {
            index,
            id: id.into(),
            name: name.into(),
            arguments: args.into(),
        };
        for d in [
            Delta::Text("Hel".into()),
            Delta::Text("lo".into()),
            call(0, "a", "f", "{\"x\":"),
            call(1, "b", "g", "{\"y\""),
            call(0, "", "", "1}"),
            call(1, "", "", ": 2"),
        ] {
            agg.push(&delta(d));
        }
        agg.push(&Chunk {
            id: "m1".into(),
            usage: Some(Usage {
                input: 3,
                output: 4,
                total: 7,
                ..Usage::default()
            }),
            stop_reason: Some(StopReason::ToolUse),
            last: true,
            ..Chunk::default()
        });
        let m = agg.snapshot();
        assert_eq!(m.id, "m1");
        assert_eq!(m.content, vec![Content::Text("Hello".into())]);
        assert_eq!(m.tool_calls.len(), 1);
        assert_eq!(m.tool_calls[0].id, "a");
        assert_eq!(m.tool_calls[0].arguments["x"], 1);
        assert_eq!(m.invalid_tool_calls.len(), 1);
        assert_eq!(m.invalid_tool_calls[0].arguments, "{\"y\": 2");
        assert!(m.invalid_tool_calls[0].error.contains("not valid JSON"));
        assert_eq!(m.usage.map(|u| u.total), Some(7));
        assert_eq!(m.stop_reason, Some(StopReason::ToolUse));
    }

    #[test]
    fn reasoning_signature_closes_a_block() {
        let mut agg = Aggregator::new("m");
        let r = |t: &str, s: &str| {
            Delta::Reasoning(Reasoning {
                text: t.into(),
                signature: s.into(),
                redacted: String::new(),
            })
        };
        for d in [r("a", ""), r("b", ""), r("", "sig"), r("c", "")] {
            agg.push(&delta(d));
        }
        let m = agg.snapshot();
        assert_eq!(m.content.len(), 2);
        assert_eq!(
            m.content[0],
            Content::Reasoning(Reasoning {
                text: "ab".into(),
                signature: "sig".into(),
                redacted: String::new()
            })
        );
    }
}
