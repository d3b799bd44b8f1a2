//! Serving for real, with the fake model: callers' auth, TLS and mTLS, limits,
//! timers, fallbacks, graceful shutdown, request size.
// Tests measure wall-clock time and share state across mock threads.
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
use pb::chat_event::Event;
use tonic::{transport::Channel, Code};

fn slow_script(chunks: usize, delay_ms: u64) -> pb::ChatRequest {
    let chunks: Vec<serde_json::Value> = (0..chunks)
        .map(|i| serde_json::json!({"text": format!("t{i} ")}))
        .collect();
    text_request(
        "fake:script",
        &serde_json::json!({"chunks": chunks, "delayMs": delay_ms}).to_string(),
    )
}

fn with_token(req: pb::ChatRequest, token: &str) -> tonic::Request<pb::ChatRequest> {
    let mut r = tonic::Request::new(req);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

#[tokio::test]
async fn chat_calls_need_a_token_when_tokens_are_configured() {
    let config = Config {
        auth_tokens: vec!["s3cret-one".into(), "s3cret-two".into()],
        ..Config::default()
    };
    let srv = TestServer::start(config, env(&[])).await;
    let mut c = srv.client().await;
    let req = text_request("fake:echo", "hi");

    let err = c.invoke(req.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("Bearer"), "{}", err.message());
    let err = c
        .invoke(with_token(req.clone(), "s3cret-on"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(
        !err.message().contains("s3cret"),
        "the token never comes back: {}",
        err.message()
    );
    let err = c
        .stream(with_token(req.clone(), "wrong"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = c.list_models(pb::ListModelsRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    assert!(c
        .invoke(with_token(req.clone(), "s3cret-two"))
        .await
        .is_ok());
    let s = c.stream_events(with_token(req, "s3cret-one")).await;
    assert!(s.is_ok());

    // Health stays open.
    let mut health = tonic_health::pb::health_client::HealthClient::new(srv.channel().await);
    let r = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(r.into_inner().status, 1);
}

#[test]
fn non_loopback_without_auth_is_refused_unless_insecure() {
    let mut c = Config {
        addr: "0.0.0.0:50051".parse().unwrap(),
        ..Config::default()
    };
    let e = c.check_exposure().unwrap_err();
    assert!(e.message.contains("--insecure-no-auth"), "{e}");
    c.insecure_no_auth = true;
    assert!(c.check_exposure().is_ok());
    c.insecure_no_auth = false;
    c.resolve_auth(&env(&[("CHATWIRE_API_KEYS", "a,b")]))
        .unwrap();
    assert_eq!(c.auth_tokens, vec!["a", "b"]);
    assert!(c.check_exposure().is_ok());
    let loopback = Config::default();
    assert!(loopback.check_exposure().is_ok());
}

#[tokio::test]
async fn serves_tls_and_verifies_client_certificates() {
    let ca = test_ca();
    let (server_cert, server_key) = issue(&ca, "localhost");
    let (client_cert, client_key) = issue(&ca, "client.example");

    let dir = std::env::temp_dir().join(format!("chatwire-tls-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, pem: String| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p
    };
    let tls = chatwire::config::TlsFiles {
        cert: write("server.pem", server_cert.pem()),
        key: write("server.key", server_key.serialize_pem()),
        client_ca: Some(write("ca.pem", ca.pem())),
    };
    let srv = TestServer::start(
        Config {
            tls: Some(tls),
            ..Config::default()
        },
        env(&[]),
    )
    .await;
    let url = format!("https://localhost:{}", srv.addr.port());
    let base = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ca.pem()))
        .domain_name("localhost");

    // With a client certificate: served.
    let mut connected = None;
    for _ in 0..50 {
        let tls = base.clone().identity(tonic::transport::Identity::from_pem(
            client_cert.pem(),
            client_key.serialize_pem(),
        ));
        if let Ok(ch) = Channel::from_shared(url.clone())
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
        {
            connected = Some(ch);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut c =
        pb::chat_model_service_client::ChatModelServiceClient::new(connected.expect("TLS connect"));
    let m = c
        .invoke(text_request("fake:echo", "over tls"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        m.content[0].block,
        Some(pb::content_block::Block::Text("over tls".into()))
    );

    // Without one: refused by the handshake (or the first call).
    let no_cert = Channel::from_shared(url.clone())
        .unwrap()
        .tls_config(base.clone())
        .unwrap()
        .connect()
        .await;
    if let Ok(ch) = no_cert {
        let mut c = pb::chat_model_service_client::ChatModelServiceClient::new(ch);
        assert!(c.invoke(text_request("fake:echo", "x")).await.is_err());
    }
    // Plaintext against TLS fails too.
    let plain = Channel::from_shared(format!("http://127.0.0.1:{}", srv.addr.port()))
        .unwrap()
        .connect()
        .await;
    if let Ok(ch) = plain {
        let mut c = pb::chat_model_service_client::ChatModelServiceClient::new(ch);
        assert!(c.invoke(text_request("fake:echo", "x")).await.is_err());
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn concurrency_caps_answer_at_once_with_resource_exhausted() {
    let mut config =
        Config::from_toml("[models.narrow]\ntarget = \"fake:script\"\nmax_concurrent = 1\n")
            .unwrap();
    config.limits.max_concurrent = 3;
    let srv = TestServer::start(config, env(&[])).await;
    let mut c = srv.client().await;

    // Per model: one in flight on "narrow", the second is refused at once.
    let mut narrow = slow_script(20, 50);
    narrow.model = "narrow".into();
    let mut first = c.stream(narrow.clone()).await.unwrap().into_inner();
    use futures_util::StreamExt;
    assert!(first.next().await.unwrap().is_ok());
    let started = std::time::Instant::now();
    let (_, status) = collect_stream(&mut c, narrow.clone()).await;
    let status = status.unwrap();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(reason(&status), "TOO_MANY_STREAMS_FOR_MODEL");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered at once, not queued"
    );

    // Server-wide: 3 in flight (one of them above), the 4th refused.
    let mut held = vec![first];
    for _ in 0..2 {
        let mut s = c.stream(slow_script(20, 50)).await.unwrap().into_inner();
        assert!(s.next().await.unwrap().is_ok());
        held.push(s);
    }
    let (_, status) = collect_stream(&mut c, slow_script(1, 0)).await;
    assert_eq!(status.map(|s| s.code()), Some(Code::ResourceExhausted));

    // Dropping a stream releases its permit.
    held.clear();
    let mut ok = false;
    for _ in 0..50 {
        if collect_stream(&mut c, slow_script(1, 0)).await.1.is_none() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "permits are released when streams drop");
}

// One wall-clock smoke test per timer, through the real server and its config;
// the timers' logic is tested in-process in timers.rs. No elapsed-time checks:
// in each, the thing that would beat the timer never comes.

/// The DEADLINE_EXCEEDED status naming `timer`.
fn assert_timer(status: Option<tonic::Status>, timer: &str) {
    let status = status.expect("the call ends with a status");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(reason(&status), "DEADLINE_EXCEEDED");
    assert!(status.message().contains(timer), "{}", status.message());
}

#[tokio::test]
async fn smoke_the_first_chunk_timer_through_the_server() {
    // A per-model timer from the config file, on a script whose first chunk
    // would come after an hour.
    let config =
        Config::from_toml("[models.impatient]\ntarget = \"fake:script\"\nfirst_chunk_secs = 0.1\n")
            .unwrap();
    let srv = TestServer::start(config, env(&[])).await;
    let mut c = srv.client().await;
    let never = serde_json::json!({"chunks": [{"text": "late"}], "delayMs": 3_600_000}).to_string();
    let (chunks, status) = collect_stream(&mut c, text_request("impatient", &never)).await;
    assert!(chunks.is_empty());
    assert_timer(status, "first-chunk timer");
}

#[tokio::test]
async fn smoke_the_idle_timer_through_the_server() {
    // An upstream that sends one token, then holds the connection open in silence.
    let chunk = serde_json::json!({"id": "chatcmpl-idle", "object": "chat.completion.chunk",
        "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": null}]});
    let body = format!("data: {chunk}\n\n");
    let up = MockUpstream::start(move |_| Reply::sse(body.clone()).hold_open()).await;
    let mut config = Config::default();
    config.timers.idle = Duration::from_millis(100);
    let srv = TestServer::start(config, env(&[("OPENAI_BASE_URL", &up.url)])).await;
    let mut c = srv.client().await;
    let (chunks, status) = collect_stream(&mut c, text_request("openai:m", "hi")).await;
    assert_eq!(chunk_text(&chunks), "a");
    assert_timer(status, "idle timer");
    // The timer drops the upstream request too.
    assert!(up.wait_closed(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn smoke_the_total_timer_through_the_server() {
    // fake:echo at 10 ms per token, 500 words: 10 s of tokens, no gap near the idle timer.
    let config = Config {
        fake_token_delay: Duration::from_millis(10),
        timers: chatwire::config::Timers {
            total: Duration::from_millis(300),
            ..Default::default()
        },
        ..Config::default()
    };
    let srv = TestServer::start(config, env(&[])).await;
    let mut c = srv.client().await;
    let words = vec!["w"; 500].join(" ");
    let (chunks, status) = collect_stream(&mut c, text_request("fake:echo", &words)).await;
    assert!(!chunks.is_empty() && chunks.len() < 999, "{}", chunks.len());
    assert_timer(status, "total-duration timer");
}

#[tokio::test]
async fn an_alias_falls_back_before_the_first_chunk_and_says_who_served() {
    // The first target fails like an overloaded upstream; the fallback echoes.
    let config = Config::from_toml(
        "[retry]\nmax_retries = 0\n[models.sturdy]\ntarget = \"fake:script\"\nfallbacks = [\"fake:echo\"]\n",
    )
    .unwrap();
    let srv = TestServer::start(config, env(&[])).await;
    let mut c = srv.client().await;
    let script =
        serde_json::json!({"fail": {"afterChunks": 0, "httpStatus": 529, "message": "overloaded"}})
            .to_string();
    let req = text_request("sturdy", &script);
    let (events, status) = collect_events(&mut c, req.clone()).await;
    assert!(status.is_none(), "{status:?}");
    match &events.last().unwrap().event {
        Some(Event::End(end)) => {
            let out = end.output.as_ref().unwrap();
            assert_eq!(out.model, "echo");
            assert_eq!(
                out.content[0].block,
                Some(pb::content_block::Block::Text(script.clone()))
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(events.last().unwrap().metadata["ls_model_name"], "echo");

    // After a chunk was sent, a failure is never retried nor switched: the status ends the stream.
    let script = serde_json::json!({"chunks": [{"text": "partial"}, {"text": "more"}], "fail": {"afterChunks": 1, "httpStatus": 503}}).to_string();
    let (chunks, status) = collect_stream(&mut c, text_request("sturdy", &script)).await;
    assert_eq!(chunk_text(&chunks), "partial");
    assert_eq!(status.map(|s| s.code()), Some(Code::Unavailable));
}

use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

/// The grpc.health.v1 Check answer for `service`; an error status fails the test.
async fn health_status(health: &mut HealthClient<Channel>, service: &str) -> ServingStatus {
    let r = health
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("health Check({service:?}) must answer: {e:?}"));
    ServingStatus::try_from(r.into_inner().status).expect("a known serving status")
}

#[tokio::test]
async fn a_stream_in_flight_at_shutdown_completes_and_new_calls_are_refused() {
    // The GOAWAY comes after the delay (tests/goaway.rs covers it): until then
    // this connection keeps working and shows the drain in-band.
    let config = Config {
        drain_goaway_delay: Duration::from_millis(1500),
        ..Config::default()
    };
    let mut srv = TestServer::start(config, env(&[])).await;
    let ch = srv.channel().await;
    let mut c = pb::chat_model_service_client::ChatModelServiceClient::new(ch.clone());
    let mut health = HealthClient::new(ch.clone());
    let mut s = c.stream(slow_script(8, 100)).await.unwrap().into_inner();
    use futures_util::StreamExt;
    let first = s.next().await.unwrap().unwrap();
    assert!(!first.last);
    // Before shutdown: SERVING, for the server and for the chat service.
    for service in ["", "chatwire.v1.ChatModelService"] {
        assert_eq!(
            health_status(&mut health, service).await,
            ServingStatus::Serving,
            "{service:?}"
        );
    }

    srv.trigger_shutdown();
    // During the drain health answers, and says NOT_SERVING (an error here is a
    // failure: a probe must see the status, not a broken connection).
    // The in-flight stream keeps the drain going for about 700 ms more; the
    // status must have turned well before that.
    let mut status = health_status(&mut health, "").await;
    for _ in 0..30 {
        if status != ServingStatus::Serving {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        status = health_status(&mut health, "").await;
    }
    assert_eq!(status, ServingStatus::NotServing, "health during the drain");
    assert_eq!(
        health_status(&mut health, "chatwire.v1.ChatModelService").await,
        ServingStatus::NotServing
    );
    // New calls are refused.
    let refused = c.invoke(text_request("fake:echo", "late")).await;
    assert!(refused.is_err(), "a call after shutdown must be refused");
    let refused = refused.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable);
    assert_eq!(reason(&refused), "DRAINING");

    // The in-flight stream runs to its last chunk.
    let mut rest = vec![first];
    while let Some(c) = s.next().await {
        rest.push(c.expect("in-flight stream completes"));
    }
    assert!(rest.last().unwrap().last);
    assert_eq!(chunk_text(&rest), "t0 t1 t2 t3 t4 t5 t6 t7 ");
    srv.stop().await.unwrap();
}

#[tokio::test]
async fn requests_up_to_the_configured_size_are_accepted() {
    let srv = TestServer::start(Config::default(), env(&[])).await;
    let mut c = srv.client().await;
    // 8 MiB: over tonic's 4 MiB default, under chatwire's 32 MiB default.
    let mut req = text_request("fake:echo", "x");
    req.messages[0].content.push(pb::ContentBlock {
        block: Some(pb::content_block::Block::Image(pb::Image {
            source: Some(pb::image::Source::Data(vec![7u8; 8 << 20])),
            mime_type: "image/png".into(),
        })),
        ..Default::default()
    });
    let r = c.invoke(req).await;
    assert!(r.is_ok(), "{:?}", r.err());

    let config = Config {
        max_request_bytes: 1 << 20,
        ..Config::default()
    };
    let srv = TestServer::start(config, env(&[])).await;
    let mut c = srv.client().await;
    let mut req = text_request("fake:echo", "x");
    req.messages[0].content[0] = text(&"y".repeat(2 << 20));
    let err = c.invoke(req).await.unwrap_err();
    // tonic's own check, before the handler: OUT_OF_RANGE naming the limit.
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert!(
        err.message().contains("message length too large"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn calls_outliving_the_grace_period_end_with_unavailable() {
    let config = Config {
        shutdown_grace: Duration::from_millis(300),
        ..Config::default()
    };
    let mut srv = TestServer::start(config, env(&[])).await;
    let mut c = srv.client().await;
    let mut s = c.stream(slow_script(50, 100)).await.unwrap().into_inner();
    let mut ev = c
        .stream_events(slow_script(50, 100))
        .await
        .unwrap()
        .into_inner();
    use futures_util::StreamExt;
    assert!(s.next().await.unwrap().is_ok());
    assert!(ev.next().await.unwrap().is_ok());
    srv.trigger_shutdown();
    let mut got = 1;
    let status = loop {
        match s.next().await {
            Some(Ok(_)) => got += 1,
            Some(Err(e)) => break e,
            None => panic!("a stream cut by shutdown must not end OK"),
        }
    };
    assert!(got < 50);
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(reason(&status), "DRAINING");
    let mut events = Vec::new();
    let status = loop {
        match ev.next().await {
            Some(Ok(e)) => events.push(e),
            Some(Err(e)) => break e,
            None => panic!("never OK"),
        }
    };
    assert_eq!(status.code(), Code::Unavailable);
    // The contract's terminal event comes first, with what was sent so far.
    match &events.last().unwrap().event {
        Some(Event::Error(e)) => {
            assert_eq!(e.code, Code::Unavailable as i32);
            let partial = e.partial.as_ref().unwrap();
            assert!(
                matches!(&partial.content[0].block, Some(pb::content_block::Block::Text(t)) if t.starts_with("t0 "))
            );
        }
        other => panic!("{other:?}"),
    }
    let started = std::time::Instant::now();
    srv.stop().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn an_alias_skips_targets_not_configured_here_and_keeps_target_switches() {
    let config = Config::from_toml(
        "[models.fast]\ntarget = \"anthropic:claude-3-haiku-20240307\"\nfallbacks = [\"fake:echo\"]\n\
         [models.\"fake:echo\"]\nstreaming = false\n\
         [models.capped]\ntarget = \"fake:echo\"\nmax_concurrent = 4\n\
         [models.nokey]\ntarget = \"anthropic:claude-3-haiku-20240307\"\n",
    )
    .unwrap();
    let srv = TestServer::start(config, env(&[])).await;
    let mut c = srv.client().await;
    // No ANTHROPIC_API_KEY on this replica: the alias is served by its fallback.
    let (events, status) = collect_events(&mut c, text_request("fast", "a b c")).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(events.last().unwrap().metadata["ls_provider"], "fake");
    // The target's own switch (non-streaming) holds under an alias that does not set it.
    let (chunks, _) = collect_stream(&mut c, text_request("capped", "a b c")).await;
    assert_eq!(chunks.len(), 1);
    let models = c
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        !models
            .models
            .iter()
            .find(|m| m.name == "capped")
            .unwrap()
            .streaming
    );
    // With no usable target at all, the first target's error.
    let (_, status) = collect_stream(&mut c, text_request("nokey", "x")).await;
    assert_eq!(status.unwrap().code(), Code::FailedPrecondition);
}
