//! The relay: decoder parts → client chunks. It stamps the message id on every
//! chunk, forwards deltas at once, and emits the one `last` chunk (usage, stop
//! reason) when the terminal part arrives. Nothing may follow it.

use std::collections::VecDeque;

use crate::chat::types::{Chunk, Part, StopReason, Usage};

/// Turns decoder parts into client chunks: the message id on every chunk,
/// deltas forwarded at once, and one final chunk with usage, stop reason and
/// `last` when the terminal part arrives.
#[derive(Debug)]
pub struct Relay {
    id: String,
    fallback_id: String,
    model: String,
    model_sent: bool,
    usage: Option<Usage>,
    stop: Option<StopReason>,
    done: bool,
}

impl Relay {
    pub fn new(fallback_id: impl Into<String>) -> Self {
        Self {
            id: String::new(),
            fallback_id: fallback_id.into(),
            model: String::new(),
            model_sent: false,
            usage: None,
            stop: None,
            done: false,
        }
    }

    /// True once the terminal part was relayed: nothing more may follow.
    pub fn is_done(&self) -> bool {
        self.done
    }

    pub fn push(&mut self, parts: Vec<Part>, out: &mut VecDeque<Chunk>) {
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
                    let id = self.id().to_string();
                    let model = self.model_once();
                    out.push_back(Chunk {
                        id,
                        model,
                        delta: Some(delta),
                        ..Chunk::default()
                    });
                }
                Part::Usage(u) => self.usage = Some(u),
                Part::Stop(s) => self.stop = Some(s),
                Part::Done => {
                    let id = self.id().to_string();
                    let model = self.model_once();
                    out.push_back(Chunk {
                        id,
                        model,
                        delta: None,
                        usage: self.usage,
                        stop_reason: Some(self.stop.unwrap_or(StopReason::Other)),
                        last: true,
                    });
                    self.done = true;
                }
            }
        }
    }

    /// The provider's model name, on the first chunk that can carry it.
    fn model_once(&mut self) -> String {
        if self.model_sent || self.model.is_empty() {
            return String::new();
        }
        self.model_sent = true;
        self.model.clone()
    }

    fn id(&mut self) -> &str {
        if self.id.is_empty() {
            self.id.clone_from(&self.fallback_id);
        }
        &self.id
    }
}
