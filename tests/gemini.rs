//! The `gemini` provider end to end: the real gRPC server in front of a mock
//! Gemini API on 127.0.0.1 serving bodies written from Google's documented
//! `streamGenerateContent?alt=sse` format. Covers the request it sends, every
//! stream element (text, thoughts, signatures, function calls, finish reasons,
//! repeated usage, blocked prompts, error objects, CRLF), arbitrary read splits,
//! HTTP errors and truncation.
// Tests measure wall-clock time and share state across mock threads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use chatwire::{config::Config, pb};
use common::*;
use pb::{chat_event::Event, content_block::Block, message_chunk::Delta};
use serde_json::json;
use tonic::Code;

const MODEL: &str = "gemini:gemini-2.5-flash";
const PATH: &str = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse";

/// Thoughts, a signature on the first answer part, text with multibyte UTF-8,
/// usage repeated on every chunk (the last one wins), CRLF line ends.
fn thinking_body() -> String {
    [
        r#"{"candidates":[{"content":{"parts":[{"text":"**Plan** the answer","thought":true}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":9,"totalTokenCount":30,"thoughtsTokenCount":21},"modelVersion":"gemini-2.5-flash","responseId":"resp-1"}"#,
        r#"{"candidates":[{"content":{"parts":[{"text":"Grüße ","thoughtSignature":"c2lnLTE="}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":2,"totalTokenCount":32,"thoughtsTokenCount":21},"modelVersion":"gemini-2.5-flash","responseId":"resp-1"}"#,
        r#"{"candidates":[{"content":{"parts":[{"text":"aus 東京 🌸"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":6,"totalTokenCount":36,"thoughtsTokenCount":21,"cachedContentTokenCount":4},"modelVersion":"gemini-2.5-flash","responseId":"resp-1"}"#,
    ]
    .iter()
    .map(|d| format!("data: {d}\r\n\r\n"))
    .collect()
}

fn sse(events: &[serde_json::Value]) -> String {
    events.iter().map(|e| format!("data: {e}\n\n")).collect()
}

async fn server_for(up: &MockUpstream, config: Config) -> TestServer {
    TestServer::start(
        config,
        env(&[
            ("GEMINI_API_KEY", "gk-secret"),
            ("GEMINI_BASE_URL", &up.url),
        ]),
    )
    .await
}

fn no_retry() -> Config {
    let mut c = Config::default();
    c.retry.max_retries = 0;
    c
}

#[tokio::test]
async fn text_thoughts_and_usage_through_stream_invoke_and_events() {
    let up = MockUpstream::start(|_| Reply::sse(thinking_body())).await;
    let srv = server_for(&up, Config::default()).await;
    let mut c = srv.client().await;
    let mut req = text_request(MODEL, "Say hello");
    req.messages
        .insert(0, msg(pb::Role::System, vec![text("Be warm.")]));
    req.max_tokens = Some(64);
    req.temperature = Some(0.3);
    req.top_p = Some(0.8);
    req.stop = vec!["END".into()];
    // Thought summaries are asked for explicitly (no model-name guessing).
    req.reasoning = Some(pb::ReasoningConfig {
        include_reasoning: Some(true),
        ..Default::default()
    });

    let (chunks, status) = collect_stream(&mut c, req.clone()).await;
    assert!(status.is_none(), "{status:?}");
    assert!(
        chunks.iter().all(|c| c.id == "resp-1"),
        "responseId is the message id"
    );
    let deltas: Vec<_> = chunks.iter().filter_map(|c| c.delta.clone()).collect();
    assert_eq!(
        deltas,
        vec![
            Delta::Reasoning(pb::ReasoningChunk {
                text: "**Plan** the answer".into(),
                ..Default::default()
            }),
            Delta::Reasoning(pb::ReasoningChunk {
                signature: "c2lnLTE=".into(),
                ..Default::default()
            }),
            Delta::Text("Grüße ".into()),
            Delta::Text("aus 東京 🌸".into()),
        ]
    );
    let last = chunks.last().unwrap();
    assert!(last.last && chunks.iter().filter(|c| c.last).count() == 1);
    assert_eq!(last.stop_reason, pb::StopReason::EndTurn as i32);
    assert_eq!(
        last.usage,
        Some(pb::Usage {
            input_tokens: 9,
            output_tokens: 27,
            total_tokens: 36,
            cache_read_tokens: 4,
            cache_creation_tokens: 0,
            reasoning_tokens: 21,
        })
    );

    let invoked = c.invoke(req.clone()).await.unwrap().into_inner();
    assert_eq!(comparable(&invoked), fold(&chunks));
    assert_eq!(
        invoked.content[0].block,
        Some(Block::Reasoning(pb::Reasoning {
            text: "**Plan** the answer".into(),
            signature: "c2lnLTE=".into(),
            redacted: String::new(),
        }))
    );

    let (events, status) = collect_events(&mut c, req).await;
    assert!(status.is_none(), "{status:?}");
    assert!(events.iter().all(|e| e.name == "ChatGoogleGenerativeAI"));
    assert!(matches!(events[0].event, Some(Event::Start(_))));
    match &events.last().unwrap().event {
        Some(Event::End(e)) => assert_eq!(e.output.as_ref().map(comparable), Some(fold(&chunks))),
        other => panic!("{other:?}"),
    }

    // The request: URL, key header (never in the URL), body fields.
    let reqs = up.requests();
    assert_eq!(reqs.len(), 3);
    let r = &reqs[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", PATH));
    assert_eq!(r.header("x-goog-api-key").as_deref(), Some("gk-secret"));
    assert!(!r.path.contains("gk-secret"));
    assert_eq!(
        r.json(),
        json!({
            "contents": [{"role": "user", "parts": [{"text": "Say hello"}]}],
            "systemInstruction": {"parts": [{"text": "Be warm."}]},
            "generationConfig": {
                "maxOutputTokens": 64, "temperature": 0.3, "topP": 0.8,
                "stopSequences": ["END"], "thinkingConfig": {"includeThoughts": true}
            }
        })
    );
}

#[tokio::test]
async fn any_split_of_the_body_gives_identical_output() {
    let body = thinking_body();
    let len = body.len();
    let mut cases: Vec<Vec<usize>> = (0..24).map(|s| random_splits(len, s)).collect();
    cases.push(byte_splits(len));
    // Inside a CRLF and inside multibyte characters.
    let crlf = body.find("\r\n").unwrap();
    let kanji = body.find('東').unwrap();
    let flower = body.find('🌸').unwrap();
    cases.push(vec![crlf + 1, kanji + 1, kanji + 2, flower + 1, flower + 3]);
    let splits = std::sync::Arc::new(std::sync::Mutex::new(cases.clone()));
    let s2 = splits.clone();
    let up = MockUpstream::start(move |_| {
        let next = s2.lock().unwrap().remove(0);
        Reply::sse(thinking_body()).splits(next)
    })
    .await;
    let srv = server_for(&up, Config::default()).await;
    let mut c = srv.client().await;
    let req = text_request(MODEL, "hi");
    let mut reference = None;
    for _ in 0..cases.len() {
        let (chunks, status) = collect_stream(&mut c, req.clone()).await;
        assert!(status.is_none(), "{status:?}");
        let now: Vec<_> = chunks
            .iter()
            .map(|c| {
                (
                    c.delta.clone(),
                    c.usage,
                    c.stop_reason,
                    c.last,
                    c.id.clone(),
                )
            })
            .collect();
        match &reference {
            None => reference = Some(now),
            Some(r) => assert_eq!(r, &now),
        }
    }
    assert_eq!(reference.unwrap().len(), 5);
}

#[tokio::test]
async fn function_calls_and_the_conversation_round_trip() {
    let body = sse(&[json!({"candidates":[{"content":{"role":"model","parts":[
            {"functionCall":{"name":"get_weather","args":{"city":"Paris","days":2}},"thoughtSignature":"U0lH"},
            {"functionCall":{"id":"fc-9","name":"get_time","args":{}}}
        ]},"finishReason":"STOP","index":0}],
        "usageMetadata":{"promptTokenCount":40,"candidatesTokenCount":12,"totalTokenCount":52},
        "responseId":"resp-tools"})]);
    let up = MockUpstream::start(move |_| Reply::sse(body.clone())).await;
    let srv = server_for(&up, Config::default()).await;
    let mut c = srv.client().await;

    let args = |v: serde_json::Value| {
        Some(chatwire::api::convert::json_to_struct(
            v.as_object().unwrap(),
        ))
    };
    let tool_call = |id: &str, name: &str, a: serde_json::Value| pb::ContentBlock {
        block: Some(Block::ToolCall(pb::ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: args(a),
            ..Default::default()
        })),
        ..Default::default()
    };
    let tool_result = |id: &str, content: &str, is_error: bool| pb::ContentBlock {
        block: Some(Block::ToolResult(pb::ToolResult {
            tool_call_id: id.into(),
            content: content.into(),
            is_error,
            ..Default::default()
        })),
        ..Default::default()
    };
    let mut req = text_request("gemini:gemini-2.0-flash", "Weather and time?");
    req.messages[0].content.push(pb::ContentBlock {
        block: Some(Block::Image(pb::Image {
            source: Some(pb::image::Source::Data(vec![0xff, 0xd8, 0xff])),
            mime_type: "image/jpeg".into(),
        })),
        ..Default::default()
    });
    req.messages[0].content.push(pb::ContentBlock {
        block: Some(Block::Image(pb::Image {
            source: Some(pb::image::Source::Url("gs://bucket/cat.png".into())),
            mime_type: String::new(),
        })),
        ..Default::default()
    });
    req.messages.push(msg(
        pb::Role::Assistant,
        vec![
            pb::ContentBlock {
                block: Some(Block::Reasoning(pb::Reasoning {
                    text: String::new(),
                    signature: "UFJFVg==".into(),
                    redacted: String::new(),
                })),
                ..Default::default()
            },
            tool_call("call_0", "get_weather", json!({"city": "Oslo"})),
        ],
    ));
    req.messages.push(msg(
        pb::Role::Tool,
        vec![tool_result("call_0", "rain", false)],
    ));
    req.tools = vec![pb::Tool {
        name: "get_weather".into(),
        description: "Weather for a city".into(),
        parameters: args(json!({"type": "object", "properties": {"city": {"type": "string"}}})),
        ..Default::default()
    }];
    req.tool_choice = Some(pb::ToolChoice {
        mode: pb::tool_choice::Mode::Any as i32,
        name: String::new(),
    });

    let (chunks, status) = collect_stream(&mut c, req.clone()).await;
    assert!(status.is_none(), "{status:?}");
    let calls: Vec<_> = chunks
        .iter()
        .filter_map(|c| match &c.delta {
            Some(Delta::ToolCall(t)) => Some(t.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        calls.len(),
        2,
        "one complete toolCall chunk per functionCall"
    );
    assert_eq!(
        (calls[0].index, calls[0].id.as_str(), calls[0].name.as_str()),
        (0, "call_0", "get_weather")
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&calls[0].arguments).unwrap(),
        json!({"city": "Paris", "days": 2})
    );
    assert_eq!((calls[1].index, calls[1].id.as_str()), (1, "fc-9"));
    assert_eq!(calls[1].arguments, "{}");
    let last = chunks.last().unwrap();
    assert_eq!(last.stop_reason, pb::StopReason::ToolUse as i32);

    let invoked = c.invoke(req).await.unwrap().into_inner();
    assert_eq!(comparable(&invoked), fold(&chunks));
    assert_eq!(invoked.tool_calls.len(), 2);
    // The signature that came with the call is kept, ahead of the calls.
    assert_eq!(
        invoked.content,
        vec![pb::ContentBlock {
            block: Some(Block::Reasoning(pb::Reasoning {
                text: String::new(),
                signature: "U0lH".into(),
                redacted: String::new(),
            })),
            ..Default::default()
        }]
    );

    let body = up.requests()[0].json();
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [
                {"text": "Weather and time?"},
                {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/"}},
                {"fileData": {"mimeType": "image/png", "fileUri": "gs://bucket/cat.png"}}
            ]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}, "thoughtSignature": "UFJFVg=="}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"content": "rain"}}}
            ]}
        ])
    );
    assert_eq!(
        body["tools"],
        json!([{"functionDeclarations": [{"name": "get_weather", "description": "Weather for a city",
            "parametersJsonSchema": {"type": "object", "properties": {"city": {"type": "string"}}}}]}])
    );
    assert_eq!(
        body["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY"}})
    );
    assert!(
        body.get("generationConfig").is_none(),
        "no reasoning field: no thinkingConfig"
    );
}

#[tokio::test]
async fn finish_reasons_and_a_blocked_prompt() {
    let up = MockUpstream::start(|r: &Recorded| {
        let text = r.json()["contents"][0]["parts"][0]["text"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let body = if text == "blocked" {
            sse(&[json!({"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},
                "usageMetadata":{"promptTokenCount":5,"totalTokenCount":5},"responseId":"r-b"})])
        } else {
            sse(&[
                json!({"candidates":[{"content":{"parts":[{"text":"partial"}]}}],"responseId":"r-f"}),
                json!({"candidates":[{"content":{"parts":[]},"finishReason":text}],"responseId":"r-f"}),
            ])
        };
        Reply::sse(body)
    })
    .await;
    let srv = server_for(&up, Config::default()).await;
    let mut c = srv.client().await;
    for (reason, want) in [
        ("MAX_TOKENS", pb::StopReason::MaxTokens),
        ("SAFETY", pb::StopReason::ContentFilter),
        ("RECITATION", pb::StopReason::ContentFilter),
        ("SPII", pb::StopReason::ContentFilter),
        ("MALFORMED_FUNCTION_CALL", pb::StopReason::Other),
    ] {
        let m = c
            .invoke(text_request(MODEL, reason))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(m.stop_reason, want as i32, "{reason}");
        assert_eq!(m.content, vec![text("partial")]);
    }
    let m = c
        .invoke(text_request(MODEL, "blocked"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.stop_reason, pb::StopReason::ContentFilter as i32);
    assert_eq!(
        m.content,
        vec![pb::ContentBlock {
            block: Some(Block::Refusal(
                "Gemini blocked the prompt (blockReason PROHIBITED_CONTENT)".into()
            )),
            ..Default::default()
        }]
    );
    assert_eq!(m.usage.unwrap().input_tokens, 5);
}

#[tokio::test]
async fn end_without_finish_reason_is_unavailable_never_ok() {
    let body =
        sse(&[json!({"candidates":[{"content":{"parts":[{"text":"Hello"}]}}],"responseId":"r-t"})]);
    let b2 = body.clone();
    let up = MockUpstream::start(move |r: &Recorded| {
        if r.json()["contents"][0]["parts"][0]["text"] == "cut" {
            Reply::sse(b2.clone()).cut()
        } else {
            Reply::sse(b2.clone())
        }
    })
    .await;
    let srv = server_for(&up, no_retry()).await;
    let mut c = srv.client().await;
    for prompt in ["clean eof", "cut"] {
        let (chunks, status) = collect_stream(&mut c, text_request(MODEL, prompt)).await;
        let status = status.expect("an error status, not OK");
        assert_eq!(status.code(), Code::Unavailable, "{prompt}: {status:?}");
        if prompt == "clean eof" {
            assert_eq!(reason(&status), "UPSTREAM_TRUNCATED");
        }
        assert_eq!(chunk_text(&chunks), "Hello", "{prompt}");
        assert!(chunks.iter().all(|c| !c.last));
    }
}

#[tokio::test]
async fn an_error_object_in_the_stream_maps_by_its_status() {
    let body = sse(&[
        json!({"candidates":[{"content":{"parts":[{"text":"So far"}]}}],"responseId":"r-e"}),
        json!({"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}),
    ]);
    let up = MockUpstream::start(move |_| Reply::sse(body.clone())).await;
    let srv = server_for(&up, no_retry()).await;
    let mut c = srv.client().await;
    let (events, status) = collect_events(&mut c, text_request(MODEL, "x")).await;
    let status = status.unwrap();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("Resource has been exhausted"),
        "{status:?}"
    );
    match &events.last().unwrap().event {
        Some(Event::Error(e)) => {
            assert_eq!(e.code, Code::ResourceExhausted as i32);
            assert_eq!(e.partial.as_ref().unwrap().content, vec![text("So far")]);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn http_errors_map_by_status_with_googles_message() {
    let up = MockUpstream::start(|r: &Recorded| {
        match r.json()["contents"][0]["parts"][0]["text"].as_str().unwrap_or("") {
            "400" => Reply::json(400, r#"{"error":{"code":400,"message":"* GenerateContentRequest.contents: contents is not specified","status":"INVALID_ARGUMENT"}}"#),
            "key" => Reply::json(400, r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#),
            "403" => Reply::json(403, r#"{"error":{"code":403,"message":"Method doesn't allow unregistered callers.","status":"PERMISSION_DENIED"}}"#),
            "404" => Reply::json(404, r#"{"error":{"code":404,"message":"models/nope is not found for API version v1beta","status":"NOT_FOUND"}}"#),
            "429" => Reply::json(429, r#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}"#).header("retry-after", "3"),
            _ => Reply::json(503, r#"{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}"#),
        }
    })
    .await;
    let srv = server_for(&up, no_retry()).await;
    let mut c = srv.client().await;
    for (prompt, code, needle) in [
        ("400", Code::InvalidArgument, "contents is not specified"),
        ("key", Code::PermissionDenied, "API key not valid"),
        ("403", Code::PermissionDenied, "unregistered callers"),
        ("404", Code::NotFound, "is not found for API version"),
        ("429", Code::ResourceExhausted, "Quota exceeded"),
        ("503", Code::Unavailable, "overloaded"),
    ] {
        let e = c.invoke(text_request(MODEL, prompt)).await.unwrap_err();
        assert_eq!(e.code(), code, "{prompt}: {e:?}");
        assert!(e.message().contains(needle), "{prompt}: {}", e.message());
        assert!(!e.message().contains("gk-secret"));
    }
    assert_eq!(up.requests().len(), 6, "no retries with max_retries = 0");
}

#[tokio::test]
async fn configuration_from_the_environment() {
    // GOOGLE_API_KEY works as well; the listing shows the provider and its features.
    let up = MockUpstream::start(|_| Reply::sse(thinking_body())).await;
    let srv = TestServer::start(
        Config::default(),
        env(&[("GOOGLE_API_KEY", "google-k"), ("GEMINI_BASE_URL", &up.url)]),
    )
    .await;
    let mut c = srv.client().await;
    let (_, status) = collect_stream(&mut c, text_request(MODEL, "hi")).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(
        up.requests()[0].header("x-goog-api-key").as_deref(),
        Some("google-k")
    );
    let list = c
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner();
    let g = list.providers.iter().find(|p| p.name == "gemini").unwrap();
    assert!(g.configured);
    assert_eq!(g.base_url, up.url);
    assert_eq!(
        g.features,
        [
            "tools",
            "images",
            "usage",
            "citations",
            "reasoning",
            "structured_output",
            "provider_options",
            "seed",
            "top_k",
            "penalties",
            "files",
            "audio",
            "tool_result_blocks",
            "cache_control"
        ]
    );

    // No key: known but not configured.
    let srv = TestServer::start(Config::default(), env(&[])).await;
    let mut c = srv.client().await;
    let e = c.invoke(text_request(MODEL, "hi")).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("GEMINI_API_KEY"), "{}", e.message());
}
