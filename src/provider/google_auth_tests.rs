//! Tests of `google_auth`: key files, JWTs, token errors, Vertex URLs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

/// A secret the token endpoint echoes where the detail is cut is redacted
/// first, so no head of it is left after the cut.
#[test]
fn a_secret_at_the_cut_of_a_token_error_is_redacted_first() {
    let secret = "gsa-private-LEAK-0123456789abcdef";
    crate::error::register_secret(secret);
    let body = serde_json::json!({
        "error": "invalid_grant",
        "error_description": format!("{}{secret}", "x".repeat(290)),
    })
    .to_string();
    let detail = token_error_detail(&body);
    assert!(!detail.contains("gsa-pri"), "{detail}");
}

fn source() -> Arc<TokenSource> {
    Arc::new(TokenSource::new(
        Source::Metadata {
            url: "http://127.0.0.1:9/unused".into(),
        },
        reqwest::Client::new(),
    ))
}

#[tokio::test(start_paused = true)]
async fn a_token_is_reused_while_valid_and_refreshed_five_minutes_early() {
    let ts = source();
    let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let get = |ts: Arc<TokenSource>, n: Arc<std::sync::atomic::AtomicUsize>| async move {
        ts.cached(|| async {
            let k = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok((format!("tok-{k}"), Duration::from_secs(3600)))
        })
        .await
        .unwrap()
    };
    assert_eq!(get(ts.clone(), fetches.clone()).await, "tok-0");
    tokio::time::advance(Duration::from_secs(3600 - 301)).await;
    assert_eq!(get(ts.clone(), fetches.clone()).await, "tok-0");
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(get(ts.clone(), fetches.clone()).await, "tok-1");
    assert_eq!(get(ts.clone(), fetches.clone()).await, "tok-1");
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_share_one_fetch_and_a_failure_is_not_cached() {
    let ts = source();
    let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (ts, n) = (ts.clone(), fetches.clone());
        tasks.push(tokio::spawn(async move {
            ts.cached(|| async {
                n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok(("shared".to_string(), Duration::from_secs(3600)))
            })
            .await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), "shared");
    }
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1);

    let ts = source();
    let e = ts
        .cached(|| async { Err(Error::new(Kind::Unavailable, "X", "down")) })
        .await;
    assert!(e.is_err());
    let ok = ts
        .cached(|| async { Ok(("later".to_string(), Duration::from_secs(3600))) })
        .await;
    assert_eq!(ok.unwrap(), "later");
}

#[test]
fn b64url_has_no_padding_or_url_unsafe_characters() {
    assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
    assert_eq!(b64url(b"f"), "Zg");
}

#[test]
fn bad_key_files_say_what_is_wrong_without_the_key() {
    let e = TokenSource::from_key_json(r#"{"type":"authorized_user"}"#)
        .err()
        .unwrap();
    assert!(e.contains("service_account"), "{e}");
    let e = TokenSource::from_key_json(
        r#"{"type":"service_account","client_email":"a@b","private_key":"-----BEGIN PRIVATE KEY-----\nQUJDREVGR0hJSktMTU5PUA==\n-----END PRIVATE KEY-----\n"}"#,
    )
    .err()
    .unwrap();
    assert!(
        e.contains("not an RSA PKCS#8 key") && !e.contains("QUJD"),
        "{e}"
    );
    assert!(TokenSource::from_key_json("nope").is_err());
}
