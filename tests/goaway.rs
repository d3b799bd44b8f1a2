//! Draining with HTTP/2 GOAWAY, seen from real clients: a raw h2 client (to
//! observe the GOAWAY frame itself) and a tonic Channel (what a user sees).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use std::time::Duration;

use chatwire::{config::Config, pb};
use common::{raw_h2::*, *};
use futures_util::StreamExt;
use tonic::Code;

fn slow_script(chunks: usize, delay_ms: u64) -> pb::ChatRequest {
    let chunks: Vec<serde_json::Value> = (0..chunks)
        .map(|i| serde_json::json!({"text": format!("t{i} ")}))
        .collect();
    text_request(
        "fake:script",
        &serde_json::json!({"chunks": chunks, "delayMs": delay_ms}).to_string(),
    )
}

#[tokio::test]
async fn draining_sends_goaway_in_flight_streams_finish_and_the_listener_closes() {
    let mut srv = TestServer::start(Config::default(), env(&[])).await;
    let mut tonic_client = srv.client().await;
    let mut h2 = h2_connect(srv.addr).await;

    // One stream in flight on each client, about 2 s long.
    let raw = h2_send(&mut h2, "Stream", &slow_script(20, 100)).unwrap();
    let mut tonic_stream = tonic_client
        .stream(slow_script(20, 100))
        .await
        .unwrap()
        .into_inner();
    let first = tonic_stream.next().await.unwrap().unwrap();
    let raw = tokio::spawn(read_stream(raw));

    srv.trigger_shutdown();
    // A call already on its way when the drain starts (sent before this
    // client can have read any GOAWAY) is answered, never left hanging:
    // UNAVAILABLE, the drain's message.
    let late = h2_send(&mut h2, "Stream", &text_request("fake:echo", "late")).unwrap();
    let (chunks, code, message) = tokio::time::timeout(Duration::from_secs(5), read_stream(late))
        .await
        .expect("a call racing the GOAWAY must not hang");
    assert!(chunks.is_empty());
    assert_eq!(code, "14", "UNAVAILABLE: {message}");
    // grpc-message is percent-encoded on the wire.
    assert!(message.contains("shutting%20down"), "{message}");

    // The connection receives GOAWAY (NO_ERROR): this client can open no new
    // stream on it.
    let mut goaway = None;
    for _ in 0..200 {
        match h2_send(&mut h2, "Stream", &text_request("fake:echo", "x")) {
            Err(e) => {
                goaway = Some(e);
                break;
            }
            Ok(resp) => {
                // Opened before the GOAWAY arrived: refused in-band (or, if it
                // crossed the final GOAWAY, not processed and reported so).
                let (_, code, _) = read_stream(resp).await;
                assert!(code == "14" || code == "goaway", "{code}");
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let e = goaway.expect("the server's GOAWAY within 2 s of the drain's start");
    // ...at the drain's start, not once the calls in flight are done.
    assert!(
        !raw.is_finished(),
        "the GOAWAY came while streams were in flight"
    );
    assert!(e.is_go_away() && e.is_remote(), "{e:?}");
    assert_eq!(e.reason(), Some(h2::Reason::NO_ERROR), "{e:?}");

    // The listener is closed: a new connection is refused at connect.
    let connect = tokio::net::TcpStream::connect(srv.addr).await;
    assert_eq!(
        connect.map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );

    // A tonic user: a new call on the same Channel fails fast, never served:
    // while the stream in flight keeps the connection open, hyper refuses to
    // start a call on a connection that has received GOAWAY (CANCELLED,
    // "connection closed"); the server never saw it.
    let refused = tokio::time::timeout(
        Duration::from_secs(5),
        tonic_client.invoke(text_request("fake:echo", "new")),
    )
    .await
    .expect("a new call after the GOAWAY must not hang")
    .unwrap_err();
    assert_eq!(refused.code(), Code::Cancelled, "{refused:?}");
    assert!(
        format!("{refused:?}").contains("connection closed"),
        "{refused:?}"
    );

    // ...while both streams in flight run to their last chunk, OK.
    let mut got = vec![first];
    while let Some(c) = tonic_stream.next().await {
        got.push(c.expect("the in-flight stream completes OK"));
    }
    assert_eq!(
        chunk_text(&got),
        "t0 t1 t2 t3 t4 t5 t6 t7 t8 t9 t10 t11 t12 t13 t14 t15 t16 t17 t18 t19 "
    );
    assert!(got.last().unwrap().last);
    let (chunks, code, message) = raw.await.unwrap();
    assert_eq!(code, "0", "{message}");
    assert_eq!(
        chunk_text(&chunks),
        "t0 t1 t2 t3 t4 t5 t6 t7 t8 t9 t10 t11 t12 t13 t14 t15 t16 t17 t18 t19 "
    );

    // Once that connection has closed, the Channel reconnects: refused at
    // connect (the listener is closed), UNAVAILABLE.
    let mut last = None;
    for _ in 0..50 {
        let e = tonic_client
            .invoke(text_request("fake:echo", "later"))
            .await
            .unwrap_err();
        if e.code() == Code::Unavailable {
            last = Some(e);
            break;
        }
        assert_eq!(e.code(), Code::Cancelled, "{e:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let e = last.expect("UNAVAILABLE once the old connection has closed");
    assert!(format!("{e:?}").to_lowercase().contains("connect"), "{e:?}");

    // Nothing left in flight: the server returns at once (not after the 30 s grace).
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(3), srv.stop())
        .await
        .expect("the server returns once its connections are closed")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn during_the_goaway_delay_the_port_answers_not_serving_and_refuses_calls() {
    let config = Config {
        drain_goaway_delay: Duration::from_millis(800),
        ..Config::default()
    };
    let mut srv = TestServer::start(config, env(&[])).await;
    let mut h2 = h2_connect(srv.addr).await;
    srv.trigger_shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Before the delay is over: still accepting, health says NOT_SERVING, no
    // GOAWAY, calls refused in-band.
    let mut health = tonic_health::pb::health_client::HealthClient::new(srv.channel().await);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health answers during the delay")
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::NotServing as i32
    );
    let mut fresh = h2_connect(srv.addr).await;
    for client in [&mut h2, &mut fresh] {
        let resp = h2_send(client, "Stream", &text_request("fake:echo", "x"))
            .expect("no GOAWAY before the delay is over");
        let (chunks, code, message) = read_stream(resp).await;
        assert!(chunks.is_empty());
        assert_eq!(code, "14", "{message}");
    }
    // After it: GOAWAY.
    let mut goaway = None;
    for _ in 0..200 {
        match h2_send(&mut h2, "Stream", &text_request("fake:echo", "x")) {
            Err(e) => {
                goaway = Some(e);
                break;
            }
            Ok(resp) => {
                let (_, code, _) = read_stream(resp).await;
                assert!(code == "14" || code == "goaway", "{code}");
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(goaway.expect("GOAWAY after the delay").is_go_away());
    srv.stop().await.unwrap();
}
