//! The Chat Completions decoder (framer → decoder → relay) against streams
//! written from OpenAI's documented SSE format.
//!
//! - The project's own fixtures (tests/fixtures/openai: text, tool calls in
//!   fragments, the usage chunk of include_usage, [DONE], a mid-stream error,
//!   no usage at all) always run, whole and at every split point, against
//!   their `.expected.json`.
//! - The shared recorded streams in ../shared/fixtures (read at test time,
//!   never copied here) are an extra: each must translate to the `expected`
//!   object of its metadata file, whole and at random split points. When that
//!   directory is absent the `*_shared_fixtures` test prints a SKIPPED line;
//!   with `CI` set it fails.

mod fixture_check;

use chatwire::{
    chat::{
        aggregate::Aggregator,
        types::{Chunk, Content, Delta, StopReason, Usage},
    },
    error::Kind,
    provider::openai::decode_body,
};
use serde_json::Value;

#[test]
fn every_own_stream_translates_to_its_expected_result_at_every_split() {
    let n =
        fixture_check::check_provider("openai", "sse", |body| decode_body(body, &[]), decode_body);
    assert_eq!(n, 4, "the four streams in tests/fixtures/openai");
}

const DIRS: &[&str] = &["openai-chat", "openai-compatible", "mistral"];

fn s(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

fn n(v: &Value, path: &[&str]) -> u32 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_u64().unwrap_or(0) as u32
}

/// Checks one stream; returns what differs.
fn check(body: &[u8], expected: &Value, splits: &[usize]) -> Vec<String> {
    let mut bad = Vec::new();
    let (chunks, err) = decode_body(body, splits);
    let mut agg = Aggregator::new("m");
    for c in &chunks {
        agg.push(c);
    }
    let msg = agg.snapshot();
    let choice = &expected["choices"][0];
    let join = |f: &dyn Fn(&Content) -> Option<String>| -> String {
        msg.content.iter().filter_map(f).collect()
    };
    let text = join(&|c| match c {
        Content::Text(t) => Some(t.clone()),
        _ => None,
    });
    let reasoning = join(&|c| match c {
        Content::Reasoning(r) => Some(r.text.clone()),
        _ => None,
    });
    let refusal = join(&|c| match c {
        Content::Refusal(r) => Some(r.clone()),
        _ => None,
    });
    for (what, got, want) in [
        ("text", &text, s(&choice["content"])),
        ("reasoning", &reasoning, s(&choice["reasoning"])),
        ("refusal", &refusal, s(&choice["refusal"])),
    ] {
        if *got != want {
            bad.push(format!("{what}: got {got:?}, want {want:?}"));
        }
    }
    // Tool calls: raw argument strings, from the chunks, by index.
    let mut calls: Vec<(u32, String, String, String)> = Vec::new();
    for c in &chunks {
        if let Some(Delta::ToolCall {
            index,
            id,
            name,
            arguments,
        }) = &c.delta
        {
            match calls.iter_mut().find(|x| x.0 == *index) {
                Some(x) => {
                    if !id.is_empty() || !name.is_empty() {
                        bad.push(format!("tool call {index}: id/name on a later fragment"));
                    }
                    x.3.push_str(arguments);
                }
                None => calls.push((*index, id.clone(), name.clone(), arguments.clone())),
            }
        }
    }
    let mut want_calls: Vec<(u32, String, String, String)> = choice["tool_calls"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    (
                        n(t, &["index"]),
                        s(&t["id"]),
                        s(&t["name"]),
                        s(&t["arguments"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(f) = choice["function_call"].as_object() {
        want_calls.push((
            0,
            String::new(),
            s(&f["name"]),
            s(f.get("arguments").unwrap_or(&Value::Null)),
        ));
    }
    if calls != want_calls {
        bad.push(format!("tool calls: got {calls:?}, want {want_calls:?}"));
    }
    let parsed: Vec<Value> = msg
        .tool_calls
        .iter()
        .map(|t| Value::Object(t.arguments.clone()))
        .collect();
    let want_parsed: Vec<Value> = choice["tool_calls"]
        .as_array()
        .map(|a| a.iter().map(|t| t["arguments_parsed"].clone()).collect())
        .unwrap_or_default();
    if choice["function_call"].is_null() && parsed != want_parsed {
        bad.push(format!(
            "parsed arguments: got {parsed:?}, want {want_parsed:?}"
        ));
    }
    // Usage: absent when the stream had none.
    let u = &expected["usage"];
    let want_usage = (!u.is_null()).then(|| Usage {
        input: n(u, &["prompt_tokens"]),
        output: n(u, &["completion_tokens"]),
        total: n(u, &["total_tokens"]),
        cache_read: n(u, &["prompt_tokens_details", "cached_tokens"]),
        cache_creation: 0,
        reasoning: n(u, &["completion_tokens_details", "reasoning_tokens"]),
    });
    let errors = expected["errors"].as_array().cloned().unwrap_or_default();
    if errors.is_empty() {
        if msg.usage != want_usage {
            bad.push(format!("usage: got {:?}, want {want_usage:?}", msg.usage));
        }
        if let Some(e) = err {
            bad.push(format!("unexpected error: {e:?}"));
        }
        if chunks.iter().filter(|c| c.last).count() != 1
            || !chunks.last().is_some_and(|c: &Chunk| c.last)
        {
            bad.push("no single last chunk".into());
        }
        let want_stop = match choice["finish_reason"].as_str() {
            Some("stop") if !refusal.is_empty() => Some(StopReason::ContentFilter),
            Some("stop") => Some(StopReason::EndTurn),
            Some("length") => Some(StopReason::MaxTokens),
            Some("tool_calls") | Some("function_call") => Some(StopReason::ToolUse),
            Some("content_filter") => Some(StopReason::ContentFilter),
            Some(_) => Some(StopReason::Other),
            None => None,
        };
        if msg.stop_reason != want_stop {
            bad.push(format!(
                "stop: got {:?}, want {want_stop:?}",
                msg.stop_reason
            ));
        }
        let id = s(&expected["id"]);
        if !id.is_empty() && msg.id != id {
            bad.push(format!("id: got {:?}, want {id:?}", msg.id));
        }
    } else {
        let want = s(&errors[0]["error"]["message"]);
        match err {
            Some(e) if e.message.contains(&want) && e.kind != Kind::Internal => {}
            other => bad.push(format!("error: got {other:?}, want one carrying {want:?}")),
        }
        if chunks.iter().any(|c| c.last) {
            bad.push("an errored stream has a last chunk".into());
        }
    }
    bad
}

#[test]
fn every_recorded_stream_translates_shared_fixtures() {
    let Some(root) =
        fixture_check::shared_dir("every_recorded_stream_translates_shared_fixtures", "")
    else {
        return;
    };
    let (mut total, mut failures) = (0, Vec::new());
    for dir in DIRS {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        let mut files: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "sse"))
            .collect();
        files.sort();
        for sse in files {
            let Ok(body) = std::fs::read(&sse) else {
                continue;
            };
            let meta: Value = std::fs::read_to_string(sse.with_extension("json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(Value::Null);
            let expected = &meta["expected"];
            total += 1;
            let name = format!(
                "{dir}/{}",
                sse.file_name().unwrap_or_default().to_string_lossy()
            );
            let bad = check(&body, expected, &[]);
            if !bad.is_empty() {
                failures.push(format!("{name}:\n  {}", bad.join("\n  ")));
                continue;
            }
            // The same at pseudo-random split points (1-byte pieces included).
            let mut seed = body.len() as u64 | 1;
            for round in 0..8 {
                let mut splits = Vec::new();
                let mut at = 0usize;
                while at < body.len() {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    at += 1 + (seed as usize) % if round == 0 { 2 } else { 97 };
                    splits.push(at.min(body.len()));
                }
                let bad = check(&body, expected, &splits);
                if !bad.is_empty() {
                    failures.push(format!(
                        "{name} (split round {round}):\n  {}",
                        bad.join("\n  ")
                    ));
                    break;
                }
            }
        }
    }
    eprintln!(
        "openai fixtures: {} of {total} streams translate to their expected result",
        total - failures.len()
    );
    assert!(total > 0, "no fixtures found under {}", root.display());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
