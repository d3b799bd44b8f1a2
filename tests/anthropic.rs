//! The anthropic provider end to end: tonic client → chatwire → a mock
//! Anthropic server on 127.0.0.1, with SSE bodies written from Anthropic's
//! documented stream format. Stream, Invoke and StreamEvents must agree; every
//! split of a body must give the same gRPC output; errors before and during the
//! stream must map to the contract's codes with Anthropic's own message.
// Tests measure wall-clock time and share state across mock threads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use std::time::Duration;

use chatwire::{api::convert::json_to_struct, config::Config, pb};
use common::*;
use pb::{chat_event::Event, content_block::Block, message_chunk::Delta};
use serde_json::json;
use tonic::Code;

const MODEL: &str = "anthropic:claude-3-haiku-20240307";

/// One SSE event with LF line ends.
fn ev(data: serde_json::Value) -> String {
    format!(
        "event: {}\ndata: {data}\n\n",
        data["type"].as_str().unwrap()
    )
}

fn start(id: &str, input: u32) -> String {
    ev(
        json!({"type":"message_start","message":{"id":id,"type":"message","role":"assistant",
        "model":"claude-3-haiku-20240307","content":[],"stop_reason":null,"stop_sequence":null,
        "usage":{"input_tokens":input,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}),
    )
}

fn text_start(index: u32) -> String {
    ev(
        json!({"type":"content_block_start","index":index,"content_block":{"type":"text","text":""}}),
    )
}

fn text_delta(index: u32, t: &str) -> String {
    ev(json!({"type":"content_block_delta","index":index,"delta":{"type":"text_delta","text":t}}))
}

fn block_stop(index: u32) -> String {
    ev(json!({"type":"content_block_stop","index":index}))
}

fn end(stop: &str, output: u32) -> String {
    ev(
        json!({"type":"message_delta","delta":{"stop_reason":stop,"stop_sequence":null},"usage":{"output_tokens":output}}),
    ) + &ev(json!({"type":"message_stop"}))
}

fn ping() -> String {
    ev(json!({"type":"ping"}))
}

fn tool_start(index: u32, id: &str, name: &str) -> String {
    ev(
        json!({"type":"content_block_start","index":index,"content_block":{"type":"tool_use","id":id,"name":name,"input":{}}}),
    )
}

fn json_delta(index: u32, p: &str) -> String {
    ev(
        json!({"type":"content_block_delta","index":index,"delta":{"type":"input_json_delta","partial_json":p}}),
    )
}

const CHINESE: &str = "你好，世界！我是 Claude 🤖👩‍💻 — ok";

fn plain_body() -> String {
    let mut b = start("msg_plain", 12);
    b += &text_start(0);
    b += &ping();
    for piece in ["你好，世界！", "我是 Claude ", "🤖👩‍💻", " — ok"] {
        b += &text_delta(0, piece);
    }
    b += &block_stop(0);
    b += &end("end_turn", 9);
    b
}

fn parallel_tools_body() -> String {
    let mut b = start("msg_tools", 300);
    b += &text_start(0);
    b += &text_delta(0, "Checking both.");
    b += &block_stop(0);
    b += &tool_start(1, "toolu_a", "get_weather");
    b += &json_delta(1, "");
    b += &json_delta(1, "{\"city\": \"Pa");
    b += &tool_start(2, "toolu_b", "get_time");
    b += &json_delta(2, "{\"tz\": \"Europe/");
    b += &json_delta(1, "ris\"}");
    b += &json_delta(2, "Paris\"}");
    b += &block_stop(1);
    b += &block_stop(2);
    b += &end("tool_use", 80);
    b
}

fn thinking_body() -> String {
    let mut b = start("msg_think", 40);
    b += &ev(
        json!({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}),
    );
    b += &ev(
        json!({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me think "}}),
    );
    b += &ping();
    b += &ev(
        json!({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"step by step."}}),
    );
    b += &ev(
        json!({"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCkgIARABGAIiQL=="}}),
    );
    b += &block_stop(0);
    b += &text_start(1);
    b += &text_delta(1, "The answer is 42.");
    b += &block_stop(1);
    b += &end("end_turn", 30);
    b
}

async fn anthropic_server(up: &MockUpstream, config: Config) -> TestServer {
    TestServer::start(
        config,
        env(&[
            ("ANTHROPIC_API_KEY", "sk-test-key"),
            ("ANTHROPIC_BASE_URL", &up.url),
        ]),
    )
    .await
}

fn no_retry() -> Config {
    let mut c = Config::default();
    c.retry.max_retries = 0;
    c
}

fn last_of(chunks: &[pb::MessageChunk]) -> &pb::MessageChunk {
    let last = chunks.last().unwrap();
    assert!(last.last);
    assert_eq!(chunks.iter().filter(|c| c.last).count(), 1);
    assert_eq!(chunks.iter().filter(|c| c.usage.is_some()).count(), 1);
    last
}

/// Stream, Invoke and StreamEvents on one request; checks they agree and returns the chunks.
async fn three_ways(
    srv: &TestServer,
    req: pb::ChatRequest,
) -> (Vec<pb::MessageChunk>, pb::ChatMessage) {
    let mut client = srv.client().await;
    let (chunks, status) = collect_stream(&mut client, req.clone()).await;
    assert!(status.is_none(), "{status:?}");
    let invoked = client.invoke(req.clone()).await.unwrap().into_inner();
    assert_eq!(comparable(&invoked), comparable(&fold(&chunks)));
    assert_eq!(invoked.model, "claude-3-haiku-20240307");
    let (events, status) = collect_events(&mut client, req).await;
    assert!(status.is_none(), "{status:?}");
    assert!(events.iter().all(|e| e.name == "ChatAnthropic"));
    assert!(matches!(
        events.first().unwrap().event,
        Some(Event::Start(_))
    ));
    let streamed: Vec<pb::MessageChunk> = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Stream(s)) => s.chunk.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(streamed, chunks);
    match &events.last().unwrap().event {
        Some(Event::End(end)) => assert_eq!(end.output.as_ref(), Some(&invoked)),
        other => panic!("last event {other:?}"),
    }
    (chunks, invoked)
}

#[tokio::test]
async fn plain_text_with_chinese_and_emoji_on_all_three_rpcs() {
    let up = MockUpstream::start(|_| Reply::sse(plain_body())).await;
    let srv = anthropic_server(&up, Config::default()).await;
    let mut req = text_request(MODEL, "hi");
    req.messages
        .insert(0, msg(pb::Role::System, vec![text("You are terse.")]));
    let (chunks, msg_out) = three_ways(&srv, req).await;

    assert_eq!(chunk_text(&chunks), CHINESE);
    assert_eq!(chunks.len(), 5, "four text deltas, one last chunk");
    assert!(chunks.iter().all(|c| c.id == "msg_plain"));
    let last = last_of(&chunks);
    assert_eq!(last.stop_reason, pb::StopReason::EndTurn as i32);
    let u = last.usage.unwrap();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.total_tokens),
        (12, 9, 21)
    );
    assert_eq!(msg_out.content, vec![text(CHINESE)]);

    let reqs = up.requests();
    assert_eq!(reqs.len(), 3);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(r.header("x-api-key").as_deref(), Some("sk-test-key"));
    assert_eq!(r.header("anthropic-version").as_deref(), Some("2023-06-01"));
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let body = r.json();
    assert_eq!(body["model"], "claude-3-haiku-20240307");
    assert_eq!(body["stream"], true);
    assert_eq!(body["max_tokens"], 1024);
    assert_eq!(body["system"], "You are terse.");
    assert_eq!(
        body["messages"],
        json!([{"role":"user","content":[{"type":"text","text":"hi"}]}])
    );
}

#[tokio::test]
async fn two_parallel_tool_calls_and_the_tool_request_shape() {
    let up = MockUpstream::start(|_| Reply::sse(parallel_tools_body())).await;
    let srv = anthropic_server(&up, Config::default()).await;
    let args = json!({"city": "Paris"});
    let req = pb::ChatRequest {
        model: MODEL.into(),
        messages: vec![
            msg(pb::Role::User, vec![text("weather and time in Paris?")]),
            msg(
                pb::Role::Assistant,
                vec![pb::ContentBlock {
                    block: Some(Block::ToolCall(pb::ToolCall {
                        id: "toolu_0".into(),
                        name: "get_weather".into(),
                        arguments: Some(json_to_struct(args.as_object().unwrap())), ..Default::default() })), ..Default::default() }],
            ),
            msg(
                pb::Role::Tool,
                vec![pb::ContentBlock {
                    block: Some(Block::ToolResult(pb::ToolResult {
                        tool_call_id: "toolu_0".into(),
                        content: "service down".into(),
                        is_error: true, ..Default::default() })), ..Default::default() }],
            ),
            msg(pb::Role::User, vec![text("try again")]),
        ],
        max_tokens: Some(333),
        temperature: Some(0.25),
        stop: vec!["END".into()],
        tools: vec![
            pb::Tool {
                name: "get_weather".into(),
                description: "Weather for a city".into(),
                parameters: Some(json_to_struct(
                    json!({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]})
                        .as_object()
                        .unwrap(),
                )), ..Default::default() },
            pb::Tool {
                name: "get_time".into(),
                description: "Time in a zone".into(),
                parameters: Some(json_to_struct(
                    json!({"type":"object","properties":{"tz":{"type":"string"}}}).as_object().unwrap(),
                )), ..Default::default() },
        ],
        tool_choice: Some(pb::ToolChoice {
            mode: pb::tool_choice::Mode::Any as i32,
            name: String::new(),
        }),
        ..Default::default()
    };
    let (chunks, out) = three_ways(&srv, req).await;

    let calls: Vec<&pb::ToolCallChunk> = chunks
        .iter()
        .filter_map(|c| match &c.delta {
            Some(Delta::ToolCall(t)) => Some(t),
            _ => None,
        })
        .collect();
    // first fragment of each index carries id and name; the index is the block index
    assert_eq!(
        (calls[0].index, calls[0].id.as_str(), calls[0].name.as_str()),
        (1, "toolu_a", "get_weather")
    );
    assert!(calls
        .iter()
        .any(|t| t.index == 2 && t.id == "toolu_b" && t.name == "get_time"));
    assert!(calls.iter().filter(|t| !t.id.is_empty()).count() == 2);
    assert_eq!(out.tool_calls.len(), 2);
    assert_eq!(out.tool_calls[0].id, "toolu_a");
    assert_eq!(out.tool_calls[1].name, "get_time");
    assert_eq!(
        chatwire::api::convert::struct_to_json(out.tool_calls[1].arguments.as_ref().unwrap()),
        *json!({"tz": "Europe/Paris"}).as_object().unwrap()
    );
    assert_eq!(out.stop_reason, pb::StopReason::ToolUse as i32);
    assert_eq!(out.content, vec![text("Checking both.")]);

    let body = up.requests()[0].json();
    assert_eq!(body["max_tokens"], 333);
    assert_eq!(body["temperature"], 0.25);
    assert_eq!(body["stop_sequences"], json!(["END"]));
    assert_eq!(body["tool_choice"], json!({"type":"any"}));
    assert_eq!(body["tools"][0]["name"], "get_weather");
    assert_eq!(body["tools"][0]["description"], "Weather for a city");
    assert_eq!(
        body["tools"][0]["input_schema"]["required"],
        json!(["city"])
    );
    assert_eq!(
        body["messages"],
        json!([
            {"role":"user","content":[{"type":"text","text":"weather and time in Paris?"}]},
            {"role":"assistant","content":[{"type":"tool_use","id":"toolu_0","name":"get_weather","input":{"city":"Paris"}}]},
            {"role":"user","content":[
                {"type":"tool_result","tool_use_id":"toolu_0","content":"service down","is_error":true},
                {"type":"text","text":"try again"}
            ]}
        ])
    );
}

#[tokio::test]
async fn thinking_with_signature_then_text_round_trips() {
    let up = MockUpstream::start(|_| Reply::sse(thinking_body())).await;
    let srv = anthropic_server(&up, Config::default()).await;
    let (_, out) = three_ways(&srv, text_request(MODEL, "what is 6*7?")).await;
    let reasoning = pb::Reasoning {
        text: "Let me think step by step.".into(),
        signature: "EqQBCkgIARABGAIiQL==".into(),
        redacted: String::new(),
    };
    assert_eq!(
        out.content,
        vec![
            pb::ContentBlock {
                block: Some(Block::Reasoning(reasoning.clone())),
                ..Default::default()
            },
            text("The answer is 42.")
        ]
    );

    // The next turn sends the thinking block back with its signature.
    let mut client = srv.client().await;
    let mut req = text_request(MODEL, "what is 6*7?");
    req.messages
        .push(msg(pb::Role::Assistant, out.content.clone()));
    req.messages
        .push(msg(pb::Role::User, vec![text("and 6*8?")]));
    let (_, status) = collect_stream(&mut client, req).await;
    assert!(status.is_none());
    let body = up.requests().last().unwrap().json();
    assert_eq!(
        body["messages"][1],
        json!({"role":"assistant","content":[
            {"type":"thinking","thinking":"Let me think step by step.","signature":"EqQBCkgIARABGAIiQL=="},
            {"type":"text","text":"The answer is 42."}
        ]})
    );
}

#[tokio::test]
async fn max_tokens_stop_and_cache_usage() {
    let mut b = ev(
        json!({"type":"message_start","message":{"id":"msg_max","type":"message","role":"assistant",
        "model":"claude-3-haiku-20240307","content":[],"stop_reason":null,"stop_sequence":null,
        "usage":{"input_tokens":5,"cache_creation_input_tokens":7,"cache_read_input_tokens":100,"output_tokens":1}}}),
    );
    b += &text_start(0);
    b += &text_delta(0, "Once upon a");
    b += &block_stop(0);
    b += &end("max_tokens", 4);
    let up = MockUpstream::start(move |_| Reply::sse(b.clone())).await;
    let srv = anthropic_server(&up, Config::default()).await;
    let mut req = text_request(MODEL, "tell me a story");
    req.max_tokens = Some(4);
    let (chunks, _) = three_ways(&srv, req).await;
    let last = last_of(&chunks);
    assert_eq!(last.stop_reason, pb::StopReason::MaxTokens as i32);
    let u = last.usage.unwrap();
    assert_eq!(
        (
            u.input_tokens,
            u.output_tokens,
            u.total_tokens,
            u.cache_read_tokens,
            u.cache_creation_tokens
        ),
        (112, 4, 116, 100, 7)
    );
    assert_eq!(up.requests()[0].json()["max_tokens"], 4);
}

#[tokio::test]
async fn an_error_event_after_some_text_ends_the_stream_with_its_code() {
    let mut b = start("msg_err", 10);
    b += &text_start(0);
    b += &text_delta(0, "Partial ");
    b += &text_delta(0, "answer");
    b += &ev(
        json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded right now"}}),
    );
    let up = MockUpstream::start(move |_| Reply::sse(b.clone())).await;
    let srv = anthropic_server(&up, Config::default()).await;
    let mut client = srv.client().await;

    let (chunks, status) = collect_stream(&mut client, text_request(MODEL, "hi")).await;
    let status = status.expect("an error status");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("Overloaded right now"),
        "{}",
        status.message()
    );
    assert_eq!(reason(&status), "UPSTREAM_OVERLOADED");
    assert_eq!(chunk_text(&chunks), "Partial answer");
    assert!(chunks.iter().all(|c| !c.last));

    let (events, status) = collect_events(&mut client, text_request(MODEL, "hi")).await;
    assert_eq!(status.unwrap().code(), Code::Unavailable);
    match &events.last().unwrap().event {
        Some(Event::Error(e)) => {
            assert_eq!(e.code, Code::Unavailable as i32);
            assert!(e.message.contains("Overloaded right now"));
            assert_eq!(
                e.partial.as_ref().unwrap().content,
                vec![text("Partial answer")]
            );
        }
        other => panic!("last event {other:?}"),
    }
    // Chunks were sent: no retry after the first chunk.
    assert_eq!(up.requests().len(), 2);
}

#[tokio::test]
async fn error_event_types_map_to_contract_codes() {
    for (t, code) in [
        ("rate_limit_error", Code::ResourceExhausted),
        ("invalid_request_error", Code::InvalidArgument),
        ("api_error", Code::Unavailable),
        // An undocumented error type is the upstream's failure: never INTERNAL,
        // which the contract keeps for chatwire's own faults.
        ("something_else", Code::Unavailable),
    ] {
        let mut b = start("msg_e", 1);
        b += &text_start(0);
        b += &text_delta(0, "x");
        b += &ev(json!({"type":"error","error":{"type":t,"message":format!("because {t}")}}));
        let up = MockUpstream::start(move |_| Reply::sse(b.clone())).await;
        let srv = anthropic_server(&up, no_retry()).await;
        let mut client = srv.client().await;
        let (chunks, status) = collect_stream(&mut client, text_request(MODEL, "hi")).await;
        let status = status.unwrap();
        assert_eq!(status.code(), code, "{t}");
        assert!(status.message().contains(&format!("because {t}")));
        assert_eq!(chunk_text(&chunks), "x");
    }
}

#[tokio::test]
async fn a_connection_cut_mid_event_is_unavailable_not_ok() {
    let body = plain_body();
    let cut_at = body.find("🤖").unwrap() + 2; // inside an event and inside a UTF-8 sequence
    let up =
        MockUpstream::start(move |_| Reply::sse(body.as_bytes()[..cut_at].to_vec()).cut()).await;
    let srv = anthropic_server(&up, Config::default()).await;
    let mut client = srv.client().await;
    let (chunks, status) = collect_stream(&mut client, text_request(MODEL, "hi")).await;
    let status = status.expect("a cut stream must fail");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(chunk_text(&chunks).starts_with("你好"));
    assert!(chunks.iter().all(|c| !c.last));

    // Ending cleanly but before message_stop is truncation too.
    let body = plain_body();
    let end_at = body.find("event: message_delta").unwrap();
    let up = MockUpstream::start(move |_| Reply::sse(body[..end_at].to_string())).await;
    let srv = anthropic_server(&up, Config::default()).await;
    let mut client = srv.client().await;
    let (chunks, status) = collect_stream(&mut client, text_request(MODEL, "hi")).await;
    let status = status.expect("a truncated stream must fail");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(reason(&status), "UPSTREAM_TRUNCATED");
    assert_eq!(chunk_text(&chunks), CHINESE);
}

#[tokio::test]
async fn a_529_before_the_stream_is_unavailable_with_anthropic_message() {
    let overloaded = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#;
    let up = MockUpstream::start(move |_| Reply::json(529, overloaded)).await;
    let srv = anthropic_server(&up, no_retry()).await;
    let mut client = srv.client().await;
    let (chunks, status) = collect_stream(&mut client, text_request(MODEL, "hi")).await;
    let status = status.unwrap();
    assert!(chunks.is_empty());
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("Overloaded"),
        "{}",
        status.message()
    );
    assert_eq!(reason(&status), "UPSTREAM_OVERLOADED");
    assert_eq!(up.requests().len(), 1);

    // With the default policy the pipeline retries an overloaded upstream.
    let up = MockUpstream::start(move |_| Reply::json(529, overloaded)).await;
    let srv = anthropic_server(&up, Config::default()).await;
    let mut client = srv.client().await;
    let (_, status) = collect_stream(&mut client, text_request(MODEL, "hi")).await;
    assert_eq!(status.unwrap().code(), Code::Unavailable);
    assert_eq!(
        up.requests().len(),
        1 + Config::default().retry.max_retries as usize
    );
}

#[tokio::test]
async fn a_429_with_retry_after_is_resource_exhausted_with_retry_info() {
    use tonic_types::StatusExt;
    let up = MockUpstream::start(|_| {
        Reply::json(
            429,
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#,
        )
        .header("retry-after", "17")
    })
    .await;
    let srv = anthropic_server(&up, no_retry()).await;
    let mut client = srv.client().await;
    let err = client.invoke(text_request(MODEL, "hi")).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message().contains("per-minute rate limit"),
        "{}",
        err.message()
    );
    let info = err.get_details_retry_info().expect("RetryInfo");
    assert_eq!(info.retry_delay, Some(Duration::from_secs(17)));
}

#[tokio::test]
async fn http_errors_before_the_stream_map_to_contract_codes() {
    for (status, t, code) in [
        (400, "invalid_request_error", Code::InvalidArgument),
        (401, "authentication_error", Code::PermissionDenied),
        (403, "permission_error", Code::PermissionDenied),
        (404, "not_found_error", Code::NotFound),
        (413, "request_too_large", Code::InvalidArgument),
        (500, "api_error", Code::Unavailable),
    ] {
        let body = format!(
            r#"{{"type":"error","error":{{"type":"{t}","message":"detail for {status}"}}}}"#
        );
        let up = MockUpstream::start(move |_| Reply::json(status, body.clone())).await;
        let srv = anthropic_server(&up, no_retry()).await;
        let mut client = srv.client().await;
        let (_, st) = collect_stream(&mut client, text_request(MODEL, "hi")).await;
        let st = st.unwrap();
        assert_eq!(st.code(), code, "{status}");
        assert!(
            st.message().contains(&format!("detail for {status}")),
            "{}",
            st.message()
        );
        assert!(!st.message().contains("sk-test-key"));
    }
}

#[tokio::test]
async fn a_body_that_is_not_an_event_stream_is_an_error_not_a_hang() {
    let up = MockUpstream::start(|_| {
        Reply::json(200, r#"{"id":"msg_1","type":"message","content":[]}"#)
    })
    .await;
    let srv = anthropic_server(&up, no_retry()).await;
    let mut client = srv.client().await;
    let (_, st) = tokio::time::timeout(
        Duration::from_secs(20),
        collect_stream(&mut client, text_request(MODEL, "hi")),
    )
    .await
    .unwrap();
    assert_eq!(st.unwrap().code(), Code::Unavailable);
}

#[tokio::test]
async fn an_event_over_the_frame_cap_fails_the_call() {
    let mut b = start("msg_big", 1);
    b += &text_start(0);
    b += &text_delta(0, &"x".repeat(64 * 1024));
    b += &end("end_turn", 1);
    let up =
        MockUpstream::start(move |_| Reply::sse(b.clone()).splits(vec![100, 5000, 20000])).await;
    // The default retry policy: an oversized event must not be retried like an outage.
    let config = Config {
        max_frame_bytes: 16 * 1024,
        ..Config::default()
    };
    let srv = anthropic_server(&up, config).await;
    let mut client = srv.client().await;
    let (chunks, st) = collect_stream(&mut client, text_request(MODEL, "hi")).await;
    assert!(chunks.iter().all(|c| !c.last));
    let st = st.expect("an oversized event ends the call with a status");
    assert_eq!(st.code(), Code::Unavailable);
    // The caller can tell this apart from an outage: the reason names the cap.
    assert_eq!(reason(&st), "UPSTREAM_FRAME_TOO_LARGE", "{st:?}");
    assert!(st.message().contains("16384"), "{}", st.message());
    assert_eq!(up.requests().len(), 1, "not retried");
}

#[tokio::test]
async fn settings_headers_and_unconfigured_provider() {
    let up = MockUpstream::start(|_| Reply::sse(plain_body())).await;
    let mut config = Config::default();
    let mut file = chatwire::config::ProviderFile::default();
    file.headers
        .insert("anthropic-beta".into(), "tools-2024-05-16".into());
    file.default_max_tokens = Some(2048);
    config.providers.insert("anthropic".into(), file);
    let srv = anthropic_server(&up, config).await;
    let mut client = srv.client().await;
    let (_, st) = collect_stream(&mut client, text_request(MODEL, "hi")).await;
    assert!(st.is_none());
    let r = &up.requests()[0];
    assert_eq!(
        r.header("anthropic-beta").as_deref(),
        Some("tools-2024-05-16")
    );
    assert_eq!(r.json()["max_tokens"], 2048);

    // No key: the provider is known but not configured.
    let srv = TestServer::start(Config::default(), env(&[("ANTHROPIC_BASE_URL", &up.url)])).await;
    let mut client = srv.client().await;
    let (_, st) = collect_stream(&mut client, text_request(MODEL, "hi")).await;
    let st = st.unwrap();
    assert_eq!(st.code(), Code::FailedPrecondition);
    assert!(st.message().contains("ANTHROPIC_API_KEY"));
}

/// A body with every kind of event, CRLF line ends and multi-byte text.
fn mixed_crlf_body() -> String {
    let mut b = thinking_body().replace(
        "event: message_delta",
        "event: ignored_new_event\ndata: {\"type\":\"brand_new\"}\n\nevent: message_delta",
    );
    // replace the thinking answer's tail with the parallel tools and Chinese text
    b = b.replace("The answer is 42.", CHINESE);
    let tools = parallel_tools_body();
    let tools_blocks: String = tools
        .split("\n\n")
        .filter(|e| e.contains("\"index\":1") || e.contains("\"index\":2"))
        .map(|e| {
            e.replace("\"index\":1", "\"index\":3")
                .replace("\"index\":2", "\"index\":4")
                + "\n\n"
        })
        .collect();
    let at = b.find("event: ignored_new_event").unwrap();
    b.insert_str(at, &(tools_blocks + &ping()));
    b.replace('\n', "\r\n")
}

#[tokio::test]
async fn every_split_of_a_body_gives_identical_grpc_output() {
    let body = mixed_crlf_body();
    let bytes = body.clone().into_bytes();
    let len = bytes.len();
    // Split plans: none, one byte at a time, inside UTF-8 and inside CRLF, then random ones.
    let mut plans: Vec<Vec<usize>> = vec![Vec::new(), byte_splits(len)];
    let in_utf8 = body.find('你').unwrap() + 1;
    let in_emoji = body.find('🤖').unwrap() + 3;
    let in_crlf = body.find("\r\n").unwrap() + 1;
    let in_blank = body.find("\r\n\r\n").unwrap() + 3;
    plans.push(vec![in_utf8, in_emoji, in_crlf, in_blank]);
    plans.extend((0..24).map(|seed| random_splits(len, seed)));

    let plans = std::sync::Arc::new(std::sync::Mutex::new(plans.into_iter()));
    let p = plans.clone();
    let up = MockUpstream::start(move |_| {
        let s = p.lock().unwrap().next().unwrap_or_default();
        Reply::sse(bytes.clone()).splits(s)
    })
    .await;
    let srv = anthropic_server(&up, no_retry()).await;
    let mut client = srv.client().await;

    let (baseline, st) = collect_stream(&mut client, text_request(MODEL, "hi")).await;
    assert!(st.is_none(), "{st:?}");
    let folded = fold(&baseline);
    assert_eq!(
        folded.content[1..],
        [text(CHINESE)],
        "the mixed body decodes as written"
    );
    assert_eq!(folded.tool_calls.len(), 2);
    let n = 1 + 1 + 24;
    for i in 0..n {
        let (chunks, st) = collect_stream(&mut client, text_request(MODEL, "hi")).await;
        assert!(st.is_none(), "plan {i}: {st:?}");
        assert_eq!(chunks, baseline, "plan {i} gave different output");
    }
    assert_eq!(up.requests().len(), n + 1);
}
