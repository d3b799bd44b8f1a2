//! The azure provider end to end: the real gRPC server and a mock Azure
//! OpenAI on 127.0.0.1:0 speaking Azure's Chat Completions dialect (a first
//! chunk with empty `choices` and `prompt_filter_results`, per-choice
//! `content_filter_results`, CRLF, split reads), both URL shapes (deployments
//! with `api-version`, and v1), both credentials (`api-key`, Entra ID bearer),
//! and both content filters (a filtered completion, a filtered prompt's 400).
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
use pb::message_chunk::Delta;
use serde_json::{json, Value};
use tonic::Code;

const KEY: &str = "azure-key-0123456789abcdef0123";
const TOKEN: &str = "eyJ0eXAiOiJKV1Qi.entra-token-secret";

const FILTERS_SAFE: &str = r#"{"hate":{"filtered":false,"severity":"safe"},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}}"#;

fn chunk(delta: Value, finish: Value, filters: &str) -> String {
    let filters: Value = serde_json::from_str(filters).unwrap();
    let c = json!({
        "choices": [{"content_filter_results": filters, "delta": delta, "finish_reason": finish, "index": 0, "logprobs": null}],
        "created": 1733000000, "id": "chatcmpl-AzUre123", "model": "gpt-4o-2024-11-20",
        "object": "chat.completion.chunk", "system_fingerprint": "fp_azure",
    });
    format!("data: {c}\r\n\r\n")
}

/// Azure's stream: the prompt-filter chunk first (empty id, empty choices).
fn body(texts: &[&str], finish: &str, last_filters: &str) -> String {
    let mut b = format!(
        "data: {{\"choices\":[],\"created\":0,\"id\":\"\",\"model\":\"\",\"object\":\"\",\"prompt_filter_results\":[{{\"prompt_index\":0,\"content_filter_results\":{FILTERS_SAFE}}}]}}\r\n\r\n"
    );
    b += &chunk(
        json!({"content": "", "role": "assistant", "refusal": null}),
        Value::Null,
        "{}",
    );
    for t in texts {
        b += &chunk(json!({ "content": t }), Value::Null, FILTERS_SAFE);
    }
    b += &chunk(json!({}), json!(finish), last_filters);
    b += "data: [DONE]\r\n\r\n";
    b
}

async fn server(up: &MockUpstream, extra: &[(&str, &str)]) -> TestServer {
    let mut pairs = vec![("AZURE_OPENAI_ENDPOINT", up.url.as_str())];
    pairs.extend_from_slice(extra);
    let mut config = Config::default();
    config.retry.max_retries = 0;
    TestServer::start(config, env(&pairs)).await
}

#[tokio::test]
async fn deployments_path_with_api_key_and_api_version_at_every_split() {
    let b = body(&["Grüezi", " aus ", "Zürich 🇨🇭"], "stop", FILTERS_SAFE).into_bytes();
    let mut plans = vec![Vec::new(), byte_splits(b.len())];
    plans.extend((0..8).map(|s| random_splits(b.len(), s)));
    let plans = std::sync::Arc::new(plans);
    let (p, bb) = (plans.clone(), b.clone());
    let up = MockUpstream::start(move |r: &Recorded| {
        let i: usize = r.json()["messages"][0]["content"]
            .as_str()
            .unwrap_or("0")
            .parse()
            .unwrap_or(0);
        Reply::sse(bb.clone()).splits(p[i].clone())
    })
    .await;
    let srv = server(
        &up,
        &[
            ("AZURE_OPENAI_API_KEY", KEY),
            ("OPENAI_API_VERSION", "2024-10-21"),
        ],
    )
    .await;
    let mut c = srv.client().await;
    let (want, status) = collect_stream(&mut c, text_request("azure:gpt4o-prod", "0")).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(chunk_text(&want), "Grüezi aus Zürich 🇨🇭");
    let last = want.last().unwrap();
    assert_eq!(last.stop_reason, pb::StopReason::EndTurn as i32);
    assert!(want
        .iter()
        .all(|c| c.id == "chatcmpl-AzUre123" && c.provider == "azure"));
    for i in 1..plans.len() {
        let (got, status) =
            collect_stream(&mut c, text_request("azure:gpt4o-prod", &i.to_string())).await;
        assert!(status.is_none(), "plan {i}: {status:?}");
        assert_eq!(got, want, "plan {i}");
    }
    let r = &up.requests()[0];
    assert_eq!(
        r.path,
        "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(r.header("api-key").as_deref(), Some(KEY));
    assert_eq!(r.header("authorization"), None);

    // StreamEvents names LangChain's AzureChatOpenAI.
    let (events, status) = collect_events(&mut c, text_request("azure:gpt4o-prod", "0")).await;
    assert!(status.is_none(), "{status:?}");
    assert!(events.iter().all(|e| e.name == "AzureChatOpenAI"));
}

#[tokio::test]
async fn the_v1_path_with_an_entra_token_puts_the_deployment_in_the_body() {
    let b = body(&["ok"], "stop", FILTERS_SAFE);
    let up = MockUpstream::start(move |_| Reply::sse(b.clone())).await;
    let srv = server(&up, &[("AZURE_OPENAI_AD_TOKEN", TOKEN)]).await;
    let mut c = srv.client().await;
    let (chunks, status) = collect_stream(&mut c, text_request("azure:my-deploy.v2", "hi")).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(chunk_text(&chunks), "ok");
    let r = &up.requests()[0];
    assert_eq!(r.path, "/openai/v1/chat/completions");
    assert_eq!(r.header("authorization"), Some(format!("Bearer {TOKEN}")));
    assert_eq!(r.header("api-key"), None);
    assert_eq!(r.json()["model"], json!("my-deploy.v2"));
    // A deployment name that is not a path segment never reaches a URL.
    let (_, status) = collect_stream(&mut c, text_request("azure:../admin", "hi")).await;
    assert_eq!(status.unwrap().code(), Code::InvalidArgument);
    assert_eq!(up.requests().len(), 1);
}

#[tokio::test]
async fn content_filters_give_content_filter_and_keys_never_come_back() {
    let filtered = r#"{"hate":{"filtered":false,"severity":"safe"},"violence":{"filtered":true,"severity":"high"}}"#;
    let stream_filtered = body(&["Here is how", " to"], "content_filter", filtered);
    let up = MockUpstream::start(move |r: &Recorded| {
        match r.json()["messages"][0]["content"].as_str().unwrap_or("") {
            "prompt" => Reply::json(
                400,
                format!(r#"{{"error":{{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy (key {KEY}).","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{{"code":"ResponsibleAIPolicyViolation","content_filter_result":{{"hate":{{"filtered":false,"severity":"safe"}},"jailbreak":{{"filtered":true,"detected":true}},"violence":{{"filtered":true,"severity":"medium"}}}}}}}}}}"#),
            ),
            "cut" => Reply::sse(body(&["half"], "stop", FILTERS_SAFE)[..400].to_string()).cut(),
            "missing" => Reply::json(
                404,
                r#"{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}}"#,
            ),
            _ => Reply::sse(stream_filtered.clone()),
        }
    })
    .await;
    let srv = server(&up, &[("AZURE_OPENAI_API_KEY", KEY)]).await;
    let mut c = srv.client().await;

    // A completion the filter stopped: the text so far, stop CONTENT_FILTER.
    let (chunks, status) = collect_stream(&mut c, text_request("azure:gpt-4o", "story")).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(chunk_text(&chunks), "Here is how to");
    let last = chunks.last().unwrap();
    assert_eq!(last.stop_reason, pb::StopReason::ContentFilter as i32);
    assert_eq!(last.finish_reason, "content_filter");

    // A filtered prompt: INVALID_ARGUMENT, reason UPSTREAM_CONTENT_FILTER, the categories named.
    let status = c
        .invoke(text_request("azure:gpt-4o", "prompt"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "UPSTREAM_CONTENT_FILTER");
    assert!(
        status.message().contains("jailbreak, violence"),
        "{}",
        status.message()
    );
    assert!(!status.message().contains(KEY), "{}", status.message());

    let status = c
        .invoke(text_request("azure:gpt-4o", "missing"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("DeploymentNotFound"));

    let (chunks, status) = collect_stream(&mut c, text_request("azure:gpt-4o", "cut")).await;
    assert_eq!(status.map(|s| s.code()), Some(Code::Unavailable));
    assert!(chunks.iter().all(|c| !c.last));
}

#[tokio::test]
async fn a_cancel_closes_the_upstream_and_list_models_shows_it() {
    let head = "data: {\"choices\":[{\"delta\":{\"content\":\"tick\"},\"finish_reason\":null,\"index\":0}],\"id\":\"chatcmpl-1\",\"model\":\"gpt-4o\",\"object\":\"chat.completion.chunk\"}\r\n\r\n";
    let up = MockUpstream::start(move |_| Reply::sse(head).hold_open()).await;
    let srv = server(&up, &[("AZURE_OPENAI_API_KEY", KEY)]).await;
    let mut c = srv.client().await;
    let mut s = c
        .stream(text_request("azure:gpt-4o", "go"))
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

    let list = c
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner();
    let p = list.providers.iter().find(|p| p.name == "azure").unwrap();
    assert!(p.configured);
    assert_eq!(p.base_url, up.url);
    assert!(p.features.iter().any(|f| f == "content_filter"));

    // An endpoint without a credential: known, not configured, says what to set.
    let srv = TestServer::start(
        Config::default(),
        env(&[("AZURE_OPENAI_ENDPOINT", "https://r.openai.azure.com")]),
    )
    .await;
    let mut c = srv.client().await;
    let (_, status) = collect_stream(&mut c, text_request("azure:gpt-4o", "hi")).await;
    let status = status.unwrap();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("AZURE_OPENAI_API_KEY"));
}
