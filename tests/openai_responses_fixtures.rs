//! The Responses API decoder (framer → decoder → relay) against streams
//! written from OpenAI's documented event format, and against the shared
//! recordings.
//!
//! - The project's own fixtures (tests/fixtures/openai-responses: text over
//!   CRLF, reasoning summary + encrypted content + a function call, a built-in
//!   web search then response.incomplete, a refusal, response.failed, an
//!   `error` event, a cut stream) always run, whole and at every split point,
//!   against their `.expected.json`.
//! - The shared recorded Responses streams in ../shared/fixtures/openai-responses
//!   (read at test time, never copied here) must each translate to the
//!   `expected` object of their metadata file, whole and at pseudo-random split
//!   points; the recorded HTTP error body must map to the contract's code.
//!   When that directory is absent the test prints a SKIPPED line; with `CI`
//!   set it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixture_check;

use chatwire::{
    chat::{
        aggregate::Aggregator,
        types::{Content, Delta, StopReason, Usage},
    },
    error::Kind,
    provider::openai::{http_error, responses::decode_body},
};
use serde_json::Value;

#[test]
fn every_own_stream_translates_to_its_expected_result_at_every_split() {
    let n = fixture_check::check_provider(
        "openai-responses",
        "sse",
        |body| decode_body(body, &[]),
        decode_body,
    );
    assert_eq!(n, 7, "the seven streams in tests/fixtures/openai-responses");
}

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

/// One recorded stream against its `expected`; what differs.
fn check(body: &[u8], expected: &Value, splits: &[usize]) -> Vec<String> {
    let mut bad = Vec::new();
    let (chunks, err) = decode_body(body, splits);
    if let Some(e) = err {
        bad.push(format!("unexpected error: {e:?}"));
        return bad;
    }
    let mut agg = Aggregator::new("m");
    chunks.iter().for_each(|c| agg.push(c));
    let msg = agg.snapshot();
    let text: String = msg
        .content
        .iter()
        .filter_map(|c| match c {
            Content::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    if text != s(&expected["text"]) {
        bad.push(format!("text: got {text:?}, want {:?}", expected["text"]));
    }
    // Reasoning: one block per reasoning item, the summary parts as paragraphs
    // (or the raw reasoning text), signed when the item had encrypted content.
    let got: Vec<(String, bool)> = msg
        .content
        .iter()
        .filter_map(|c| match c {
            Content::Reasoning(r) => Some((r.text.clone(), !r.signature.is_empty())),
            _ => None,
        })
        .collect();
    let want: Vec<(String, bool)> = expected["reasoning"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let summary: Vec<String> = r["summary"]
                .as_array()
                .map(|a| a.iter().map(s).collect())
                .unwrap_or_default();
            let text = if summary.is_empty() {
                s(&r["reasoning_text"])
            } else {
                summary.join("\n\n")
            };
            (text, r["encrypted_content_present"].as_bool() == Some(true))
        })
        .collect();
    if got != want {
        bad.push(format!("reasoning: got {got:?}, want {want:?}"));
    }
    // Signatures carry the reasoning item's id.
    let ids: Vec<String> = expected["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["type"] == "reasoning")
        .map(|i| s(&i["id"]))
        .collect();
    for c in &msg.content {
        if let Content::Reasoning(r) = c {
            if !r.signature.is_empty()
                && !ids
                    .iter()
                    .any(|id| r.signature.starts_with(&format!("{id}:")))
            {
                bad.push(format!(
                    "signature without its item id: {:.40}",
                    r.signature
                ));
            }
        }
    }
    // Client tool calls: only function_call items, id = call_id.
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
                Some(x) => x.3.push_str(arguments),
                None => calls.push((*index, id.clone(), name.clone(), arguments.clone())),
            }
        }
    }
    let want_calls: Vec<(u32, String, String, String)> = expected["function_calls"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            (
                i as u32,
                s(&f["call_id"]),
                s(&f["name"]),
                s(&f["arguments"]),
            )
        })
        .collect();
    if calls != want_calls {
        bad.push(format!("tool calls: got {calls:?}, want {want_calls:?}"));
    }
    let parsed: Vec<Value> = msg
        .tool_calls
        .iter()
        .map(|t| Value::Object(t.arguments.clone()))
        .collect();
    let want_parsed: Vec<Value> = expected["function_calls"]
        .as_array()
        .map(|a| a.iter().map(|f| f["arguments_parsed"].clone()).collect())
        .unwrap_or_default();
    if parsed != want_parsed {
        bad.push(format!("parsed: got {parsed:?}, want {want_parsed:?}"));
    }
    let u = &expected["usage"];
    let want_usage = (!u.is_null()).then(|| Usage {
        input: n(u, &["input_tokens"]),
        output: n(u, &["output_tokens"]),
        total: n(u, &["total_tokens"]),
        cache_read: n(u, &["input_tokens_details", "cached_tokens"]),
        cache_creation: 0,
        reasoning: n(u, &["output_tokens_details", "reasoning_tokens"]),
    });
    if msg.usage != want_usage {
        bad.push(format!("usage: got {:?}, want {want_usage:?}", msg.usage));
    }
    let want_stop = match (s(&expected["final_event"]).as_str(), want_calls.is_empty()) {
        ("response.completed", false) => Some(StopReason::ToolUse),
        ("response.completed", true) => Some(StopReason::EndTurn),
        _ => None,
    };
    if msg.stop_reason != want_stop {
        bad.push(format!(
            "stop: got {:?}, want {want_stop:?}",
            msg.stop_reason
        ));
    }
    if chunks.iter().filter(|c| c.last).count() != 1 || !chunks.last().is_some_and(|c| c.last) {
        bad.push("no single last chunk".into());
    }
    if msg.id != s(&expected["response_id"]) || msg.model != s(&expected["model"]) {
        bad.push(format!("id/model: got {:?} {:?}", msg.id, msg.model));
    }
    bad
}

#[test]
fn every_recorded_responses_stream_translates_shared_fixtures() {
    let Some(dir) = fixture_check::shared_dir(
        "every_recorded_responses_stream_translates_shared_fixtures",
        "openai-responses",
    ) else {
        return;
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let (mut streams, mut errors, mut failures) = (0, 0, Vec::new());
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".http-error.json") {
            // A non-2xx body: the contract's code for its status, the message kept.
            errors += 1;
            let body = std::fs::read_to_string(path).unwrap();
            let meta: Value = serde_json::from_str(
                &std::fs::read_to_string(dir.join(format!("{stem}.json"))).unwrap(),
            )
            .unwrap();
            let status = meta["source"]["http_status"].as_u64().unwrap_or(0) as u16;
            let e = http_error(status, &body);
            let want_msg = s(&meta["expected"]["error_json"]["error"]["message"]);
            if status != 400 || e.kind != Kind::InvalidArgument || !e.message.contains(&want_msg) {
                failures.push(format!("{name}: HTTP {status} gave {e:?}"));
            }
            continue;
        }
        if path.extension().is_none_or(|x| x != "sse") {
            continue;
        }
        streams += 1;
        let body = std::fs::read(path).unwrap();
        let meta: Value =
            serde_json::from_str(&std::fs::read_to_string(path.with_extension("json")).unwrap())
                .unwrap();
        let expected = &meta["expected"];
        let bad = check(&body, expected, &[]);
        if !bad.is_empty() {
            failures.push(format!("{name}:\n  {}", bad.join("\n  ")));
            continue;
        }
        for (round, splits) in fixture_check::split_sets(body.len())
            .into_iter()
            .rev()
            .take(9)
            .enumerate()
        {
            let bad = check(&body, expected, &splits);
            if !bad.is_empty() {
                failures.push(format!(
                    "{name} (split set {round}):\n  {}",
                    bad.join("\n  ")
                ));
                break;
            }
        }
    }
    eprintln!(
        "openai-responses fixtures: {streams} streams and {errors} error bodies, {} failing",
        failures.len()
    );
    assert!(
        streams >= 6,
        "expected the six recorded streams in {}",
        dir.display()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
