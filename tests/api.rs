//! The gRPC surface with the built-in fake model: the three RPCs agree, events
//! are well formed, validation codes, health, reflection, non-streaming models,
//! failures after chunks, deadlines; retries against a mock upstream that
//! counts the requests it sees.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use chatwire::{config::Config, pb};
use common::*;
use futures_util::StreamExt;
use pb::{chat_event::Event, message_chunk::Delta};
use tonic::Code;

fn script_request(script: serde_json::Value) -> pb::ChatRequest {
    text_request("fake:script", &script.to_string())
}

fn rich_script() -> serde_json::Value {
    serde_json::json!({
        "id": "msg_rich",
        "chunks": [
            {"reasoning": {"text": "Let me "}},
            {"reasoning": {"text": "think."}},
            {"reasoning": {"signature": "sig-1"}},
            {"text": "Hello, "},
            {"text": "wörld 🌍"},
            {"toolCall": {"index": 0, "id": "call_a", "name": "get_weather", "arguments": "{\"city\":"}},
            {"toolCall": {"index": 1, "id": "call_b", "name": "get_time", "arguments": "{\"tz\": \"Europe"}},
            {"toolCall": {"index": 0, "arguments": " \"Paris\"}"}},
            {"toolCall": {"index": 1, "arguments": "/Paris\"}"}}
        ],
        "usage": {"inputTokens": 12, "outputTokens": 34, "totalTokens": 46, "cacheReadTokens": 2, "reasoningTokens": 5},
        "stopReason": "tool_use"
    })
}

#[tokio::test]
async fn stream_invoke_and_events_agree_on_every_chunk_kind() {
    let srv = TestServer::start(Config::default(), env(&[])).await;
    let mut c = srv.client().await;
    let req = script_request(rich_script());

    let (chunks, status) = collect_stream(&mut c, req.clone()).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(chunks.len(), 10, "9 deltas and one final chunk");
    assert!(chunks.iter().all(|c| c.id == "msg_rich"));
    // usage and last only on the final chunk
    let (last, rest) = chunks.split_last().unwrap();
    assert!(last.last && last.usage.is_some());
    assert_eq!(last.stop_reason, pb::StopReason::ToolUse as i32);
    assert!(rest
        .iter()
        .all(|c| !c.last && c.usage.is_none() && c.stop_reason == 0));
    match &chunks[5].delta {
        Some(Delta::ToolCall(t)) => {
            assert_eq!(
                (t.index, t.id.as_str(), t.name.as_str()),
                (0, "call_a", "get_weather")
            );
        }
        other => panic!("{other:?}"),
    }

    let invoked = c.invoke(req.clone()).await.unwrap().into_inner();
    assert_eq!(
        comparable(&invoked),
        fold(&chunks),
        "Invoke = concatenated Stream"
    );
    assert_eq!(invoked.model, "script");
    // A retry-after far beyond any deadline is bounded, not a panic.
    let huge = script_request(
        serde_json::json!({"fail": {"httpStatus": 503, "retryAfterSecs": u64::MAX}}),
    );
    assert_eq!(c.invoke(huge).await.unwrap_err().code(), Code::Unavailable);
    assert_eq!(invoked.content.len(), 2);
    assert_eq!(
        invoked.content[1].block,
        Some(pb::content_block::Block::Text("Hello, wörld 🌍".into()))
    );
    match &invoked.content[0].block {
        Some(pb::content_block::Block::Reasoning(r)) => {
            assert_eq!(
                (r.text.as_str(), r.signature.as_str()),
                ("Let me think.", "sig-1")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(invoked.tool_calls.len(), 2);
    let args = invoked.tool_calls[1].arguments.as_ref().unwrap();
    assert_eq!(
        args.fields["tz"].kind,
        Some(prost_types::value::Kind::StringValue("Europe/Paris".into()))
    );
    let u = invoked.usage.unwrap();
    assert_eq!(
        (
            u.input_tokens,
            u.output_tokens,
            u.total_tokens,
            u.cache_read_tokens,
            u.reasoning_tokens
        ),
        (12, 34, 46, 2, 5)
    );

    let (events, status) = collect_events(&mut c, req.clone()).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(events.len(), chunks.len() + 2);
    let streamed: Vec<pb::MessageChunk> = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Stream(s)) => s.chunk.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(
        streamed, chunks,
        "StreamEvents wraps the very chunks Stream sends"
    );
    match &events.last().unwrap().event {
        Some(Event::End(end)) => assert_eq!(end.output.as_ref(), Some(&invoked)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn events_carry_run_fields_and_come_in_order() {
    let srv = TestServer::start(Config::default(), env(&[])).await;
    let mut c = srv.client().await;
    let mut req = text_request("fake:echo", "goldfish on the moon");
    req.config = Some(pb::RunConfig {
        tags: vec!["t1".into(), "t2".into()],
        metadata: [("team".to_string(), "search".to_string())].into(),
        run_name: String::new(),
        run_id: String::new(),
    });
    let (events, status) = collect_events(&mut c, req.clone()).await;
    assert!(status.is_none());
    assert!(matches!(events[0].event, Some(Event::Start(ref s)) if s.input.as_ref() == Some(&req)));
    assert!(matches!(events.last().unwrap().event, Some(Event::End(_))));
    let starts = events
        .iter()
        .filter(|e| matches!(e.event, Some(Event::Start(_))))
        .count();
    let ends = events
        .iter()
        .filter(|e| matches!(e.event, Some(Event::End(_)) | Some(Event::Error(_))))
        .count();
    assert_eq!((starts, ends), (1, 1));
    let run_id = uuid::Uuid::parse_str(&events[0].run_id).expect("runId is a UUID");
    assert_eq!(run_id.get_version_num(), 7);
    for e in &events {
        assert_eq!(e.run_id, events[0].run_id);
        assert_eq!(e.name, "FakeChatModel");
        assert_eq!(e.tags, vec!["t1", "t2"]);
        assert_eq!(e.metadata["team"], "search");
        assert_eq!(e.metadata["ls_provider"], "fake");
    }
    // Tokens as GenericFakeChatModel: words and single whitespace characters.
    let texts: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Stream(s)) => match &s.chunk.as_ref()?.delta {
                Some(Delta::Text(t)) => Some(t.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(texts, vec!["goldfish", " ", "on", " ", "the", " ", "moon"]);

    // A given runId and runName are used as they are.
    let id = "0190b8f0-0000-7000-8000-000000000001";
    req.config = Some(pb::RunConfig {
        run_id: id.into(),
        run_name: "my-run".into(),
        ..Default::default()
    });
    let (events, _) = collect_events(&mut c, req).await;
    assert!(events.iter().all(|e| e.run_id == id && e.name == "my-run"));
}

#[tokio::test]
async fn failure_after_chunks_ends_with_the_status_never_ok() {
    let srv = TestServer::start(Config::default(), env(&[])).await;
    let mut c = srv.client().await;
    let req = script_request(serde_json::json!({
        "chunks": [{"text": "one "}, {"text": "two "}, {"text": "three"}],
        "fail": {"afterChunks": 2, "code": "UNAVAILABLE", "message": "upstream went away"}
    }));
    let (chunks, status) = collect_stream(&mut c, req.clone()).await;
    assert_eq!(chunk_text(&chunks), "one two ");
    assert!(chunks.iter().all(|c| !c.last));
    let status = status.expect("a cut stream must not end OK");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "upstream went away");
    assert_eq!(reason(&status), "SCRIPTED_FAILURE");

    let (events, status) = collect_events(&mut c, req.clone()).await;
    assert_eq!(status.map(|s| s.code()), Some(Code::Unavailable));
    match &events.last().unwrap().event {
        Some(Event::Error(e)) => {
            assert_eq!(e.code, Code::Unavailable as i32);
            assert_eq!(e.message, "upstream went away");
            let partial = e.partial.as_ref().unwrap();
            assert_eq!(
                partial.content[0].block,
                Some(pb::content_block::Block::Text("one two ".into()))
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!events
        .iter()
        .any(|e| matches!(e.event, Some(Event::End(_)))));

    let err = c.invoke(req).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
}

#[tokio::test]
async fn upstream_style_failure_before_first_chunk_carries_retry_info() {
    let mut config = Config::default();
    config.retry.max_retries = 0;
    let srv = TestServer::start(config, env(&[])).await;
    let mut c = srv.client().await;
    let req = script_request(serde_json::json!({
        "chunks": [{"text": "never"}],
        "fail": {"afterChunks": 0, "httpStatus": 429, "retryAfterSecs": 7, "message": "slow down"}
    }));
    let (chunks, status) = collect_stream(&mut c, req).await;
    assert!(chunks.is_empty());
    let status = status.unwrap();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("slow down"),
        "{}",
        status.message()
    );
    use tonic_types::StatusExt;
    let info = status.get_details_error_info().unwrap();
    assert_eq!(info.domain, "chatwire");
    assert_eq!(info.metadata["upstream_status"], "429");
    assert_eq!(info.metadata["provider"], "fake");
    let retry = status.get_details_retry_info().unwrap();
    assert_eq!(retry.retry_delay, Some(Duration::from_secs(7)));
}

/// A mock OpenAI-compatible upstream answering each request with `answer(n)`,
/// n counting from 0, and a server routing `openai:*` to it.
async fn openai_upstream(
    config: Config,
    answer: impl Fn(usize) -> Reply + Send + Sync + 'static,
) -> (MockUpstream, TestServer) {
    let n = std::sync::atomic::AtomicUsize::new(0);
    let up =
        MockUpstream::start(move |_| answer(n.fetch_add(1, std::sync::atomic::Ordering::SeqCst)))
            .await;
    let srv = TestServer::start(
        config,
        env(&[
            ("OPENAI_API_KEY", "sk-test-retries"),
            ("OPENAI_BASE_URL", &up.url),
        ]),
    )
    .await;
    (up, srv)
}

fn openai_error(status: u16, message: &str) -> Reply {
    Reply::json(
        status,
        serde_json::json!({"error": {"message": message, "type": "server_error", "param": null, "code": null}})
            .to_string(),
    )
}

fn openai_answer(text: &str) -> Reply {
    let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
        let c = serde_json::json!({"id": "chatcmpl-retry", "object": "chat.completion.chunk",
            "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {c}\n\n")
    };
    Reply::sse(
        chunk(
            serde_json::json!({"role": "assistant", "content": text}),
            serde_json::Value::Null,
        ) + &chunk(serde_json::json!({}), serde_json::json!("stop"))
            + "data: [DONE]\n\n",
    )
}

#[tokio::test]
async fn retryable_failures_are_retried_before_the_first_chunk() {
    // The default policy, with a short backoff so the test is quick.
    let mut config = Config::default();
    assert_eq!(config.retry.max_retries, 2, "the documented default");
    config.retry.base_backoff = Duration::from_millis(1);
    config.retry.max_backoff = Duration::from_millis(5);
    let model = "openai:gpt-4o-mini";

    // A 503 every time: one request and two retries, then the upstream's status.
    let (up, srv) = openai_upstream(config.clone(), |_| {
        openai_error(503, "down for maintenance")
    })
    .await;
    let mut c = srv.client().await;
    let (chunks, status) = collect_stream(&mut c, text_request(model, "hi")).await;
    let status = status.expect("a failing upstream is never OK");
    assert!(chunks.is_empty());
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("down for maintenance"),
        "{}",
        status.message()
    );
    let seen = up.requests();
    assert_eq!(seen.len(), 3, "1 request + max_retries (2) retries");
    assert!(
        seen.iter()
            .all(|r| r.path == seen[0].path && r.body == seen[0].body),
        "every attempt sends the same request"
    );

    // Two 503s, then an answer: the third attempt serves the call, and the
    // client sees only the answer.
    let (up, srv) = openai_upstream(config.clone(), |n| {
        if n < 2 {
            openai_error(503, "down for maintenance")
        } else {
            openai_answer("fine")
        }
    })
    .await;
    let mut c = srv.client().await;
    let m = c
        .invoke(text_request(model, "hi"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        m.content[0].block,
        Some(pb::content_block::Block::Text("fine".into()))
    );
    assert_eq!(up.requests().len(), 3);

    // A request the upstream rejects (400) is not worth another try.
    let (up, srv) = openai_upstream(config.clone(), |_| openai_error(400, "bad request")).await;
    let mut c = srv.client().await;
    let err = c.invoke(text_request(model, "hi")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(up.requests().len(), 1, "not retried");

    // max_retries = 0: exactly one request.
    config.retry.max_retries = 0;
    let (up, srv) = openai_upstream(config, |_| openai_error(503, "down")).await;
    let mut c = srv.client().await;
    let err = c.invoke(text_request(model, "hi")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(up.requests().len(), 1);
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    let srv = TestServer::start(Config::default(), env(&[])).await;
    let mut c = srv.client().await;
    let base = text_request("fake:echo", "hi");
    let object = |fields: &[(&str, &str)]| prost_types::Struct {
        fields: fields
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    prost_types::Value {
                        kind: Some(prost_types::value::Kind::StringValue(v.to_string())),
                    },
                )
            })
            .collect(),
    };
    let tool = |name: &str, params: Option<prost_types::Struct>| pb::Tool {
        name: name.into(),
        description: String::new(),
        parameters: params,
        ..Default::default()
    };
    let cases: Vec<(pb::ChatRequest, Code, &str)> = vec![
        (
            pb::ChatRequest {
                messages: vec![],
                ..base.clone()
            },
            Code::InvalidArgument,
            "messages: at least one message",
        ),
        (
            pb::ChatRequest {
                model: String::new(),
                ..base.clone()
            },
            Code::InvalidArgument,
            "model: must be set",
        ),
        (
            pb::ChatRequest {
                model: "nope:x".into(),
                ..base.clone()
            },
            Code::NotFound,
            "unknown provider",
        ),
        (
            pb::ChatRequest {
                model: "gpt-4o".into(),
                ..base.clone()
            },
            Code::NotFound,
            "unknown model or alias",
        ),
        (
            pb::ChatRequest {
                model: "fake:nope".into(),
                ..base.clone()
            },
            Code::NotFound,
            "fake has no model",
        ),
        (
            pb::ChatRequest {
                model: "anthropic:claude-3-haiku-20240307".into(),
                ..base.clone()
            },
            Code::FailedPrecondition,
            "ANTHROPIC_API_KEY",
        ),
        (
            pb::ChatRequest {
                messages: vec![
                    msg(pb::Role::User, vec![text("a")]),
                    msg(pb::Role::Assistant, vec![text("b")]),
                    msg(pb::Role::Unspecified, vec![text("c")]),
                ],
                ..base.clone()
            },
            Code::InvalidArgument,
            "messages[2].role: must be set",
        ),
        (
            pb::ChatRequest {
                messages: vec![msg(pb::Role::User, vec![])],
                ..base.clone()
            },
            Code::InvalidArgument,
            "messages[0].content: at least one",
        ),
        (
            pb::ChatRequest {
                messages: vec![pb::Message {
                    role: 42,
                    content: vec![text("x")],
                    ..Default::default()
                }],
                ..base.clone()
            },
            Code::InvalidArgument,
            "messages[0].role: unknown role 42",
        ),
        (
            pb::ChatRequest {
                tools: vec![tool("f", None)],
                ..base.clone()
            },
            Code::InvalidArgument,
            "tools[0].parameters: must be a JSON-schema object",
        ),
        (
            pb::ChatRequest {
                tools: vec![
                    tool("f", Some(object(&[("type", "object")]))),
                    tool("f", Some(object(&[]))),
                ],
                ..base.clone()
            },
            Code::InvalidArgument,
            "tools[1].name: duplicate tool name",
        ),
        (
            pb::ChatRequest {
                max_tokens: Some(0),
                ..base.clone()
            },
            Code::InvalidArgument,
            "maxTokens: must be greater than 0",
        ),
        (
            pb::ChatRequest {
                temperature: Some(2.5),
                ..base.clone()
            },
            Code::InvalidArgument,
            "temperature: 2.5 is outside [0, 2]",
        ),
        (
            pb::ChatRequest {
                temperature: Some(-0.1),
                ..base.clone()
            },
            Code::InvalidArgument,
            "temperature",
        ),
        (
            pb::ChatRequest {
                top_p: Some(1.5),
                ..base.clone()
            },
            Code::InvalidArgument,
            "topP: 1.5 is outside [0, 1]",
        ),
        (
            pb::ChatRequest {
                config: Some(pb::RunConfig {
                    run_id: "not-a-uuid".into(),
                    ..Default::default()
                }),
                ..base.clone()
            },
            Code::InvalidArgument,
            "config.runId",
        ),
        (
            pb::ChatRequest {
                tool_choice: Some(pb::ToolChoice {
                    mode: pb::tool_choice::Mode::Tool as i32,
                    name: "zzz".into(),
                }),
                ..base.clone()
            },
            Code::InvalidArgument,
            "toolChoice.name",
        ),
        (
            text_request("fake:script", "not json"),
            Code::InvalidArgument,
            "fake:script takes a JSON script",
        ),
    ];
    for (req, code, needle) in cases {
        for rpc in 0..3 {
            let status = match rpc {
                0 => c.invoke(req.clone()).await.unwrap_err(),
                1 => collect_stream(&mut c, req.clone()).await.1.unwrap(),
                _ => collect_events(&mut c, req.clone()).await.1.unwrap(),
            };
            assert_eq!(
                status.code(),
                code,
                "rpc {rpc}: {needle}: {}",
                status.message()
            );
            assert!(
                status.message().contains(needle),
                "rpc {rpc}: want {needle:?} in {:?}",
                status.message()
            );
            assert!(!reason(&status).is_empty());
        }
    }
}

#[tokio::test]
async fn non_streaming_model_yields_exactly_one_chunk() {
    let config =
        Config::from_toml("[models.batch]\ntarget = \"fake:echo\"\nstreaming = false\n").unwrap();
    let srv = TestServer::start(config, env(&[])).await;
    let mut c = srv.client().await;
    let mut req = text_request("batch", "one two three");
    req.config = Some(pb::RunConfig {
        run_id: "0190b8f0-0000-7000-8000-000000000002".into(),
        ..Default::default()
    });
    let (chunks, status) = collect_stream(&mut c, req.clone()).await;
    assert!(status.is_none());
    assert_eq!(chunks.len(), 1, "{chunks:?}");
    assert!(chunks[0].last && chunks[0].usage.is_some());
    assert_eq!(chunks[0].delta, Some(Delta::Text("one two three".into())));
    let invoked = c.invoke(req.clone()).await.unwrap().into_inner();
    assert_eq!(comparable(&invoked), fold(&chunks));
    let (events, _) = collect_events(&mut c, req).await;
    assert_eq!(events.len(), 3);

    let models = c
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner();
    let batch = models.models.iter().find(|m| m.name == "batch").unwrap();
    assert_eq!(
        (
            batch.provider.as_str(),
            batch.target.as_str(),
            batch.streaming
        ),
        ("fake", "fake:echo", false)
    );
    assert!(models
        .providers
        .iter()
        .any(|p| p.name == "anthropic" && !p.configured));
    assert!(models.models.iter().any(|m| m.name == "fake:echo"));
}

#[tokio::test]
async fn max_tokens_cuts_the_echo_and_says_so() {
    let srv = TestServer::start(Config::default(), env(&[])).await;
    let mut c = srv.client().await;
    let mut req = text_request("fake:echo", "a b c d");
    req.max_tokens = Some(3);
    let m = c.invoke(req).await.unwrap().into_inner();
    assert_eq!(
        m.content[0].block,
        Some(pb::content_block::Block::Text("a b".into()))
    );
    assert_eq!(m.stop_reason, pb::StopReason::MaxTokens as i32);
}

#[tokio::test]
async fn health_and_reflection_answer() {
    let srv = TestServer::start(Config::default(), env(&[])).await;
    let ch = srv.channel().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    for service in ["", "chatwire.v1.ChatModelService"] {
        let r = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            r.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{service:?}"
        );
    }

    use tonic_reflection::pb::{v1, v1alpha};
    let mut v1c = v1::server_reflection_client::ServerReflectionClient::new(ch.clone());
    let req = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut s = v1c
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let resp = s.next().await.unwrap().unwrap();
    let names: Vec<String> = match resp.message_response {
        Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(l)) => {
            l.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("{other:?}"),
    };
    assert!(
        names.contains(&"chatwire.v1.ChatModelService".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );

    let mut alpha = v1alpha::server_reflection_client::ServerReflectionClient::new(ch);
    let req = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                "chatwire.v1.ChatModelService".into(),
            ),
        ),
    };
    let mut s = alpha
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    match s.next().await.unwrap().unwrap().message_response {
        Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(f)) => {
            assert!(!f.file_descriptor_proto.is_empty());
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn caller_deadline_ends_a_slow_stream_with_deadline_exceeded() {
    let srv = TestServer::start(Config::default(), env(&[])).await;
    let mut c = srv.client().await;
    let mut req = tonic::Request::new(script_request(serde_json::json!({
        "chunks": [{"text": "a"}, {"text": "b"}, {"text": "c"}, {"text": "d"}],
        "delayMs": 300
    })));
    req.set_timeout(Duration::from_millis(700));
    let mut s = c.stream(req).await.unwrap().into_inner();
    let mut got = Vec::new();
    let status = loop {
        match s.next().await {
            Some(Ok(c)) => got.push(c),
            Some(Err(e)) => break Some(e),
            None => break None,
        }
    };
    let status = status.expect("never OK");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(got.len() < 5);
}

#[test]
fn the_example_config_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/chatwire.example.toml");
    let c = Config::from_file(std::path::Path::new(path)).unwrap();
    assert_eq!(c.aliases["fast"].targets.len(), 3);
    assert_eq!(c.aliases["batch"].options.streaming, Some(false));
    assert!(!c.model_options["openai:llama-3.1-8b"].include_usage);
    assert!(c.fake_scripts.contains_key("weather"));
    let bad = Config::from_toml("[fake.scripts.x]\nchunks = [{txt = \"a\"}]\n").unwrap_err();
    assert!(
        bad.contains("fake.scripts.x") && bad.contains("txt"),
        "{bad}"
    );
    let bad = Config::from_toml("[timers]\nidel_secs = 3\n").unwrap_err();
    assert!(bad.contains("idel_secs"), "{bad}");
}

#[tokio::test]
async fn a_script_from_the_config_is_a_model_of_its_own() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/chatwire.example.toml");
    let mut config = Config::from_file(std::path::Path::new(path)).unwrap();
    config.fake_token_delay = Duration::ZERO;
    let srv = TestServer::start(config, env(&[])).await;
    let mut c = srv.client().await;
    let (chunks, status) = collect_stream(&mut c, text_request("fake:weather", "anything")).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(chunks.len(), 4);
    let m = c
        .invoke(text_request("fake:weather", "anything"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.id, "msg_weather");
    assert_eq!(m.model, "weather");
    assert_eq!(m.tool_calls[0].name, "get_weather");
    assert_eq!(m.stop_reason, pb::StopReason::ToolUse as i32);
    let models = c
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(models.models.iter().any(|m| m.name == "fake:weather"));
}
