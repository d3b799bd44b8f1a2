//! The hardening a user can see, through the real gRPC surface: redirects are
//! never followed, statuses name whose fault they are, a compressed upstream
//! says so, the bearer scheme is case-insensitive, too deeply nested JSON is the
//! caller's fault, an OpenAI stream cut before its usage chunk is truncated,
//! credentials in a base URL never come back, and redaction answers nothing
//! about a caller's own text.
// Tests count connections across tasks and share state with mock threads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use chatwire::{config::Config, pb};
use common::*;
use serde_json::json;
use tokio::net::TcpListener;
use tonic::Code;

// ---------------------------------------------------------------- providers

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Provider {
    Anthropic,
    OpenAi,
    Gemini,
    Ollama,
}

const PROVIDERS: [Provider; 4] = [
    Provider::Anthropic,
    Provider::OpenAi,
    Provider::Gemini,
    Provider::Ollama,
];

impl Provider {
    fn model(self) -> &'static str {
        match self {
            Provider::Anthropic => "anthropic:claude-3-haiku-20240307",
            Provider::OpenAi => "openai:gpt-4o-mini",
            Provider::Gemini => "gemini:gemini-2.5-flash",
            Provider::Ollama => "ollama:qwen3:8b",
        }
    }

    /// The environment pointing this provider at `up`.
    fn env(self, up: &MockUpstream) -> Vec<(String, String)> {
        let pairs: Vec<(&str, String)> = match self {
            Provider::Anthropic => vec![
                ("ANTHROPIC_API_KEY", "hardening-anthropic-key".into()),
                ("ANTHROPIC_BASE_URL", up.url.clone()),
            ],
            Provider::OpenAi => vec![
                ("OPENAI_API_KEY", "hardening-openai-key".into()),
                ("OPENAI_BASE_URL", format!("{}/v1", up.url)),
            ],
            Provider::Gemini => vec![
                ("GEMINI_API_KEY", "hardening-gemini-key".into()),
                ("GEMINI_BASE_URL", up.url.clone()),
            ],
            Provider::Ollama => vec![("OLLAMA_HOST", up.url.clone())],
        };
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// The content type its streams come with.
    fn stream_content_type(self) -> &'static str {
        match self {
            Provider::Ollama => "application/x-ndjson",
            _ => "text/event-stream",
        }
    }

    async fn server(self, up: &MockUpstream, config: Config) -> TestServer {
        TestServer::start(config, self.env(up).into_iter().collect()).await
    }
}

fn no_retry() -> Config {
    let mut c = Config::default();
    c.retry.max_retries = 0;
    c
}

/// The three digits after `status-` in the request body (the test's marker
/// telling the mock which status to answer with), else 200.
fn marked_status(r: &Recorded) -> u16 {
    let body = String::from_utf8_lossy(&r.body);
    body.find("status-")
        .and_then(|i| body.get(i + 7..i + 10))
        .and_then(|s| s.parse().ok())
        .unwrap_or(200)
}

/// A plain listener that accepts and counts connections (and closes them).
struct Sink {
    port: u16,
    accepts: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Sink {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepts = Arc::new(AtomicUsize::new(0));
        let counted = accepts.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                drop(sock);
            }
        });
        Self {
            port,
            accepts,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------- 1. redirects

#[tokio::test]
async fn redirects_are_never_followed_by_any_provider() {
    let sink = Sink::start().await;
    let location = format!("http://127.0.0.1:{}/elsewhere?token=abc", sink.port);
    let origin = format!("http://127.0.0.1:{}", sink.port);
    for provider in PROVIDERS {
        let loc = location.clone();
        let up = MockUpstream::start(move |r| {
            Reply::json(marked_status(r), "{}").header("location", &loc)
        })
        .await;
        // The default retry policy: a redirect must not be retried either.
        let srv = provider.server(&up, Config::default()).await;
        let mut c = srv.client().await;
        for code in [301u16, 302, 303, 307, 308] {
            let before = up.requests().len();
            let req = text_request(provider.model(), &format!("status-{code}"));
            let (chunks, status) = collect_stream(&mut c, req).await;
            assert_eq!(
                sink.accepted(),
                0,
                "{provider:?} {code}: the redirect target was contacted ({status:?})"
            );
            let s = status.unwrap_or_else(|| panic!("{provider:?} {code}: ended OK"));
            let m = s.message();
            assert_eq!(s.code(), Code::Unknown, "{provider:?} {code}: {s:?}");
            assert_eq!(reason(&s), "UPSTREAM_REDIRECT", "{provider:?} {code}: {m}");
            assert!(m.contains(&format!("HTTP {code}")), "{provider:?}: {m}");
            assert!(m.contains("redirect"), "{provider:?} {code}: {m}");
            assert!(m.contains(&origin), "{provider:?} {code}: {m}");
            assert!(
                !m.contains("elsewhere") && !m.contains("token=abc"),
                "only the origin is shown: {m}"
            );
            assert!(chunks.is_empty(), "{provider:?} {code}: {chunks:?}");
            assert_eq!(
                up.requests().len() - before,
                1,
                "{provider:?} {code}: asked exactly once (not retried)"
            );
        }
    }
}

#[tokio::test]
async fn a_redirect_without_location_is_unknown() {
    for provider in PROVIDERS {
        let up = MockUpstream::start(|_| Reply::json(302, "{}")).await;
        let srv = provider.server(&up, Config::default()).await;
        let mut c = srv.client().await;
        let (_, status) = collect_stream(&mut c, text_request(provider.model(), "hi")).await;
        let s = status.unwrap_or_else(|| panic!("{provider:?}: ended OK"));
        assert_eq!(s.code(), Code::Unknown, "{provider:?}: {s:?}");
        assert_eq!(reason(&s), "UPSTREAM_REDIRECT", "{provider:?}");
        assert!(s.message().contains("HTTP 302"), "{}", s.message());
        assert_eq!(up.requests().len(), 1, "{provider:?}: not retried");
    }
}

// ---------------------------------------------------------------- 2. statuses

#[tokio::test]
async fn statuses_outside_the_contract_are_unknown_naming_the_upstream() {
    for provider in PROVIDERS {
        let up = MockUpstream::start(|r| {
            Reply::json(marked_status(r), r#"{"error":{"message":"I am a teapot"}}"#)
        })
        .await;
        let srv = provider.server(&up, Config::default()).await;
        let mut c = srv.client().await;
        for code in [418u16, 304] {
            let before = up.requests().len();
            let req = text_request(provider.model(), &format!("status-{code}"));
            let (_, status) = collect_stream(&mut c, req).await;
            let s = status.unwrap_or_else(|| panic!("{provider:?} {code}: ended OK"));
            let m = s.message();
            assert_eq!(s.code(), Code::Unknown, "{provider:?} {code}: {s:?}");
            if code == 418 {
                assert_eq!(reason(&s), "UPSTREAM_UNEXPECTED_STATUS", "{m}");
            }
            assert!(m.contains("upstream"), "{provider:?} {code}: {m}");
            assert!(m.contains(&code.to_string()), "{provider:?} {code}: {m}");
            assert_eq!(up.requests().len() - before, 1, "{provider:?} {code}");
        }
    }
}

#[tokio::test]
async fn an_upstream_304_is_an_unexpected_status_not_a_redirect() {
    for provider in PROVIDERS {
        let up = MockUpstream::start(|_| Reply::json(304, "")).await;
        let srv = provider.server(&up, Config::default()).await;
        let mut c = srv.client().await;
        let (_, status) = collect_stream(&mut c, text_request(provider.model(), "hi")).await;
        let s = status.unwrap_or_else(|| panic!("{provider:?}: ended OK"));
        let m = s.message();
        assert_eq!(s.code(), Code::Unknown, "{provider:?}: {s:?}");
        assert_eq!(
            reason(&s),
            "UPSTREAM_UNEXPECTED_STATUS",
            "{provider:?}: {m}"
        );
        assert!(m.contains("upstream") && m.contains("304"), "{m}");
        assert!(!m.contains("redirect") && !m.contains("Location"), "{m}");
    }
}

/// Not valid UTF-8 (gzip's magic, then 0xff): a body taken as text fails as UTF-8.
const GZIP_BYTES: &[u8] = &[
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xff, 0xfe, 0xc3, 0x28, 0x0a, 0x0a,
];

#[tokio::test]
async fn a_compressed_stream_says_so() {
    for provider in PROVIDERS {
        let up = MockUpstream::start(move |_| {
            Reply::new(200, provider.stream_content_type(), GZIP_BYTES)
                .header("content-encoding", "gzip")
        })
        .await;
        let srv = provider.server(&up, no_retry()).await;
        let mut c = srv.client().await;
        let (chunks, status) = collect_stream(&mut c, text_request(provider.model(), "hi")).await;
        let s = status.unwrap_or_else(|| panic!("{provider:?}: ended OK"));
        let m = s.message();
        assert_eq!(s.code(), Code::Unavailable, "{provider:?}: {s:?}");
        assert!(
            m.contains("compressed") && m.contains("gzip"),
            "{provider:?}: {m}"
        );
        assert!(!m.contains("UTF-8"), "{provider:?}: {m}");
        assert!(chunks.is_empty());
    }
}

#[tokio::test]
async fn a_compressed_error_body_says_so() {
    for provider in PROVIDERS {
        let up = MockUpstream::start(|_| {
            Reply::json(500, GZIP_BYTES).header("content-encoding", "gzip")
        })
        .await;
        let srv = provider.server(&up, no_retry()).await;
        let mut c = srv.client().await;
        let (_, status) = collect_stream(&mut c, text_request(provider.model(), "hi")).await;
        let s = status.unwrap_or_else(|| panic!("{provider:?}: ended OK"));
        let m = s.message();
        assert_eq!(s.code(), Code::Unavailable, "{provider:?}: {s:?}");
        assert!(m.contains("500"), "{provider:?}: {m}");
        assert!(
            m.contains("compressed") && m.contains("gzip"),
            "{provider:?}: {m}"
        );
        assert!(!m.contains('\u{fffd}'), "no mangled bytes: {m}");
    }
}

// ---------------------------------------------------------------- 3. auth

const TOKEN: &str = "hardening-caller-token";

fn authorized(req: pb::ChatRequest, header: &str) -> tonic::Request<pb::ChatRequest> {
    let mut r = tonic::Request::new(req);
    r.metadata_mut()
        .insert("authorization", header.parse().unwrap());
    r
}

async fn auth_server() -> TestServer {
    let config = Config {
        auth_tokens: vec![TOKEN.into()],
        ..Config::default()
    };
    TestServer::start(config, env(&[])).await
}

#[tokio::test]
async fn the_bearer_scheme_is_accepted_as_written_or_lower_case() {
    let srv = auth_server().await;
    let mut c = srv.client().await;
    for scheme in ["Bearer", "bearer"] {
        let r = c
            .invoke(authorized(
                text_request("fake:echo", "hi"),
                &format!("{scheme} {TOKEN}"),
            ))
            .await;
        let m = r.unwrap_or_else(|s| panic!("{scheme}: {s:?}")).into_inner();
        assert_eq!(m.content, vec![text("hi")], "{scheme}");
    }
    for header in [
        "Bearer hardening-caller-tokeN",
        "bearer wrong",
        "BEARER wrong",
        TOKEN,
    ] {
        let s = c
            .invoke(authorized(text_request("fake:echo", "hi"), header))
            .await
            .unwrap_err();
        assert_eq!(s.code(), Code::Unauthenticated, "{header}: {s:?}");
        assert!(!s.message().contains(TOKEN), "{}", s.message());
    }
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let srv = auth_server().await;
    let mut c = srv.client().await;
    for scheme in ["BEARER", "BeArEr", "bearer", "Bearer"] {
        let r = c
            .invoke(authorized(
                text_request("fake:echo", "hi"),
                &format!("{scheme} {TOKEN}"),
            ))
            .await;
        assert!(r.is_ok(), "{scheme}: {:?}", r.err());
    }
}

// ---------------------------------------------------------------- 4. nesting

/// A JSON schema whose objects nest `depth` levels.
fn nested_schema(depth: usize) -> prost_types::Struct {
    use prost_types::{value::Kind, Struct, Value};
    let mut s = Struct {
        fields: BTreeMap::from([(
            "type".to_string(),
            Value {
                kind: Some(Kind::StringValue("object".into())),
            },
        )]),
    };
    for _ in 1..depth {
        s = Struct {
            fields: BTreeMap::from([(
                "inner".to_string(),
                Value {
                    kind: Some(Kind::StructValue(s)),
                },
            )]),
        };
    }
    s
}

fn with_tool(depth: usize) -> pb::ChatRequest {
    let mut req = text_request("fake:echo", "deep");
    req.tools = vec![pb::Tool {
        name: "deep".into(),
        description: String::new(),
        parameters: Some(nested_schema(depth)),
        ..Default::default()
    }];
    req
}

#[tokio::test]
async fn json_nested_past_the_decoder_limit_is_the_callers_fault() {
    let srv = TestServer::start(Config::default(), env(&[])).await;
    let mut c = srv.client().await;

    let (_, status) = collect_stream(&mut c, with_tool(60)).await;
    let s = status.expect("a 60-level schema is refused");
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    let limit = chatwire::api::codec::MAX_JSON_DEPTH;
    assert!(
        s.message().contains("nest") && s.message().contains(&format!("{limit} levels")),
        "{}",
        s.message()
    );
    let s = c.invoke(with_tool(60)).await.unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");

    let (chunks, status) = collect_stream(&mut c, with_tool(20)).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(chunk_text(&chunks), "deep");
    assert!(c.invoke(with_tool(20)).await.is_ok());
}

// ---------------------------------------------------------------- 5. openai usage

fn openai_chunk(delta: serde_json::Value, finish: serde_json::Value) -> String {
    let c = json!({
        "id": "chatcmpl-hard", "object": "chat.completion.chunk", "created": 1,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
    });
    format!("data: {c}\n\n")
}

fn openai_until_finish() -> String {
    let mut b = openai_chunk(json!({"role": "assistant", "content": ""}), json!(null));
    for t in ["Hello", ", ", "world"] {
        b += &openai_chunk(json!({ "content": t }), json!(null));
    }
    b + &openai_chunk(json!({}), json!("stop"))
}

fn openai_usage() -> String {
    let c = json!({
        "id": "chatcmpl-hard", "object": "chat.completion.chunk", "created": 1,
        "model": "gpt-4o-mini-2024-07-18", "choices": [],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    });
    format!("data: {c}\n\n")
}

#[tokio::test]
async fn openai_cut_between_finish_reason_and_usage_is_truncated() {
    let up = MockUpstream::start(|r| {
        let body = String::from_utf8_lossy(&r.body);
        let mut b = openai_until_finish();
        if body.contains("then-usage") {
            b += &openai_usage();
        } else if body.contains("then-done") {
            b += "data: [DONE]\n\n";
        }
        Reply::sse(b)
    })
    .await;
    let srv = Provider::OpenAi.server(&up, Config::default()).await;
    let mut c = srv.client().await;

    // Cut after the finish_reason: the usage chunk asked for never came.
    let (chunks, status) =
        collect_stream(&mut c, text_request(Provider::OpenAi.model(), "cut")).await;
    let s = status.expect("a cut stream does not end OK");
    assert_eq!(s.code(), Code::Unavailable, "{s:?}");
    assert_eq!(reason(&s), "UPSTREAM_TRUNCATED", "{}", s.message());
    assert_eq!(chunk_text(&chunks), "Hello, world", "chunks before the cut");
    assert!(
        up.requests()[0].json()["stream_options"]["include_usage"] == json!(true),
        "usage was asked for"
    );

    // The usage chunk, then EOF without [DONE]: complete.
    let req = text_request(Provider::OpenAi.model(), "then-usage");
    let (chunks, status) = collect_stream(&mut c, req).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(chunk_text(&chunks), "Hello, world");
    let last = chunks.last().unwrap();
    assert!(last.last);
    let u = last.usage.expect("usage on the last chunk");
    assert_eq!((u.input_tokens, u.output_tokens), (7, 3));

    // [DONE] right after the finish_reason: complete (the server said so).
    let req = text_request(Provider::OpenAi.model(), "then-done");
    let (chunks, status) = collect_stream(&mut c, req).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(chunk_text(&chunks), "Hello, world");
    assert!(chunks.last().unwrap().last);
}

// ---------------------------------------------------------------- 6. base-URL credentials

const PASSWORD: &str = "s3cr3tpassw0rd";
const QUERY_KEY: &str = "k3yk3yk3yk3y";

async fn list_provider(c: &mut ChatModelClient, name: &str) -> pb::ProviderInfo {
    c.list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner()
        .providers
        .into_iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no provider {name}"))
}

type ChatModelClient =
    pb::chat_model_service_client::ChatModelServiceClient<tonic::transport::Channel>;

#[tokio::test]
async fn openai_base_url_credentials_never_come_back() {
    let up = MockUpstream::start(|_| {
        Reply::json(
            401,
            format!(
                r#"{{"error":{{"message":"bad password {PASSWORD} or api-key {QUERY_KEY}","type":"invalid_request_error"}}}}"#
            ),
        )
    })
    .await;
    let hostport = up.url.trim_start_matches("http://").to_string();
    let base = format!("http://user:{PASSWORD}@{hostport}/v1?api-key={QUERY_KEY}");
    let srv = TestServer::start(
        no_retry(),
        env(&[
            ("OPENAI_API_KEY", "hardening-openai-key"),
            ("OPENAI_BASE_URL", &base),
        ]),
    )
    .await;
    let mut c = srv.client().await;

    let info = list_provider(&mut c, "openai").await;
    assert!(info.configured);
    assert!(
        !info.base_url.contains(PASSWORD) && !info.base_url.contains(QUERY_KEY),
        "{}",
        info.base_url
    );
    assert!(
        info.base_url.contains(&format!("{hostport}/v1")),
        "{}",
        info.base_url
    );

    let (_, status) = collect_stream(&mut c, text_request(Provider::OpenAi.model(), "hi")).await;
    let s = status.expect("the mock refused");
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    assert!(s.message().contains("bad password"), "{}", s.message());
    assert!(
        !s.message().contains(PASSWORD) && !s.message().contains(QUERY_KEY),
        "{}",
        s.message()
    );

    let reqs = up.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].path,
        format!("/v1/chat/completions?api-key={QUERY_KEY}"),
        "the base URL's query goes after the path"
    );
    let auth: Vec<&str> = reqs[0]
        .headers
        .iter()
        .filter(|(k, _)| k == "authorization")
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(auth.contains(&"Bearer hardening-openai-key"), "{auth:?}");
}

#[tokio::test]
async fn a_base_url_userinfo_and_a_key_send_one_authorization_header() {
    let up = MockUpstream::start(|_| Reply::json(401, "{}")).await;
    let hostport = up.url.trim_start_matches("http://").to_string();
    let cases = [
        (
            Provider::OpenAi,
            vec![
                ("OPENAI_API_KEY", "hardening-openai-key".to_string()),
                (
                    "OPENAI_BASE_URL",
                    format!("http://user:{PASSWORD}@{hostport}/v1"),
                ),
            ],
        ),
        (
            Provider::Ollama,
            vec![
                ("OLLAMA_API_KEY", "hardening-ollama-key".to_string()),
                ("OLLAMA_HOST", format!("http://user:{PASSWORD}@{hostport}")),
            ],
        ),
    ];
    let mut seen = Vec::new();
    for (provider, pairs) in cases {
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let srv = TestServer::start(no_retry(), env(&pairs)).await;
        let mut c = srv.client().await;
        let before = up.requests().len();
        let _ = collect_stream(&mut c, text_request(provider.model(), "hi")).await;
        let r = &up.requests()[before];
        let auth: Vec<String> = r
            .headers
            .iter()
            .filter(|(k, _)| k == "authorization")
            .map(|(_, v)| v.clone())
            .collect();
        seen.push((provider, auth));
    }
    assert!(seen.iter().all(|(_, a)| a.len() == 1), "{seen:?}");
    // The key wins: the userinfo is not sent beside it.
    assert!(
        seen.iter()
            .all(|(_, a)| a[0].starts_with("Bearer hardening-")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn ollama_host_userinfo_is_sent_as_basic_auth() {
    let up = MockUpstream::start(|_| {
        let line = |m: serde_json::Value, done: bool| {
            format!(
                "{}\n",
                json!({"model": "qwen3:8b", "created_at": "2025-06-01T10:00:00Z",
                       "message": m, "done": done, "done_reason": "stop",
                       "prompt_eval_count": 1, "eval_count": 1})
            )
        };
        Reply::ndjson(
            line(json!({"role": "assistant", "content": "ok"}), false)
                + &line(json!({"role": "assistant", "content": ""}), true),
        )
    })
    .await;
    let hostport = up.url.trim_start_matches("http://").to_string();
    let host = format!("http://user:{PASSWORD}@{hostport}");
    let srv = TestServer::start(no_retry(), env(&[("OLLAMA_HOST", &host)])).await;
    let mut c = srv.client().await;

    let info = list_provider(&mut c, "ollama").await;
    assert!(info.configured);
    assert!(!info.base_url.contains(PASSWORD), "{}", info.base_url);
    assert!(info.base_url.contains(&hostport), "{}", info.base_url);

    let (chunks, status) =
        collect_stream(&mut c, text_request(Provider::Ollama.model(), "hi")).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(chunk_text(&chunks), "ok");
    let reqs = up.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/api/chat");
    // base64("user:s3cr3tpassw0rd")
    assert_eq!(
        reqs[0].header("authorization").as_deref(),
        Some("Basic dXNlcjpzM2NyM3RwYXNzdzByZA==")
    );
}

// ---------------------------------------------------------------- 7. redaction

const ANTHROPIC_KEY: &str = "sk-ant-api03-SECRETSECRETSECRET";

#[tokio::test]
async fn redaction_hides_upstream_echoes_but_is_no_oracle_for_callers() {
    let up = MockUpstream::start(|_| {
        Reply::json(
            400,
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"invalid x-api-key: sk-ant-api03-SECRETSEC (also sk-ant-api03-SECRET****)"}}"#,
        )
    })
    .await;
    let srv = TestServer::start(
        no_retry(),
        env(&[
            ("ANTHROPIC_API_KEY", ANTHROPIC_KEY),
            ("ANTHROPIC_BASE_URL", &up.url),
        ]),
    )
    .await;
    let mut c = srv.client().await;

    // The caller's own text, holding the key, comes back as sent.
    let own = format!("is {ANTHROPIC_KEY} a key? and sk-ant-api03-SECRETSEC?");
    let script = json!({"fail": {"afterChunks": 0, "code": "INVALID_ARGUMENT", "message": own}});
    let (_, status) =
        collect_stream(&mut c, text_request("fake:script", &script.to_string())).await;
    let s = status.expect("the script fails");
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains(&own), "{}", s.message());

    // An upstream's cut echo of the key: no 12+-character prefix shows.
    let (_, status) = collect_stream(&mut c, text_request(Provider::Anthropic.model(), "hi")).await;
    let s = status.expect("the mock refused");
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("invalid x-api-key"), "{}", s.message());
    for n in 12..=ANTHROPIC_KEY.len() {
        assert!(
            !s.message().contains(&ANTHROPIC_KEY[..n]),
            "{n} characters of the key: {}",
            s.message()
        );
    }
}

/// A request whose gRPC framing is broken gets INTERNAL from tonic, as the
/// gRPC specification asks (docs/CONTRACT.md says so); a well-framed message
/// that is not a ChatRequest is INVALID_ARGUMENT. Nothing panics, the
/// connection serves the next call.
#[tokio::test]
async fn broken_grpc_framing_is_internal_an_undecodable_message_invalid_argument() {
    use bytes::Bytes;
    use common::raw_h2::*;
    let srv = TestServer::start(Config::default(), env(&[])).await;
    let mut h2 = h2_connect(srv.addr).await;
    let good = grpc_body(&text_request("fake:echo", "hi"));
    let mut cut = good.to_vec();
    cut.truncate(good.len() - 2);
    let mut compressed = good.to_vec();
    compressed[0] = 1;
    let mut bad_flag = good.to_vec();
    bad_flag[0] = 7;
    let not_protobuf: &[u8] = &[0, 0, 0, 0, 3, 0xff, 0xff, 0xff];
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("a message cut short", cut, "13"),
        (
            "the compressed flag without grpc-encoding",
            compressed,
            "13",
        ),
        ("flag 7", bad_flag, "13"),
        ("no message", Vec::new(), "13"),
        (
            "bytes that are not a ChatRequest",
            not_protobuf.to_vec(),
            "3",
        ),
    ];
    for rpc in ["Invoke", "Stream"] {
        for (what, body, want) in &cases {
            let (resp, mut stream) = h2.send_request(grpc_request(rpc), false).unwrap();
            stream.send_data(Bytes::from(body.clone()), true).unwrap();
            let (_, code, message) = read_stream(resp).await;
            assert_eq!(&code, want, "{rpc}, {what}: {message}");
        }
    }
    let resp = h2_send(&mut h2, "Stream", &text_request("fake:echo", "hi")).unwrap();
    let (chunks, code, message) = read_stream(resp).await;
    assert_eq!(code, "0", "{message}");
    assert!(!chunks.is_empty());
}
