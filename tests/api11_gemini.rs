//! API 1.1 through the `gemini` provider, end to end: the real gRPC server in
//! front of a mock Gemini API on 127.0.0.1. Each new request field is checked
//! as the exact JSON Gemini receives (reasoning → thinkingConfig, responseFormat,
//! seed / topK / penalties, files, audio, tool-result blocks, cache breakpoints,
//! providerOptions merged, exact tool-call numbers); what Gemini lacks is
//! INVALID_ARGUMENT naming the field and the provider, before any upstream call;
//! search grounding comes back as `citation` chunks and Invoke's `citations`.
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
use tonic::{transport::Channel, Code};

type Client = pb::chat_model_service_client::ChatModelServiceClient<Channel>;

const FLASH_25: &str = "gemini:gemini-2.5-flash";
const PRO_3: &str = "gemini:gemini-3-pro-preview";

fn sse(events: &[Value]) -> String {
    events.iter().map(|e| format!("data: {e}\n\n")).collect()
}

fn ok_body() -> String {
    sse(&[
        json!({"candidates":[{"content":{"role":"model","parts":[{"text":"ok"}]},"finishReason":"STOP","index":0}],
        "usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":1,"totalTokenCount":4},"responseId":"r-ok"}),
    ])
}

/// A mock Gemini answering "ok", the server in front of it, and a client.
async fn setup() -> (MockUpstream, TestServer, Client) {
    let up = MockUpstream::start(|_| Reply::sse(ok_body())).await;
    let mut config = Config::default();
    config.retry.max_retries = 0;
    let srv = TestServer::start(
        config,
        env(&[("GEMINI_API_KEY", "gk"), ("GEMINI_BASE_URL", &up.url)]),
    )
    .await;
    let c = srv.client().await;
    (up, srv, c)
}

/// Invokes `req` and returns the JSON body Gemini received for it.
async fn sent(c: &mut Client, up: &MockUpstream, req: pb::ChatRequest) -> Value {
    let before = up.requests().len();
    let m = c.invoke(req).await.unwrap().into_inner();
    assert_eq!(m.content, vec![text("ok")]);
    let reqs = up.requests();
    assert_eq!(reqs.len(), before + 1);
    reqs[before].json()
}

/// Invokes `req` and checks it is INVALID_ARGUMENT naming `field` and the
/// provider, and that nothing reached Gemini.
async fn refused(c: &mut Client, up: &MockUpstream, req: pb::ChatRequest, field: &str) {
    let before = up.requests().len();
    let e = c.invoke(req).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{field}: {e:?}");
    assert!(e.message().contains(field), "{field}: {}", e.message());
    assert!(e.message().contains("gemini"), "{field}: {}", e.message());
    assert_eq!(up.requests().len(), before, "{field}: nothing is sent");
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

fn reasoning(
    effort: pb::ReasoningEffort,
    budget: Option<u32>,
    include: Option<bool>,
) -> pb::ReasoningConfig {
    pb::ReasoningConfig {
        effort: effort as i32,
        budget_tokens: budget,
        include_reasoning: include,
    }
}

fn tool_call(id: &str, name: &str, arguments_json: &str) -> pb::ContentBlock {
    block(Block::ToolCall(pb::ToolCall {
        id: id.into(),
        name: name.into(),
        arguments: None,
        arguments_json: arguments_json.into(),
    }))
}

fn weather_tool() -> pb::Tool {
    pb::Tool {
        name: "weather".into(),
        description: "Weather".into(),
        parameters: Some(obj(json!({"type": "object"}))),
        ..Default::default()
    }
}

#[tokio::test]
async fn reasoning_maps_to_thinking_config_and_nothing_is_guessed() {
    use pb::ReasoningEffort as E;
    let (up, _srv, mut c) = setup().await;
    for (model, r, want) in [
        (
            FLASH_25,
            reasoning(E::None, None, None),
            json!({"thinkingBudget": 0}),
        ),
        (
            FLASH_25,
            reasoning(E::Minimal, None, None),
            json!({"thinkingBudget": 512}),
        ),
        (
            FLASH_25,
            reasoning(E::Low, None, None),
            json!({"thinkingBudget": 1024}),
        ),
        (
            FLASH_25,
            reasoning(E::Medium, None, None),
            json!({"thinkingBudget": 8192}),
        ),
        (
            FLASH_25,
            reasoning(E::High, None, Some(true)),
            json!({"thinkingBudget": 24576, "includeThoughts": true}),
        ),
        (
            FLASH_25,
            reasoning(E::Unspecified, Some(2048), Some(false)),
            json!({"thinkingBudget": 2048, "includeThoughts": false}),
        ),
        (
            FLASH_25,
            reasoning(E::Unspecified, None, Some(true)),
            json!({"includeThoughts": true}),
        ),
        (
            PRO_3,
            reasoning(E::None, None, None),
            json!({"thinkingBudget": 0}),
        ),
        (
            PRO_3,
            reasoning(E::Minimal, None, None),
            json!({"thinkingLevel": "minimal"}),
        ),
        (
            PRO_3,
            reasoning(E::Low, None, Some(true)),
            json!({"thinkingLevel": "low", "includeThoughts": true}),
        ),
        (
            PRO_3,
            reasoning(E::Medium, None, None),
            json!({"thinkingLevel": "medium"}),
        ),
        (
            PRO_3,
            reasoning(E::High, None, None),
            json!({"thinkingLevel": "high"}),
        ),
        (
            PRO_3,
            reasoning(E::High, Some(4096), None),
            json!({"thinkingBudget": 4096}),
        ),
    ] {
        let mut req = text_request(model, "think");
        req.reasoning = Some(r);
        let body = sent(&mut c, &up, req).await;
        assert_eq!(
            body["generationConfig"],
            json!({ "thinkingConfig": want }),
            "{model} {r:?}"
        );
    }
    // No reasoning field: no thinkingConfig (nor generationConfig), whatever the model.
    for model in [FLASH_25, PRO_3] {
        let body = sent(&mut c, &up, text_request(model, "plain")).await;
        assert_eq!(
            body,
            json!({"contents": [{"role": "user", "parts": [{"text": "plain"}]}]}),
            "{model}"
        );
    }
    assert!(up.requests()[13]
        .path
        .starts_with("/v1beta/models/gemini-2.5-flash:streamGenerateContent"));
}

#[tokio::test]
async fn response_format_seed_top_k_and_penalties() {
    use pb::ResponseFormatType as T;
    let (up, _srv, mut c) = setup().await;
    let schema =
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    for (format, want) in [
        (
            pb::ResponseFormat {
                r#type: T::JsonObject as i32,
                ..Default::default()
            },
            Some(json!({"responseMimeType": "application/json"})),
        ),
        (
            pb::ResponseFormat {
                r#type: T::JsonSchema as i32,
                name: "place".into(),
                schema: Some(obj(schema.clone())),
                strict: true,
                description: "A place".into(),
            },
            Some(json!({"responseMimeType": "application/json", "responseJsonSchema": schema})),
        ),
        (
            pb::ResponseFormat {
                r#type: T::Text as i32,
                ..Default::default()
            },
            None,
        ),
    ] {
        let mut req = text_request(FLASH_25, "json please");
        req.response_format = Some(format.clone());
        let body = sent(&mut c, &up, req).await;
        assert_eq!(body.get("generationConfig"), want.as_ref(), "{format:?}");
    }

    let mut req = text_request(FLASH_25, "sample");
    req.seed = Some(-42);
    req.top_k = Some(40);
    req.frequency_penalty = Some(0.5);
    req.presence_penalty = Some(-0.25);
    req.temperature = Some(0.5);
    let body = sent(&mut c, &up, req).await;
    assert_eq!(
        body["generationConfig"],
        json!({"temperature": 0.5, "seed": -42, "topK": 40, "frequencyPenalty": 0.5, "presencePenalty": -0.25})
    );
}

#[tokio::test]
async fn files_audio_tool_result_blocks_and_cache_breakpoints() {
    let (up, _srv, mut c) = setup().await;
    let cache = |ttl: &str| Some(pb::CacheControl { ttl: ttl.into() });
    let mut req = text_request(FLASH_25, "Read these.");
    req.messages[0].cache_control = cache("1h");
    req.messages[0].content.extend([
        pb::ContentBlock {
            block: Some(Block::File(pb::File {
                source: Some(pb::file::Source::Data(b"%PDF".to_vec())),
                mime_type: "application/pdf".into(),
                filename: "a.pdf".into(),
            })),
            cache_control: cache("5m"),
        },
        block(Block::File(pb::File {
            source: Some(pb::file::Source::Url("https://x.test/b.pdf".into())),
            mime_type: "application/pdf".into(),
            filename: String::new(),
        })),
        block(Block::Audio(pb::Audio {
            data: b"RIFF".to_vec(),
            mime_type: "audio/wav".into(),
        })),
    ]);
    req.messages.push(msg(
        pb::Role::Assistant,
        vec![tool_call("call_0", "weather", r#"{"city":"Oslo"}"#)],
    ));
    req.messages.push(msg(
        pb::Role::Tool,
        vec![block(Block::ToolResult(pb::ToolResult {
            tool_call_id: "call_0".into(),
            content: "Rain. ".into(),
            is_error: false,
            blocks: vec![
                text("Map attached."),
                block(Block::Image(pb::Image {
                    source: Some(pb::image::Source::Data(vec![0x89, b'P', b'N', b'G'])),
                    mime_type: "image/png".into(),
                })),
                block(Block::File(pb::File {
                    source: Some(pb::file::Source::Url("gs://b/report.pdf".into())),
                    mime_type: "application/pdf".into(),
                    filename: String::new(),
                })),
            ],
        }))],
    ));
    let mut tool = weather_tool();
    tool.cache_control = cache("5m");
    req.tools = vec![tool];
    let body = sent(&mut c, &up, req).await;
    assert_eq!(
        body,
        json!({
            "contents": [
                {"role": "user", "parts": [
                    {"text": "Read these."},
                    {"inlineData": {"mimeType": "application/pdf", "data": "JVBERg=="}},
                    {"fileData": {"mimeType": "application/pdf", "fileUri": "https://x.test/b.pdf"}},
                    {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}}
                ]},
                {"role": "model", "parts": [
                    {"functionCall": {"name": "weather", "args": {"city": "Oslo"}}}
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "weather", "response": {"content": "Rain. Map attached."}}},
                    {"inlineData": {"mimeType": "image/png", "data": "iVBORw=="}},
                    {"fileData": {"mimeType": "application/pdf", "fileUri": "gs://b/report.pdf"}}
                ]}
            ],
            "tools": [{"functionDeclarations": [{"name": "weather", "description": "Weather",
                "parametersJsonSchema": {"type": "object"}}]}]
        })
    );
}

#[tokio::test]
async fn what_gemini_lacks_is_refused_naming_the_field() {
    let (up, _srv, mut c) = setup().await;

    let mut req = text_request(FLASH_25, "x");
    req.tools = vec![weather_tool()];
    req.parallel_tool_calls = Some(false);
    refused(&mut c, &up, req, "parallelToolCalls").await;

    let mut req = text_request(FLASH_25, "x");
    req.messages[0].name = "alice".into();
    refused(&mut c, &up, req, "messages[0].name").await;

    let mut req = text_request(FLASH_25, "x");
    let mut tool = weather_tool();
    tool.strict = Some(true);
    req.tools = vec![
        weather_tool(),
        pb::Tool {
            name: "w2".into(),
            ..tool
        },
    ];
    refused(&mut c, &up, req, "tools[1].strict").await;

    // fileData needs the media type.
    let mut req = text_request(FLASH_25, "x");
    req.messages[0].content.push(block(Block::File(pb::File {
        source: Some(pb::file::Source::Url("https://x.test/doc".into())),
        mime_type: String::new(),
        filename: String::new(),
    })));
    refused(&mut c, &up, req, "messages[0].content[1].file.mimeType").await;

    // ...in a tool result's blocks too.
    let mut req = text_request(FLASH_25, "x");
    req.messages.push(msg(
        pb::Role::Assistant,
        vec![tool_call("c1", "weather", "{}")],
    ));
    req.messages.push(msg(
        pb::Role::Tool,
        vec![block(Block::ToolResult(pb::ToolResult {
            tool_call_id: "c1".into(),
            blocks: vec![block(Block::File(pb::File {
                source: Some(pb::file::Source::Url("https://x.test/doc".into())),
                mime_type: String::new(),
                filename: String::new(),
            }))],
            ..Default::default()
        }))],
    ));
    refused(
        &mut c,
        &up,
        req,
        "messages[2].content[0].toolResult.blocks[0].file.mimeType",
    )
    .await;
}

#[tokio::test]
async fn provider_options_merge_and_owned_keys_are_refused() {
    let (up, _srv, mut c) = setup().await;
    let mut req = text_request(FLASH_25, "x");
    req.max_tokens = Some(100);
    req.temperature = Some(0.25);
    req.provider_options = Some(obj(json!({
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "cachedContent": "cachedContents/abc",
        "generationConfig": {"responseModalities": ["TEXT"], "candidateCount": 1}
    })));
    let body = sent(&mut c, &up, req).await;
    assert_eq!(
        body,
        json!({
            "contents": [{"role": "user", "parts": [{"text": "x"}]}],
            "generationConfig": {
                "maxOutputTokens": 100, "temperature": 0.25,
                "responseModalities": ["TEXT"], "candidateCount": 1
            },
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
            "cachedContent": "cachedContents/abc"
        })
    );
    // generationConfig alone in providerOptions is still merged (created).
    let mut req = text_request(FLASH_25, "x");
    req.provider_options = Some(obj(
        json!({"generationConfig": {"mediaResolution": "MEDIA_RESOLUTION_LOW"}}),
    ));
    let body = sent(&mut c, &up, req).await;
    assert_eq!(
        body["generationConfig"],
        json!({"mediaResolution": "MEDIA_RESOLUTION_LOW"})
    );

    for (options, field) in [
        (json!({"contents": []}), "providerOptions.contents"),
        (json!({"toolConfig": {}}), "providerOptions.toolConfig"),
        (
            json!({"generationConfig": {"temperature": 1}}),
            "providerOptions.generationConfig.temperature",
        ),
        (
            json!({"generationConfig": {"thinkingConfig": {"thinkingBudget": -1}}}),
            "providerOptions.generationConfig.thinkingConfig",
        ),
        (
            json!({"generationConfig": "x"}),
            "providerOptions.generationConfig",
        ),
    ] {
        let mut req = text_request(FLASH_25, "x");
        req.provider_options = Some(obj(options));
        let before = up.requests().len();
        let e = c.invoke(req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{field}");
        assert!(e.message().contains(field), "{field}: {}", e.message());
        assert_eq!(up.requests().len(), before);
    }
}

#[tokio::test]
async fn tool_call_arguments_keep_their_numbers_exactly() {
    let (up, _srv, mut c) = setup().await;
    let mut req = text_request(FLASH_25, "go");
    req.messages.push(msg(
        pb::Role::Assistant,
        vec![tool_call(
            "fc-1",
            "weather",
            r#"{"n": 12345678901234567891, "x": -0.0}"#,
        )],
    ));
    req.messages.push(msg(
        pb::Role::Tool,
        vec![block(Block::ToolResult(pb::ToolResult {
            tool_call_id: "fc-1".into(),
            content: "done".into(),
            ..Default::default()
        }))],
    ));
    req.tools = vec![weather_tool()];
    sent(&mut c, &up, req).await;
    let raw = String::from_utf8(up.requests()[0].body.clone()).unwrap();
    assert!(
        raw.contains(r#"{"functionCall":{"args":{"n":12345678901234567891,"x":-0.0},"id":"fc-1","name":"weather"}}"#),
        "{raw}"
    );
}

#[tokio::test]
async fn grounding_gives_citation_chunks_and_invoke_citations() {
    let body = sse(&[
        json!({"candidates":[{"content":{"role":"model","parts":[{"text":"Spain won "}]},"index":0}],"responseId":"r-g"}),
        json!({"candidates":[{"content":{"role":"model","parts":[{"text":"Euro 2024."}]},"finishReason":"STOP","index":0,
            "groundingMetadata":{
                "webSearchQueries":["euro 2024 winner"],
                "searchEntryPoint":{"renderedContent":"<div></div>"},
                "groundingChunks":[
                    {"web":{"uri":"https://vertexaisearch.cloud.google.com/a","title":"uefa.com"}},
                    {"web":{"uri":"https://vertexaisearch.cloud.google.com/b","title":"bbc.co.uk"}}
                ],
                "groundingSupports":[
                    {"segment":{"endIndex":20,"text":"Spain won Euro 2024."},"groundingChunkIndices":[0,1],"confidenceScores":[0.9,0.8]},
                    {"segment":{"startIndex":10,"endIndex":20,"text":"Euro 2024."},"groundingChunkIndices":[1]}
                ]}}],
            "usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":6,"totalTokenCount":11},"responseId":"r-g"}),
    ]);
    let up = MockUpstream::start(move |_| Reply::sse(body.clone())).await;
    let srv = TestServer::start(
        Config::default(),
        env(&[("GEMINI_API_KEY", "gk"), ("GEMINI_BASE_URL", &up.url)]),
    )
    .await;
    let mut c = srv.client().await;
    let req = text_request(FLASH_25, "Who won Euro 2024?");
    let (chunks, status) = collect_stream(&mut c, req.clone()).await;
    assert!(status.is_none(), "{status:?}");
    let cite = |text: &str, url: &str, title: &str, start: i64| pb::Citation {
        block_index: 0,
        r#type: "grounding".into(),
        cited_text: text.into(),
        url: url.into(),
        title: title.into(),
        start,
        end: 20,
    };
    let want = vec![
        cite(
            "Spain won Euro 2024.",
            "https://vertexaisearch.cloud.google.com/a",
            "uefa.com",
            0,
        ),
        cite(
            "Spain won Euro 2024.",
            "https://vertexaisearch.cloud.google.com/b",
            "bbc.co.uk",
            0,
        ),
        cite(
            "Euro 2024.",
            "https://vertexaisearch.cloud.google.com/b",
            "bbc.co.uk",
            10,
        ),
    ];
    let got: Vec<_> = chunks
        .iter()
        .filter_map(|c| match &c.delta {
            Some(Delta::Citation(ct)) => Some(ct.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(chunk_text(&chunks), "Spain won Euro 2024.");

    let m = c.invoke(req).await.unwrap().into_inner();
    assert_eq!(m.citations, want);
    assert_eq!(m.content, vec![text("Spain won Euro 2024.")]);
    assert_eq!(comparable(&m), fold(&chunks));
}
