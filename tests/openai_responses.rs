//! The openai-responses provider end to end: the real gRPC server, a mock
//! Responses API on 127.0.0.1:0 serving the project's own fixture bodies
//! (tests/fixtures/openai-responses, written from OpenAI's documented event
//! format), and checks of the requests the mock received: the encrypted
//! reasoning item the model returned goes back on the next turn.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use std::time::Duration;

use chatwire::{config::Config, pb};
use common::*;
use pb::{chat_event::Event, content_block::Block, message_chunk::Delta};
use serde_json::json;
use tonic::Code;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/openai-responses")
            .join(name),
    )
    .unwrap()
}

const KEY: &str = "sk-responses-test-secret-0123";

/// A server whose openai-responses provider points at a mock answering by model name.
async fn setup(
    handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
) -> (MockUpstream, TestServer) {
    let up = MockUpstream::start(handler).await;
    let base = format!("{}/v1", up.url);
    let mut config = Config::default();
    config.retry.max_retries = 0;
    let srv = TestServer::start(
        config,
        env(&[("OPENAI_BASE_URL", &base), ("OPENAI_API_KEY", KEY)]),
    )
    .await;
    (up, srv)
}

#[tokio::test]
async fn reasoning_and_a_tool_call_then_the_encrypted_item_goes_back_next_turn() {
    let (up, srv) = setup(|r: &Recorded| {
        if r.json()["input"].as_array().is_some_and(|a| a.len() > 2) {
            Reply::sse(fixture("text_usage_crlf.sse"))
        } else {
            Reply::sse(fixture("reasoning_then_tool_call.sse"))
        }
    })
    .await;
    let mut c = srv.client().await;
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}});
    let mut req = text_request("openai-responses:o4-mini", "Weather in Zürich?");
    req.messages
        .insert(0, msg(pb::Role::System, vec![text("be brief")]));
    req.tools = vec![pb::Tool {
        name: "get_weather".into(),
        description: "the weather".into(),
        parameters: Some(chatwire::api::convert::json_to_struct(
            schema.as_object().unwrap(),
        )),
        strict: Some(true),
        ..Default::default()
    }];
    req.reasoning = Some(pb::ReasoningConfig {
        effort: pb::ReasoningEffort::Low as i32,
        budget_tokens: None,
        include_reasoning: Some(true),
    });
    req.max_tokens = Some(500);

    let (chunks, status) = collect_stream(&mut c, req.clone()).await;
    assert!(status.is_none(), "{status:?}");
    let signed: Vec<&pb::ReasoningChunk> = chunks
        .iter()
        .filter_map(|c| match &c.delta {
            Some(Delta::Reasoning(r)) if !r.signature.is_empty() => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(signed.len(), 1);
    assert!(signed[0].signature.starts_with("rs_68a1b2c3:gAAAA"));
    let last = chunks.last().unwrap();
    assert!(last.last);
    assert_eq!(last.stop_reason, pb::StopReason::ToolUse as i32);
    assert_eq!(last.finish_reason, "completed");
    let u = last.usage.unwrap();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.reasoning_tokens),
        (81, 150, 128)
    );
    assert!(chunks.iter().all(|c| c.provider == "openai-responses"
        && c.id == "resp_68a1b2c3d4e5f60718293a4b5c6d7e8f"
        && c.model == "o4-mini-2025-04-16"));

    // StreamEvents names LangChain's class: ChatOpenAI (use_responses_api=True).
    let (events, status) = collect_events(&mut c, req.clone()).await;
    assert!(status.is_none(), "{status:?}");
    assert!(events.iter().all(|e| e.name == "ChatOpenAI"));
    let answer = match &events.last().unwrap().event {
        Some(Event::End(e)) => e.output.clone().unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(answer.tool_calls.len(), 1);
    assert_eq!(answer.tool_calls[0].id, "call_Zx81");

    // The next turn: the answer's blocks and tool call go back, then the result.
    let mut assistant = msg(pb::Role::Assistant, answer.content.clone());
    for t in &answer.tool_calls {
        assistant.content.push(pb::ContentBlock {
            block: Some(Block::ToolCall(t.clone())),
            ..Default::default()
        });
    }
    let result = msg(
        pb::Role::Tool,
        vec![pb::ContentBlock {
            block: Some(Block::ToolResult(pb::ToolResult {
                tool_call_id: "call_Zx81".into(),
                content: "sunny, 24°C".into(),
                ..Default::default()
            })),
            ..Default::default()
        }],
    );
    let mut next = req.clone();
    next.messages.push(assistant);
    next.messages.push(result);
    let (chunks, status) = collect_stream(&mut c, next).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(chunk_text(&chunks), "Grüße aus 東京 🚀🇫🇷!");

    let reqs = up.requests();
    assert_eq!(reqs.len(), 3);
    let first = &reqs[0];
    assert_eq!(
        (first.method.as_str(), first.path.as_str()),
        ("POST", "/v1/responses")
    );
    assert_eq!(first.header("authorization"), Some(format!("Bearer {KEY}")));
    let b = first.json();
    assert_eq!(b["stream"], json!(true));
    assert_eq!(b["store"], json!(false));
    assert_eq!(b["include"], json!(["reasoning.encrypted_content"]));
    assert_eq!(b["reasoning"], json!({"effort": "low", "summary": "auto"}));
    assert_eq!(b["max_output_tokens"], json!(500));
    assert_eq!(b["model"], json!("o4-mini"));
    assert_eq!(
        b["tools"],
        json!([{"type": "function", "name": "get_weather", "description": "the weather",
                "parameters": schema, "strict": true}])
    );
    let input = reqs[2].json()["input"].clone();
    let enc = signed[0].signature.split_once(':').unwrap().1.to_string();
    assert_eq!(
        input,
        json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "Weather in Zürich?"},
            {"type": "reasoning", "id": "rs_68a1b2c3", "encrypted_content": enc,
             "summary": [{"type": "summary_text",
                          "text": "**Checking the weather**\n\nThe user wants Zürich.\n\n**Calling the tool**"}]},
            {"type": "function_call", "call_id": "call_Zx81", "name": "get_weather",
             "arguments": "{\"city\":\"Zürich\"}"},
            {"type": "function_call_output", "call_id": "call_Zx81", "output": "sunny, 24°C"},
        ])
    );
}

/// CRLF, every byte a separate read, inside multi-byte characters: the same
/// gRPC chunks every time.
#[tokio::test]
async fn every_split_of_the_body_gives_identical_chunks() {
    let body = fixture("reasoning_then_tool_call.sse");
    let body = String::from_utf8(body)
        .unwrap()
        .replace('\n', "\r\n")
        .into_bytes();
    let mut plans = vec![Vec::new(), byte_splits(body.len())];
    plans.extend((0..12).map(|s| random_splits(body.len(), s)));
    let plans = std::sync::Arc::new(plans);
    let (p, b) = (plans.clone(), body.clone());
    let (_up, srv) = setup(move |r: &Recorded| {
        let i: usize = r.json()["model"]
            .as_str()
            .unwrap_or("0")
            .parse()
            .unwrap_or(0);
        Reply::sse(b.clone()).splits(p[i].clone())
    })
    .await;
    let mut c = srv.client().await;
    let (want, status) = collect_stream(&mut c, text_request("openai-responses:0", "go")).await;
    assert!(status.is_none(), "{status:?}");
    assert!(want.len() > 6);
    for i in 1..plans.len() {
        let (got, status) =
            collect_stream(&mut c, text_request(&format!("openai-responses:{i}"), "go")).await;
        assert!(status.is_none(), "plan {i}: {status:?}");
        assert_eq!(got, want, "plan {i}");
    }
}

#[tokio::test]
async fn failures_errors_cuts_and_http_errors_map_to_the_contract() {
    let (up, srv) = setup(|r: &Recorded| match r.json()["model"].as_str().unwrap_or("") {
        "failed" => Reply::sse(fixture("failed_server_error.sse")),
        "ratelimited" => Reply::sse(fixture("error_event_rate_limit.sse")),
        "eof" => Reply::sse(fixture("cut_before_completed.sse")),
        "cut" => Reply::sse(fixture("cut_before_completed.sse")).cut(),
        "incomplete" => Reply::sse(fixture("builtin_search_incomplete.sse")),
        "refused" => Reply::sse(fixture("refusal.sse")),
        "badfile" => Reply::json(
            400,
            format!(r#"{{"error":{{"code":"unsupported_file","message":"The file type you uploaded is not supported; key {KEY}","param":"input","type":"invalid_request_error"}}}}"#),
        ),
        _ => Reply::json(
            401,
            r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#,
        ),
    })
    .await;
    let mut c = srv.client().await;
    for (model, code, text_seen) in [
        ("failed", Code::Unavailable, "Partial"),
        ("ratelimited", Code::ResourceExhausted, ""),
        ("eof", Code::Unavailable, "Half an ans"),
        ("cut", Code::Unavailable, "Half an ans"),
        ("badfile", Code::InvalidArgument, ""),
        ("nokey", Code::PermissionDenied, ""),
    ] {
        let (chunks, status) = collect_stream(
            &mut c,
            text_request(&format!("openai-responses:{model}"), "hi"),
        )
        .await;
        let status = status.unwrap_or_else(|| panic!("{model}: ended OK"));
        assert_eq!(status.code(), code, "{model}: {status:?}");
        assert_eq!(chunk_text(&chunks), text_seen, "{model}");
        assert!(chunks.iter().all(|c| !c.last), "{model}");
        assert!(!status.message().contains(KEY), "{model}: the key leaked");
    }
    let (chunks, status) =
        collect_stream(&mut c, text_request("openai-responses:incomplete", "hi")).await;
    assert!(status.is_none(), "{status:?}");
    let last = chunks.last().unwrap();
    assert_eq!(last.stop_reason, pb::StopReason::MaxTokens as i32);
    assert!(chunks
        .iter()
        .all(|c| !matches!(c.delta, Some(Delta::ToolCall(_)))));
    let (chunks, _) = collect_stream(&mut c, text_request("openai-responses:refused", "hi")).await;
    assert_eq!(
        chunks.last().unwrap().stop_reason,
        pb::StopReason::ContentFilter as i32
    );
    assert!(up.requests().len() >= 8);
}

#[tokio::test]
async fn a_cancel_closes_the_upstream_connection() {
    let body = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_x\",\"model\":\"m\"}}\n\nevent: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"output_index\":0,\"content_index\":0,\"delta\":\"tick\"}\n\n";
    let (up, srv) = setup(move |_| Reply::sse(body).hold_open()).await;
    let mut c = srv.client().await;
    let mut s = c
        .stream(text_request("openai-responses:o4-mini", "go"))
        .await
        .unwrap()
        .into_inner();
    let first = s.message().await.unwrap().unwrap();
    assert_eq!(first.delta, Some(Delta::Text("tick".into())));
    drop(s);
    assert!(
        up.wait_closed(Duration::from_secs(5)).await,
        "upstream still open"
    );
}

#[tokio::test]
async fn list_models_shows_it_and_it_shares_the_openai_environment() {
    let srv = TestServer::start(Config::default(), env(&[("OPENAI_API_KEY", "k")])).await;
    let mut c = srv.client().await;
    let list = c
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner();
    let p = list
        .providers
        .iter()
        .find(|p| p.name == "openai-responses")
        .unwrap();
    assert!(p.configured);
    assert_eq!(p.base_url, "https://api.openai.com/v1");
    for f in [
        "tools",
        "reasoning",
        "reasoning_summaries",
        "encrypted_reasoning",
        "structured_output",
    ] {
        assert!(p.features.iter().any(|x| x == f), "{f}: {:?}", p.features);
    }
    // Without OpenAI's key or base URL: known, not configured, says what to set.
    let srv = TestServer::start(Config::default(), env(&[])).await;
    let mut c = srv.client().await;
    let (_, status) = collect_stream(&mut c, text_request("openai-responses:o4-mini", "hi")).await;
    let status = status.unwrap();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("OPENAI_API_KEY"));
}
