//! The Ollama decoder (framer → decoder → relay) against streams written from
//! Ollama's documented `/api/chat` NDJSON format.
//!
//! - The project's own fixtures (tests/fixtures/ollama: text, tool_calls,
//!   thinking, done with done_reason and counters, a mid-stream error) always
//!   run, whole and at every split point, against their `.expected.json`.
//! - The shared recorded streams in ../shared/fixtures/ollama are an extra:
//!   every `.ndjson` body must give the `expected` result of its `.json`
//!   (text, thinking, tool calls, usage from the counters, stop reason, or the
//!   mid-stream error with the partial text). chatwire calls `/api/chat`; the
//!   decoder also reads `/api/generate` lines (`response`), so those are
//!   checked too. When that directory is absent the `*_shared_fixtures` test
//!   prints a SKIPPED line; with `CI` set it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixture_check;

use chatwire::{
    chat::{aggregate::Aggregator, types::Content},
    error::Kind,
    provider::{
        codec,
        ollama::{self, OllamaDecoder},
        Framing,
    },
};
use serde_json::Value;

#[test]
fn every_own_stream_translates_to_its_expected_result_at_every_split() {
    let n =
        fixture_check::check_provider("ollama", "ndjson", ollama::decode_body, |body, splits| {
            codec::decode_body(
                Framing::Ndjson,
                &mut OllamaDecoder::default(),
                body,
                splits,
                "run-fallback",
            )
        });
    assert_eq!(n, 5, "the five streams in tests/fixtures/ollama");
}

fn check(name: &str, body: &[u8], exp: &Value) -> Result<(), String> {
    let (chunks, err) = ollama::decode_body(body);
    let mut agg = Aggregator::new("m");
    chunks.iter().for_each(|c| agg.push(c));
    let msg = agg.snapshot();
    let mut problems = Vec::new();
    let mut eq = |what: &str, got: String, want: String| {
        if got != want {
            problems.push(format!("{what}: got {got:?}, want {want:?}"));
        }
    };
    let text: String = msg
        .content
        .iter()
        .filter_map(|c| match c {
            Content::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    eq("text", text, exp["text"].as_str().unwrap_or("").into());
    let thinking: String = msg
        .content
        .iter()
        .filter_map(|c| match c {
            Content::Reasoning(r) => Some(r.text.as_str()),
            _ => None,
        })
        .collect();
    eq(
        "thinking",
        thinking,
        exp["thinking"].as_str().unwrap_or("").into(),
    );
    let want_calls = exp["tool_calls"].as_array().cloned().unwrap_or_default();
    eq(
        "tool calls",
        msg.tool_calls.len().to_string(),
        want_calls.len().to_string(),
    );
    for (i, (got, want)) in msg.tool_calls.iter().zip(&want_calls).enumerate() {
        eq(
            "name",
            got.name.clone(),
            want["function"]["name"].as_str().unwrap_or("").into(),
        );
        eq(
            "arguments",
            Value::Object(got.arguments.clone()).to_string(),
            want["function"]["arguments"].to_string(),
        );
        eq("id", got.id.clone(), format!("call_{i}"));
    }
    let errors = exp["errors"].as_array().cloned().unwrap_or_default();
    match (errors.first().and_then(Value::as_str), err) {
        (Some(want), Some(e)) => {
            if e.kind != Kind::Unavailable || !e.message.contains(want) {
                problems.push(format!("error: got {e:?}, want UNAVAILABLE with {want:?}"));
            }
            if chunks.iter().any(|c| c.last) {
                problems.push("a last chunk before the error".into());
            }
        }
        (None, None) => {
            let want_stop =
                ollama::stop_reason(exp["done_reason"].as_str(), !want_calls.is_empty());
            eq(
                "stop",
                format!("{:?}", msg.stop_reason),
                format!("{:?}", Some(want_stop)),
            );
            let m = &exp["metrics"];
            let (i, o) = (
                m["prompt_eval_count"].as_u64().unwrap_or(0) as u32,
                m["eval_count"].as_u64().unwrap_or(0) as u32,
            );
            let usage = msg.usage.unwrap_or_default();
            eq(
                "usage",
                format!("{}/{}/{}", usage.input, usage.output, usage.total),
                format!("{i}/{o}/{}", i + o),
            );
            if chunks.iter().filter(|c| c.last).count() != 1 || !chunks.last().unwrap().last {
                problems.push("not exactly one last chunk, at the end".into());
            }
            // The relay's fallback id: Ollama gives none.
            if !chunks.iter().all(|c| c.id == "run-fallback") {
                problems.push("ids are not the fallback id".into());
            }
        }
        (want, got) => problems.push(format!("error: got {got:?}, want {want:?}")),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{name}: {}", problems.join("; ")))
    }
}

#[test]
fn every_ollama_recording_translates_shared_fixtures() {
    let Some(dir) = fixture_check::shared_dir(
        "every_ollama_recording_translates_shared_fixtures",
        "ollama",
    ) else {
        return;
    };
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let (mut passed, mut failed) = (0, Vec::new());
    for path in names {
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let Some(stem) = file.strip_suffix(".ndjson") else {
            continue;
        };
        let meta: Value =
            serde_json::from_slice(&std::fs::read(dir.join(format!("{stem}.json"))).unwrap())
                .unwrap();
        match check(&file, &std::fs::read(&path).unwrap(), &meta["expected"]) {
            Ok(()) => passed += 1,
            Err(e) => failed.push(e),
        }
    }
    eprintln!("ollama fixtures: {passed} passed, {} failed", failed.len());
    assert!(failed.is_empty(), "{failed:#?}");
    assert!(
        passed >= 4,
        "expected the 4 NDJSON fixtures, checked {passed}"
    );
}
