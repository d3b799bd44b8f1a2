//! Unit tests of the module beside this file.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::error::Kind;

/// The decoder's parts without `Finish` (the raw finish reason is checked
/// through the gRPC surface, tests/api11.rs).
fn on<D: Decoder>(d: &mut D, f: &Frame) -> Result<Vec<Part>, Error> {
    d.on_frame(f).map(|v| {
        v.into_iter()
            .filter(|p| !matches!(p, Part::Finish { .. }))
            .collect()
    })
}

fn frame(data: &str) -> Frame {
    Frame {
        event: String::new(),
        data: data.to_string(),
    }
}

fn text(t: &str) -> Part {
    Part::Delta(Delta::Text(t.to_string()))
}

#[test]
fn text_usage_and_stop_frame_by_frame() {
    let mut d = GeminiDecoder::default();
    let p = on(&mut d, &frame(
            r#"{"candidates":[{"content":{"parts":[{"text":"Hel"}],"role":"model"}}],"usageMetadata":{"promptTokenCount":4,"totalTokenCount":4},"modelVersion":"gemini-2.0-flash","responseId":"r1"}"#,
        ))
        .unwrap();
    assert_eq!(
        p,
        vec![
            Part::Meta {
                id: "r1".into(),
                model: "gemini-2.0-flash".into()
            },
            text("Hel"),
            Part::Usage(Usage {
                input: 4,
                total: 4,
                ..Usage::default()
            })
        ]
    );
    let p = on(&mut d, &frame(
            r#"{"candidates":[{"content":{"parts":[{"text":"lo"}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":2,"totalTokenCount":9,"thoughtsTokenCount":3,"cachedContentTokenCount":1},"responseId":"r1"}"#,
        ))
        .unwrap();
    assert_eq!(
        p,
        vec![
            text("lo"),
            Part::Usage(Usage {
                input: 4,
                output: 5,
                total: 9,
                cache_read: 1,
                cache_creation: 0,
                reasoning: 3
            }),
            Part::Stop(StopReason::EndTurn)
        ]
    );
    assert_eq!(d.finish().unwrap(), vec![Part::Done]);
}

#[test]
fn eof_without_finish_reason_is_truncated() {
    let mut d = GeminiDecoder::default();
    on(
        &mut d,
        &frame(r#"{"candidates":[{"content":{"parts":[{"text":"a"}]}}]}"#),
    )
    .unwrap();
    let e = d.finish().unwrap_err();
    assert_eq!(
        (e.kind, e.reason),
        (Kind::Unavailable, "UPSTREAM_TRUNCATED")
    );
}

#[test]
fn thoughts_signatures_and_function_calls() {
    let mut d = GeminiDecoder::default();
    let p = on(&mut d, &frame(
            r#"{"candidates":[{"content":{"parts":[{"text":"think","thought":true},{"functionCall":{"name":"f","args":{"a":1}},"thoughtSignature":"SIG"},{"functionCall":{"id":"g1","name":"g","args":{}}}]},"finishReason":"STOP"}]}"#,
        ))
        .unwrap();
    assert_eq!(
        p,
        vec![
            reasoning("think", ""),
            reasoning("", "SIG"),
            Part::Delta(Delta::ToolCall {
                index: 0,
                id: "call_0".into(),
                name: "f".into(),
                arguments: r#"{"a":1}"#.into()
            }),
            Part::Delta(Delta::ToolCall {
                index: 1,
                id: "g1".into(),
                name: "g".into(),
                arguments: "{}".into()
            }),
            Part::Stop(StopReason::ToolUse)
        ]
    );
}

#[test]
fn finish_reasons_map() {
    for (r, s) in [
        ("MAX_TOKENS", StopReason::MaxTokens),
        ("SAFETY", StopReason::ContentFilter),
        ("RECITATION", StopReason::ContentFilter),
        ("BLOCKLIST", StopReason::ContentFilter),
        ("PROHIBITED_CONTENT", StopReason::ContentFilter),
        ("SPII", StopReason::ContentFilter),
        ("MALFORMED_FUNCTION_CALL", StopReason::Other),
        ("OTHER", StopReason::Other),
    ] {
        assert_eq!(stop_reason(r, false), s, "{r}");
    }
    assert_eq!(stop_reason("MAX_TOKENS", true), StopReason::MaxTokens);
}

#[test]
fn blocked_prompt_is_a_refusal_with_the_reason() {
    let mut d = GeminiDecoder::default();
    let p = on(&mut d, &frame(
            r#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":7,"totalTokenCount":7}}"#,
        ))
        .unwrap();
    assert_eq!(
        p,
        vec![
            Part::Delta(Delta::Refusal(
                "Gemini blocked the prompt (blockReason SAFETY)".into()
            )),
            Part::Usage(Usage {
                input: 7,
                total: 7,
                ..Usage::default()
            }),
            Part::Stop(StopReason::ContentFilter)
        ]
    );
    assert_eq!(d.finish().unwrap(), vec![Part::Done]);
}

#[test]
fn stream_error_object_maps_by_status() {
    let mut d = GeminiDecoder::default();
    let e = on(
        &mut d,
        &frame(
            r#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#,
        ),
    )
    .unwrap_err();
    assert_eq!(e.kind, Kind::Unavailable);
    assert!(
        e.message.contains("The model is overloaded."),
        "{}",
        e.message
    );
    let e = on(
        &mut d,
        &frame(r#"{"error":{"code":429,"message":"Quota","status":"RESOURCE_EXHAUSTED"}}"#),
    )
    .unwrap_err();
    assert_eq!(e.kind, Kind::RateLimited);
    let e = on(&mut d, &frame(r#"{"error":{"code":400,"message":"bad"}}"#)).unwrap_err();
    assert_eq!(e.kind, Kind::InvalidArgument);
}

#[test]
fn bad_json_is_a_protocol_error_and_unknown_parts_are_skipped() {
    let mut d = GeminiDecoder::default();
    assert_eq!(
        on(&mut d, &frame("{not json")).unwrap_err().reason,
        "UPSTREAM_PROTOCOL_ERROR"
    );
    let p = on(&mut d, &frame(
            r#"{"candidates":[{"content":{"parts":[{"executableCode":{"code":"1"}},{"text":"x"}]},"groundingMetadata":{}}],"somethingNew":1}"#,
        ))
        .unwrap();
    assert_eq!(p, vec![text("x")]);
}

#[test]
fn grounding_becomes_citations_once_each() {
    let mut d = GeminiDecoder::default();
    let frame_json = r#"{"candidates":[{"content":{"parts":[{"text":"Spain won Euro 2024."}]},"groundingMetadata":{"webSearchQueries":["euro 2024 winner"],"groundingChunks":[{"web":{"uri":"https://a.test/1","title":"a.test"}},{"web":{"uri":"https://b.test/2","title":"b.test"}}],"groundingSupports":[{"segment":{"endIndex":20,"text":"Spain won Euro 2024."},"groundingChunkIndices":[0,1]},{"segment":{"startIndex":3,"endIndex":9},"groundingChunkIndices":[7]}]}}]}"#;
    let cite = |url: &str, title: &str| {
        Part::Delta(Delta::Citation(Box::new(Citation {
            kind: "grounding".into(),
            cited_text: "Spain won Euro 2024.".into(),
            url: url.into(),
            title: title.into(),
            start: 0,
            end: 20,
        })))
    };
    assert_eq!(
        on(&mut d, &frame(frame_json)).unwrap(),
        vec![
            text("Spain won Euro 2024."),
            cite("https://a.test/1", "a.test"),
            cite("https://b.test/2", "b.test"),
        ]
    );
    // The same grounding repeated on a later chunk adds no citation.
    assert_eq!(
        on(&mut d, &frame(frame_json)).unwrap(),
        vec![text("Spain won Euro 2024.")]
    );
}
