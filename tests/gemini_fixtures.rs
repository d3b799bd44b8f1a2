//! The Gemini decoder (framer → decoder → relay) against streams written from
//! Google's documented `streamGenerateContent?alt=sse` format.
//!
//! - The project's own fixtures (tests/fixtures/gemini: text with
//!   usageMetadata, functionCall parts, thought parts with thoughtSignature,
//!   finishReason STOP and MAX_TOKENS, a blocked prompt, a mid-stream error)
//!   always run, whole and at every split point, against their
//!   `.expected.json`.
//! - The shared recorded streams in ../shared/fixtures/gemini are an extra:
//!   every `.sse` body must give the `expected` result of its `.json`; every
//!   `.http-error.json` must map to the status class and carry Google's
//!   message. The `.jsonarray` body (no `alt=sse`) is a format chatwire never
//!   requests, so it is not checked. When that directory is absent the
//!   `*_shared_fixtures` test prints a SKIPPED line; with `CI` set it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixture_check;

use chatwire::{
    chat::{
        aggregate::Aggregator,
        types::{Content, StopReason},
    },
    error::Kind,
    provider::{
        codec,
        gemini::{self, GeminiDecoder},
        Framing,
    },
};
use serde_json::Value;

#[test]
fn every_own_stream_translates_to_its_expected_result_at_every_split() {
    let n = fixture_check::check_provider("gemini", "sse", gemini::decode_body, |body, splits| {
        codec::decode_body(
            Framing::Sse,
            &mut GeminiDecoder::default(),
            body,
            splits,
            "run-fallback",
        )
    });
    assert_eq!(n, 6, "the six streams in tests/fixtures/gemini");
}

fn u(v: &Value, k: &str) -> u32 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0) as u32
}

fn check_stream(name: &str, body: &[u8], exp: &Value) -> Result<(), String> {
    let (chunks, err) = gemini::decode_body(body);
    if let Some(e) = err {
        return Err(format!("{name}: unexpected error {e:?}"));
    }
    let mut agg = Aggregator::new("m");
    chunks.iter().for_each(|c| agg.push(c));
    let msg = agg.snapshot();
    let mut problems = Vec::new();
    let mut eq = |what: &str, got: String, want: String| {
        if got != want {
            problems.push(format!("{what}: got {got:?}, want {want:?}"));
        }
    };
    eq(
        "id",
        msg.id.clone(),
        exp["response_id"].as_str().unwrap_or("").into(),
    );
    let text: String = msg
        .content
        .iter()
        .filter_map(|c| match c {
            Content::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    eq("text", text, exp["text"].as_str().unwrap_or("").into());
    let thoughts: String = msg
        .content
        .iter()
        .filter_map(|c| match c {
            Content::Reasoning(r) => Some(r.text.as_str()),
            _ => None,
        })
        .collect();
    eq(
        "thoughts",
        thoughts,
        exp["thoughts"].as_str().unwrap_or("").into(),
    );
    let signatures = msg
        .content
        .iter()
        .filter(|c| matches!(c, Content::Reasoning(r) if !r.signature.is_empty()))
        .count();
    eq(
        "thought signatures",
        signatures.to_string(),
        exp["thought_signatures"].as_u64().unwrap_or(0).to_string(),
    );
    let want_calls = exp["function_calls"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    eq(
        "tool calls",
        msg.tool_calls.len().to_string(),
        want_calls.len().to_string(),
    );
    for (i, (got, want)) in msg.tool_calls.iter().zip(&want_calls).enumerate() {
        eq(
            "call name",
            got.name.clone(),
            want["name"].as_str().unwrap_or("").into(),
        );
        eq(
            "call args",
            Value::Object(got.arguments.clone()).to_string(),
            want["args"].to_string(),
        );
        let want_id = want["id"]
            .as_str()
            .map_or_else(|| format!("call_{i}"), str::to_string);
        eq("call id", got.id.clone(), want_id);
    }
    assert!(
        msg.invalid_tool_calls.is_empty(),
        "{name}: invalid tool calls"
    );
    let want_stop = match exp["finish_reason"].as_str() {
        Some(r) => gemini::stop_reason(r, !want_calls.is_empty()),
        None => StopReason::Other,
    };
    eq(
        "stop",
        format!("{:?}", msg.stop_reason),
        format!("{:?}", Some(want_stop)),
    );
    let eu = &exp["usage"];
    let usage = msg.usage.unwrap_or_default();
    let out = u(eu, "candidatesTokenCount") + u(eu, "thoughtsTokenCount");
    eq(
        "usage",
        format!(
            "{}/{}/{}/{}/{}",
            usage.input, usage.output, usage.total, usage.reasoning, usage.cache_read
        ),
        format!(
            "{}/{}/{}/{}/{}",
            u(eu, "promptTokenCount"),
            out,
            u(eu, "totalTokenCount"),
            u(eu, "thoughtsTokenCount"),
            u(eu, "cachedContentTokenCount")
        ),
    );
    // Content arrives as it comes: never one chunk for the whole answer.
    let deltas = chunks.iter().filter(|c| c.delta.is_some()).count();
    if exp["chunks"].as_u64().unwrap_or(0) > 2 && deltas < 2 {
        problems.push(format!("only {deltas} delta chunks"));
    }
    if !chunks.last().is_some_and(|c| c.last) || chunks.iter().filter(|c| c.last).count() != 1 {
        problems.push("not exactly one last chunk, at the end".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{name}: {}", problems.join("; ")))
    }
}

#[test]
fn every_gemini_recording_translates_shared_fixtures() {
    let Some(dir) = fixture_check::shared_dir(
        "every_gemini_recording_translates_shared_fixtures",
        "gemini",
    ) else {
        return;
    };
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let (mut passed, mut failed, mut skipped) = (0, Vec::new(), Vec::new());
    for path in names {
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        if let Some(stem) = file.strip_suffix(".sse") {
            let meta: Value =
                serde_json::from_slice(&std::fs::read(dir.join(format!("{stem}.json"))).unwrap())
                    .unwrap();
            let body = std::fs::read(&path).unwrap();
            match check_stream(&file, &body, &meta["expected"]) {
                Ok(()) => passed += 1,
                Err(e) => failed.push(e),
            }
        } else if let Some(stem) = file.strip_suffix(".http-error.json") {
            let meta: Value =
                serde_json::from_slice(&std::fs::read(dir.join(format!("{stem}.json"))).unwrap())
                    .unwrap();
            let status = meta["source"]["http_status"].as_u64().unwrap_or(400) as u16;
            let body = std::fs::read_to_string(&path).unwrap();
            let err = gemini::http_error(status, &body);
            let want_msg = meta["expected"]["error_json"]["error"]["message"]
                .as_str()
                .unwrap_or("");
            let want_kind = match status {
                400 | 422 => Kind::InvalidArgument,
                401 | 403 => Kind::PermissionDenied,
                404 => Kind::NotFound,
                429 => Kind::RateLimited,
                _ => Kind::Unavailable,
            };
            if err.kind == want_kind && err.message.contains(want_msg) {
                passed += 1;
            } else {
                failed.push(format!("{file}: got {err:?}"));
            }
        } else if file.ends_with(".jsonarray") {
            skipped.push(file);
        }
    }
    eprintln!(
        "gemini fixtures: {passed} passed, {} failed, skipped (not SSE, never requested): {skipped:?}",
        failed.len()
    );
    assert!(failed.is_empty(), "{failed:#?}");
    assert!(
        passed >= 6,
        "expected the 6 SSE / http-error fixtures, checked {passed}"
    );
}
