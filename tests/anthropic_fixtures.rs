//! The Anthropic decoder (framer → decoder → relay) against streams written
//! from Anthropic's documented Messages SSE format.
//!
//! - The project's own fixtures (tests/fixtures/anthropic: text with a ping,
//!   tool_use with input_json_delta fragments, thinking with signature_delta
//!   and redacted thinking, an error event, message_delta usage) always run,
//!   whole and at every split point, against their `.expected.json`.
//! - The shared recorded streams in ../shared/fixtures/anthropic (read in
//!   place, never copied here) are an extra: each must give exactly its
//!   `expected` result (text, thinking and signatures, redacted thinking, tool
//!   calls with raw and parsed arguments, usage, stop reason, id, errors). When
//!   that directory is absent the `*_shared_fixtures` tests print a SKIPPED
//!   line; with `CI` set they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixture_check;

use std::path::{Path, PathBuf};

use chatwire::{
    chat::{
        aggregate::Aggregator,
        types::{Content, StopReason},
    },
    error::Kind,
    provider::{
        anthropic::{decode_body, http_error, AnthropicDecoder},
        codec, Framing,
    },
};
use serde_json::Value;

#[test]
fn every_own_stream_translates_to_its_expected_result_at_every_split() {
    let n = fixture_check::check_provider(
        "anthropic",
        "sse",
        |body| decode_body(body, "run-fallback"),
        |body, splits| {
            codec::decode_body(
                Framing::Sse,
                &mut AnthropicDecoder::new(),
                body,
                splits,
                "run-fallback",
            )
        },
    );
    assert_eq!(n, 5, "the five streams in tests/fixtures/anthropic");
}

fn stop(s: &str) -> StopReason {
    match s {
        "end_turn" => StopReason::EndTurn,
        "max_tokens" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence,
        "tool_use" => StopReason::ToolUse,
        "refusal" => StopReason::ContentFilter,
        _ => StopReason::Other,
    }
}

fn error_kind(t: &str) -> Kind {
    match t {
        "overloaded_error" | "api_error" => Kind::Unavailable,
        "rate_limit_error" => Kind::RateLimited,
        "invalid_request_error" => Kind::InvalidArgument,
        _ => Kind::Internal,
    }
}

fn u(v: &Value, k: &str) -> u32 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0) as u32
}

/// Checks one stream; returns a list of mismatches (empty: it passes).
fn check(sse: &Path, expected: &Value) -> Vec<String> {
    let mut bad = Vec::new();
    let mut expect = |what: &str, ok: bool, detail: String| {
        if !ok {
            bad.push(format!("{what}: {detail}"));
        }
    };
    let body = std::fs::read(sse).unwrap();
    let (chunks, error) = decode_body(&body, "fallback");
    let mut agg = Aggregator::new("anthropic:x");
    for c in &chunks {
        agg.push(c);
    }
    let m = agg.snapshot();

    // id on every chunk
    if let Some(id) = expected["message_id"].as_str() {
        expect(
            "id",
            chunks.iter().all(|c| c.id == id),
            format!("want {id} on every chunk"),
        );
    }
    // text: every text block concatenated
    let text: String = m
        .content
        .iter()
        .filter_map(|c| match c {
            Content::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    let want_text = expected["text"].as_str().unwrap_or("");
    expect(
        "text",
        text == want_text,
        format!("got {text:?}\nwant {want_text:?}"),
    );

    // thinking blocks (text + signature) and redacted blocks, in order
    let reasoning: Vec<(String, String, String)> = m
        .content
        .iter()
        .filter_map(|c| match c {
            Content::Reasoning(r) => {
                Some((r.text.clone(), r.signature.clone(), r.redacted.clone()))
            }
            _ => None,
        })
        .collect();
    let want_reasoning: Vec<(String, String, String)> = expected["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| {
            let s = |k: &str| b[k].as_str().unwrap_or("").to_string();
            match b["type"].as_str() {
                Some("thinking") => Some((s("thinking"), s("signature"), String::new())),
                Some("redacted_thinking") => {
                    let data = b["data"]
                        .as_str()
                        .or(b["start"]["data"].as_str())
                        .unwrap_or("");
                    Some((String::new(), String::new(), data.to_string()))
                }
                _ => None,
            }
        })
        .collect();
    expect(
        "reasoning",
        reasoning == want_reasoning,
        format!("got {reasoning:?}\nwant {want_reasoning:?}"),
    );
    let thinking: String = reasoning.iter().map(|r| r.0.as_str()).collect();
    let want_thinking = expected["thinking"].as_str().unwrap_or("");
    expect(
        "thinking",
        thinking == want_thinking,
        format!("got {thinking:?}"),
    );

    // tool calls: id, name, raw arguments, parsed or invalid; index = block index
    let want_calls = expected["tool_calls"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let got_n = m.tool_calls.len() + m.invalid_tool_calls.len();
    expect(
        "tool call count",
        got_n == want_calls.len(),
        format!("got {got_n}, want {}", want_calls.len()),
    );
    for w in &want_calls {
        let id = w["id"].as_str().unwrap();
        let raw = w["arguments_raw"].as_str().unwrap_or("");
        let index = w["block_index"].as_u64().unwrap() as u32;
        // the raw fragments for this index, as a client would join them
        let joined: String = chunks
            .iter()
            .filter_map(|c| match &c.delta {
                Some(chatwire::chat::types::Delta::ToolCall {
                    index: i,
                    arguments,
                    ..
                }) if *i == index => Some(arguments.as_str()),
                _ => None,
            })
            .collect();
        expect(
            "tool raw arguments",
            joined == raw,
            format!("{id}: got {joined:?} want {raw:?}"),
        );
        if w["arguments_valid_json"].as_bool() == Some(true) {
            let got = m.tool_calls.iter().find(|c| c.id == id);
            expect(
                "tool call",
                got.is_some_and(|c| {
                    c.name == w["name"].as_str().unwrap()
                        && Value::Object(c.arguments.clone()) == w["arguments"]
                }),
                format!("{id}: got {got:?} want {w}"),
            );
        } else {
            let got = m.invalid_tool_calls.iter().find(|c| c.id == id);
            expect(
                "invalid tool call",
                got.is_some_and(|c| c.name == w["name"].as_str().unwrap() && c.arguments == raw),
                format!("{id}: got {got:?}"),
            );
        }
    }

    // errors, truncation, or a complete answer
    let errors = expected["errors"].as_array().cloned().unwrap_or_default();
    if let Some(e) = errors.first() {
        let t = e["type"].as_str().unwrap_or("");
        let msg = e["message"].as_str().unwrap_or("");
        expect(
            "error",
            error
                .as_ref()
                .is_some_and(|got| got.kind == error_kind(t) && got.message.contains(msg)),
            format!("got {error:?}, want {t}: {msg}"),
        );
        expect(
            "no last chunk",
            !chunks.iter().any(|c| c.last),
            String::new(),
        );
    } else if expected["saw_message_stop"].as_bool() != Some(true) {
        expect(
            "truncated",
            error
                .as_ref()
                .is_some_and(|e| e.reason == "UPSTREAM_TRUNCATED"),
            format!("got {error:?}"),
        );
    } else {
        expect("no error", error.is_none(), format!("got {error:?}"));
        let lasts = chunks.iter().filter(|c| c.last).count();
        expect(
            "one last chunk",
            lasts == 1 && chunks.last().is_some_and(|c| c.last),
            format!("{lasts}"),
        );
        // usage on the last chunk only
        expect(
            "usage only last",
            chunks.iter().filter(|c| c.usage().is_some()).count() == 1,
            String::new(),
        );
        let wu = &expected["usage"];
        let input = u(wu, "input_tokens")
            + u(wu, "cache_read_input_tokens")
            + u(wu, "cache_creation_input_tokens");
        let output = u(wu, "output_tokens");
        let got = m.usage.unwrap_or_default();
        expect(
            "usage",
            got.input == input
                && got.output == output
                && got.total == input + output
                && got.cache_read == u(wu, "cache_read_input_tokens")
                && got.cache_creation == u(wu, "cache_creation_input_tokens"),
            format!("got {got:?} want {wu}"),
        );
        let want_stop = stop(expected["stop_reason"].as_str().unwrap_or(""));
        expect(
            "stop",
            m.stop_reason == Some(want_stop),
            format!("got {:?} want {want_stop:?}", m.stop_reason),
        );
    }
    bad
}

/// The shared recorded streams, or None (skipped; a failure under CI).
fn fixtures(test: &str) -> Option<Vec<PathBuf>> {
    let dir = fixture_check::shared_dir(test, "anthropic")?;
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    Some(v)
}

#[test]
fn every_recorded_stream_translates_shared_fixtures() {
    let Some(files) = fixtures("every_recorded_stream_translates_shared_fixtures") else {
        return;
    };
    let mut passed = 0;
    let mut failed = Vec::new();
    for sse in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "sse"))
    {
        let meta: Value =
            serde_json::from_slice(&std::fs::read(sse.with_extension("json")).unwrap()).unwrap();
        let bad = check(sse, &meta["expected"]);
        if bad.is_empty() {
            passed += 1;
        } else {
            failed.push(format!("{}:\n  {}", sse.display(), bad.join("\n  ")));
        }
    }
    eprintln!(
        "anthropic fixtures: {passed} streams pass, {} fail",
        failed.len()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    assert!(
        passed > 0,
        "no .sse fixture found in ../shared/fixtures/anthropic"
    );
}

#[test]
fn every_recorded_http_error_keeps_anthropic_message_shared_fixtures() {
    let Some(files) = fixtures("every_recorded_http_error_keeps_anthropic_message_shared_fixtures")
    else {
        return;
    };
    let mut n = 0;
    for f in files
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".http-error.json"))
    {
        let name = f.to_string_lossy().replace(".http-error.json", ".json");
        let meta: Value = serde_json::from_slice(&std::fs::read(&name).unwrap()).unwrap();
        let status = meta["source"]["http_status"].as_u64().unwrap() as u16;
        let body = std::fs::read_to_string(f).unwrap();
        let want = &meta["expected"]["error_json"]["error"];
        let e = http_error(status, &body);
        assert!(
            e.message.contains(want["message"].as_str().unwrap()),
            "{}",
            e.message
        );
        assert_eq!(
            e.kind,
            error_kind(want["type"].as_str().unwrap()),
            "{}",
            f.display()
        );
        n += 1;
    }
    eprintln!("anthropic fixtures: {n} HTTP error bodies pass");
}
