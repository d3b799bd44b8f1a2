//! The relay: decoder parts → client chunks. It stamps the message id and the
//! model on every chunk and each content delta's block index (by the same rule
//! the aggregator folds with), forwards deltas at once, and emits the one
//! `last` chunk (usage, stop reason, the provider's own finish reason, response
//! metadata) when the terminal part arrives. Nothing may follow it.

use std::collections::VecDeque;

use crate::{
    chat::{
        aggregate::{Blocks, Place},
        types::{Chunk, End, Part, StopReason, Usage},
    },
    error::{log_safe, redact},
};

/// Turns decoder parts into client chunks.
#[derive(Debug)]
pub struct Relay {
    id: String,
    fallback_id: String,
    model: String,
    fallback_model: String,
    blocks: Blocks,
    usage: Option<Usage>,
    stop: Option<StopReason>,
    finish_reason: String,
    stop_sequence: String,
    metadata: Vec<(String, String)>,
    done: bool,
}

impl Relay {
    pub fn new(fallback_id: impl Into<String>) -> Self {
        Self {
            id: String::new(),
            fallback_id: fallback_id.into(),
            model: String::new(),
            fallback_model: String::new(),
            blocks: Blocks::default(),
            usage: None,
            stop: None,
            finish_reason: String::new(),
            stop_sequence: String::new(),
            metadata: Vec::new(),
            done: false,
        }
    }

    /// The model named on chunks until (unless) the provider names its own:
    /// the model the call asked for.
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.fallback_model = model.into();
        self
    }

    /// True once the terminal part was relayed: nothing more may follow.
    pub fn is_done(&self) -> bool {
        self.done
    }

    pub fn push(&mut self, parts: impl IntoIterator<Item = Part>, out: &mut VecDeque<Chunk>) {
        for part in parts {
            if self.done {
                return;
            }
            match part {
                Part::Meta { id, model } => {
                    if self.id.is_empty() && !id.is_empty() {
                        self.id = id;
                    }
                    if self.model.is_empty() && !model.is_empty() {
                        self.model = model;
                    }
                }
                Part::Delta(delta) => {
                    let (Place::Append(n) | Place::New(n) | Place::Beside(n)) =
                        self.blocks.place(&delta);
                    out.push_back(Chunk {
                        id: self.id().to_string(),
                        model: self.model().to_string(),
                        block_index: n,
                        delta: Some(delta),
                        ..Chunk::default()
                    });
                }
                Part::Usage(u) => self.usage = Some(u),
                Part::Stop(s) => self.stop = Some(s),
                Part::Finish {
                    reason,
                    stop_sequence,
                } => {
                    self.finish_reason = reason;
                    self.stop_sequence = stop_sequence;
                }
                Part::Metadata(k, v) => self.note(k, v),
                Part::Done => {
                    out.push_back(Chunk {
                        id: self.id().to_string(),
                        model: self.model().to_string(),
                        end: Some(Box::new(End {
                            usage: self.usage,
                            stop_reason: Some(self.stop.unwrap_or(StopReason::Other)),
                            // Upstream-derived text: redacted like everything else that enters.
                            finish_reason: log_safe(&redact(&self.finish_reason), 200),
                            // The caller's own stop sequence, echoed: not redacted (no oracle).
                            stop_sequence: std::mem::take(&mut self.stop_sequence),
                            metadata: std::mem::take(&mut self.metadata)
                                .into_iter()
                                .map(|(k, v)| (k, log_safe(&redact(&v), 200)))
                                .collect(),
                        })),
                        last: true,
                        ..Chunk::default()
                    });
                    self.done = true;
                }
            }
        }
    }

    /// A response metadata entry for the last chunk (the first value of a key wins).
    pub fn note(&mut self, key: &'static str, value: String) {
        if !value.is_empty() && !self.metadata.iter().any(|(k, _)| k == key) {
            self.metadata.push((key.to_string(), value));
        }
    }

    fn model(&self) -> &str {
        if self.model.is_empty() {
            &self.fallback_model
        } else {
            &self.model
        }
    }

    fn id(&mut self) -> &str {
        if self.id.is_empty() {
            self.id.clone_from(&self.fallback_id);
        }
        &self.id
    }
}
