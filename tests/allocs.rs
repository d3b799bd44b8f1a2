//! Allocations per relayed token in the pure path (framer → decoder → relay),
//! counted by `allocation-counter`'s global allocator. A token's chunk needs
//! three: its text, and the message id and model it carries (prost's `String`
//! fields; the gRPC layer adds the provider name); OpenAI's decoder a fourth,
//! the `Vec` of a chunk's choices, when the chunk is not in the shape its
//! shape read takes (`provider::openai::token`).
//! Everything else of the frame — its line, the decoder's output, the JSON's
//! id and model — is borrowed or reused, and a change that copies again fails
//! here.
//!
//! The count is the marginal one, (allocations for 2N tokens − for N) / N, so
//! the per-answer setup does not blur it; only the test's own thread counts.

#![allow(clippy::unwrap_used)]

use chatwire::provider::{
    anthropic::AnthropicDecoder, codec::decode_body, frame::Framing, openai::OpenAiDecoder, Decoder,
};
use serde_json::json;

/// Allocations per token of an answer built by `answer(n)` (its body and the
/// points its reads end at), decoded by a fresh `decoder()` through the pump.
fn per_token<D: Decoder>(answer: fn(usize) -> (String, Vec<usize>), decoder: fn() -> D) -> f64 {
    const N: usize = 1_000;
    let count = |n: usize| {
        let (body, splits) = answer(n);
        allocation_counter::measure(|| {
            let mut d = decoder();
            let (chunks, err) =
                decode_body(Framing::Sse, &mut d, body.as_bytes(), &splits, "run-x");
            assert!(err.is_none() && chunks.len() == n + 1);
        })
        .count_total
    };
    (count(2 * N) - count(N)) as f64 / N as f64
}

/// `k` allocations per token are `want`, within ±0.05.
fn expect(k: f64, want: f64) {
    assert!(
        (want - 0.05..=want + 0.05).contains(&k),
        "{k} allocations per token ({want} expected)"
    );
}

/// An OpenAI answer as the provider streams it, byte for byte in its field
/// order: one SSE event per token, each arriving in its own read (the split
/// points). `shaped` false writes the same chunks with their keys sorted
/// (serde_json's map order), which the decoder's shape read leaves to the full
/// parse.
fn openai_chunks(tokens: usize, shaped: bool) -> (String, Vec<usize>) {
    let mut body = String::new();
    let mut splits = Vec::new();
    for i in 0..tokens {
        let c = if shaped {
            format!(
                r#"{{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[{{"index":0,"delta":{{"content":" tok{i}"}},"logprobs":null,"finish_reason":null}}]}}"#
            )
        } else {
            json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",
                "system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":format!(" tok{i}")},"finish_reason":null}]})
            .to_string()
        };
        body += &format!("data: {c}\n\n");
        splits.push(body.len());
    }
    let c = json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",
        "choices":[{"index":0,"delta":{},"finish_reason":"stop"}]});
    body += &format!("data: {c}\n\ndata: [DONE]\n\n");
    (body, splits)
}

/// An Anthropic answer, one `content_block_delta` per token, each in its own read.
fn anthropic_answer(tokens: usize) -> (String, Vec<usize>) {
    let ev =
        |v: serde_json::Value| format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap());
    let mut b = ev(
        json!({"type":"message_start","message":{"id":"msg_1","model":"claude-x","usage":{"input_tokens":5,"output_tokens":1}}}),
    );
    b += &ev(
        json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
    );
    let mut splits = Vec::new();
    for i in 0..tokens {
        b += &ev(
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":format!(" tok{i}")}}),
        );
        splits.push(b.len());
    }
    b += &ev(json!({"type":"content_block_stop","index":0}));
    b += &ev(
        json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":tokens}}),
    );
    (b + &ev(json!({"type":"message_stop"})), splits)
}

#[test]
fn an_openai_token_costs_its_text_id_and_model_and_nothing_else() {
    expect(
        per_token(|n| openai_chunks(n, true), OpenAiDecoder::new),
        3.0,
    );
}

/// A chunk of another shape goes through the full parse, which also
/// allocates the `Vec` of its choices (kept: reading them inline was slower).
#[test]
fn an_openai_token_of_another_shape_costs_its_choices_too() {
    expect(
        per_token(|n| openai_chunks(n, false), OpenAiDecoder::new),
        4.0,
    );
}

#[test]
fn an_anthropic_token_costs_its_text_id_and_model_and_nothing_else() {
    expect(per_token(anthropic_answer, AnthropicDecoder::new), 3.0);
}
