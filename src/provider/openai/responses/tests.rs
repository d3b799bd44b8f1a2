//! Event-by-event tests of the Responses decoder, one per documented shape.

use super::*;
use crate::{
    chat::types::{Delta, Part, Reasoning, StopReason},
    error::Kind,
    provider::Frame,
};

fn run(d: &mut ResponsesDecoder, s: &str) -> Result<Vec<Part>, crate::error::Error> {
    d.on_frame(&Frame {
        event: String::new(),
        data: s.to_string(),
    })
}

fn ok(d: &mut ResponsesDecoder, s: &str) -> Vec<Part> {
    run(d, s)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .filter(|p| !matches!(p, Part::Finish { .. } | Part::Metadata(..)))
        .collect()
}

#[test]
fn built_in_tool_items_are_never_client_tool_calls() {
    let mut d = ResponsesDecoder::new();
    for e in [
        r#"{"type":"response.output_item.added","output_index":0,"item":{"type":"web_search_call","id":"ws_1","status":"in_progress"}}"#,
        r#"{"type":"response.web_search_call.searching","output_index":0,"item_id":"ws_1"}"#,
        r#"{"type":"response.output_item.done","output_index":0,"item":{"type":"web_search_call","id":"ws_1","status":"completed","action":{"type":"search","query":"q"}}}"#,
        r#"{"type":"response.output_item.added","output_index":1,"item":{"type":"code_interpreter_call","id":"ci_1","code":""}}"#,
        r#"{"type":"response.code_interpreter_call_code.delta","output_index":1,"delta":"print(1)"}"#,
        r#"{"type":"response.output_item.done","output_index":1,"item":{"type":"code_interpreter_call","id":"ci_1","code":"print(1)"}}"#,
        r#"{"type":"response.some_future_event","output_index":9,"delta":"x"}"#,
    ] {
        assert_eq!(ok(&mut d, e), vec![], "{e}");
    }
    let end = ok(
        &mut d,
        r#"{"type":"response.completed","response":{"id":"resp_1","model":"m","status":"completed"}}"#,
    );
    assert!(end.contains(&Part::Stop(StopReason::EndTurn)), "{end:?}");
}

#[test]
fn incomplete_reasons_map_to_stop_reasons() {
    for (reason, want) in [
        ("max_output_tokens", StopReason::MaxTokens),
        ("content_filter", StopReason::ContentFilter),
        ("something_new", StopReason::Other),
    ] {
        let mut d = ResponsesDecoder::new();
        let e = format!(
            r#"{{"type":"response.incomplete","response":{{"id":"resp_1","status":"incomplete","incomplete_details":{{"reason":"{reason}"}},"usage":{{"input_tokens":3,"output_tokens":4,"total_tokens":7}}}}}}"#
        );
        let parts = ok(&mut d, &e);
        assert!(parts.contains(&Part::Stop(want)), "{reason}: {parts:?}");
        assert_eq!(parts.last(), Some(&Part::Done));
    }
}

#[test]
fn failures_and_error_events_map_to_contract_codes() {
    for (e, kind) in [
        (
            r#"{"type":"response.failed","response":{"id":"r","status":"failed","error":{"code":"rate_limit_exceeded","message":"slow down"}}}"#,
            Kind::RateLimited,
        ),
        (
            r#"{"type":"response.failed","response":{"id":"r","status":"failed","error":{"code":"server_error","message":"oops"}}}"#,
            Kind::Unavailable,
        ),
        (
            r#"{"type":"response.failed","response":{"id":"r","status":"failed","error":{"code":"invalid_prompt","message":"bad"}}}"#,
            Kind::InvalidArgument,
        ),
        (
            r#"{"type":"error","code":"rate_limit_exceeded","message":"slow","param":null,"sequence_number":3}"#,
            Kind::RateLimited,
        ),
        (
            r#"{"type":"error","code":"ERR_SOMETHING","message":"Something went wrong","param":null}"#,
            Kind::Unavailable,
        ),
        (
            r#"{"type":"error","error":{"type":"invalid_request_error","code":"context_length_exceeded","message":"too long"}}"#,
            Kind::InvalidArgument,
        ),
    ] {
        let got = run(&mut ResponsesDecoder::new(), e).err().map(|e| e.kind);
        assert_eq!(got, Some(kind), "{e}");
    }
}

#[test]
fn a_stream_without_its_terminal_event_is_truncated() {
    let mut d = ResponsesDecoder::new();
    ok(
        &mut d,
        r#"{"type":"response.output_text.delta","output_index":0,"content_index":0,"delta":"Hi"}"#,
    );
    ok(&mut d, "[DONE]");
    let e = d.finish().err();
    assert_eq!(e.as_ref().map(|e| e.reason), Some("UPSTREAM_TRUNCATED"));
    assert_eq!(e.map(|e| e.kind), Some(Kind::Unavailable));
}

#[test]
fn reasoning_summary_parts_are_paragraphs_and_encrypted_content_signs_the_block() {
    let mut d = ResponsesDecoder::new();
    ok(
        &mut d,
        r#"{"type":"response.output_item.added","output_index":0,"item":{"type":"reasoning","id":"rs_1","summary":[]}}"#,
    );
    let mut got = Vec::new();
    for e in [
        r#"{"type":"response.reasoning_summary_text.delta","output_index":0,"summary_index":0,"delta":"**A**"}"#,
        r#"{"type":"response.reasoning_summary_text.delta","output_index":0,"summary_index":0,"delta":" one"}"#,
        r#"{"type":"response.reasoning_summary_text.delta","output_index":0,"summary_index":1,"delta":"**B**"}"#,
        r#"{"type":"response.output_item.done","output_index":0,"item":{"type":"reasoning","id":"rs_1","encrypted_content":"gAAA==","summary":[{"type":"summary_text","text":"**A** one"},{"type":"summary_text","text":"**B**"}]}}"#,
    ] {
        got.extend(ok(&mut d, e));
    }
    let r = |t: &str, s: &str| {
        Part::Delta(Delta::Reasoning(Reasoning {
            text: t.into(),
            signature: s.into(),
            redacted: String::new(),
        }))
    };
    assert_eq!(
        got,
        vec![
            r("**A**", ""),
            r(" one", ""),
            r("\n\n**B**", ""),
            r("", "rs_1:gAAA==")
        ]
    );
}

#[test]
fn a_call_without_argument_deltas_comes_whole_from_its_done_item() {
    let mut d = ResponsesDecoder::new();
    ok(
        &mut d,
        r#"{"type":"response.output_item.added","output_index":0,"item":{"type":"function_call","id":"fc_1","call_id":"call_1","name":"f","arguments":""}}"#,
    );
    assert_eq!(
        ok(
            &mut d,
            r#"{"type":"response.output_item.done","output_index":0,"item":{"type":"function_call","id":"fc_1","call_id":"call_1","name":"f","arguments":"{\"a\":1}"}}"#
        ),
        vec![Part::Delta(Delta::ToolCall {
            index: 0,
            id: "call_1".into(),
            name: "f".into(),
            arguments: "{\"a\":1}".into()
        })]
    );
    let e = run(
        &mut d,
        r#"{"type":"response.function_call_arguments.delta","output_index":5,"delta":"{"}"#,
    )
    .err();
    assert_eq!(e.map(|e| e.kind), Some(Kind::UpstreamProtocol));
    assert!(run(
        &mut d,
        r#"{"type":"response.output_text.delta","output_index":4096,"delta":"x"}"#
    )
    .is_err());
}
