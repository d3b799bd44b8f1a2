//! The Anthropic decoder, event by event.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::error::Kind;

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
    // The citation comes before its block's text: it waits for it.
    assert!(ok(&mut d, r#"{"type":"content_block_delta","index":2,"delta":{"type":"citations_delta","citation":{"type":"web_search_result_location","cited_text":"x","url":"https://a"}}}"#).is_empty());
    assert_eq!(
        ok(
            &mut d,
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"cited"}}"#
        ),
        vec![
            text("cited"),
            cite(Citation {
                kind: "web_search_result_location".into(),
                cited_text: "x".into(),
                url: "https://a".into(),
                ..Citation::default()
            })
        ]
    );
}

fn cite(c: Citation) -> Part {
    Part::Delta(Delta::Citation(Box::new(c)))
}

#[test]
fn citations_of_every_kind_become_citation_deltas() {
    let mut d = AnthropicDecoder::new();
    ok(
        &mut d,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":"So"}}"#,
    );
    let delta = |c: &str| {
        format!(
            r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"citations_delta","citation":{c}}}}}"#
        )
    };
    // The block has text: each citation goes out at once.
    let cases = [
        (
            r#"{"type":"char_location","cited_text":"grass is green","document_index":0,"document_title":"Facts","start_char_index":4,"end_char_index":18}"#,
            Citation {
                kind: "char_location".into(),
                cited_text: "grass is green".into(),
                title: "Facts".into(),
                start: 4,
                end: 18,
                ..Citation::default()
            },
        ),
        (
            r#"{"type":"page_location","cited_text":"p","document_index":1,"document_title":"Paper","start_page_number":2,"end_page_number":3}"#,
            Citation {
                kind: "page_location".into(),
                cited_text: "p".into(),
                title: "Paper".into(),
                start: 2,
                end: 3,
                ..Citation::default()
            },
        ),
        (
            r#"{"type":"content_block_location","cited_text":"b","document_index":0,"document_title":null,"start_block_index":1,"end_block_index":2}"#,
            Citation {
                kind: "content_block_location".into(),
                cited_text: "b".into(),
                start: 1,
                end: 2,
                ..Citation::default()
            },
        ),
        (
            r#"{"type":"search_result_location","cited_text":"s","source":"https://s","title":"S","search_result_index":0,"start_block_index":0,"end_block_index":1}"#,
            Citation {
                kind: "search_result_location".into(),
                cited_text: "s".into(),
                url: "https://s".into(),
                title: "S".into(),
                start: 0,
                end: 1,
            },
        ),
        (
            r#"{"type":"web_search_result_location","cited_text":"w","url":"https://w","title":"W","encrypted_index":"Eo"}"#,
            Citation {
                kind: "web_search_result_location".into(),
                cited_text: "w".into(),
                url: "https://w".into(),
                title: "W".into(),
                ..Citation::default()
            },
        ),
    ];
    for (wire, want) in cases {
        assert_eq!(ok(&mut d, &delta(wire)), vec![cite(want)], "{wire}");
    }
}

#[test]
fn a_citation_waits_for_its_block_text_or_its_end() {
    let mut d = AnthropicDecoder::new();
    let start = |i: u32| {
        format!(
            r#"{{"type":"content_block_start","index":{i},"content_block":{{"citations":[],"type":"text","text":""}}}}"#
        )
    };
    let c = |i: u32, t: &str| {
        format!(
            r#"{{"type":"content_block_delta","index":{i},"delta":{{"type":"citations_delta","citation":{{"type":"char_location","cited_text":"{t}"}}}}}}"#
        )
    };
    let t = |i: u32, t: &str| {
        format!(
            r#"{{"type":"content_block_delta","index":{i},"delta":{{"type":"text_delta","text":"{t}"}}}}"#
        )
    };
    let stop = |i: u32| format!(r#"{{"type":"content_block_stop","index":{i}}}"#);
    let cited = |t: &str| {
        cite(Citation {
            kind: "char_location".into(),
            cited_text: t.into(),
            ..Citation::default()
        })
    };
    assert!(ok(&mut d, &start(0)).is_empty());
    assert!(ok(&mut d, &c(0, "a")).is_empty());
    assert!(ok(&mut d, &c(0, "b")).is_empty());
    assert_eq!(
        ok(&mut d, &t(0, "x")),
        vec![text("x"), cited("a"), cited("b")]
    );
    assert_eq!(ok(&mut d, &c(0, "c")), vec![cited("c")]);
    assert!(ok(&mut d, &stop(0)).is_empty());
    // A block that ends without text lets its citation go at its end.
    assert!(ok(&mut d, &start(1)).is_empty());
    assert!(ok(&mut d, &c(1, "d")).is_empty());
    assert_eq!(ok(&mut d, &stop(1)), vec![cited("d")]);
    // Citations given whole on the block start wait for its text too.
    assert!(ok(&mut d, r#"{"type":"content_block_start","index":2,"content_block":{"type":"text","text":"","citations":[{"type":"char_location","cited_text":"e"}]}}"#).is_empty());
    assert_eq!(ok(&mut d, &t(2, "y")), vec![text("y"), cited("e")]);
    // Still held at message_stop: out before the end.
    assert!(ok(&mut d, &start(3)).is_empty());
    assert!(ok(&mut d, &c(3, "f")).is_empty());
    assert_eq!(
        ok(&mut d, r#"{"type":"message_stop"}"#),
        vec![cited("f"), Part::Done]
    );
    // A citations_delta without its citation, or on a server block, is skipped.
    assert!(ok(
        &mut d,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"citations_delta"}}"#
    )
    .is_empty());
}

#[test]
fn held_citations_are_bounded() {
    let mut d = AnthropicDecoder::new();
    ok(
        &mut d,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
    );
    let c = r#"{"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{"type":"char_location","cited_text":"z"}}}"#;
    let mut out = 0;
    for _ in 0..MAX_HELD_CITATIONS + 3 {
        out += ok(&mut d, c).len();
    }
    assert_eq!(out, 3, "past the bound citations go out at once");
    assert_eq!(d.held.len(), MAX_HELD_CITATIONS);
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

/// The flat token read (`super::token`) and the full parse agree: a stream's
/// deltas decode the same with the SSE event name (flat) and without it (full).
#[test]
fn token_deltas_decode_the_same_through_the_flat_read_and_the_full_parse() {
    let events = [
        r#"{"type":"message_start","message":{"id":"msg_1","model":"claude-x","usage":{"input_tokens":1,"output_tokens":1}}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hm \"quoted\""}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"c2ln"}}"#,
        r#"{"type":"content_block_stop","index":0}"#,
        r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hi é\n"}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":""}}"#,
        r#"{"type":"content_block_stop","index":1}"#,
        r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"tu_1","name":"get"}}"#,
        r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#,
        r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"1}"}}"#,
        r#"{"type":"content_block_stop","index":2}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9}}"#,
        r#"{"type":"message_stop"}"#,
    ];
    let run = |named: bool| {
        let mut d = AnthropicDecoder::new();
        let mut all = Vec::new();
        for data in events {
            let t: serde_json::Value = serde_json::from_str(data).unwrap();
            let event = if named {
                t["type"].as_str().unwrap()
            } else {
                ""
            };
            all.extend(feed(&mut d, event, data).unwrap());
        }
        all
    };
    let flat = run(true);
    assert_eq!(flat, run(false));
    assert!(flat.contains(&text("Hi é\n")), "{flat:?}");
    assert!(flat.contains(&Part::Done), "{flat:?}");
}

/// A delta with a field beyond its own goes to the full parse, which refuses
/// what the flat read would skip unchecked (a lone surrogate).
#[test]
fn a_delta_with_an_unchecked_extra_field_is_still_refused() {
    let mut d = AnthropicDecoder::new();
    ok(
        &mut d,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
    );
    let e = feed(
        &mut d,
        "content_block_delta",
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"},"x":"\ud800"}"#,
    )
    .unwrap_err();
    assert!(e.message.contains("not the expected JSON"), "{}", e.message);
}
