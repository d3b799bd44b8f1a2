//! API 1.1 on the anthropic provider, through the real gRPC surface against a
//! mock Anthropic upstream: each new request field reaches the upstream body
//! in Anthropic's form (asserted field by field, exactly), or is refused with
//! INVALID_ARGUMENT naming the field and the provider before any upstream
//! call; and `citations_delta` comes back as citation chunks and Invoke's
//! `citations`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use chatwire::{api::convert::json_to_struct, config::Config, pb};
use common::*;
use pb::{content_block::Block, message_chunk::Delta};
use serde_json::{json, Value};
use tonic::Code;

const MODEL: &str = "anthropic:claude-3-haiku-20240307";
const BETA: &str = "structured-outputs-2025-11-13";

fn ev(data: Value) -> String {
    format!(
        "event: {}\ndata: {data}\n\n",
        data["type"].as_str().unwrap()
    )
}

fn start(id: &str) -> String {
    ev(
        json!({"type":"message_start","message":{"id":id,"type":"message","role":"assistant",
        "model":"claude-3-haiku-20240307","content":[],"stop_reason":null,"stop_sequence":null,
        "usage":{"input_tokens":10,"output_tokens":1}}}),
    )
}

fn end() -> String {
    ev(
        json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":5}}),
    ) + &ev(json!({"type":"message_stop"}))
}

/// A short text answer, for the tests that look at the request.
fn ok_body() -> String {
    start("msg_ok")
        + &ev(
            json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        )
        + &ev(
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"ok"}}),
        )
        + &ev(json!({"type":"content_block_stop","index":0}))
        + &end()
}

async fn server(up: &MockUpstream, config: Config) -> TestServer {
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

fn obj(v: Value) -> prost_types::Struct {
    json_to_struct(v.as_object().unwrap())
}

fn block(b: Block) -> pb::ContentBlock {
    pb::ContentBlock {
        block: Some(b),
        ..Default::default()
    }
}

fn cached(b: Block, ttl: &str) -> pb::ContentBlock {
    pb::ContentBlock {
        block: Some(b),
        cache_control: Some(pb::CacheControl { ttl: ttl.into() }),
    }
}

fn file(source: pb::file::Source, mime: &str, name: &str) -> Block {
    Block::File(pb::File {
        source: Some(source),
        mime_type: mime.into(),
        filename: name.into(),
    })
}

fn reasoning(effort: pb::ReasoningEffort, budget: Option<u32>) -> Option<pb::ReasoningConfig> {
    Some(pb::ReasoningConfig {
        effort: effort as i32,
        budget_tokens: budget,
        include_reasoning: None,
    })
}

fn a_tool(name: &str) -> pb::Tool {
    pb::Tool {
        name: name.into(),
        description: format!("the {name} tool"),
        parameters: Some(obj(
            json!({"type":"object","properties":{"q":{"type":"string"}}}),
        )),
        ..Default::default()
    }
}

/// Sends `req` (Stream) and returns the one upstream request it made.
async fn sent(req: pb::ChatRequest) -> Recorded {
    sent_with(req, Config::default()).await
}

async fn sent_with(req: pb::ChatRequest, config: Config) -> Recorded {
    let up = MockUpstream::start(|_| Reply::sse(ok_body())).await;
    let srv = server(&up, config).await;
    let mut client = srv.client().await;
    let (chunks, status) = collect_stream(&mut client, req).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(chunk_text(&chunks), "ok");
    let reqs = up.requests();
    assert_eq!(reqs.len(), 1);
    reqs[0].clone()
}

#[tokio::test]
async fn thinking_with_a_budget_and_with_an_effort() {
    // A budget below the request's max tokens goes as is.
    let mut req = text_request(MODEL, "think");
    req.max_tokens = Some(4096);
    req.reasoning = reasoning(pb::ReasoningEffort::Unspecified, Some(2048));
    let body = sent(req).await.json();
    assert_eq!(
        body["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
    assert_eq!(body["max_tokens"], 4096);
    assert!(body.get("temperature").is_none());

    // An effort is a budget (high: 16384); with no max tokens set anywhere,
    // chatwire sends room for the thinking plus an answer.
    let mut req = text_request(MODEL, "think hard");
    req.reasoning = reasoning(pb::ReasoningEffort::High, None);
    let body = sent(req).await.json();
    assert_eq!(
        body["thinking"],
        json!({"type": "enabled", "budget_tokens": 16384})
    );
    assert_eq!(body["max_tokens"], 16384 + 1024);

    let mut req = text_request(MODEL, "think a little");
    req.max_tokens = Some(2000);
    req.reasoning = reasoning(pb::ReasoningEffort::Low, None);
    assert_eq!(
        sent(req).await.json()["thinking"],
        json!({"type": "enabled", "budget_tokens": 1024})
    );

    // Effort NONE turns thinking off.
    let mut req = text_request(MODEL, "no thinking");
    req.reasoning = reasoning(pb::ReasoningEffort::None, None);
    let body = sent(req).await.json();
    assert_eq!(body["thinking"], json!({"type": "disabled"}));
    assert_eq!(body["max_tokens"], 1024);
}

#[tokio::test]
async fn what_anthropic_cannot_do_is_refused_before_any_call() {
    type Edit = Box<dyn Fn(&mut pb::ChatRequest)>;
    let thinking = |r: &mut pb::ChatRequest| {
        r.reasoning = reasoning(pb::ReasoningEffort::Unspecified, Some(2048));
    };
    let cases: Vec<(&str, Edit)> = vec![
        (
            "reasoning.budgetTokens",
            Box::new(|r| r.reasoning = reasoning(pb::ReasoningEffort::Unspecified, Some(512))),
        ),
        (
            "reasoning.budgetTokens",
            Box::new(|r| {
                r.max_tokens = Some(4096);
                r.reasoning = reasoning(pb::ReasoningEffort::Unspecified, Some(4096));
            }),
        ),
        (
            "reasoning.effort",
            Box::new(|r| {
                r.max_tokens = Some(4096);
                r.reasoning = reasoning(pb::ReasoningEffort::High, None);
            }),
        ),
        (
            "temperature",
            Box::new(move |r| {
                thinking(r);
                r.temperature = Some(0.5);
            }),
        ),
        (
            "topK",
            Box::new(move |r| {
                thinking(r);
                r.top_k = Some(40);
            }),
        ),
        (
            "reasoning.includeReasoning",
            Box::new(|r| {
                r.reasoning = Some(pb::ReasoningConfig {
                    effort: pb::ReasoningEffort::Low as i32,
                    budget_tokens: None,
                    include_reasoning: Some(false),
                })
            }),
        ),
        ("seed", Box::new(|r| r.seed = Some(7))),
        (
            "frequencyPenalty",
            Box::new(|r| r.frequency_penalty = Some(0.5)),
        ),
        (
            "presencePenalty",
            Box::new(|r| r.presence_penalty = Some(0.5)),
        ),
        (
            "messages[0].name",
            Box::new(|r| r.messages[0].name = "alice".into()),
        ),
        (
            "messages[0].content[1].audio",
            Box::new(|r| {
                r.messages[0].content.push(block(Block::Audio(pb::Audio {
                    data: b"RIFF".to_vec(),
                    mime_type: "audio/wav".into(),
                })))
            }),
        ),
        (
            "responseFormat",
            Box::new(|r| {
                r.response_format = Some(pb::ResponseFormat {
                    r#type: pb::ResponseFormatType::JsonObject as i32,
                    ..Default::default()
                })
            }),
        ),
        (
            "providerOptions.model",
            Box::new(|r| r.provider_options = Some(obj(json!({"model": "claude-other"})))),
        ),
        (
            "providerOptions.thinking",
            Box::new(|r| {
                r.provider_options = Some(obj(
                    json!({"thinking": {"type": "enabled", "budget_tokens": 2048}}),
                ))
            }),
        ),
    ];
    let up = MockUpstream::start(|_| Reply::sse(ok_body())).await;
    let srv = server(&up, no_retry()).await;
    let mut client = srv.client().await;
    for (field, edit) in &cases {
        let mut req = text_request(MODEL, "hi");
        edit(&mut req);
        let (chunks, status) = collect_stream(&mut client, req.clone()).await;
        let status = status.unwrap_or_else(|| panic!("{field}: not refused"));
        assert!(chunks.is_empty());
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        let m = status.message();
        assert!(m.starts_with(&format!("{field}:")), "{field}: {m}");
        assert!(m.contains("anthropic"), "{field}: {m}");
        // Invoke refuses it the same way.
        let e = client.invoke(req).await.unwrap_err();
        assert_eq!((e.code(), e.message()), (Code::InvalidArgument, m));
    }
    // The JSON object refusal says what to do instead.
    let mut req = text_request(MODEL, "hi");
    req.response_format = Some(pb::ResponseFormat {
        r#type: pb::ResponseFormatType::JsonObject as i32,
        ..Default::default()
    });
    let e = client.invoke(req).await.unwrap_err();
    assert!(e.message().contains("JSON_SCHEMA"), "{}", e.message());
    assert!(e.message().contains("tool"), "{}", e.message());
    assert!(
        up.requests().is_empty(),
        "a refused request reached anthropic"
    );
}

#[tokio::test]
async fn a_json_schema_is_output_format_with_the_structured_outputs_beta() {
    let schema = json!({"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false});
    let mut req = text_request(MODEL, "where?");
    req.response_format = Some(pb::ResponseFormat {
        r#type: pb::ResponseFormatType::JsonSchema as i32,
        name: "place".into(),
        schema: Some(obj(schema.clone())),
        strict: true,
        description: String::new(),
    });
    // The configured betas stay, in the one header.
    let mut config = Config::default();
    let mut file = chatwire::config::ProviderFile::default();
    file.headers
        .insert("anthropic-beta".into(), "files-api-2025-04-14".into());
    config.providers.insert("anthropic".into(), file);
    let r = sent_with(req.clone(), config).await;
    assert_eq!(
        r.json()["output_format"],
        json!({"type": "json_schema", "schema": schema})
    );
    let betas: Vec<(String, String)> = r
        .headers
        .iter()
        .filter(|(k, _)| k == "anthropic-beta")
        .cloned()
        .collect();
    assert_eq!(
        betas,
        [(
            "anthropic-beta".to_string(),
            format!("files-api-2025-04-14,{BETA}")
        )]
    );
    let r = sent(req).await;
    assert_eq!(r.header("anthropic-beta").as_deref(), Some(BETA));

    // Plain text asks for nothing.
    let mut req = text_request(MODEL, "where?");
    req.response_format = Some(pb::ResponseFormat {
        r#type: pb::ResponseFormatType::Text as i32,
        ..Default::default()
    });
    let r = sent(req).await;
    assert!(r.json().get("output_format").is_none());
    assert_eq!(r.header("anthropic-beta"), None);
}

#[tokio::test]
async fn top_k_and_one_tool_call_per_turn() {
    let mut req = text_request(MODEL, "pick");
    req.top_k = Some(40);
    req.tools = vec![a_tool("search")];
    req.parallel_tool_calls = Some(false);
    let body = sent(req).await.json();
    assert_eq!(body["top_k"], 40);
    assert_eq!(
        body["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );

    // On the request's own tool choice.
    let mut req = text_request(MODEL, "pick");
    req.tools = vec![a_tool("search")];
    req.tool_choice = Some(pb::ToolChoice {
        mode: pb::tool_choice::Mode::Tool as i32,
        name: "search".into(),
    });
    req.parallel_tool_calls = Some(false);
    assert_eq!(
        sent(req).await.json()["tool_choice"],
        json!({"type": "tool", "name": "search", "disable_parallel_tool_use": true})
    );

    // true is Anthropic's default: nothing to send.
    let mut req = text_request(MODEL, "pick");
    req.tools = vec![a_tool("search")];
    req.parallel_tool_calls = Some(true);
    let body = sent(req).await.json();
    assert!(body.get("tool_choice").is_none(), "{body}");
    assert!(body.get("top_k").is_none());
}

#[tokio::test]
async fn files_are_document_blocks_and_data_url_images_are_base64() {
    use pb::{file::Source as F, image::Source as I};
    let mut req = text_request(MODEL, "read these");
    req.messages[0].content.extend([
        block(file(
            F::Data(b"%PDF-1.7".to_vec()),
            "application/pdf",
            "report.pdf",
        )),
        block(file(
            F::Url("https://example.com/paper.pdf".into()),
            "",
            "Paper",
        )),
        block(file(F::Data("héllo".as_bytes().to_vec()), "text/plain", "")),
        block(Block::Image(pb::Image {
            source: Some(I::Url("data:image/png;base64,iVBORw0K".into())),
            mime_type: String::new(),
        })),
        block(Block::Image(pb::Image {
            source: Some(I::Url("https://example.com/cat.png".into())),
            mime_type: String::new(),
        })),
    ]);
    let body = sent(req).await.json();
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [
            {"type": "text", "text": "read these"},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjc="}, "title": "report.pdf"},
            {"type": "document", "source": {"type": "url", "url": "https://example.com/paper.pdf"}, "title": "Paper"},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "héllo"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        ]}])
    );
}

#[tokio::test]
async fn a_tool_result_with_blocks_sends_them_after_its_text() {
    use pb::file::Source as F;
    let call = pb::ToolCall {
        id: "toolu_1".into(),
        name: "fetch".into(),
        arguments: Some(obj(json!({"q": "report"}))),
        ..Default::default()
    };
    let result = |content: &str| pb::ToolResult {
        tool_call_id: "toolu_1".into(),
        content: content.into(),
        is_error: false,
        blocks: vec![
            block(Block::Text("page one".into())),
            block(Block::Image(pb::Image {
                source: Some(pb::image::Source::Data(b"foo".to_vec())),
                mime_type: "image/png".into(),
            })),
            block(file(F::Data(b"%PDF".to_vec()), "application/pdf", "r.pdf")),
        ],
    };
    let mut req = text_request(MODEL, "get the report");
    req.tools = vec![a_tool("fetch")];
    req.messages.extend([
        msg(pb::Role::Assistant, vec![block(Block::ToolCall(call))]),
        msg(
            pb::Role::Tool,
            vec![block(Block::ToolResult(result("see attached")))],
        ),
    ]);
    let blocks = json!([
        {"type": "text", "text": "page one"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "Zm9v"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERg=="}, "title": "r.pdf"},
    ]);
    let mut with_text = vec![json!({"type": "text", "text": "see attached"})];
    with_text.extend(blocks.as_array().unwrap().iter().cloned());
    assert_eq!(
        sent(req.clone()).await.json()["messages"][2],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": with_text},
        ]})
    );
    // Without text: the blocks alone.
    req.messages[2].content = vec![block(Block::ToolResult(result("")))];
    assert_eq!(
        sent(req).await.json()["messages"][2]["content"][0]["content"],
        blocks
    );
}

#[tokio::test]
async fn cache_breakpoints_on_a_block_a_message_a_system_block_and_a_tool() {
    let mut system = msg(pb::Role::System, vec![text("You are terse.")]);
    system
        .content
        .push(cached(Block::Text("Long reference text.".into()), "1h"));
    let mut user = msg(
        pb::Role::User,
        vec![
            cached(Block::Text("first".into()), "5m"),
            block(Block::Text("second".into())),
            block(Block::Text("third".into())),
        ],
    );
    user.cache_control = Some(pb::CacheControl { ttl: "1h".into() });
    let mut tool = a_tool("search");
    tool.cache_control = Some(pb::CacheControl { ttl: "1h".into() });
    let req = pb::ChatRequest {
        model: MODEL.into(),
        messages: vec![system, user],
        tools: vec![a_tool("lookup"), tool],
        ..Default::default()
    };
    let body = sent(req).await.json();
    let eph = json!({"type": "ephemeral"});
    let hour = json!({"type": "ephemeral", "ttl": "1h"});
    assert_eq!(
        body["system"],
        json!([
            {"type": "text", "text": "You are terse."},
            {"type": "text", "text": "Long reference text.", "cache_control": hour},
        ])
    );
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [
            {"type": "text", "text": "first", "cache_control": eph},
            {"type": "text", "text": "second"},
            {"type": "text", "text": "third", "cache_control": hour},
        ]}])
    );
    assert!(body["tools"][0].get("cache_control").is_none());
    assert_eq!(body["tools"][1]["cache_control"], hour);
    assert_eq!(body["tools"][1]["name"], "search");
}

#[tokio::test]
async fn provider_options_are_merged_into_the_body() {
    let mut req = text_request(MODEL, "hi");
    req.provider_options = Some(obj(
        json!({"metadata": {"user_id": "u-42"}, "service_tier": "standard_only"}),
    ));
    let body = sent(req).await.json();
    assert_eq!(body["metadata"], json!({"user_id": "u-42"}));
    assert_eq!(body["service_tier"], "standard_only");
    assert_eq!(body["model"], "claude-3-haiku-20240307");
    // (An owned key, `model` or `thinking`, is refused: see the refusals test.)
}

#[tokio::test]
async fn tool_use_input_keeps_the_exact_numbers_of_arguments_json() {
    let exact =
        r#"{"n": 12345678901234567891, "x": -0.0, "d": 0.1000000000000000055511151231257827}"#;
    let mut req = text_request(MODEL, "compute");
    req.tools = vec![a_tool("calc")];
    req.messages.extend([
        msg(
            pb::Role::Assistant,
            vec![block(Block::ToolCall(pb::ToolCall {
                id: "toolu_n".into(),
                name: "calc".into(),
                arguments: None,
                arguments_json: exact.into(),
            }))],
        ),
        msg(
            pb::Role::Tool,
            vec![block(Block::ToolResult(pb::ToolResult {
                tool_call_id: "toolu_n".into(),
                content: "done".into(),
                ..Default::default()
            }))],
        ),
    ]);
    let r = sent(req).await;
    let raw = String::from_utf8(r.body.clone()).unwrap();
    for written in [
        r#""n":12345678901234567891"#,
        r#""x":-0.0"#,
        r#""d":0.1000000000000000055511151231257827"#,
    ] {
        assert!(raw.contains(written), "{written} not in {raw}");
    }
    let input = &r.json()["messages"][1]["content"][0];
    assert_eq!(input["type"], "tool_use");
    assert_eq!(input["id"], "toolu_n");
    assert_eq!(input["input"]["n"].to_string(), "12345678901234567891");
}

/// A thinking block, then a text block whose citation arrives before its text
/// (as Anthropic streams them), then a second cited text block.
fn citations_body() -> String {
    let mut b = start("msg_cite");
    b += &ev(
        json!({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}),
    );
    b += &ev(
        json!({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Look it up."}}),
    );
    b += &ev(
        json!({"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"c2ln"}}),
    );
    b += &ev(json!({"type":"content_block_stop","index":0}));
    b += &ev(
        json!({"type":"content_block_start","index":1,"content_block":{"citations":[],"type":"text","text":""}}),
    );
    b += &ev(
        json!({"type":"content_block_delta","index":1,"delta":{"type":"citations_delta","citation":{
            "type":"char_location","cited_text":"The grass is green.","document_index":0,
            "document_title":"Facts","start_char_index":0,"end_char_index":20}}}),
    );
    b += &ev(
        json!({"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"The grass is green."}}),
    );
    b += &ev(json!({"type":"content_block_stop","index":1}));
    b += &ev(
        json!({"type":"content_block_start","index":2,"content_block":{"citations":[],"type":"text","text":""}}),
    );
    b += &ev(
        json!({"type":"content_block_delta","index":2,"delta":{"type":"citations_delta","citation":{
            "type":"page_location","cited_text":"Skies are blue.","document_index":1,
            "document_title":"Sky","start_page_number":2,"end_page_number":3}}}),
    );
    b += &ev(
        json!({"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":" The sky is blue."}}),
    );
    b += &ev(json!({"type":"content_block_stop","index":2}));
    b + &end()
}

#[tokio::test]
async fn citations_delta_gives_citation_chunks_and_invokes_citations() {
    let up = MockUpstream::start(|_| Reply::sse(citations_body())).await;
    let srv = server(&up, Config::default()).await;
    let mut client = srv.client().await;
    let req = text_request(MODEL, "what colour?");
    let (chunks, status) = collect_stream(&mut client, req.clone()).await;
    assert!(status.is_none(), "{status:?}");
    let want = vec![
        pb::Citation {
            block_index: 1,
            r#type: "char_location".into(),
            cited_text: "The grass is green.".into(),
            url: String::new(),
            title: "Facts".into(),
            start: 0,
            end: 20,
        },
        pb::Citation {
            block_index: 1,
            r#type: "page_location".into(),
            cited_text: "Skies are blue.".into(),
            url: String::new(),
            title: "Sky".into(),
            start: 2,
            end: 3,
        },
    ];
    // Each citation is a chunk of its own, on its text block (after the thinking block 0).
    let cited: Vec<(u32, pb::Citation)> = chunks
        .iter()
        .filter_map(|c| match &c.delta {
            Some(Delta::Citation(ct)) => Some((c.block_index, ct.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        cited,
        want.iter().map(|c| (1, c.clone())).collect::<Vec<_>>()
    );
    let invoked = client.invoke(req).await.unwrap().into_inner();
    assert_eq!(invoked.citations, want);
    assert_eq!(comparable(&invoked), comparable(&fold(&chunks)));
    assert_eq!(
        invoked.content[1],
        text("The grass is green. The sky is blue.")
    );
    assert!(matches!(
        invoked.content[0].block,
        Some(Block::Reasoning(_))
    ));
}

/// A recorded web-search answer (../shared/fixtures, when present): every
/// citation comes out, in order, on the answer's text block.
#[tokio::test]
async fn a_recorded_web_search_answer_keeps_its_citations() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/anthropic");
    let sse = dir.join("web_search_citations_llm.sse");
    if !sse.is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set and {} is absent",
            sse.display()
        );
        eprintln!("SKIPPED: {} is absent", sse.display());
        return;
    }
    let body = std::fs::read(&sse).unwrap();
    let meta: Value =
        serde_json::from_slice(&std::fs::read(dir.join("web_search_citations_llm.json")).unwrap())
            .unwrap();
    let want: Vec<pb::Citation> = meta["expected"]["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["citations"].as_array().cloned().unwrap_or_default())
        .map(|c| pb::Citation {
            block_index: 0,
            r#type: c["type"].as_str().unwrap().into(),
            cited_text: c["cited_text"].as_str().unwrap().into(),
            url: c["url"].as_str().unwrap_or("").into(),
            title: c["title"].as_str().unwrap_or("").into(),
            start: 0,
            end: 0,
        })
        .collect();
    assert_eq!(want.len(), 5);
    let up = MockUpstream::start(move |_| Reply::sse(body.clone())).await;
    let srv = server(&up, Config::default()).await;
    let mut client = srv.client().await;
    let invoked = client
        .invoke(text_request(MODEL, "weather?"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(invoked.citations, want);
    assert_eq!(invoked.content.len(), 1);
}
