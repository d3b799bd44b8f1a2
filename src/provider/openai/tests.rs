//! Frame-by-frame tests of the decoder, one per documented event shape.

use super::*;
use crate::{
    chat::types::{Delta, Part, Reasoning, StopReason, Usage},
    error::Kind,
    provider::Frame,
};

fn data(s: &str) -> Frame {
    Frame {
        event: String::new(),
        data: s.to_string(),
    }
}

/// The decoder's parts without `Finish` and `Metadata` (checked through the
/// gRPC surface, tests/api11.rs).
fn run(d: &mut OpenAiDecoder, s: &str) -> Vec<Part> {
    d.on_frame(&data(s))
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .filter(|p| !matches!(p, Part::Finish { .. } | Part::Metadata(..)))
        .collect()
}

fn chunk(delta: &str, finish: &str) -> String {
    format!(
        r#"{{"id":"chatcmpl-1","object":"chat.completion.chunk","model":"gpt-x","choices":[{{"index":0,"delta":{delta},"finish_reason":{finish}}}]}}"#
    )
}

fn text(s: &str) -> Part {
    Part::Delta(Delta::Text(s.into()))
}

fn call(index: u32, id: &str, name: &str, args: &str) -> Part {
    Part::Delta(Delta::ToolCall {
        index,
        id: id.into(),
        name: name.into(),
        arguments: args.into(),
    })
}

#[test]
fn text_deltas_meta_once_and_finish_stop() {
    let mut d = OpenAiDecoder::new();
    assert_eq!(
        run(
            &mut d,
            &chunk(r#"{"role":"assistant","content":""}"#, "null")
        ),
        vec![Part::Meta {
            id: "chatcmpl-1".into(),
            model: "gpt-x".into()
        }]
    );
    assert_eq!(
        run(&mut d, &chunk(r#"{"content":"h\u00e9llo 世界"}"#, "null")),
        vec![text("héllo 世界")]
    );
    assert_eq!(
        run(&mut d, &chunk("{}", r#""stop""#)),
        vec![Part::Stop(StopReason::EndTurn)]
    );
    assert_eq!(run(&mut d, "[DONE]"), vec![Part::Done]);
}

#[test]
fn finish_reasons_map_to_stop_reasons() {
    for (r, want) in [
        ("stop", StopReason::EndTurn),
        ("length", StopReason::MaxTokens),
        ("tool_calls", StopReason::ToolUse),
        ("function_call", StopReason::ToolUse),
        ("content_filter", StopReason::ContentFilter),
        ("something_new", StopReason::Other),
    ] {
        let mut d = OpenAiDecoder::new();
        let parts = run(&mut d, &chunk("{}", &format!("\"{r}\"")));
        assert_eq!(parts.last(), Some(&Part::Stop(want)), "{r}");
    }
}

#[test]
fn usage_chunk_with_empty_choices() {
    let mut d = OpenAiDecoder::new();
    let parts = run(
        &mut d,
        r#"{"id":"c","choices":[],"usage":{"prompt_tokens":20,"completion_tokens":9,"total_tokens":29,
            "prompt_tokens_details":{"cached_tokens":16},"completion_tokens_details":{"reasoning_tokens":4}}}"#,
    );
    assert_eq!(
        parts.last(),
        Some(&Part::Usage(Usage {
            input: 20,
            output: 9,
            total: 29,
            cache_read: 16,
            cache_creation: 0,
            reasoning: 4
        }))
    );
    // No total given: input + output. `usage: null` on ordinary chunks: nothing.
    let parts = run(
        &mut d,
        r#"{"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":3}}"#,
    );
    assert_eq!(
        parts,
        vec![Part::Usage(Usage {
            input: 2,
            output: 3,
            total: 5,
            ..Usage::default()
        })]
    );
    assert_eq!(
        run(
            &mut d,
            r#"{"choices":[{"index":0,"delta":{"content":"x"}}],"usage":null}"#
        ),
        vec![text("x")]
    );
}

#[test]
fn parallel_tool_calls_id_and_name_on_first_fragment_only() {
    let mut d = OpenAiDecoder::new();
    let mut parts = Vec::new();
    for f in [
        r#"{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"weather","arguments":""}}]}"#,
        r#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}"#,
        r#"{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}"#,
        r#"{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"time","arguments":""}}]}"#,
        r#"{"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]}"#,
    ] {
        parts.extend(run(&mut d, &chunk(f, "null")));
    }
    parts.extend(run(&mut d, &chunk("{}", r#""tool_calls""#)));
    assert_eq!(
        parts[1..],
        [
            call(0, "call_a", "weather", "{\"city\":"),
            call(0, "", "", "\"Paris\"}"),
            call(1, "call_b", "time", "{}"),
            Part::Stop(StopReason::ToolUse),
        ]
    );
}

#[test]
fn split_name_fragments_are_joined_before_the_first_fragment_goes_out() {
    let mut d = OpenAiDecoder::new();
    let mut parts = Vec::new();
    for f in [
        r#"{"tool_calls":[{"index":0,"id":"c1","function":{"name":"get_"}}]}"#,
        r#"{"tool_calls":[{"index":0,"function":{"name":"weather"}}]}"#,
        r#"{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}"#,
    ] {
        parts.extend(run(&mut d, &chunk(f, "null")));
    }
    assert_eq!(parts[1..], [call(0, "c1", "get_weather", "{}")]);
    // A call with no arguments at all is sent at the finish_reason.
    let mut d = OpenAiDecoder::new();
    run(
        &mut d,
        &chunk(
            r#"{"tool_calls":[{"index":0,"id":"c2","function":{"name":"now"}}]}"#,
            "null",
        ),
    );
    assert_eq!(
        run(&mut d, &chunk("{}", r#""tool_calls""#)),
        vec![call(0, "c2", "now", ""), Part::Stop(StopReason::ToolUse)]
    );
}

#[test]
fn tool_calls_without_index_use_their_position() {
    let mut d = OpenAiDecoder::new();
    let parts = run(
        &mut d,
        &chunk(
            r#"{"tool_calls":[{"id":"a","function":{"name":"f","arguments":"{\"x\":1}"}},{"id":"b","function":{"name":"g","arguments":"{}"}}]}"#,
            r#""tool_calls""#,
        ),
    );
    assert_eq!(
        parts[1..],
        [
            call(0, "a", "f", "{\"x\":1}"),
            call(1, "b", "g", "{}"),
            Part::Stop(StopReason::ToolUse)
        ]
    );
}

#[test]
fn legacy_function_call_is_tool_call_zero() {
    let mut d = OpenAiDecoder::new();
    let mut parts = run(
        &mut d,
        &chunk(r#"{"function_call":{"name":"f","arguments":""}}"#, "null"),
    );
    parts.extend(run(
        &mut d,
        &chunk(r#"{"function_call":{"arguments":"{}"}}"#, "null"),
    ));
    parts.extend(run(&mut d, &chunk("{}", r#""function_call""#)));
    assert_eq!(
        parts[1..],
        [call(0, "", "f", "{}"), Part::Stop(StopReason::ToolUse)]
    );
}

#[test]
fn refusal_deltas_and_content_filter_stop() {
    let mut d = OpenAiDecoder::new();
    let mut parts = run(
        &mut d,
        &chunk(r#"{"content":null,"refusal":"I can't"}"#, "null"),
    );
    parts.extend(run(&mut d, &chunk(r#"{"refusal":" help."}"#, "null")));
    parts.extend(run(&mut d, &chunk("{}", r#""stop""#)));
    assert_eq!(
        parts[1..],
        [
            Part::Delta(Delta::Refusal("I can't".into())),
            Part::Delta(Delta::Refusal(" help.".into())),
            Part::Stop(StopReason::ContentFilter)
        ]
    );
}

#[test]
fn reasoning_fields_of_every_dialect() {
    let r = |t: &str| {
        Part::Delta(Delta::Reasoning(Reasoning {
            text: t.into(),
            ..Reasoning::default()
        }))
    };
    let mut d = OpenAiDecoder::new();
    d.meta_sent = true;
    assert_eq!(
        run(
            &mut d,
            &chunk(r#"{"reasoning_content":"think","content":null}"#, "null")
        ),
        vec![r("think")]
    );
    assert_eq!(
        run(
            &mut d,
            &chunk(r#"{"reasoning":"more","reasoning_details":[]}"#, "null")
        ),
        vec![r("more")]
    );
    assert_eq!(
        run(
            &mut d,
            &chunk(r#"{"reasoning":"same","reasoning_content":"same"}"#, "null")
        ),
        vec![r("same")]
    );
    assert_eq!(
        run(
            &mut d,
            &chunk(
                r#"{"content":[{"type":"thinking","thinking":[{"type":"text","text":"hm"}]},{"type":"text","text":"ok"},{"type":"image","x":1}]}"#,
                "null"
            )
        ),
        vec![r("hm"), text("ok")]
    );
}

#[test]
fn other_choices_are_ignored() {
    let mut d = OpenAiDecoder::new();
    d.meta_sent = true;
    let f = r#"{"choices":[{"index":1,"delta":{"content":"B"},"finish_reason":"stop"},{"index":0,"delta":{"content":"A"}}]}"#;
    assert_eq!(run(&mut d, f), vec![text("A")]);
    assert!(d.finish().is_err(), "choice 1's finish_reason is not ours");
}

#[test]
fn azure_empty_first_chunk_gives_nothing() {
    let mut d = OpenAiDecoder::new();
    assert_eq!(
        run(
            &mut d,
            r#"{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[]}"#
        ),
        vec![]
    );
}

#[test]
fn error_in_a_data_line_with_or_without_event_error() {
    let mut d = OpenAiDecoder::new();
    let e = d
        .on_frame(&data(
            r#"{"error":{"message":"Rate limit reached","type":"rate_limit_exceeded"}}"#,
        ))
        .err();
    let e = e.unwrap_or_else(|| panic!("no error"));
    assert_eq!(e.kind, Kind::RateLimited);
    assert!(e.message.contains("Rate limit reached"), "{}", e.message);

    let f = Frame {
        event: "error".into(),
        data: r#"{"error":{"message":"bad tool","type":"invalid_request_error","code":"tool_use_failed","status_code":400}}"#.into(),
    };
    let e = d.on_frame(&f).err().unwrap_or_else(|| panic!("no error"));
    assert_eq!(e.kind, Kind::InvalidArgument);
    assert_eq!(e.upstream_status, Some(400));
    assert!(e.message.contains("bad tool"));

    for (body, kind) in [
        (
            r#"{"error":{"code":502,"message":"upstream down"}}"#,
            Kind::Unavailable,
        ),
        (
            r#"{"error":{"message":"boom","type":"server_error"}}"#,
            Kind::Unavailable,
        ),
        (r#"{"error":{"message":"who knows"}}"#, Kind::Unavailable),
        (r#"{"error":"plain string"}"#, Kind::Unavailable),
    ] {
        let e = d
            .on_frame(&data(body))
            .err()
            .unwrap_or_else(|| panic!("{body}"));
        assert_eq!(e.kind, kind, "{body}");
    }
    let f = Frame {
        event: "error".into(),
        data: "not json at all".into(),
    };
    let e = d.on_frame(&f).err().unwrap_or_else(|| panic!("no error"));
    assert!(e.message.contains("not json at all"));
}

#[test]
fn eof_after_finish_reason_is_a_normal_end_else_truncated() {
    let mut d = OpenAiDecoder::new();
    run(&mut d, &chunk(r#"{"content":"hi"}"#, "null"));
    let e = d.finish().err().unwrap_or_else(|| panic!("not truncated"));
    assert_eq!(
        (e.kind, e.reason),
        (Kind::Unavailable, "UPSTREAM_TRUNCATED")
    );
    run(&mut d, &chunk("{}", r#""length""#));
    assert_eq!(d.finish().ok(), Some(vec![Part::Done]));
}

#[test]
fn bad_json_is_a_protocol_error() {
    let mut d = OpenAiDecoder::new();
    let e = d.on_frame(&data("{not json")).err();
    assert_eq!(e.map(|e| e.reason), Some("UPSTREAM_PROTOCOL_ERROR"));
}

#[test]
fn decode_body_is_the_same_for_every_two_way_split() {
    let body = "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\u{e9}\u{1f600}\"}}]}\r\n\r\n: keepalive\r\n\r\ndata: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\r\n\r\ndata: [DONE]\r\n\r\n";
    let want = decode_body(body.as_bytes(), &[]);
    assert!(want.1.is_none());
    assert_eq!(want.0.len(), 2);
    assert!(want.0[1].last);
    for i in 0..=body.len() {
        assert_eq!(decode_body(body.as_bytes(), &[i]), want, "split at {i}");
    }
}

#[test]
fn http_error_keeps_the_message_and_code() {
    let w = OpenAi::new(Settings::default());
    let e = w.http_error(
        404,
        r#"{"error":{"message":"The model `x` does not exist","type":"invalid_request_error","code":"model_not_found"}}"#,
    );
    assert_eq!(e.kind, Kind::NotFound);
    assert!(
        e.message
            .contains("The model `x` does not exist (model_not_found)"),
        "{}",
        e.message
    );
    let e = w.http_error(429, "rate limited, plain text");
    assert_eq!(e.kind, Kind::RateLimited);
    assert!(e.message.contains("rate limited, plain text"));
}
