//! Reasoning controls as Gemini's `thinkingConfig` (the table is in wire.rs's
//! module doc): a budget, a level (Gemini 3 and later) or an effort's budget
//! (2.5), and whether thoughts are returned.

use serde_json::{json, Map, Value};

use crate::chat::types::{Effort, ReasoningConfig};

/// `thinkingConfig` for the request's reasoning, or none when it asks for
/// nothing (see the module doc's table).
pub(super) fn thinking_config(model: &str, r: &ReasoningConfig) -> Option<Value> {
    let mut t = Map::new();
    match (r.budget_tokens, r.effort) {
        (Some(budget), _) => {
            t.insert("thinkingBudget".into(), json!(budget));
        }
        (None, Some(Effort::None)) => {
            t.insert("thinkingBudget".into(), json!(0));
        }
        (None, Some(effort)) if uses_thinking_levels(model) => {
            let level = match effort {
                // NONE is the zero budget above.
                Effort::None | Effort::Minimal => "minimal",
                Effort::Low => "low",
                Effort::Medium => "medium",
                Effort::High => "high",
            };
            t.insert("thinkingLevel".into(), json!(level));
        }
        (None, Some(effort)) => {
            let budget: u32 = match effort {
                Effort::None => 0,
                Effort::Minimal => 512,
                Effort::Low => 1024,
                Effort::Medium => 8192,
                Effort::High => 24576,
            };
            t.insert("thinkingBudget".into(), json!(budget));
        }
        (None, None) => {}
    }
    if let Some(include) = r.include {
        t.insert("includeThoughts".into(), json!(include));
    }
    (!t.is_empty()).then_some(Value::Object(t))
}

/// Gemini 3 and later take `thinkingLevel`; 2.5 a `thinkingBudget`.
fn uses_thinking_levels(model: &str) -> bool {
    let m = model.strip_prefix("models/").unwrap_or(model);
    let major: String = m
        .strip_prefix("gemini-")
        .unwrap_or("")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    major.parse::<u32>().is_ok_and(|n| n >= 3)
}
