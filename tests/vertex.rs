//! The vertex provider end to end: tonic client → chatwire → a mock Vertex AI
//! on 127.0.0.1 that is also the OAuth2 token endpoint (and, in one test, the
//! GCE metadata server). Gemini models answer Gemini's SSE, Claude models
//! Anthropic's SSE (streamRawPredict). The service-account assertion the token
//! endpoint receives is decoded, its claims checked and its RS256 signature
//! verified with the test key's public half (tests/fixtures/vertex holds a key
//! generated for these tests only).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use base64::Engine as _;
use chatwire::{config::Config, pb};
use common::*;
use pb::chat_event::Event;
use serde_json::json;
use tonic::Code;

const KEY_PEM: &str = include_str!("fixtures/vertex/TEST-ONLY-service-account-key.pem");
const EMAIL: &str = "chatwire-test@proj-1.iam.gserviceaccount.com";
const TOKEN: &str = "ya29.TEST-access-token-0123456789";
const PROJECT: &str = "proj-1";
const LOCATION: &str = "us-east5";

fn gemini_body() -> String {
    [
        json!({"candidates":[{"content":{"role":"model","parts":[{"text":"Hello from "}]}}],"modelVersion":"gemini-2.0-flash","responseId":"resp-1"}),
        json!({"candidates":[{"content":{"role":"model","parts":[{"text":"Vertex 🤖"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":3,"totalTokenCount":7},"modelVersion":"gemini-2.0-flash","responseId":"resp-1"}),
    ]
    .iter()
    .map(|v| format!("data: {v}\r\n\r\n"))
    .collect()
}

fn claude_body() -> String {
    let ev =
        |v: serde_json::Value| format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap());
    [
        ev(json!({"type":"message_start","message":{"id":"msg_vrtx_1","type":"message","role":"assistant","model":"claude-3-5-haiku-20241022","content":[],"usage":{"input_tokens":5,"output_tokens":1}}})),
        ev(json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})),
        ev(json!({"type":"ping"})),
        ev(json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Claude on Vertex"}})),
        ev(json!({"type":"content_block_stop","index":0})),
        ev(json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":4}})),
        ev(json!({"type":"message_stop"})),
    ]
    .concat()
}

/// The key file, pointing its token_uri at the mock.
fn key_file(token_uri: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "chatwire-vertex-{}-{}",
        std::process::id(),
        uuid_like()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("key.json");
    std::fs::write(
        &path,
        json!({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "kid-123",
            "private_key": KEY_PEM,
            "client_email": EMAIL,
            "client_id": "1234567890",
            "token_uri": token_uri,
        })
        .to_string(),
    )
    .unwrap();
    path
}

fn uuid_like() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// A mock that is both the token endpoint (`/token`) and Vertex AI.
async fn mock(expires_in: u64, token_status: u16) -> MockUpstream {
    MockUpstream::start(move |r| {
        if r.path == "/token" {
            if token_status != 200 {
                return Reply::json(
                    token_status,
                    r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
                );
            }
            return Reply::json(
                200,
                json!({"access_token": TOKEN, "expires_in": expires_in, "token_type": "Bearer"})
                    .to_string(),
            );
        }
        if r.path.contains("/publishers/anthropic/") {
            Reply::sse(claude_body())
        } else {
            Reply::sse(gemini_body())
        }
    })
    .await
}

async fn server(up: &MockUpstream, key: &std::path::Path, config: Config) -> TestServer {
    TestServer::start(
        config,
        env(&[
            ("GOOGLE_APPLICATION_CREDENTIALS", key.to_str().unwrap()),
            ("GOOGLE_CLOUD_LOCATION", LOCATION),
            ("VERTEX_BASE_URL", &up.url),
        ]),
    )
    .await
}

fn b64url(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

/// Checks the jwt-bearer form and the assertion: claims, and the RS256
/// signature against the test key's public half.
fn check_assertion(body: &[u8], token_uri: &str) {
    let form = String::from_utf8(body.to_vec()).unwrap();
    let mut grant = None;
    let mut assertion = None;
    for pair in form.split('&') {
        let (k, v) = pair.split_once('=').unwrap();
        match k {
            "grant_type" => grant = Some(v.replace("%3A", ":")),
            "assertion" => assertion = Some(v.to_string()),
            _ => {}
        }
    }
    assert_eq!(
        grant.as_deref(),
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    );
    let jwt = assertion.unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: serde_json::Value = serde_json::from_slice(&b64url(parts[0])).unwrap();
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], "kid-123");
    let claims: serde_json::Value = serde_json::from_slice(&b64url(parts[1])).unwrap();
    assert_eq!(claims["iss"], EMAIL);
    assert_eq!(claims["sub"], EMAIL);
    assert_eq!(claims["aud"], token_uri);
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/cloud-platform"
    );
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 3600);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(iat <= now && now - iat < 600);
    // The signature verifies with the key's public half.
    let pem_body: String = KEY_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(pem_body)
        .unwrap();
    let pair = ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
    use ring::signature::KeyPair as _;
    let public = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        pair.public_key().as_ref().to_vec(),
    );
    let signed = format!("{}.{}", parts[0], parts[1]);
    public.verify(signed.as_bytes(), &b64url(parts[2])).unwrap();
    let mut tampered = signed.clone().into_bytes();
    tampered[3] ^= 1;
    assert!(public.verify(&tampered, &b64url(parts[2])).is_err());
}

#[tokio::test]
async fn gemini_on_vertex_with_a_service_account_token_reused_across_calls() {
    let up = mock(3600, 200).await;
    let key = key_file(&format!("{}/token", up.url));
    let srv = server(&up, &key, Config::default()).await;
    let mut client = srv.client().await;
    let req = text_request("vertex:gemini-2.0-flash", "hi");
    let (chunks, status) = collect_stream(&mut client, req.clone()).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(chunk_text(&chunks), "Hello from Vertex 🤖");
    let last = chunks.last().unwrap();
    assert!(last.last);
    assert_eq!(last.usage.unwrap().total_tokens, 7);
    assert!(chunks.iter().all(|c| c.provider == "vertex"));
    client.invoke(req.clone()).await.unwrap();
    let (events, status) = collect_events(&mut client, req).await;
    assert!(status.is_none());
    assert!(events.iter().all(|e| e.name == "ChatVertexAI"));
    assert!(matches!(events.last().unwrap().event, Some(Event::End(_))));

    let reqs = up.requests();
    let tokens: Vec<_> = reqs.iter().filter(|r| r.path == "/token").collect();
    assert_eq!(tokens.len(), 1, "one token for three calls");
    check_assertion(&tokens[0].body, &format!("{}/token", up.url));
    let calls: Vec<_> = reqs.iter().filter(|r| r.path != "/token").collect();
    assert_eq!(calls.len(), 3);
    assert_eq!(
        calls[0].path,
        format!("/v1/projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/gemini-2.0-flash:streamGenerateContent?alt=sse")
    );
    assert_eq!(
        calls[0].header("authorization").as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(
        calls[0].json()["contents"],
        json!([{"role":"user","parts":[{"text":"hi"}]}])
    );
    std::fs::remove_dir_all(key.parent().unwrap()).ok();
}

#[tokio::test]
async fn claude_on_vertex_uses_stream_raw_predict_and_its_own_class() {
    let up = mock(3600, 200).await;
    let key = key_file(&format!("{}/token", up.url));
    let srv = server(&up, &key, Config::default()).await;
    let mut client = srv.client().await;
    let req = text_request("vertex:claude-3-5-haiku@20241022", "hi");
    let (chunks, status) = collect_stream(&mut client, req.clone()).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(chunk_text(&chunks), "Claude on Vertex");
    assert!(chunks.iter().all(|c| c.id == "msg_vrtx_1"));
    let (events, status) = collect_events(&mut client, req).await;
    assert!(status.is_none());
    assert!(events.iter().all(|e| e.name == "ChatAnthropicVertex"));
    let call = up
        .requests()
        .into_iter()
        .find(|r| r.path != "/token")
        .unwrap();
    assert_eq!(
        call.path,
        format!("/v1/projects/{PROJECT}/locations/{LOCATION}/publishers/anthropic/models/claude-3-5-haiku@20241022:streamRawPredict")
    );
    let body = call.json();
    assert_eq!(body["anthropic_version"], "vertex-2023-10-16");
    assert!(body.get("model").is_none());
    assert_eq!(body["stream"], true);
    assert_eq!(
        call.header("authorization").as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    std::fs::remove_dir_all(key.parent().unwrap()).ok();
}

#[tokio::test]
async fn a_token_near_expiry_is_refreshed_before_each_call() {
    // 60 s of life is inside the 5-minute refresh margin: every call refreshes.
    let up = mock(60, 200).await;
    let key = key_file(&format!("{}/token", up.url));
    let srv = server(&up, &key, Config::default()).await;
    let mut client = srv.client().await;
    for _ in 0..3 {
        client
            .invoke(text_request("vertex:gemini-2.0-flash", "hi"))
            .await
            .unwrap();
    }
    let tokens = up.requests().iter().filter(|r| r.path == "/token").count();
    assert_eq!(tokens, 3);
    std::fs::remove_dir_all(key.parent().unwrap()).ok();
}

#[tokio::test]
async fn a_refusing_or_failing_token_endpoint_is_a_clear_error_without_secrets() {
    for (status, code) in [(400, Code::PermissionDenied), (503, Code::Unavailable)] {
        let up = mock(3600, status).await;
        let key = key_file(&format!("{}/token", up.url));
        let mut config = Config::default();
        config.retry.max_retries = 0;
        let srv = server(&up, &key, config).await;
        let mut client = srv.client().await;
        let st = client
            .invoke(text_request("vertex:gemini-2.0-flash", "hi"))
            .await
            .unwrap_err();
        assert_eq!(st.code(), code, "{status}: {st:?}");
        assert!(st.message().contains("token endpoint"), "{}", st.message());
        assert!(st.message().contains("invalid_grant"), "{}", st.message());
        let key_line = KEY_PEM.lines().nth(1).unwrap();
        assert!(!st.message().contains(key_line));
        assert!(up.requests().iter().all(|r| r.path == "/token"));
        std::fs::remove_dir_all(key.parent().unwrap()).ok();
    }
}

#[tokio::test]
async fn the_metadata_server_without_a_key_file_and_unconfigured() {
    let up = mock(3600, 200).await;
    let meta = MockUpstream::start(|r| {
        if r.path == "/computeMetadata/v1/instance/service-accounts/default/token"
            && r.header("metadata-flavor").as_deref() == Some("Google")
        {
            Reply::json(200, json!({"access_token": "ya29.META-token-abcdef", "expires_in": 3599, "token_type": "Bearer"}).to_string())
        } else {
            Reply::json(404, "{}")
        }
    })
    .await;
    let host = meta.url.trim_start_matches("http://").to_string();
    let srv = TestServer::start(
        Config::default(),
        env(&[
            ("GOOGLE_CLOUD_PROJECT", "proj-meta"),
            ("GOOGLE_CLOUD_REGION", "europe-west4"),
            ("GCE_METADATA_HOST", &host),
            ("VERTEX_BASE_URL", &up.url),
        ]),
    )
    .await;
    let mut client = srv.client().await;
    client
        .invoke(text_request("vertex:gemini-2.0-flash", "hi"))
        .await
        .unwrap();
    let call = up.requests().into_iter().next().unwrap();
    assert!(call
        .path
        .starts_with("/v1/projects/proj-meta/locations/europe-west4/publishers/google/"));
    assert_eq!(
        call.header("authorization").as_deref(),
        Some("Bearer ya29.META-token-abcdef")
    );
    let list = client
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner();
    let v = list.providers.iter().find(|p| p.name == "vertex").unwrap();
    assert!(v.configured);
    for f in ["tools", "images", "usage", "reasoning", "cache_usage"] {
        assert!(v.features.iter().any(|x| x == f), "{f}: {:?}", v.features);
    }

    let srv = TestServer::start(Config::default(), env(&[])).await;
    let mut client = srv.client().await;
    let st = client
        .invoke(text_request("vertex:gemini-2.0-flash", "hi"))
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::FailedPrecondition);
    assert!(st.message().contains("GOOGLE_APPLICATION_CREDENTIALS"));
}
