//! The bedrock provider end to end: tonic client → chatwire → a mock Bedrock
//! runtime on 127.0.0.1 answering ConverseStream in AWS's binary event-stream
//! framing (messages built with aws-smithy-eventstream's writer from AWS's
//! documented event shapes). Requests are SigV4-signed: the test recomputes
//! the signature from what the mock received. Split reads, a corrupt CRC,
//! exceptions mid-stream, HTTP errors, truncation, cancellation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use chatwire::{api::convert::json_to_struct, config::Config, pb};
use common::*;
use futures_util::StreamExt;
use pb::{chat_event::Event, message_chunk::Delta};
use serde_json::json;
use tonic::Code;

const MODEL: &str = "bedrock:anthropic.claude-3-haiku-20240307-v1:0";
const PATH: &str = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream";
const AKID: &str = "AKIDEXAMPLE1234567";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY";
const TOKEN: &str = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN0123456789";
const REGION: &str = "us-west-2";
const EVENTSTREAM: &str = "application/vnd.amazon.eventstream";

fn message(kind: &str, type_header: &'static str, name: &str, payload: &str) -> Vec<u8> {
    let m = Message::new(payload.as_bytes().to_vec())
        .add_header(Header::new(
            type_header,
            HeaderValue::String(name.to_string().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ))
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String(kind.to_string().into()),
        ));
    let mut out = Vec::new();
    write_message_to(&m, &mut out).unwrap();
    out
}

fn ev(name: &str, payload: serde_json::Value) -> Vec<u8> {
    message("event", ":event-type", name, &payload.to_string())
}

fn exception(name: &str, msg: &str) -> Vec<u8> {
    message(
        "exception",
        ":exception-type",
        name,
        &json!({ "message": msg }).to_string(),
    )
}

const CHINESE: &str = "你好，世界！🤖👩‍💻 ok";

fn text_events() -> Vec<u8> {
    [
        ev(
            "messageStart",
            json!({"role": "assistant", "p": "abcdefgh"}),
        ),
        ev(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "你好，"}}),
        ),
        ev(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "世界！🤖👩‍💻 ok"}}),
        ),
        ev("contentBlockStop", json!({"contentBlockIndex": 0})),
    ]
    .concat()
}

fn end_events(stop: &str) -> Vec<u8> {
    [
        ev("messageStop", json!({"stopReason": stop})),
        ev(
            "metadata",
            json!({"usage": {"inputTokens": 12, "outputTokens": 9, "totalTokens": 21}, "metrics": {"latencyMs": 250}}),
        ),
    ]
    .concat()
}

fn plain_body() -> Vec<u8> {
    [text_events(), end_events("end_turn")].concat()
}

fn tools_body() -> Vec<u8> {
    [
        ev("messageStart", json!({"role": "assistant"})),
        ev(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "Weather needs a tool."}}}),
        ),
        ev(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "SIG-abc"}}}),
        ),
        ev("contentBlockStop", json!({"contentBlockIndex": 0})),
        ev(
            "contentBlockStart",
            json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_A", "name": "get_weather"}}}),
        ),
        ev(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"city\": \"Pa"}}}),
        ),
        ev(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "ris\", \"n\": 12345678901234567890}"}}}),
        ),
        ev("contentBlockStop", json!({"contentBlockIndex": 1})),
        ev("messageStop", json!({"stopReason": "tool_use"})),
        ev(
            "metadata",
            json!({"usage": {"inputTokens": 30, "outputTokens": 40, "totalTokens": 80, "cacheReadInputTokens": 6, "cacheWriteInputTokens": 4}, "metrics": {"latencyMs": 99}}),
        ),
    ]
    .concat()
}

fn stream_reply(body: Vec<u8>) -> Reply {
    Reply::new(200, EVENTSTREAM, body).header("x-amzn-requestid", "req-bedrock-1")
}

fn sigv4_env(url: &str) -> chatwire::server::Env {
    env(&[
        ("AWS_ACCESS_KEY_ID", AKID),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        ("AWS_SESSION_TOKEN", TOKEN),
        ("AWS_REGION", REGION),
        ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", url),
    ])
}

fn no_retry() -> Config {
    let mut c = Config::default();
    c.retry.max_retries = 0;
    c
}

async fn bedrock_server(up: &MockUpstream, config: Config) -> TestServer {
    TestServer::start(config, sigv4_env(&up.url)).await
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `x-amz-date` (`20261207T024730Z`) as a time.
fn amz_date(s: &str) -> SystemTime {
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let days = days_from_civil(n(0, 4), n(4, 6), n(6, 8));
    let secs = days * 86_400 + n(9, 11) * 3600 + n(11, 13) * 60 + n(13, 15);
    UNIX_EPOCH + Duration::from_secs(secs as u64)
}

/// Recomputes the SigV4 Authorization header for the request the mock got,
/// with AWS's signer, from the headers the request says it signed.
fn expected_authorization(r: &Recorded, host_url: &str) -> String {
    use aws_sigv4::{
        http_request::{sign, SignableBody, SignableRequest, SigningSettings},
        sign::v4,
    };
    let auth = r.header("authorization").unwrap();
    let signed = auth
        .split("SignedHeaders=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    let headers: Vec<(String, String)> = signed
        .split(';')
        .filter(|h| !matches!(*h, "host" | "x-amz-date" | "x-amz-security-token"))
        .map(|h| (h.to_string(), r.header(h).unwrap()))
        .collect();
    let time = amz_date(&r.header("x-amz-date").unwrap());
    let identity =
        aws_credential_types::Credentials::new(AKID, SECRET, Some(TOKEN.into()), None, "t").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("bedrock")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let url = format!("{host_url}{}", r.path);
    let signable = SignableRequest::new(
        "POST",
        url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(&r.body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let auth = instructions
        .headers()
        .find(|(k, _)| *k == "authorization")
        .unwrap()
        .1
        .to_string();
    auth
}

#[tokio::test]
async fn plain_text_on_all_three_rpcs_with_a_verified_sigv4_signature() {
    let up = MockUpstream::start(|_| stream_reply(plain_body())).await;
    let srv = bedrock_server(&up, Config::default()).await;
    let mut client = srv.client().await;
    let mut req = text_request(MODEL, "hi");
    req.messages
        .insert(0, msg(pb::Role::System, vec![text("You are terse.")]));
    req.max_tokens = Some(64);

    let (chunks, status) = collect_stream(&mut client, req.clone()).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(chunk_text(&chunks), CHINESE);
    let last = chunks.last().unwrap();
    assert!(last.last);
    assert_eq!(last.stop_reason, pb::StopReason::EndTurn as i32);
    let u = last.usage.unwrap();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.total_tokens),
        (12, 9, 21)
    );
    assert!(chunks.iter().all(|c| c.provider == "bedrock"));
    let invoked = client.invoke(req.clone()).await.unwrap().into_inner();
    // Bedrock names no message id: each call has its own run id.
    let no_id = |m: &pb::ChatMessage| pb::ChatMessage {
        id: String::new(),
        ..comparable(m)
    };
    assert_eq!(no_id(&invoked), no_id(&fold(&chunks)));
    let (events, status) = collect_events(&mut client, req).await;
    assert!(status.is_none(), "{status:?}");
    assert!(events.iter().all(|e| e.name == "ChatBedrockConverse"));
    assert!(matches!(events.last().unwrap().event, Some(Event::End(_))));

    let reqs = up.requests();
    assert_eq!(reqs.len(), 3);
    let r = &reqs[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", PATH));
    assert_eq!(r.header("accept").as_deref(), Some(EVENTSTREAM));
    assert_eq!(
        r.json(),
        json!({
            "system": [{"text": "You are terse."}],
            "messages": [{"role": "user", "content": [{"text": "hi"}]}],
            "inferenceConfig": {"maxTokens": 64}
        })
    );
    // SigV4: the scope names the key, the day, the region and the service;
    // the session token is sent and signed; the signature verifies.
    let auth = r.header("authorization").unwrap();
    let date = r.header("x-amz-date").unwrap();
    assert!(
        auth.starts_with(&format!(
            "AWS4-HMAC-SHA256 Credential={AKID}/{}/{REGION}/bedrock/aws4_request, SignedHeaders=",
            &date[..8]
        )),
        "{auth}"
    );
    assert!(
        auth.contains("SignedHeaders=accept;content-type;host;x-amz-date;x-amz-security-token,"),
        "{auth}"
    );
    let sig = auth.split("Signature=").nth(1).unwrap();
    assert!(sig.len() == 64 && sig.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(r.header("x-amz-security-token").as_deref(), Some(TOKEN));
    assert_eq!(auth, expected_authorization(r, &up.url));
    // A tampered body would not verify (the check above can fail).
    let mut tampered = r.clone();
    tampered.body.push(b' ');
    assert_ne!(auth, expected_authorization(&tampered, &up.url));
    assert!(!format!("{:?}", r.headers).contains(SECRET));
}

#[tokio::test]
async fn reasoning_and_a_tool_call_in_fragments_and_the_request_shape() {
    let up = MockUpstream::start(|_| stream_reply(tools_body())).await;
    let srv = bedrock_server(&up, Config::default()).await;
    let mut client = srv.client().await;
    let req = pb::ChatRequest {
        model: MODEL.into(),
        messages: vec![msg(pb::Role::User, vec![text("weather in Paris?")])],
        tools: vec![pb::Tool {
            name: "get_weather".into(),
            description: "Weather for a city".into(),
            parameters: Some(json_to_struct(
                json!({"type":"object","properties":{"city":{"type":"string"}}})
                    .as_object()
                    .unwrap(),
            )),
            ..Default::default()
        }],
        tool_choice: Some(pb::ToolChoice {
            mode: pb::tool_choice::Mode::Any as i32,
            name: String::new(),
        }),
        ..Default::default()
    };
    let (chunks, status) = collect_stream(&mut client, req).await;
    assert!(status.is_none(), "{status:?}");
    let m = fold(&chunks);
    let last = chunks.last().unwrap();
    assert_eq!(last.stop_reason, pb::StopReason::ToolUse as i32);
    let u = last.usage.unwrap();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.total_tokens),
        (40, 40, 80)
    );
    let calls: Vec<_> = chunks
        .iter()
        .filter_map(|c| match &c.delta {
            Some(Delta::ToolCall(t)) => Some(t.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        (calls[0].id.as_str(), calls[0].name.as_str()),
        ("tooluse_A", "get_weather")
    );
    let args: String = calls.iter().map(|c| c.arguments.as_str()).collect();
    assert_eq!(args, "{\"city\": \"Paris\", \"n\": 12345678901234567890}");
    let reasoning = format!("{m:?}");
    assert!(reasoning.contains("Weather needs a tool.") && reasoning.contains("SIG-abc"));
    let body = up.requests()[0].json();
    assert_eq!(
        body["toolConfig"],
        json!({"tools": [{"toolSpec": {"name": "get_weather", "description": "Weather for a city",
            "inputSchema": {"json": {"type":"object","properties":{"city":{"type":"string"}}}}}}],
            "toolChoice": {"any": {}}})
    );
}

#[tokio::test]
async fn every_split_of_the_binary_body_gives_identical_grpc_output() {
    let body = tools_body();
    let up = MockUpstream::start({
        let body = body.clone();
        move |_| stream_reply(body.clone())
    })
    .await;
    let srv = bedrock_server(&up, Config::default()).await;
    let mut client = srv.client().await;
    let (want, status) = collect_stream(&mut client, text_request(MODEL, "x")).await;
    assert!(status.is_none());
    drop(up);
    for seed in 0..12u64 {
        let splits = if seed == 0 {
            byte_splits(body.len())
        } else {
            random_splits(body.len(), seed)
        };
        let b = body.clone();
        let up = MockUpstream::start(move |_| stream_reply(b.clone()).splits(splits.clone())).await;
        let srv = bedrock_server(&up, Config::default()).await;
        let mut client = srv.client().await;
        let (got, status) = collect_stream(&mut client, text_request(MODEL, "x")).await;
        assert!(status.is_none(), "seed {seed}: {status:?}");
        let strip = |c: &[pb::MessageChunk]| {
            c.iter()
                .map(|c| pb::MessageChunk {
                    id: String::new(),
                    ..c.clone()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&got), strip(&want), "seed {seed}");
    }
}

#[tokio::test]
async fn a_corrupt_frame_ends_the_stream_unavailable_never_skipped() {
    let mut bad = ev(
        "contentBlockDelta",
        json!({"contentBlockIndex": 0, "delta": {"text": "LOST"}}),
    );
    let n = bad.len();
    bad[n - 1] ^= 0xff; // the message CRC
    let body = [
        ev("messageStart", json!({"role": "assistant"})),
        ev(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "kept "}}),
        ),
        bad,
        end_events("end_turn"),
    ]
    .concat();
    let up = MockUpstream::start(move |_| stream_reply(body.clone())).await;
    let srv = bedrock_server(&up, no_retry()).await;
    let mut client = srv.client().await;
    let (chunks, status) = collect_stream(&mut client, text_request(MODEL, "x")).await;
    let status = status.expect("a corrupt frame must fail the call");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(reason(&status), "UPSTREAM_PROTOCOL_ERROR");
    assert_eq!(chunk_text(&chunks), "kept ");
    assert!(chunks.iter().all(|c| !c.last));
}

#[tokio::test]
async fn exceptions_mid_stream_map_to_contract_codes() {
    for (name, code) in [
        ("throttlingException", Code::ResourceExhausted),
        ("modelStreamErrorException", Code::Unavailable),
        ("serviceUnavailableException", Code::Unavailable),
        ("internalServerException", Code::Unavailable),
        ("validationException", Code::InvalidArgument),
    ] {
        let body = [text_events(), exception(name, "Something specific")].concat();
        let up = MockUpstream::start(move |_| stream_reply(body.clone())).await;
        let srv = bedrock_server(&up, no_retry()).await;
        let mut client = srv.client().await;
        let (chunks, status) = collect_stream(&mut client, text_request(MODEL, "x")).await;
        let status = status.expect("an exception must fail the call");
        assert_eq!(status.code(), code, "{name}: {status:?}");
        assert!(
            status.message().contains("Something specific"),
            "{}",
            status.message()
        );
        assert_eq!(chunk_text(&chunks), CHINESE, "{name}");
    }
}

#[tokio::test]
async fn http_errors_before_the_stream_map_with_aws_type_and_message() {
    for (status, kind, code) in [
        (400, "ValidationException", Code::InvalidArgument),
        (403, "AccessDeniedException", Code::PermissionDenied),
        (404, "ResourceNotFoundException", Code::NotFound),
        (429, "ThrottlingException", Code::ResourceExhausted),
        (503, "ServiceUnavailableException", Code::Unavailable),
        (424, "ModelErrorException", Code::Unavailable),
    ] {
        let up = MockUpstream::start(move |_| {
            Reply::json(
                status,
                format!(r#"{{"message":"Specific {kind} text; key {SECRET}"}}"#),
            )
            .header(
                "x-amzn-errortype",
                &format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            )
        })
        .await;
        let srv = bedrock_server(&up, no_retry()).await;
        let mut client = srv.client().await;
        let st = client
            .invoke(text_request(MODEL, "x"))
            .await
            .expect_err("an HTTP error must fail the call");
        assert_eq!(st.code(), code, "{status} {kind}: {st:?}");
        assert!(
            st.message().contains(&format!("Specific {kind} text")),
            "{}",
            st.message()
        );
        assert!(st.message().contains(kind), "{}", st.message());
        assert!(
            !st.message().contains(SECRET) && !st.message().contains("wJalrXUtnFEMI"),
            "{}",
            st.message()
        );
    }
}

#[tokio::test]
async fn truncation_is_unavailable_and_a_cut_connection_too() {
    // Ends cleanly before messageStop.
    let up = MockUpstream::start(|_| stream_reply(text_events())).await;
    let srv = bedrock_server(&up, no_retry()).await;
    let mut client = srv.client().await;
    let (chunks, status) = collect_stream(&mut client, text_request(MODEL, "x")).await;
    let status = status.expect("truncated");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(reason(&status), "UPSTREAM_TRUNCATED");
    assert_eq!(chunk_text(&chunks), CHINESE);
    // The connection cut inside a frame.
    let body = plain_body();
    let cut = text_events().len() + 7;
    let up = MockUpstream::start(move |_| stream_reply(body[..cut].to_vec()).cut()).await;
    let srv = bedrock_server(&up, no_retry()).await;
    let mut client = srv.client().await;
    let (_, status) = collect_stream(&mut client, text_request(MODEL, "x")).await;
    assert_eq!(status.expect("cut").code(), Code::Unavailable);
}

#[tokio::test]
async fn a_cancel_closes_the_upstream_connection() {
    let up = MockUpstream::start(|_| stream_reply(text_events()).hold_open()).await;
    let srv = bedrock_server(&up, Config::default()).await;
    let mut client = srv.client().await;
    let mut s = client
        .stream(text_request(MODEL, "x"))
        .await
        .unwrap()
        .into_inner();
    let first = s.next().await.unwrap().unwrap();
    assert!(first.delta.is_some());
    drop(s);
    assert!(up.wait_closed(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn bearer_token_profiles_unconfigured_and_list_models() {
    // AWS_BEARER_TOKEN_BEDROCK: Authorization Bearer, nothing signed.
    let up = MockUpstream::start(|_| stream_reply(plain_body())).await;
    let srv = TestServer::start(
        Config::default(),
        env(&[
            ("AWS_BEARER_TOKEN_BEDROCK", "ABSKbedrockapikey0123456789"),
            ("AWS_REGION", REGION),
            ("AWS_ENDPOINT_URL", &up.url),
        ]),
    )
    .await;
    let mut client = srv.client().await;
    client.invoke(text_request(MODEL, "x")).await.unwrap();
    let r = &up.requests()[0];
    assert_eq!(
        r.header("authorization").as_deref(),
        Some("Bearer ABSKbedrockapikey0123456789")
    );
    assert!(r.header("x-amz-date").is_none());
    let list = client
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner();
    let b = list.providers.iter().find(|p| p.name == "bedrock").unwrap();
    assert!(b.configured);
    assert_eq!(b.base_url, up.url);
    for f in ["tools", "images", "usage", "reasoning", "files", "top_k"] {
        assert!(b.features.iter().any(|x| x == f), "{f}: {:?}", b.features);
    }

    // A profile file (AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE).
    let dir = std::env::temp_dir().join(format!("chatwire-bedrock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let creds = dir.join("credentials");
    let config = dir.join("config");
    std::fs::write(
        &creds,
        format!("[team]\naws_access_key_id = {AKID}\naws_secret_access_key = {SECRET}\naws_session_token = {TOKEN}\n"),
    )
    .unwrap();
    std::fs::write(&config, format!("[profile team]\nregion = {REGION}\n")).unwrap();
    let up = MockUpstream::start(|_| stream_reply(plain_body())).await;
    let srv = TestServer::start(
        Config::default(),
        env(&[
            ("AWS_PROFILE", "team"),
            ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap()),
            ("AWS_CONFIG_FILE", config.to_str().unwrap()),
            ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", &up.url),
        ]),
    )
    .await;
    let mut client = srv.client().await;
    client.invoke(text_request(MODEL, "x")).await.unwrap();
    let r = &up.requests()[0];
    assert_eq!(
        r.header("authorization").unwrap(),
        expected_authorization(r, &up.url)
    );
    std::fs::remove_dir_all(&dir).ok();

    // Nothing set: known, FAILED_PRECONDITION naming what to set.
    let srv = TestServer::start(Config::default(), env(&[])).await;
    let mut client = srv.client().await;
    let st = client.invoke(text_request(MODEL, "x")).await.unwrap_err();
    assert_eq!(st.code(), Code::FailedPrecondition);
    assert!(st.message().contains("AWS_REGION"), "{}", st.message());
}
