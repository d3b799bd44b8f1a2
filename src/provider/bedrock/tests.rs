#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};

use super::*;
use crate::chat::types::{Delta, StopReason};

/// One event-stream message as AWS documents it (`:event-type`,
/// `:content-type`, `:message-type` headers; a JSON payload).
fn event(name: &str, payload: &str) -> Vec<u8> {
    message("event", ":event-type", name, payload)
}

fn exception(name: &str, payload: &str) -> Vec<u8> {
    message("exception", ":exception-type", name, payload)
}

fn message(kind: &str, type_header: &'static str, name: &str, payload: &str) -> Vec<u8> {
    let m = Message::new(payload.as_bytes().to_vec())
        .add_header(Header::new(
            type_header,
            HeaderValue::String(name.to_string().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ))
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String(kind.to_string().into()),
        ));
    let mut out = Vec::new();
    write_message_to(&m, &mut out).unwrap();
    out
}

/// A documented ConverseStream: reasoning with its signature, text (split
/// UTF-8 in one delta's neighbour), a tool use in fragments, the stop, the metadata.
fn full_stream() -> Vec<u8> {
    [
        event("messageStart", r#"{"p":"abcd","role":"assistant"}"#),
        event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"Let me think."}},"p":"ab"}"#),
        event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"signature":"EqoBSig=="}}}"#),
        event("contentBlockStop", r#"{"contentBlockIndex":0}"#),
        event("contentBlockDelta", "{\"contentBlockIndex\":1,\"delta\":{\"text\":\"Caf\u{e9} \u{1f600}\"}}"),
        event("contentBlockStop", r#"{"contentBlockIndex":1}"#),
        event("contentBlockStart", r#"{"contentBlockIndex":2,"start":{"toolUse":{"toolUseId":"tooluse_1","name":"get_weather"}}}"#),
        event("contentBlockDelta", r#"{"contentBlockIndex":2,"delta":{"toolUse":{"input":"{\"city\":"}}}"#),
        event("contentBlockDelta", r#"{"contentBlockIndex":2,"delta":{"toolUse":{"input":"\"Paris\"}"}}}"#),
        event("contentBlockStop", r#"{"contentBlockIndex":2}"#),
        event("messageStop", r#"{"stopReason":"tool_use"}"#),
        event("metadata", r#"{"usage":{"inputTokens":10,"outputTokens":20,"totalTokens":35,"cacheReadInputTokens":5},"metrics":{"latencyMs":321}}"#),
    ]
    .concat()
}

#[test]
fn a_documented_stream_translates_and_every_split_gives_the_same() {
    let body = full_stream();
    let (chunks, err) = decode_body(&body, &[]);
    assert!(err.is_none(), "{err:?}");
    let deltas: Vec<_> = chunks.iter().filter_map(|c| c.delta.clone()).collect();
    assert_eq!(
        deltas,
        vec![
            Delta::Reasoning(crate::chat::types::Reasoning {
                text: "Let me think.".into(),
                ..Default::default()
            }),
            Delta::Reasoning(crate::chat::types::Reasoning {
                signature: "EqoBSig==".into(),
                ..Default::default()
            }),
            Delta::Text("Caf\u{e9} \u{1f600}".into()),
            Delta::ToolCall {
                index: 2,
                id: "tooluse_1".into(),
                name: "get_weather".into(),
                arguments: String::new()
            },
            Delta::ToolCall {
                index: 2,
                id: String::new(),
                name: String::new(),
                arguments: "{\"city\":".into()
            },
            Delta::ToolCall {
                index: 2,
                id: String::new(),
                name: String::new(),
                arguments: "\"Paris\"}".into()
            },
        ]
    );
    let last = chunks.last().unwrap();
    assert!(last.last);
    assert_eq!(last.stop_reason(), Some(StopReason::ToolUse));
    assert_eq!(last.finish_reason(), "tool_use");
    let u = last.usage().unwrap();
    assert_eq!((u.input, u.output, u.total, u.cache_read), (15, 20, 35, 5));
    assert!(last
        .metadata()
        .contains(&("latency_ms".to_string(), "321".to_string())));
    for i in 0..=body.len() {
        assert_eq!(
            decode_body(&body, &[i]),
            (chunks.clone(), None),
            "split {i}"
        );
    }
    for i in (0..=body.len()).step_by(13) {
        for j in (i..=body.len()).step_by(5) {
            assert_eq!(
                decode_body(&body, &[i, j]),
                (chunks.clone(), None),
                "{i} {j}"
            );
        }
    }
    let every: Vec<usize> = (1..body.len()).collect();
    assert_eq!(decode_body(&body, &every), (chunks, None));
}

#[test]
fn a_bad_crc_is_an_error_never_skipped() {
    let start = event("messageStart", r#"{"role":"assistant"}"#);
    let text = event(
        "contentBlockDelta",
        r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#,
    );
    let end = [
        event("messageStop", r#"{"stopReason":"end_turn"}"#),
        event(
            "metadata",
            r#"{"usage":{"inputTokens":1,"outputTokens":1}}"#,
        ),
    ]
    .concat();
    // The prelude CRC, a payload byte, the message CRC of the text event.
    for at in [8, text.len() - 8, text.len() - 2] {
        let mut bad = text.clone();
        bad[at] ^= 0x20;
        let body = [start.clone(), bad, end.clone()].concat();
        for split in [0, start.len() + 3, body.len() - 1] {
            let (chunks, err) = decode_body(&body, &[split]);
            let err = err.expect("a corrupt frame must end the stream");
            assert_eq!(err.reason, "UPSTREAM_PROTOCOL_ERROR", "{at}: {err}");
            assert!(chunks.iter().all(|c| c.delta.is_none() && !c.last));
        }
    }
}

#[test]
fn truncation_before_message_stop_is_unavailable_after_it_the_content_is_whole() {
    let body = full_stream();
    let metadata_len = event(
        "metadata",
        r#"{"usage":{"inputTokens":10,"outputTokens":20,"totalTokens":35,"cacheReadInputTokens":5},"metrics":{"latencyMs":321}}"#,
    )
    .len();
    let stop_len = event("messageStop", r#"{"stopReason":"tool_use"}"#).len();
    let cut = body.len() - metadata_len - stop_len;
    let (_, err) = decode_body(&body[..cut], &[]);
    assert_eq!(err.unwrap().reason, "UPSTREAM_TRUNCATED");
    // Cut inside a frame: truncated too.
    let (_, err) = decode_body(&body[..cut + 5], &[]);
    assert_eq!(err.unwrap().reason, "UPSTREAM_TRUNCATED");
    // After messageStop, before metadata: whole, without usage.
    let (chunks, err) = decode_body(&body[..body.len() - metadata_len], &[]);
    assert!(err.is_none());
    let last = chunks.last().unwrap();
    assert!(last.last && last.usage().is_none());
    assert_eq!(last.stop_reason(), Some(StopReason::ToolUse));
    // A metadata frame cut short after messageStop is still a truncation.
    let (_, err) = decode_body(&body[..body.len() - 3], &[]);
    assert_eq!(err.unwrap().reason, "UPSTREAM_TRUNCATED");
}

#[test]
fn exceptions_mid_stream_are_classed_per_contract() {
    let start = event("messageStart", r#"{"role":"assistant"}"#);
    for (name, kind) in [
        ("throttlingException", Kind::RateLimited),
        ("modelStreamErrorException", Kind::Unavailable),
        ("serviceUnavailableException", Kind::Unavailable),
        ("internalServerException", Kind::Unavailable),
        ("validationException", Kind::InvalidArgument),
        ("somethingNewException", Kind::Unavailable),
    ] {
        let body = [
            start.clone(),
            exception(name, r#"{"message":"Something specific"}"#),
        ]
        .concat();
        let (_, err) = decode_body(&body, &[]);
        let err = err.unwrap();
        assert_eq!(err.kind, kind, "{name}");
        assert!(
            err.message.contains("Something specific"),
            "{}",
            err.message
        );
        assert!(err.message.contains(name), "{}", err.message);
    }
}

#[test]
fn stop_reasons_map_to_the_contract() {
    for (s, want) in [
        ("end_turn", StopReason::EndTurn),
        ("tool_use", StopReason::ToolUse),
        ("max_tokens", StopReason::MaxTokens),
        ("stop_sequence", StopReason::StopSequence),
        ("guardrail_intervened", StopReason::ContentFilter),
        ("content_filtered", StopReason::ContentFilter),
        ("something_else", StopReason::Other),
    ] {
        assert_eq!(stop_reason(s), want, "{s}");
    }
}

#[test]
fn http_errors_use_the_error_type_header_and_message() {
    let e = http_error(
        400,
        Some("ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        r#"{"message":"The provided model identifier is invalid."}"#,
    );
    assert_eq!(e.kind, Kind::InvalidArgument);
    assert!(
        e.message.contains("model identifier is invalid"),
        "{}",
        e.message
    );
    assert!(e.message.contains("(ValidationException)"), "{}", e.message);
    assert!(!e.message.contains("internal.amazon.com"));
    assert_eq!(
        http_error(400, Some("ThrottlingException"), r#"{"message":"x"}"#).kind,
        Kind::RateLimited
    );
    assert_eq!(
        http_error(424, Some("ModelErrorException"), r#"{"message":"x"}"#).kind,
        Kind::Unavailable
    );
    assert_eq!(
        http_error(403, None, r#"{"Message":"bad signature"}"#).kind,
        Kind::PermissionDenied
    );
    let e = http_error(
        404,
        None,
        r#"{"__type":"com.amazon.coral#ResourceNotFoundException","message":"nope"}"#,
    );
    assert_eq!(e.kind, Kind::NotFound);
    assert!(e.message.contains("ResourceNotFoundException"));
}

#[test]
fn model_ids_and_profile_arns_are_one_encoded_path_segment() {
    let b = Bedrock::new(
        Settings {
            base_url: "http://127.0.0.1:1".into(),
            ..Settings::default()
        },
        "us-east-1".into(),
        auth::Auth::Bearer("t".into()),
    );
    assert_eq!(
        b.url("anthropic.claude-3-haiku-20240307-v1:0"),
        "http://127.0.0.1:1/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
    );
    assert_eq!(
        b.url("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0"),
        "http://127.0.0.1:1/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream"
    );
}
