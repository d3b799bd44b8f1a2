//! Each provider's framer + pure decoder + relay over a 10,000-token answer
//! (OpenAI's and Bedrock's binary event stream in 16 KiB reads, the others whole: the framer's cost does not
//! depend on read size, see benches/framing.rs).
//! Run: `cargo bench --bench decoders`.
use chatwire::provider::{anthropic, bedrock, gemini, ollama, openai};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;
use std::hint::black_box;

const TOKENS: usize = 10_000;

fn splits(len: usize) -> Vec<usize> {
    (1..len.div_ceil(16 << 10))
        .map(|i| i * (16 << 10))
        .collect()
}

fn anthropic_body() -> String {
    let ev = |v: serde_json::Value| {
        format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap_or(""))
    };
    let mut b = ev(
        json!({"type":"message_start","message":{"id":"msg_1","model":"claude","usage":{"input_tokens":5,"output_tokens":1}}}),
    );
    b += &ev(
        json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
    );
    for i in 0..TOKENS {
        b += &ev(
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":format!(" tok{i}")}}),
        );
    }
    b += &ev(json!({"type":"content_block_stop","index":0}));
    b += &ev(
        json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":TOKENS}}),
    );
    b + &ev(json!({"type":"message_stop"}))
}

fn openai_body() -> String {
    let mut b = String::new();
    for i in 0..TOKENS {
        let c = json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",
            "choices":[{"index":0,"delta":{"content":format!(" tok{i}")},"finish_reason":null}]});
        b += &format!("data: {c}\n\n");
    }
    let c = json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",
        "choices":[{"index":0,"delta":{},"finish_reason":"stop"}]});
    b + &format!("data: {c}\n\ndata: [DONE]\n\n")
}

fn gemini_body() -> String {
    let mut b = String::new();
    for i in 0..TOKENS {
        let mut c = json!({"candidates":[{"content":{"role":"model","parts":[{"text":format!(" tok{i}")}]},"index":0}],
            "usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":i,"totalTokenCount":5 + i},"responseId":"r1"});
        if i + 1 == TOKENS {
            c["candidates"][0]["finishReason"] = json!("STOP");
        }
        b += &format!("data: {c}\r\n\r\n");
    }
    b
}

fn ollama_body() -> String {
    let mut b = String::new();
    for i in 0..TOKENS {
        b += &format!(
            "{}\n",
            json!({"model":"llama3","message":{"role":"assistant","content":format!(" tok{i}")},"done":false})
        );
    }
    b + &format!(
        "{}\n",
        json!({"model":"llama3","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":5,"eval_count":TOKENS})
    )
}

/// The Responses API: typed events with sequence numbers, item and content indices.
fn openai_responses_body() -> String {
    let ev = |v: serde_json::Value| {
        format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap_or(""))
    };
    let mut b = ev(
        json!({"type":"response.created","response":{"id":"resp_1","object":"response","status":"in_progress","model":"o4-mini"},"sequence_number":0}),
    );
    b += &ev(
        json!({"type":"response.output_item.added","output_index":0,"item":{"id":"msg_1","type":"message","status":"in_progress","role":"assistant","content":[]},"sequence_number":1}),
    );
    for i in 0..TOKENS {
        b += &ev(
            json!({"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":format!(" tok{i}"),"logprobs":[],"sequence_number":i + 2}),
        );
    }
    b + &ev(
        json!({"type":"response.completed","response":{"id":"resp_1","object":"response","status":"completed","model":"o4-mini",
            "usage":{"input_tokens":5,"input_tokens_details":{"cached_tokens":0},"output_tokens":TOKENS,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":TOKENS + 5}},"sequence_number":TOKENS + 2}),
    )
}

/// Azure OpenAI: Chat Completions chunks, each with its content_filter_results
/// (decoded by the openai decoder).
fn azure_body() -> String {
    let filters = json!({"hate":{"filtered":false,"severity":"safe"},"self_harm":{"filtered":false,"severity":"safe"},
        "sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}});
    let mut b = format!(
        "data: {}\n\n",
        json!({"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":filters}]})
    );
    for i in 0..TOKENS {
        let c = json!({"choices":[{"content_filter_results":filters,"delta":{"content":format!(" tok{i}")},"finish_reason":null,"index":0,"logprobs":null}],
            "created":1,"id":"chatcmpl-1","model":"gpt-4o-2024-11-20","object":"chat.completion.chunk","system_fingerprint":"fp_1"});
        b += &format!("data: {c}\n\n");
    }
    let c = json!({"choices":[{"content_filter_results":{},"delta":{},"finish_reason":"stop","index":0,"logprobs":null}],
        "created":1,"id":"chatcmpl-1","model":"gpt-4o-2024-11-20","object":"chat.completion.chunk"});
    b + &format!("data: {c}\n\ndata: [DONE]\n\n")
}

/// Bedrock's ConverseStream: one AWS event-stream message per event.
fn bedrock_body() -> Vec<u8> {
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    let ev = |name: &str, payload: serde_json::Value| {
        let m = Message::new(payload.to_string().into_bytes())
            .add_header(Header::new(
                ":event-type",
                HeaderValue::String(name.to_string().into()),
            ))
            .add_header(Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ))
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String("event".into()),
            ));
        let mut out = Vec::new();
        write_message_to(&m, &mut out).unwrap_or_default();
        out
    };
    let mut b = ev("messageStart", json!({"role": "assistant"}));
    for i in 0..TOKENS {
        b.extend(ev(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": format!(" tok{i}")}}),
        ));
    }
    b.extend(ev("contentBlockStop", json!({"contentBlockIndex": 0})));
    b.extend(ev("messageStop", json!({"stopReason": "end_turn"})));
    b.extend(ev(
        "metadata",
        json!({"usage": {"inputTokens": 5, "outputTokens": TOKENS}, "metrics": {"latencyMs": 1}}),
    ));
    b
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode 10k tokens");
    g.throughput(Throughput::Elements(TOKENS as u64));
    let a = anthropic_body();
    g.bench_function("anthropic", |b| {
        b.iter(|| {
            let (chunks, err) = anthropic::decode_body(black_box(a.as_bytes()), "run-x");
            assert!(err.is_none() && chunks.len() == TOKENS + 1);
        })
    });
    let o = openai_body();
    let o_splits = splits(o.len());
    g.bench_function("openai", |b| {
        b.iter(|| {
            let (chunks, err) = openai::decode_body(black_box(o.as_bytes()), &o_splits);
            assert!(err.is_none() && chunks.len() == TOKENS + 1);
        })
    });
    let gm = gemini_body();
    g.bench_function("gemini", |b| {
        b.iter(|| {
            let (chunks, err) = gemini::decode_body(black_box(gm.as_bytes()));
            assert!(err.is_none() && chunks.len() == TOKENS + 1);
        })
    });
    let ol = ollama_body();
    g.bench_function("ollama", |b| {
        b.iter(|| {
            let (chunks, err) = ollama::decode_body(black_box(ol.as_bytes()));
            assert!(err.is_none() && chunks.len() == TOKENS + 1);
        })
    });
    let r = openai_responses_body();
    let r_splits = splits(r.len());
    g.bench_function("openai-responses", |b| {
        b.iter(|| {
            let (chunks, err) = openai::responses::decode_body(black_box(r.as_bytes()), &r_splits);
            assert!(err.is_none() && chunks.len() == TOKENS + 1);
        })
    });
    let az = azure_body();
    let az_splits = splits(az.len());
    g.bench_function("azure", |b| {
        b.iter(|| {
            let (chunks, err) = openai::decode_body(black_box(az.as_bytes()), &az_splits);
            assert!(err.is_none() && chunks.len() == TOKENS + 1);
        })
    });
    let br = bedrock_body();
    let br_splits = splits(br.len());
    g.bench_function("bedrock", |b| {
        b.iter(|| {
            let (chunks, err) = bedrock::decode_body(black_box(&br), &br_splits);
            assert!(err.is_none() && chunks.len() == TOKENS + 1);
        })
    });
    // Vertex AI streams the Gemini API's and Anthropic's own formats, decoded
    // by the same decoders: these rows are those paths under vertex's name.
    g.bench_function("vertex (gemini)", |b| {
        b.iter(|| {
            let (chunks, err) = gemini::decode_body(black_box(gm.as_bytes()));
            assert!(err.is_none() && chunks.len() == TOKENS + 1);
        })
    });
    g.bench_function("vertex (claude)", |b| {
        b.iter(|| {
            let (chunks, err) = anthropic::decode_body(black_box(a.as_bytes()), "run-x");
            assert!(err.is_none() && chunks.len() == TOKENS + 1);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
