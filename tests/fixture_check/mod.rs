//! The fixture check shared by the `*_fixtures` tests.
//!
//! `tests/fixtures/<provider>/` holds the project's own small streams, written
//! from each provider's documented wire format: `<name>.sse` or `<name>.ndjson`
//! (the upstream's response body, byte for byte) and `<name>.expected.json`
//! (what chatwire must make of it). The format of the expected files is in
//! `tests/fixtures/README.md`. Every body is decoded whole, then at every
//! single split point, one byte at a time, and at pseudo-random split points;
//! every split must give exactly the whole body's chunks and error.
//!
//! The shared recorded streams (`../shared/fixtures`) are an extra: when the
//! directory is absent their tests say so on stderr and pass, except when the
//! environment variable `CI` is set, where absence is a failure.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use chatwire::{
    chat::{
        aggregate::Aggregator,
        types::{Chunk, Content, Delta, StopReason, Usage},
    },
    error::Error,
};
use serde_json::Value;

/// What a decoder run gives: the chunks a client would get and the error that
/// would end the stream.
pub type Decoded = (Vec<Chunk>, Option<Error>);

/// The project's own fixtures for `provider`: (file name, body, expected).
/// Every body file must have its expected file, and the other way round.
pub fn own_fixtures(provider: &str, ext: &str) -> Vec<(String, Vec<u8>, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(provider);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in &names {
        if let Some(stem) = name.strip_suffix(".expected.json") {
            assert!(
                names.contains(&format!("{stem}.{ext}")),
                "{provider}/{name} has no {stem}.{ext}"
            );
            continue;
        }
        let Some(stem) = name.strip_suffix(&format!(".{ext}")) else {
            panic!("{provider}/{name}: not a .{ext} body nor an .expected.json file");
        };
        let body = std::fs::read(dir.join(name)).unwrap();
        let expected_path = dir.join(format!("{stem}.expected.json"));
        let text = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        let expected: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        out.push((name.clone(), body, expected));
    }
    out
}

/// Checks every own fixture of `provider`: the whole body through `whole` (the
/// provider's `decode_body`) against its expected translation, then through
/// `split` at many split points against the whole-body result. Returns how
/// many fixtures were checked; panics with every mismatch.
pub fn check_provider(
    provider: &str,
    ext: &str,
    whole: impl Fn(&[u8]) -> Decoded,
    split: impl Fn(&[u8], &[usize]) -> Decoded,
) -> usize {
    let fixtures = own_fixtures(provider, ext);
    let mut failures = Vec::new();
    for (name, body, expected) in &fixtures {
        let got = whole(body);
        let bad = check(&got, expected);
        if !bad.is_empty() {
            failures.push(format!("{provider}/{name}:\n  {}", bad.join("\n  ")));
            continue;
        }
        for splits in split_sets(body.len()) {
            let again = split(body, &splits);
            if again != got {
                failures.push(format!(
                    "{provider}/{name} cut at {splits:?}:\n  got  {again:?}\n  want {got:?}"
                ));
                break;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} {provider} fixtures fail:\n{}",
        failures.len(),
        fixtures.len(),
        failures.join("\n")
    );
    fixtures.len()
}

/// Every single split point, one byte at a time, and 32 pseudo-random sets.
pub fn split_sets(len: usize) -> Vec<Vec<usize>> {
    let mut sets: Vec<Vec<usize>> = (1..len).map(|p| vec![p]).collect();
    sets.push((1..len).collect());
    let mut x: u64 = (len as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for _ in 0..32 {
        let mut v = Vec::new();
        let mut at = 0;
        loop {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            at += 1 + (x % 97) as usize;
            if at >= len {
                break;
            }
            v.push(at);
        }
        sets.push(v);
    }
    sets
}

fn stop_reason(s: &str) -> StopReason {
    match s {
        "end_turn" => StopReason::EndTurn,
        "max_tokens" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence,
        "tool_use" => StopReason::ToolUse,
        "content_filter" => StopReason::ContentFilter,
        "other" => StopReason::Other,
        other => panic!("unknown stop_reason {other:?} in an expected file"),
    }
}

fn usage(v: &Value) -> Option<Usage> {
    if v.is_null() {
        return None;
    }
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0) as u32;
    Some(Usage {
        input: n("input"),
        output: n("output"),
        total: n("total"),
        cache_read: n("cache_read"),
        cache_creation: n("cache_creation"),
        reasoning: n("reasoning"),
    })
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// Tool-call arguments: a string is the exact fragment; an object (providers
/// that send whole calls as JSON objects) is compared parsed.
fn arguments_match(got: &str, want: &Value) -> bool {
    match want {
        Value::Object(_) => serde_json::from_str::<Value>(got).is_ok_and(|g| g == *want),
        other => got == s(other),
    }
}

/// One chunk against its spec (see tests/fixtures/README.md).
fn chunk_mismatch(i: usize, got: &Chunk, want: &Value, id: &str, model: &str) -> Option<String> {
    let mut bad = Vec::new();
    if got.id != id {
        bad.push(format!("id {:?}, want {id:?}", got.id));
    }
    // The model is on every chunk (API 1.1).
    let want_model = model;
    if got.model != want_model {
        bad.push(format!("model {:?}, want {want_model:?}", got.model));
    }
    let delta_ok = match (&got.delta, want) {
        (None, w) => [
            "text",
            "refusal",
            "reasoning",
            "tool_call",
            "refusal_contains",
        ]
        .iter()
        .all(|k| w.get(k).is_none()),
        (Some(Delta::Citation(_)), _) => false,
        (Some(Delta::Text(t)), w) => w.get("text").is_some_and(|x| s(x) == t),
        (Some(Delta::Refusal(t)), w) => {
            w.get("refusal").is_some_and(|x| s(x) == t)
                || w.get("refusal_contains").is_some_and(|x| t.contains(s(x)))
        }
        (Some(Delta::Reasoning(r)), w) => w.get("reasoning").is_some_and(|x| {
            r.text == s(&x["text"])
                && r.signature == s(&x["signature"])
                && r.redacted == s(&x["redacted"])
        }),
        (
            Some(Delta::ToolCall {
                index,
                id,
                name,
                arguments,
            }),
            w,
        ) => w.get("tool_call").is_some_and(|x| {
            u64::from(*index) == x["index"].as_u64().unwrap_or(0)
                && id == s(&x["id"])
                && name == s(&x["name"])
                && arguments_match(arguments, &x["arguments"])
        }),
    };
    if !delta_ok {
        bad.push(format!("delta {:?}", got.delta));
    }
    let want_usage = usage(&want["usage"]);
    if got.usage() != want_usage {
        bad.push(format!("usage {:?}, want {want_usage:?}", got.usage()));
    }
    let want_stop = want["stop_reason"].as_str().map(stop_reason);
    if got.stop_reason() != want_stop {
        bad.push(format!(
            "stop_reason {:?}, want {want_stop:?}",
            got.stop_reason()
        ));
    }
    let want_last = want["last"].as_bool().unwrap_or(false);
    if got.last != want_last {
        bad.push(format!("last {}, want {want_last}", got.last));
    }
    (!bad.is_empty()).then(|| format!("chunk {i} (want {want}): {}", bad.join("; ")))
}

/// A decoder run against an expected file; the list of what differs.
pub fn check((chunks, error): &Decoded, expected: &Value) -> Vec<String> {
    let mut bad = Vec::new();
    let id = s(&expected["id"]);
    let model = s(&expected["model"]);
    let want_chunks = expected["chunks"].as_array().expect("\"chunks\": [...]");
    if chunks.len() != want_chunks.len() {
        bad.push(format!(
            "{} chunks, want {}: {chunks:#?}",
            chunks.len(),
            want_chunks.len()
        ));
    }
    for (i, (got, want)) in chunks.iter().zip(want_chunks).enumerate() {
        bad.extend(chunk_mismatch(i, got, want, id, model));
    }

    // The error that ends the stream, or none.
    match (error, expected.get("error")) {
        (None, None) => {}
        (Some(e), Some(w)) => {
            if format!("{:?}", e.kind) != s(&w["kind"]) {
                bad.push(format!("error kind {:?}, want {}", e.kind, w["kind"]));
            }
            if let Some(r) = w.get("reason") {
                if e.reason != s(r) {
                    bad.push(format!("error reason {:?}, want {r}", e.reason));
                }
            }
            if !e.message.contains(s(&w["message_contains"])) {
                bad.push(format!(
                    "error message {:?}, want it to contain {}",
                    e.message, w["message_contains"]
                ));
            }
        }
        (got, want) => bad.push(format!("error {got:?}, want {want:?}")),
    }

    // The message a client folds from the chunks (Invoke's answer).
    let mut agg = Aggregator::new("");
    chunks.iter().for_each(|c| agg.push(c));
    let m = agg.snapshot();
    let want = &expected["message"];
    let content: Vec<Value> = m
        .content
        .iter()
        .map(|c| match c {
            Content::Text(t) => serde_json::json!({ "text": t }),
            Content::Refusal(t) => serde_json::json!({ "refusal": t }),
            Content::Reasoning(r) => {
                let mut o = serde_json::Map::new();
                for (k, v) in [
                    ("text", &r.text),
                    ("signature", &r.signature),
                    ("redacted", &r.redacted),
                ] {
                    if !v.is_empty() {
                        o.insert(k.into(), Value::String(v.clone()));
                    }
                }
                serde_json::json!({ "reasoning": o })
            }
            other => serde_json::json!({ "unexpected": format!("{other:?}") }),
        })
        .collect();
    let want_content = want["content"].as_array().cloned().unwrap_or_default();
    let content_ok = content.len() == want_content.len()
        && content.iter().zip(&want_content).all(|(g, w)| {
            g == w
                || w.get("refusal_contains")
                    .is_some_and(|x| g.get("refusal").is_some_and(|r| s(r).contains(s(x))))
        });
    if !content_ok {
        bad.push(format!(
            "message content {}, want {}",
            Value::Array(content),
            Value::Array(want_content)
        ));
    }
    let calls: Vec<Value> = m
        .tool_calls
        .iter()
        .map(|c| serde_json::json!({"id": c.id, "name": c.name, "arguments": c.arguments}))
        .collect();
    let want_calls = want["tool_calls"].as_array().cloned().unwrap_or_default();
    if calls != want_calls {
        bad.push(format!(
            "tool calls {}, want {}",
            Value::Array(calls),
            Value::Array(want_calls)
        ));
    }
    let invalid: Vec<Value> = m
        .invalid_tool_calls
        .iter()
        .map(|c| serde_json::json!({"id": c.id, "name": c.name, "arguments": c.arguments}))
        .collect();
    let want_invalid = want["invalid_tool_calls"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if invalid != want_invalid {
        bad.push(format!(
            "invalid tool calls {}, want {}",
            Value::Array(invalid),
            Value::Array(want_invalid)
        ));
    }
    bad
}

/// Whether `CI` is set (to anything but "", "0" or "false").
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// The shared recorded streams under `../shared/fixtures/<sub>`, when present.
/// When absent: a failure under CI; otherwise a skip line written straight to
/// stderr (past the test harness's capture, so `cargo test` shows it) and None.
pub fn shared_dir(test: &str, sub: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures")
        .join(sub);
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        !in_ci(),
        "{test}: CI is set and the shared recorded streams are absent ({}): check them out next to the project (../shared/fixtures) or unset CI",
        dir.display()
    );
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {} is absent, so the shared recorded streams were not checked (with CI set this fails)",
        dir.display()
    );
    None
}
