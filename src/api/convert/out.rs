//! Domain → protobuf for responses: chunks and the final message, moved, not copied.

use super::json_to_struct;
use crate::{
    chat::{aggregate::FinalMessage, types as d},
    pb,
};

pub fn usage(u: &d::Usage) -> pb::Usage {
    pb::Usage {
        input_tokens: u.input,
        output_tokens: u.output,
        total_tokens: u.total,
        cache_read_tokens: u.cache_read,
        cache_creation_tokens: u.cache_creation,
        reasoning_tokens: u.reasoning,
    }
}

pub fn stop_reason(s: Option<d::StopReason>) -> i32 {
    use d::StopReason as S;
    (match s {
        None => pb::StopReason::Unspecified,
        Some(S::EndTurn) => pb::StopReason::EndTurn,
        Some(S::MaxTokens) => pb::StopReason::MaxTokens,
        Some(S::StopSequence) => pb::StopReason::StopSequence,
        Some(S::ToolUse) => pb::StopReason::ToolUse,
        Some(S::ContentFilter) => pb::StopReason::ContentFilter,
        Some(S::Other) => pb::StopReason::Other,
    }) as i32
}

/// Takes the chunk by value: it is converted once per token and dropped after,
/// so its strings move into the message instead of being copied.
pub fn chunk(c: d::Chunk) -> pb::MessageChunk {
    use pb::message_chunk::Delta as P;
    let end = c.end.map(|e| *e).unwrap_or_default();
    pb::MessageChunk {
        id: c.id,
        model: c.model,
        provider: c.provider.to_string(),
        block_index: c.block_index,
        finish_reason: end.finish_reason,
        stop_sequence: end.stop_sequence,
        response_metadata: end.metadata.into_iter().collect(),
        delta: c.delta.map(|delta| match delta {
            d::Delta::Text(t) => P::Text(t),
            d::Delta::Refusal(t) => P::Refusal(t),
            d::Delta::ToolCall {
                index,
                id,
                name,
                arguments,
            } => P::ToolCall(pb::ToolCallChunk {
                index,
                id,
                name,
                arguments,
            }),
            d::Delta::Reasoning(r) => P::Reasoning(pb::ReasoningChunk {
                text: r.text,
                signature: r.signature,
                redacted: r.redacted,
            }),
            d::Delta::Citation(ct) => P::Citation(citation(c.block_index, *ct)),
        }),
        usage: end.usage.as_ref().map(usage),
        stop_reason: stop_reason(end.stop_reason),
        last: c.last,
    }
}

/// The final message on the wire; the answer moves in, nothing is copied.
pub fn message_out(m: FinalMessage) -> pb::ChatMessage {
    use pb::content_block::Block;
    pb::ChatMessage {
        id: m.id,
        model: m.model,
        content: m
            .content
            .into_iter()
            .filter_map(|c| {
                let block = match c {
                    d::Content::Text(t) => Block::Text(t),
                    d::Content::Refusal(t) => Block::Refusal(t),
                    d::Content::Reasoning(r) => Block::Reasoning(pb::Reasoning {
                        text: r.text,
                        signature: r.signature,
                        redacted: r.redacted,
                    }),
                    _ => return None,
                };
                Some(pb::ContentBlock {
                    block: Some(block),
                    cache_control: None,
                })
            })
            .collect(),
        tool_calls: m
            .tool_calls
            .into_iter()
            .map(|t| pb::ToolCall {
                arguments: Some(json_to_struct(&t.arguments)),
                arguments_json: t.arguments_text(),
                id: t.id,
                name: t.name,
            })
            .collect(),
        invalid_tool_calls: m
            .invalid_tool_calls
            .into_iter()
            .map(|t| pb::InvalidToolCall {
                id: t.id,
                name: t.name,
                arguments: t.arguments,
                error: t.error,
            })
            .collect(),
        usage: m.usage.as_ref().map(usage),
        stop_reason: stop_reason(m.stop_reason),
        provider: m.provider.to_string(),
        finish_reason: m.finish_reason,
        stop_sequence: m.stop_sequence,
        response_metadata: m.metadata.into_iter().collect(),
        citations: m
            .citations
            .into_iter()
            .map(|(n, c)| citation(n, c))
            .collect(),
    }
}

fn citation(block_index: u32, c: d::Citation) -> pb::Citation {
    pb::Citation {
        block_index,
        r#type: c.kind,
        cited_text: c.cited_text,
        url: c.url,
        title: c.title,
        start: c.start,
        end: c.end,
    }
}
