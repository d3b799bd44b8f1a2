//! The real binary, as a person runs it: `chatwire` serves, `chatwire stream`
//! prints chunks separated by `|`, SIGTERM stops it with exit code 0.
// Tests measure wall-clock time and share state across mock threads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

const BIN: &str = env!("CARGO_BIN_EXE_chatwire");

/// A `chatwire` server process on an ephemeral port.
struct Served {
    child: Child,
    addr: String,
    /// Its stdout lines (the logs), once it exits.
    stdout: std::thread::JoinHandle<Vec<String>>,
    /// Its stderr, once it exits.
    stderr: std::thread::JoinHandle<String>,
}

/// Starts `chatwire` with extra flags and environment (RUST_LOG=info unless given).
fn serve(extra: &[&str], envs: &[(&str, &str)]) -> Served {
    let mut child = Command::new(BIN)
        .args(["--addr", "127.0.0.1:0"])
        .args(extra)
        .env("RUST_LOG", "info")
        .env_remove("CHATWIRE_CONFIG")
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(out).lines() {
            let line = line.unwrap_or_default();
            if line.contains("chatwire serving") {
                let _ = tx.send(line.clone());
            }
            lines.push(line);
        }
        lines
    });
    let stderr = std::thread::spawn(move || std::io::read_to_string(err).unwrap_or_default());
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server started");
    let addr = line
        .split("127.0.0.1:")
        .nth(1)
        .map(|rest| {
            format!(
                "127.0.0.1:{}",
                rest.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            )
        })
        .expect("address in the log line");
    Served {
        child,
        addr,
        stdout,
        stderr,
    }
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("the server did not stop within 10 s of SIGTERM");
}

#[test]
fn cli_streams_through_the_server_and_sigterm_exits_zero() {
    let Served {
        mut child,
        addr,
        stdout: reader,
        ..
    } = serve(&["--log-format", "json"], &[]);
    let out = Command::new(BIN)
        .args([
            "stream",
            "--addr",
            &addr,
            "--model",
            "fake:echo",
            "Write me a 1 verse song about goldfish on the moon",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Write| |me| |a| |1| |verse| |song| |about| |goldfish| |on| |the| |moon|\n"
    );

    let out = Command::new(BIN)
        .args(["invoke", "--addr", &addr, "hello world"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["content"][0]["text"], "hello world");
    assert_eq!(v["stopReason"], "STOP_REASON_END_TURN");

    let out = Command::new(BIN)
        .args(["events", "--addr", &addr, "hi"])
        .output()
        .unwrap();
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.first().unwrap()["event"], "start");
    assert_eq!(events.last().unwrap()["event"], "end");

    let out = Command::new(BIN)
        .args(["invoke", "--addr", &addr, "--model", "nope:x", "hi"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"));

    let status = terminate(&mut child);
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    let lines = reader.join().unwrap();
    assert!(!lines.is_empty());
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("--log-format json: {e}: {l}"));
        assert!(v.get("level").is_some());
    }
}

#[test]
fn check_config_names_the_bad_key() {
    let dir = std::env::temp_dir().join(format!("chatwire-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[timers]\nidle_sec = 5\n").unwrap();
    let out = Command::new(BIN)
        .args(["check-config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("idle_sec") && err.contains("line 2"), "{err}");
    let good = concat!(env!("CARGO_MANIFEST_DIR"), "/chatwire.example.toml");
    let out = Command::new(BIN)
        .args(["check-config", good])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn refuses_a_public_address_without_auth() {
    let out = Command::new(BIN)
        .args(["--addr", "0.0.0.0:0"])
        .env_remove("CHATWIRE_API_KEYS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--insecure-no-auth"));
}

/// An HTTP upstream (std only) that answers every request with `status` and
/// `body`, where `{key}` is replaced by the `x-api-key` the request carried (an
/// upstream echoing the credential it was sent). Returns its URL and the keys
/// it was sent.
fn tiny_upstream(
    status: u16,
    body: &'static str,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let keys = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen_keys = keys.clone();
    std::thread::spawn(move || {
        for mut sock in listener.incoming().flatten() {
            let mut buf = [0u8; 65536];
            let mut seen = Vec::new();
            let mut key = String::new();
            while let Ok(n) = sock.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&seen);
                if let Some(h) = text.find("\r\n\r\n") {
                    let header = |name: &str| {
                        text[..h].lines().find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.trim()
                                .eq_ignore_ascii_case(name)
                                .then(|| v.trim().to_string())
                        })
                    };
                    let len: usize = header("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    key = header("x-api-key").unwrap_or_default();
                    if seen.len() >= h + 4 + len {
                        break;
                    }
                }
            }
            seen_keys.lock().unwrap().push(key.clone());
            let body = body.replace("{key}", &key);
            let _ = write!(
                sock,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, keys)
}

#[test]
fn the_api_key_never_reaches_logs_even_at_trace() {
    // The upstream echoes the key it was sent in its error message.
    let (url, keys) = tiny_upstream(
        401,
        r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key: {key}"}}"#,
    );
    let secret = "sk-ant-api03-VERYSECRETVALUE";
    let Served {
        mut child,
        addr,
        stdout,
        stderr,
    } = serve(
        &[],
        &[
            ("RUST_LOG", "trace"),
            ("ANTHROPIC_API_KEY", secret),
            ("ANTHROPIC_BASE_URL", &url),
        ],
    );
    let out = Command::new(BIN)
        .args([
            "invoke",
            "--addr",
            &addr,
            "--model",
            "anthropic:claude-3-haiku-20240307",
            "hi",
        ])
        .output()
        .unwrap();
    let client_err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(client_err.contains("PermissionDenied"), "{client_err}");
    assert!(
        client_err.contains("refused the server's credentials"),
        "{client_err}"
    );
    // The upstream's message is kept, its echo of the key is not.
    assert!(client_err.contains("invalid x-api-key"), "{client_err}");
    assert_eq!(
        keys.lock().unwrap().as_slice(),
        [secret.to_string()],
        "the upstream was sent the key (and echoed it)"
    );
    terminate(&mut child);
    let logs = stdout.join().unwrap().join("\n") + &stderr.join().unwrap();
    assert!(logs.len() > 1000, "trace logs were written");
    assert!(
        logs.contains("invalid x-api-key"),
        "the upstream's error reached the logs"
    );
    let leaked: Vec<&str> = logs.lines().filter(|l| l.contains("VERYSECRET")).collect();
    assert!(
        leaked.is_empty(),
        "the key reached the logs:\n{}",
        leaked.join("\n")
    );
    assert!(!client_err.contains("VERYSECRET"));
}
