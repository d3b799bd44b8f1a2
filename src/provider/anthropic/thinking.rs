//! Reasoning controls as Anthropic's `thinking`: a budget (from the request,
//! or an effort's), and Anthropic's rules for it checked before the call.

use crate::{
    chat::types::{ChatRequest, Effort, ToolChoice},
    error::Error,
};

/// Anthropic's smallest thinking budget.
const MIN_THINKING_BUDGET: u32 = 1024;

/// The thinking budget of an effort level (Anthropic takes a token budget, not
/// an effort): minimal and low 1024 (Anthropic's minimum), medium 4096, high
/// 16384. Reasoning asked for with neither an effort nor a budget (only
/// `includeReasoning: true`) takes the medium budget.
fn effort_budget(e: Effort) -> u32 {
    match e {
        Effort::None | Effort::Minimal | Effort::Low => MIN_THINKING_BUDGET,
        Effort::Medium => 4096,
        Effort::High => 16384,
    }
}

/// What `reasoning` asks of Anthropic's `thinking`.
pub(super) enum Thinking {
    /// Not asked: no `thinking` field (the model's default, off).
    Unset,
    /// Effort NONE: `{"type":"disabled"}`.
    Off,
    /// On with this budget; `from` is the field it came from (for errors).
    On { budget: u32, from: &'static str },
}

pub(super) fn thinking(req: &ChatRequest) -> Thinking {
    let Some(r) = &req.reasoning else {
        return Thinking::Unset;
    };
    match (r.effort, r.budget_tokens) {
        (Some(Effort::None), _) => Thinking::Off,
        (_, Some(budget)) => Thinking::On {
            budget,
            from: "reasoning.budgetTokens",
        },
        (Some(e), None) => Thinking::On {
            budget: effort_budget(e),
            from: "reasoning.effort",
        },
        (None, None) if r.include == Some(true) => Thinking::On {
            budget: effort_budget(Effort::Medium),
            from: "reasoning.includeReasoning",
        },
        (None, None) => Thinking::Unset,
    }
}

/// Anthropic's rules for a request with thinking on, checked before the call.
pub(super) fn check_thinking(
    req: &ChatRequest,
    budget: u32,
    from: &str,
    max_tokens: u32,
) -> Result<(), Error> {
    let no = |m: String| Err(Error::invalid(m));
    if req.reasoning.as_ref().and_then(|r| r.include) == Some(false) {
        return no("reasoning.includeReasoning: false cannot be expressed for anthropic: with thinking on it always returns the thinking blocks (leave it unset, or set effort NONE to turn thinking off)".into());
    }
    if budget < MIN_THINKING_BUDGET {
        return no(format!(
            "{from}: anthropic needs a thinking budget of at least {MIN_THINKING_BUDGET} tokens (got {budget})"
        ));
    }
    if budget >= max_tokens {
        return no(format!(
            "{from}: anthropic needs the thinking budget ({budget}) below maxTokens ({max_tokens}); raise maxTokens or lower the budget"
        ));
    }
    if req.temperature.is_some_and(|t| t != 1.0) {
        return no("temperature: anthropic does not allow changing it with thinking on (leave it unset or 1)".into());
    }
    if req.top_k.is_some() {
        return no("topK: anthropic does not allow it with thinking on".into());
    }
    if req.top_p.is_some_and(|p| p < 0.95) {
        return no("topP: anthropic allows only 0.95 to 1 with thinking on".into());
    }
    if matches!(req.tool_choice, Some(ToolChoice::Any | ToolChoice::Tool(_))) {
        return no(
            "toolChoice: anthropic allows only AUTO or NONE with thinking on (no forced tool use)"
                .into(),
        );
    }
    Ok(())
}
