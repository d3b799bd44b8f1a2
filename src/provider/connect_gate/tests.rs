//! The connect gate's tests: its states under paused time, with a fake
//! connector, and the origin key through a real reqwest client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};

use hyper_util::client::legacy::connect::Connected;
use tokio::time::{sleep, Instant};

use super::*;

struct Conn(bool);

impl Connection for Conn {
    fn connected(&self) -> Connected {
        let c = Connected::new();
        if self.0 {
            c.negotiated_h2()
        } else {
            c
        }
    }
}

/// As reqwest shows its connect request (scheme, host, path `/`).
const ORIGIN: &str = "Unnameable(https://up.example/)";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// reqwest's connect timeout, outside the gate.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `n` connects at once; connect number i (in the order they reach the
/// upstream) takes `took(i)` and yields `result(i)`; each is bounded by
/// the connect timeout, as in reqwest. Returns how many reached the
/// upstream, and each caller's result and finishing time.
async fn burst(
    gate: &ConnectGate,
    origin: &'static str,
    n: usize,
    took: fn(usize) -> Duration,
    result: fn(usize) -> Result<bool, &'static str>,
) -> (usize, Vec<(Result<bool, String>, Duration)>) {
    let reached = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let calls = (0..n).map(|_| {
        let (gate, reached) = (gate.clone(), reached.clone());
        tokio::spawn(async move {
            let connect = gate.connect(origin, || async move {
                let i = reached.fetch_add(1, Ordering::SeqCst);
                sleep(took(i)).await;
                result(i).map(Conn).map_err(BoxError::from)
            });
            let r = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
                Ok(r) => r.map(|c| c.0).map_err(|e| e.to_string()),
                Err(_) => Err("connect timed out".to_string()),
            };
            (r, start.elapsed())
        })
    });
    let calls: Vec<_> = calls.collect();
    let mut out = Vec::new();
    for c in calls {
        out.push(c.await.unwrap());
    }
    (reached.load(Ordering::SeqCst), out)
}

#[tokio::test(start_paused = true)]
async fn a_burst_on_an_http2_origin_opens_one_connection() {
    let gate = ConnectGate::default();
    let (reached, out) = burst(&gate, ORIGIN, 20, |_| ms(50), |_| Ok(true)).await;
    assert_eq!(reached, 1, "connects that reached the upstream");
    let ok: Vec<_> = out.iter().filter(|(r, _)| r.is_ok()).collect();
    assert_eq!(ok.len(), 1);
    // The others end, unneeded, SETTLE after the probe (their calls took
    // the probe's connection from hyper's pool meanwhile).
    for (r, at) in out.iter().filter(|(r, _)| r.is_err()) {
        assert!(
            r.as_ref().unwrap_err().contains("did not become usable"),
            "{r:?}"
        );
        assert_eq!(*at, ms(50) + SETTLE);
    }
}

#[tokio::test(start_paused = true)]
async fn connects_just_after_an_http2_probe_wait_for_its_connection_later_ones_probe() {
    let gate = ConnectGate::default();
    let (reached, _) = burst(&gate, ORIGIN, 1, |_| ms(50), |_| Ok(true)).await;
    assert_eq!(reached, 1);
    // Within HOLD_AFTER: hyper may not have pooled the connection yet.
    sleep(HOLD_AFTER / 2).await;
    let held = {
        let gate = gate.clone();
        tokio::spawn(async move { burst(&gate, ORIGIN, 5, |_| ms(5), |_| Ok(true)).await })
    };
    // After it (the connection has closed, or the pool would have served
    // the call): a new probe, well before the held connects end.
    sleep(HOLD_AFTER / 2).await;
    let (reached, out) = burst(&gate, ORIGIN, 1, |_| ms(5), |_| Ok(true)).await;
    assert_eq!(reached, 1);
    assert_eq!(out[0], (Ok(true), ms(5)));
    let (reached, out) = held.await.unwrap();
    assert_eq!(reached, 0);
    assert!(out
        .iter()
        .all(|(r, at)| r.is_err() && *at == SETTLE - HOLD_AFTER / 2));
}

#[tokio::test(start_paused = true)]
async fn when_the_probe_fails_the_waiters_connect_at_once_not_one_by_one() {
    let gate = ConnectGate::default();
    // Refused after 300 ms: each waiter then tries its own connect, all
    // together.
    let (reached, out) = burst(&gate, ORIGIN, 20, |_| ms(300), |_| Err("refused")).await;
    assert_eq!(reached, 20);
    assert!(out.iter().all(|(r, _)| r.is_err()));
    let mut times: Vec<_> = out.iter().map(|(_, at)| *at).collect();
    times.sort();
    assert_eq!(times[0], ms(300), "the probe");
    assert!(times[1..].iter().all(|at| *at == ms(600)), "{times:?}");
    // Unreachable (every connect hangs): each call fails at its own
    // connect timeout, none later.
    let (reached, out) = burst(&gate, ORIGIN, 20, |_| ms(60_000), |_| Ok(true)).await;
    assert_eq!(reached, 20);
    assert!(out
        .iter()
        .all(|(r, at)| r.is_err() && *at == CONNECT_TIMEOUT));
}

#[tokio::test(start_paused = true)]
async fn a_stuck_probe_holds_the_others_for_probe_wait_only() {
    let gate = ConnectGate::default();
    // The probe's connect hangs (one dead address); the rest connect in
    // 5 ms once they stop waiting for it.
    let (reached, out) = burst(
        &gate,
        ORIGIN,
        10,
        |i| if i == 0 { ms(60_000) } else { ms(5) },
        |_| Ok(true),
    )
    .await;
    assert_eq!(reached, 10);
    let ok: Vec<_> = out.iter().filter(|(r, _)| r.is_ok()).collect();
    assert_eq!(ok.len(), 9);
    assert!(ok.iter().all(|(_, at)| *at == PROBE_WAIT + ms(5)));
}

#[tokio::test(start_paused = true)]
async fn an_http1_origin_is_gated_once_then_connects_freely() {
    let gate = ConnectGate::default();
    let (reached, out) = burst(&gate, ORIGIN, 10, |_| ms(20), |_| Ok(false)).await;
    assert_eq!(reached, 10, "HTTP/1.1: a connection per call");
    assert!(out.iter().all(|(r, _)| r == &Ok(false)));
    assert!(out.iter().all(|(_, at)| *at <= ms(40)));
    // Known to be HTTP/1.1 now: no waiting for a probe.
    let (reached, out) = burst(&gate, ORIGIN, 10, |_| ms(20), |_| Ok(false)).await;
    assert_eq!(reached, 10);
    assert!(out.iter().all(|(_, at)| *at == ms(20)));
    // For HTTP1_FOR: then a probe again.
    sleep(HTTP1_FOR).await;
    let (_, out) = burst(&gate, ORIGIN, 10, |_| ms(20), |_| Ok(false)).await;
    assert_eq!(out.iter().filter(|(_, at)| *at == ms(40)).count(), 9);
}

#[tokio::test(start_paused = true)]
async fn plain_http_and_other_origins_are_not_held_by_a_probe() {
    let gate = ConnectGate::default();
    let (reached, out) = burst(
        &gate,
        "Unnameable(http://127.0.0.1:9001/)",
        10,
        |_| ms(20),
        |_| Ok(true),
    )
    .await;
    assert_eq!(reached, 10);
    assert!(out.iter().all(|(r, at)| r.is_ok() && *at == ms(20)));
    // A probe to one origin does not hold a connect to another.
    let slow = {
        let gate = gate.clone();
        tokio::spawn(async move {
            burst(&gate, ORIGIN, 1, |_| Duration::from_secs(5), |_| Ok(true)).await
        })
    };
    tokio::task::yield_now().await;
    let (_, out) = burst(
        &gate,
        "Unnameable(https://other.example/)",
        1,
        |_| ms(20),
        |_| Ok(true),
    )
    .await;
    assert_eq!(out[0].1, ms(20));
    slow.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_probe_hands_over_to_a_waiter() {
    let gate = ConnectGate::default();
    let probe = {
        let gate = gate.clone();
        tokio::spawn(async move {
            gate.connect(ORIGIN, || async {
                sleep(Duration::from_secs(60)).await;
                Ok(Conn(true))
            })
            .await
        })
    };
    tokio::task::yield_now().await;
    let reached = Arc::new(AtomicUsize::new(0));
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let (gate, reached) = (gate.clone(), reached.clone());
            tokio::spawn(async move {
                let start = Instant::now();
                let r = gate
                    .connect(ORIGIN, || async move {
                        reached.fetch_add(1, Ordering::SeqCst);
                        sleep(ms(30)).await;
                        Ok(Conn(true))
                    })
                    .await;
                (r.is_ok(), start.elapsed())
            })
        })
        .collect();
    // Cancelled well within PROBE_WAIT: one waiter probes in its place,
    // the other waits for that one's connection.
    sleep(ms(500)).await;
    probe.abort();
    let mut out = Vec::new();
    for w in waiters {
        out.push(w.await.unwrap());
    }
    out.sort_by_key(|(_, at)| *at);
    assert_eq!(out[0], (true, ms(530)), "the new probe");
    assert_eq!(out[1], (false, ms(530) + SETTLE), "held for its connection");
    assert_eq!(reached.load(Ordering::SeqCst), 1);
}

/// The gate's key comes from the `Debug` text of reqwest's connect request:
/// if a reqwest upgrade changed it, the gate would switch itself off
/// silently. Through a real client (a refused connect on 127.0.0.1).
#[tokio::test]
async fn reqwest_shows_the_gate_the_origin() {
    let gate = ConnectGate::default();
    let client = reqwest::Client::builder()
        .connector_layer(gate.clone())
        .build()
        .unwrap();
    let _ = client.get("http://127.0.0.1:1/plain").send().await;
    assert!(gate.origins.lock().await.is_empty(), "http:// is not gated");
    let _ = client.get("https://127.0.0.1:1/v1/chat").send().await;
    let keys: Vec<_> = gate.origins.lock().await.keys().cloned().collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with("127.0.0.1:1/"), "{keys:?}");
}
