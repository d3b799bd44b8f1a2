//! What a large request costs chatwire before a byte goes upstream: the
//! protobuf request validated and converted (`api::convert::request`), then
//! each provider's HTTP body built from it, for three shapes of a ~32 MiB
//! request at the per-request limits (many tools; many small messages; many
//! tool calls and results). Criterion times the CPU; the peak resident memory
//! each shape adds (VmHWM after resetting it through /proc/self/clear_refs) is
//! printed before the timings, beside the request's own size.
//! Run: `cargo bench --bench requests`.
// Proto messages gain fields (API 1.1); the struct updates keep this bench compiling.
#![allow(clippy::needless_update)]

use chatwire::{
    api::convert::{self, limits},
    config::ModelOptions,
    pb,
    provider::{
        anthropic::Anthropic, gemini::Gemini, http::Wire, ollama::Ollama, openai::OpenAi, Call,
        Settings,
    },
};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use prost::Message as _;
use prost_types::{value::Kind, Struct, Value};
use std::{hint::black_box, sync::Arc};

const TARGET: usize = 32 << 20;

fn text(t: String) -> pb::ContentBlock {
    pb::ContentBlock {
        block: Some(pb::content_block::Block::Text(t)),
        ..Default::default()
    }
}

fn msg(role: pb::Role, content: Vec<pb::ContentBlock>) -> pb::Message {
    pb::Message {
        role: role as i32,
        content,
        ..Default::default()
    }
}

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_string())),
    }
}

/// A JSON schema of `n` described properties (3 JSON values each, plus 3),
/// each description `desc_len` bytes.
fn schema(n: usize, desc_len: usize) -> Struct {
    let mut props = Struct::default();
    let desc = "d".repeat(desc_len);
    for i in 0..n {
        let mut p = Struct::default();
        p.fields.insert("type".into(), string("string"));
        p.fields.insert("description".into(), string(&desc));
        props.fields.insert(
            format!("p{i}"),
            Value {
                kind: Some(Kind::StructValue(p)),
            },
        );
    }
    let mut s = Struct::default();
    s.fields.insert("type".into(), string("object"));
    s.fields.insert(
        "properties".into(),
        Value {
            kind: Some(Kind::StructValue(props)),
        },
    );
    s
}

/// As many tools as allowed, with as many schema nodes as allowed
/// (`MAX_JSON_VALUES`), the rest of the ~32 MiB in descriptions.
fn many_tools() -> pb::ChatRequest {
    let n = limits::MAX_TOOLS;
    let props = (limits::MAX_JSON_VALUES / n - 3) / 3;
    let desc_len = TARGET / n / props;
    pb::ChatRequest {
        model: "bench:model".into(),
        messages: vec![msg(pb::Role::User, vec![text("hi".into())])],
        tools: (0..n)
            .map(|i| pb::Tool {
                name: format!("tool_{i}"),
                description: "a tool".into(),
                parameters: Some(schema(props, desc_len)),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn many_messages() -> pb::ChatRequest {
    let n = limits::MAX_MESSAGES;
    let body = "x".repeat(TARGET / n);
    pb::ChatRequest {
        model: "bench:model".into(),
        messages: (0..n)
            .map(|i| {
                let role = if i % 2 == 0 {
                    pb::Role::User
                } else {
                    pb::Role::Assistant
                };
                msg(role, vec![text(body.clone())])
            })
            .collect(),
        ..Default::default()
    }
}

fn many_tool_results() -> pb::ChatRequest {
    // Every call and result is a message of its own: the message limit binds.
    let pairs = (limits::MAX_MESSAGES - 1) / 2;
    let body = "r".repeat(TARGET / pairs);
    let mut messages = vec![msg(pb::Role::User, vec![text("go".into())])];
    for i in 0..pairs {
        let id = format!("call_{i}");
        messages.push(msg(
            pb::Role::Assistant,
            vec![pb::ContentBlock {
                block: Some(pb::content_block::Block::ToolCall(pb::ToolCall {
                    id: id.clone(),
                    name: "lookup".into(),
                    arguments: Some(Struct::default()),
                    ..Default::default()
                })),
                ..Default::default()
            }],
        ));
        messages.push(msg(
            pb::Role::Tool,
            vec![pb::ContentBlock {
                block: Some(pb::content_block::Block::ToolResult(pb::ToolResult {
                    tool_call_id: id,
                    content: body.clone(),
                    ..Default::default()
                })),
                ..Default::default()
            }],
        ));
    }
    pb::ChatRequest {
        model: "bench:model".into(),
        messages,
        tools: vec![pb::Tool {
            name: "lookup".into(),
            parameters: Some(schema(1, 16)),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn wires() -> Vec<(&'static str, Box<dyn Wire>)> {
    let settings = || Settings {
        base_url: "http://127.0.0.1:9".into(),
        api_key: Some("bench-key-0123456789".into()),
        ..Settings::default()
    };
    vec![
        (
            "anthropic",
            Box::new(Anthropic::new(settings())) as Box<dyn Wire>,
        ),
        ("openai", Box::new(OpenAi::new(settings()))),
        ("gemini", Box::new(Gemini::new(settings()))),
        ("ollama", Box::new(Ollama::new(settings()))),
    ]
}

/// Convert, then build one provider's body; returns the body's size.
fn run(req: pb::ChatRequest, wire: &dyn Wire, client: &reqwest::Client) -> usize {
    let request = match convert::request(req) {
        Ok(r) => r,
        Err(e) => panic!("the bench request is refused: {e}"),
    };
    let call = Call {
        model: "gemini-2.0-flash".into(),
        request: Arc::new(request),
        options: ModelOptions::default(),
        fallback_id: "run-bench".into(),
        budget: Default::default(),
    };
    let built = wire.request(client, &call).and_then(|rb| {
        rb.build()
            .map_err(|e| chatwire::error::Error::internal(e.to_string()))
    });
    match built {
        Ok(r) => r.body().and_then(|b| b.as_bytes()).map_or(0, <[u8]>::len),
        Err(e) => panic!("building the body failed: {e}"),
    }
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Peak RSS added by one run (KiB), measured once per shape and provider.
fn peak_added(make: fn() -> pb::ChatRequest, wire: &dyn Wire, client: &reqwest::Client) -> u64 {
    let req = make();
    let before = status_kib("VmRSS:");
    // Resets VmHWM to the current RSS (Linux); without it the figure is an upper bound.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    black_box(run(req, wire, client));
    status_kib("VmHWM:").saturating_sub(before)
}

/// A request shape: how to make one.
type Shape = fn() -> pb::ChatRequest;

fn bench(c: &mut Criterion) {
    let client = reqwest::Client::new();
    let shapes: [(&str, Shape); 3] = [
        ("many tools", many_tools),
        ("many messages", many_messages),
        ("many tool results", many_tool_results),
    ];
    for (name, make) in shapes {
        let size = make().encoded_len();
        let mut g = c.benchmark_group(format!("request: {name}"));
        g.sample_size(10);
        g.throughput(Throughput::Bytes(size as u64));
        for (provider, wire) in wires() {
            let peak = peak_added(make, wire.as_ref(), &client);
            eprintln!(
                "{name} ({:.1} MiB as protobuf) → {provider}: peak RSS added {:.1} MiB",
                size as f64 / 1048576.0,
                peak as f64 / 1024.0
            );
            g.bench_function(provider, |b| {
                b.iter_batched(
                    make,
                    |req| black_box(run(req, wire.as_ref(), &client)),
                    BatchSize::LargeInput,
                )
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
