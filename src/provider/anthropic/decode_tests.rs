//! The Anthropic decoder, event by event.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;

/// The decoder's parts without `Finish` (the raw finish reason is checked
/// through the gRPC surface, tests/api11.rs).
fn feed(d: &mut AnthropicDecoder, event: &str, data: &str) -> Result<Vec<Part>, Error> {
    d.on_frame(&Frame {
        event: event.into(),
        data: data.into(),
    })
    .map(|v| {
        v.into_iter()
            .filter(|p| !matches!(p, Part::Finish { .. }))
            .collect()
    })
}

fn ok(d: &mut AnthropicDecoder, data: &str) -> Vec<Part> {
    let t: serde_json::Value = serde_json::from_str(data).unwrap();
    feed(d, t["type"].as_str().unwrap(), data).unwrap()
}

fn text(t: &str) -> Part {
    Part::Delta(Delta::Text(t.into()))
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
fn message_start_gives_id_model_and_cached_input() {
    let mut d = AnthropicDecoder::new();
    let parts = ok(
        &mut d,
        r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-3-haiku-20240307","content":[],"stop_reason":null,"usage":{"input_tokens":10,"cache_read_input_tokens":100,"cache_creation_input_tokens":5,"output_tokens":1}}}"#,
    );
    assert_eq!(
        parts,
        vec![
            Part::Meta {
                id: "msg_1".into(),
                model: "claude-3-haiku-20240307".into()
            },
            Part::Usage(Usage {
                input: 115,
                output: 1,
                total: 116,
                cache_read: 100,
                cache_creation: 5,
                reasoning: 0
            })
        ]
    );
    // message_delta's output_tokens is cumulative: it replaces, never adds.
    let parts = ok(
        &mut d,
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":42}}"#,
    );
    assert_eq!(
        parts,
        vec![
            Part::Usage(Usage {
                input: 115,
                output: 42,
                total: 157,
                cache_read: 100,
                cache_creation: 5,
                reasoning: 0
            }),
            Part::Stop(StopReason::EndTurn)
        ]
    );
    // A later message_delta may carry the input fields too: taken when present.
    let parts = ok(
        &mut d,
        r#"{"type":"message_delta","delta":{},"usage":{"input_tokens":20,"cache_read_input_tokens":null,"output_tokens":50}}"#,
    );
    assert_eq!(
        parts,
        vec![Part::Usage(Usage {
            input: 125,
            output: 50,
            total: 175,
            cache_read: 100,
            cache_creation: 5,
            reasoning: 0
        })]
    );
    assert_eq!(ok(&mut d, r#"{"type":"message_stop"}"#), vec![Part::Done]);
}

#[test]
fn text_blocks_and_escapes_and_padding() {
    let mut d = AnthropicDecoder::new();
    assert!(ok(
        &mut d,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#
    )
    .is_empty());
    assert_eq!(
        ok(
            &mut d,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"你好 \"😀\"\n"}}     "#
        ),
        vec![text("你好 \"😀\"\n")]
    );
    assert_eq!(
        ok(
            &mut d,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"\u00e9"}}"#
        ),
        vec![text("é")]
    );
    assert!(ok(&mut d, r#"{"type":"content_block_stop","index":0}"#).is_empty());
    assert!(ok(&mut d, r#"{"type": "ping"}"#).is_empty());
}

#[test]
fn tool_use_blocks_are_indexed_with_id_and_name_first() {
    let mut d = AnthropicDecoder::new();
    assert_eq!(
        ok(
            &mut d,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}"#
        ),
        vec![call(1, "toolu_1", "get_weather", "")]
    );
    assert!(ok(&mut d, r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#).is_empty());
    assert_eq!(
        ok(
            &mut d,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"location\": \"Pa"}}"#
        ),
        vec![call(1, "", "", "{\"location\": \"Pa")]
    );
    assert_eq!(
        ok(
            &mut d,
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":3}}"#
        )[1],
        Part::Stop(StopReason::ToolUse)
    );
}

#[test]
fn server_tool_blocks_are_not_client_tool_calls() {
    let mut d = AnthropicDecoder::new();
    assert!(ok(&mut d, r#"{"type":"content_block_start","index":0,"content_block":{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{}}}"#).is_empty());
    assert!(ok(&mut d, r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"query\":\"x\"}"}}"#).is_empty());
    assert!(ok(&mut d, r#"{"type":"content_block_start","index":1,"content_block":{"type":"web_search_tool_result","tool_use_id":"srvtoolu_1","content":[{"type":"web_search_result","url":"https://a"}]}}"#).is_empty());
    assert!(ok(&mut d, r#"{"type":"content_block_start","index":2,"content_block":{"citations":[],"type":"text","text":""}}"#).is_empty());
    assert!(ok(&mut d, r#"{"type":"content_block_delta","index":2,"delta":{"type":"citations_delta","citation":{"type":"web_search_result_location","cited_text":"x","url":"https://a"}}}"#).is_empty());
    assert_eq!(
        ok(
            &mut d,
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"cited"}}"#
        ),
        vec![text("cited")]
    );
}

#[test]
fn thinking_signature_and_redacted_thinking() {
    let r = |t: &str, s: &str, x: &str| {
        Part::Delta(Delta::Reasoning(Reasoning {
            text: t.into(),
            signature: s.into(),
            redacted: x.into(),
        }))
    };
    let mut d = AnthropicDecoder::new();
    assert!(ok(&mut d, r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#).is_empty());
    assert_eq!(
        ok(
            &mut d,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me"}}"#
        ),
        vec![r("Let me", "", "")]
    );
    assert_eq!(
        ok(
            &mut d,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQB"}}"#
        ),
        vec![r("", "EqQB", "")]
    );
    assert_eq!(
        ok(
            &mut d,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"redacted_thinking","data":"EmwK"}}"#
        ),
        vec![r("", "", "EmwK")]
    );
}

#[test]
fn stop_reasons() {
    for (s, want) in [
        ("end_turn", StopReason::EndTurn),
        ("max_tokens", StopReason::MaxTokens),
        ("stop_sequence", StopReason::StopSequence),
        ("tool_use", StopReason::ToolUse),
        ("refusal", StopReason::ContentFilter),
        ("pause_turn", StopReason::Other),
        ("something_new", StopReason::Other),
    ] {
        assert_eq!(stop_reason(s), want);
    }
}

#[test]
fn error_events_map_to_contract_codes_with_the_message() {
    for (t, kind) in [
        ("overloaded_error", Kind::Unavailable),
        ("rate_limit_error", Kind::RateLimited),
        ("invalid_request_error", Kind::InvalidArgument),
        ("api_error", Kind::Unavailable),
        // An error type nobody documented is still the upstream's failure, never INTERNAL.
        ("weird_error", Kind::Unavailable),
    ] {
        let mut d = AnthropicDecoder::new();
        let data = format!(
            r#"{{"type":"error","error":{{"details":null,"type":"{t}","message":"Boom {t}"}},"request_id":"r"}}"#
        );
        let e = feed(&mut d, "error", &data).unwrap_err();
        assert_eq!(e.kind, kind, "{t}");
        assert!(e.message.contains(&format!("Boom {t}")), "{}", e.message);
    }
    let mut d = AnthropicDecoder::new();
    let e = feed(
        &mut d,
        "error",
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    )
    .unwrap_err();
    assert_eq!(e.reason, "UPSTREAM_OVERLOADED");
}

#[test]
fn unknown_events_are_skipped_and_bad_json_is_a_protocol_error() {
    let mut d = AnthropicDecoder::new();
    assert!(ok(&mut d, r#"{"type":"brand_new_event","x":{"y":1}}"#).is_empty());
    assert!(ok(
        &mut d,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"brand_new_delta","z":1}}"#
    )
    .is_empty());
    assert!(ok(
        &mut d,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"brand_new_block"}}"#
    )
    .is_empty());
    assert!(feed(&mut d, "", "").unwrap().is_empty());
    let e = feed(
        &mut d,
        "content_block_delta",
        r#"{"type":"content_block_delta","index":0,"#,
    )
    .unwrap_err();
    assert_eq!(e.kind, Kind::UpstreamProtocol);
    assert_eq!(e.reason, "UPSTREAM_PROTOCOL_ERROR");
}

#[test]
fn eof_before_message_stop_is_truncated() {
    let mut d = AnthropicDecoder::new();
    let e = d.finish().unwrap_err();
    assert_eq!(e.kind, Kind::Unavailable);
    assert_eq!(e.reason, "UPSTREAM_TRUNCATED");
}
