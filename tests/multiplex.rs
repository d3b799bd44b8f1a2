//! Many calls multiplexed on one HTTP/2 connection, as a mesh sidecar sends
//! them: a burst of thousands of concurrent calls on one connection must all
//! be served, not cut by the server's HTTP/2 flood protection. (h2 closes a
//! connection with GOAWAY ENHANCE_YOUR_CALM once the small DATA frames it has
//! read but not yet handed to a handler exceed half its connection window).
//! With hyper's default 1 MiB window this burst is cut (the client sees the
//! connection close); with chatwire's 8 MiB it is served whole.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use std::time::Duration;

use chatwire::config::Config;
use common::{raw_h2::*, *};
use futures_util::{stream::FuturesUnordered, StreamExt};

/// Calls sent in one burst on one connection: more than a 1 MiB window allows.
const CALLS: usize = 8_000;

/// One thread (tokio's test default): the server's connection task reads the
/// whole burst before any handler runs, as a busy server would.
#[tokio::test]
async fn a_burst_of_thousands_of_calls_on_one_connection_is_served_whole() {
    let mut config = Config::default();
    config.limits.max_concurrent = 0; // the server-wide cap is not under test
    let server = TestServer::start(config, env(&[])).await;
    // The client's own windows are large, so that what is measured is the
    // server's side (h2 on the client side has the same flood protection).
    let mut builder = h2::client::Builder::new();
    builder
        .initial_window_size(1024 * 1024)
        .initial_connection_window_size(256 * 1024 * 1024)
        .max_concurrent_reset_streams(CALLS);
    let mut client = h2_connect_with(server.addr, builder).await;
    // One call answered first: the server's SETTINGS (its stream limit) have
    // arrived before the burst.
    let warm = h2_send(&mut client, "Stream", &text_request("fake:echo", "warm")).unwrap();
    let (_, code, message) = read_stream(warm).await;
    assert_eq!(code, "0", "{message}");

    let mut sent = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        // Nothing is awaited between the requests (each handle is ready at
        // once, far below the stream limit), so they leave as one burst.
        let mut handle = client.clone().ready().await.unwrap();
        let request = text_request("fake:echo", &format!("call {i}"));
        sent.push((
            i,
            h2_send_then_end(&mut handle, "Stream", &request).unwrap(),
        ));
    }
    let mut calls: FuturesUnordered<_> = sent
        .into_iter()
        .map(|(i, resp)| async move { (i, read_stream(resp).await) })
        .collect();

    let mut ok = 0;
    let mut first_failure = None;
    let all = async {
        while let Some((i, (chunks, code, message))) = calls.next().await {
            if code == "0" {
                let text = chunk_text(&chunks);
                assert_eq!(text, format!("call {i}"), "call {i} came back wrong");
                assert!(
                    chunks.last().is_some_and(|c| c.last),
                    "call {i}: no last chunk"
                );
                ok += 1;
            } else if first_failure.is_none() {
                first_failure = Some(format!("grpc-status {code}: {message}"));
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("the calls did not finish in 120 s");
    assert_eq!(
        ok,
        CALLS,
        "{} of {CALLS} calls on one connection failed, first: {first_failure:?}",
        CALLS - ok
    );
}
