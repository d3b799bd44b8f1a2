//! Traces end to end: the real server exports OTLP/gRPC to a collector in
//! the test (opentelemetry-proto's TraceService on 127.0.0.1:0). A client
//! sends a W3C `traceparent`; the exported spans must be in that trace — the
//! call's server span a child of the client's span, one client span per
//! upstream attempt (two 503s, then the fallback that answers) — and the mock
//! upstream must see each attempt's `traceparent`. Prompts and answers appear
//! only with OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use chatwire::config::Config;
use common::*;
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        trace_service_server::{TraceService, TraceServiceServer},
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    },
    common::v1::{any_value::Value, KeyValue},
    trace::v1::{span::SpanKind, status::StatusCode, Span},
};
use serde_json::json;

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for rs in req.into_inner().resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn collector() -> (Collector, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let c = Collector::default();
    let svc = TraceServiceServer::new(c.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (c, url)
}

fn ev(data: serde_json::Value) -> String {
    format!(
        "event: {}\ndata: {data}\n\n",
        data["type"].as_str().unwrap()
    )
}

fn answer() -> String {
    ev(
        json!({"type":"message_start","message":{"id":"msg_7","type":"message","role":"assistant",
        "model":"claude-upstream-name","content":[],"stop_reason":null,"stop_sequence":null,
        "usage":{"input_tokens":11,"output_tokens":1}}}),
    ) + &ev(
        json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
    ) + &ev(
        json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"the answer "}}),
    ) + &ev(
        json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"is 42"}}),
    ) + &ev(json!({"type":"content_block_stop","index":0}))
        + &ev(
            json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":4}}),
        )
        + &ev(json!({"type":"message_stop"}))
}

fn attr<'a>(s: &'a Span, key: &str) -> Option<&'a Value> {
    s.attributes
        .iter()
        .find(|kv: &&KeyValue| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn str_attr(s: &Span, key: &str) -> String {
    match attr(s, key) {
        Some(Value::StringValue(v)) => v.clone(),
        other => panic!("{key}: {other:?} on span {:?}", s.name),
    }
}

fn int_attr(s: &Span, key: &str) -> i64 {
    match attr(s, key) {
        Some(Value::IntValue(v)) => *v,
        other => panic!("{key}: {other:?} on span {:?}", s.name),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";
const PROMPT: &str = "what is six times seven";

/// Runs one Stream call through an alias (two 503s from its first target,
/// then the fallback answers) with tracing on; returns the spans and the
/// upstream's recorded requests.
async fn traced_call(capture: bool, traceparent: Option<&str>) -> (Vec<Span>, Vec<Recorded>) {
    let (spans, otlp) = collector().await;
    let up = MockUpstream::start(|r| {
        if r.json()["model"] == "claude-down" {
            Reply::json(
                503,
                r#"{"type":"error","error":{"type":"api_error","message":"down"}}"#,
            )
        } else {
            Reply::sse(answer())
        }
    })
    .await;
    let config = Config::from_toml(
        r#"
[retry]
max_retries = 1
base_backoff_ms = 1
max_backoff_ms = 2
[models.flaky]
target = "anthropic:claude-down"
fallbacks = ["anthropic:claude-ok"]
"#,
    )
    .unwrap();
    let mut vars = vec![
        ("ANTHROPIC_API_KEY", "k"),
        ("ANTHROPIC_BASE_URL", up.url.as_str()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.as_str()),
    ];
    if capture {
        vars.push(("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true"));
    }
    let srv = TestServer::start(config, env(&vars)).await;
    let mut c = srv.client().await;
    let mut req = tonic::Request::new(text_request("flaky", PROMPT));
    if let Some(tp) = traceparent {
        req.metadata_mut()
            .insert("traceparent", tp.parse().unwrap());
    }
    let mut s = c.stream(req).await.unwrap().into_inner();
    let mut text = String::new();
    use futures_util::StreamExt;
    while let Some(chunk) = s.next().await {
        if let Some(chatwire::pb::message_chunk::Delta::Text(t)) = chunk.unwrap().delta {
            text.push_str(&t);
        }
    }
    assert_eq!(text, "the answer is 42");
    // Stopping the server flushes the exporter.
    srv.stop().await.unwrap();
    let mut got = Vec::new();
    for _ in 0..200 {
        got = spans.0.lock().unwrap().clone();
        if got.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (got, up.requests())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_span_per_call_a_client_span_per_attempt_in_the_callers_trace() {
    let tp = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    let (spans, requests) = traced_call(false, Some(&tp)).await;
    assert_eq!(spans.len(), 4, "{spans:#?}");
    for s in &spans {
        assert_eq!(
            hex(&s.trace_id),
            TRACE_ID,
            "span {:?} left the caller's trace",
            s.name
        );
    }

    // The call: a server span under the caller's span, with the GenAI attributes.
    let server: Vec<&Span> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Server as i32)
        .collect();
    assert_eq!(server.len(), 1, "{spans:#?}");
    let call = server[0];
    assert_eq!(hex(&call.parent_span_id), PARENT_ID);
    assert_eq!(call.name, "chat flaky");
    assert_eq!(str_attr(call, "gen_ai.operation.name"), "chat");
    assert_eq!(str_attr(call, "gen_ai.provider.name"), "anthropic");
    assert_eq!(str_attr(call, "gen_ai.request.model"), "flaky");
    assert_eq!(
        str_attr(call, "gen_ai.response.model"),
        "claude-upstream-name"
    );
    assert_eq!(str_attr(call, "gen_ai.response.id"), "msg_7");
    assert_eq!(int_attr(call, "gen_ai.usage.input_tokens"), 11);
    assert_eq!(int_attr(call, "gen_ai.usage.output_tokens"), 4);
    assert_eq!(str_attr(call, "rpc.method"), "Stream");
    assert_eq!(str_attr(call, "rpc.grpc.status_code"), "OK");
    match attr(call, "gen_ai.response.finish_reasons") {
        Some(Value::ArrayValue(a)) => {
            assert_eq!(a.values.len(), 1);
            assert_eq!(
                a.values[0].value,
                Some(Value::StringValue("end_turn".into()))
            );
        }
        other => panic!("finish_reasons: {other:?}"),
    }
    match attr(call, "gen_ai.server.time_to_first_token") {
        Some(Value::DoubleValue(t)) => assert!(*t > 0.0 && *t < 10.0, "{t}"),
        other => panic!("time to first token: {other:?}"),
    }
    assert!(call.events.iter().any(|e| e.name == "gen_ai.first_chunk"));
    assert_ne!(
        call.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );
    // Content capture is off: the prompt and the answer are on no span.
    let all = format!("{spans:?}");
    assert!(!all.contains(PROMPT), "the prompt was recorded");
    assert!(!all.contains("is 42"), "the answer was recorded");
    assert!(attr(call, "gen_ai.input.messages").is_none());

    // The attempts: children of the call, in order, retries and the fallback visible.
    let mut attempts: Vec<&Span> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Client as i32)
        .collect();
    attempts.sort_by_key(|s| s.start_time_unix_nano);
    assert_eq!(attempts.len(), 3, "{spans:#?}");
    let shape: Vec<(String, i64, i64, i64)> = attempts
        .iter()
        .map(|s| {
            assert_eq!(
                s.parent_span_id, call.span_id,
                "attempt {:?} not under the call",
                s.name
            );
            (
                str_attr(s, "gen_ai.request.model"),
                int_attr(s, "chatwire.retry"),
                int_attr(s, "chatwire.fallback_index"),
                int_attr(s, "http.response.status_code"),
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            ("claude-down".to_string(), 0, 0, 503),
            ("claude-down".to_string(), 1, 0, 503),
            ("claude-ok".to_string(), 0, 1, 200),
        ]
    );
    for failed in &attempts[..2] {
        assert_eq!(
            failed.status.as_ref().map(|s| s.code),
            Some(StatusCode::Error as i32)
        );
        assert_eq!(str_attr(failed, "error.type"), "UPSTREAM_UNAVAILABLE");
    }

    // The upstream saw each attempt's own span as its parent, in the same trace.
    assert_eq!(requests.len(), 3);
    for (r, s) in requests.iter().zip(&attempts) {
        assert_eq!(
            r.header("traceparent"),
            Some(format!("00-{TRACE_ID}-{}-01", hex(&s.span_id))),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_is_captured_only_when_switched_on_and_a_call_without_context_starts_a_trace() {
    let (spans, requests) = traced_call(true, None).await;
    let call = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .expect("a server span");
    // No traceparent from the caller: a new trace, the call at its root.
    assert!(call.parent_span_id.is_empty());
    assert_ne!(hex(&call.trace_id), TRACE_ID);
    let input = str_attr(call, "gen_ai.input.messages");
    let input: serde_json::Value = serde_json::from_str(&input).unwrap();
    assert_eq!(
        input,
        json!([{"role": "user", "parts": [{"type": "text", "content": PROMPT}]}])
    );
    let output = str_attr(call, "gen_ai.output.messages");
    assert!(output.contains("the answer is 42"), "{output}");
    for r in &requests {
        let tp = r.header("traceparent").expect("traceparent sent upstream");
        assert!(
            tp.starts_with(&format!("00-{}-", hex(&call.trace_id))),
            "{tp}"
        );
    }
}
