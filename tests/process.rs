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

/// Starts `chatwire` with extra flags and environment (RUST_LOG=info unless
/// given), on an ephemeral port of 127.0.0.1.
fn serve(extra: &[&str], envs: &[(&str, &str)]) -> Served {
    // The extra arguments first: they may start with the `serve` subcommand.
    start(&[extra, &["--addr", "127.0.0.1:0"]].concat(), envs)
}

/// Starts `chatwire` with exactly these arguments and environment, and waits
/// for its serving line.
fn start(args: &[&str], envs: &[(&str, &str)]) -> Served {
    let mut child = Command::new(BIN)
        .args(args)
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
        .find("127.0.0.")
        .map(|at| {
            line[at..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                .collect::<String>()
        })
        .expect("address in the log line");
    Served {
        child,
        addr,
        stdout,
        stderr,
    }
}

/// `chatwire invoke TEXT` against the server at `addr`: its JSON output.
fn invoke(addr: &str, text: &str) -> serde_json::Value {
    let out = Command::new(BIN)
        .args(["invoke", "--addr", addr, text])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
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

    let v = invoke(&addr, "hello world");
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

/// The runtime's worker threads come from `--worker-threads` or
/// `CHATWIRE_WORKER_THREADS` (the serving log line says how many it has), and a
/// bad value is refused before anything starts. tokio's own
/// `TOKIO_WORKER_THREADS` is not read: a bad value there used to abort the
/// process with a panic.
#[test]
fn worker_threads_come_from_the_flag_or_env_and_are_checked() {
    let workers = |lines: &[String]| {
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["fields"]["message"] == "chatwire serving")
            .map(|v| v["fields"]["worker_threads"].clone())
    };
    for (flags, envs, want) in [
        (
            &["--log-format", "json"][..],
            &[
                ("CHATWIRE_WORKER_THREADS", "3"),
                ("TOKIO_WORKER_THREADS", "not a number"),
            ][..],
            3,
        ),
        (
            &["--log-format", "json", "--worker-threads", "1"][..],
            &[("CHATWIRE_WORKER_THREADS", "5")][..],
            1,
        ),
        (
            &["serve", "--log-format", "json", "--worker-threads", "2"][..],
            &[("CHATWIRE_WORKER_THREADS", "5")][..],
            2,
        ),
        (
            &["--worker-threads", "7", "serve", "--log-format", "json"][..],
            &[("CHATWIRE_WORKER_THREADS", "5")][..],
            7,
        ),
    ] {
        let Served {
            mut child,
            addr,
            stdout,
            ..
        } = serve(flags, envs);
        assert_eq!(
            invoke(&addr, "hello world")["content"][0]["text"],
            "hello world"
        );
        assert!(terminate(&mut child).success());
        assert_eq!(
            workers(&stdout.join().unwrap()),
            Some(serde_json::json!(want)),
            "{flags:?} {envs:?}"
        );
    }
    for (flags, envs) in [
        (&["--worker-threads", "0"][..], &[][..]),
        (&["--worker-threads", "1025"][..], &[][..]),
        (&[][..], &[("CHATWIRE_WORKER_THREADS", "two")][..]),
    ] {
        // Refused before it serves: were it accepted, the server would run,
        // so the wait is bounded.
        let mut child = Command::new(BIN)
            .args(["--addr", "127.0.0.1:0"])
            .args(flags)
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = (0..200)
            .find_map(|_| {
                let done = child.try_wait().unwrap();
                if done.is_none() {
                    std::thread::sleep(Duration::from_millis(50));
                }
                done
            })
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("{flags:?} {envs:?}: still running after 10 s, not refused");
            });
        assert_eq!(status.code(), Some(2), "{flags:?} {envs:?}");
        let err = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
        assert!(err.contains("--worker-threads"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
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

// ---------------------------------------------------------------- hardening

use chatwire::pb::{self, chat_model_service_client::ChatModelServiceClient};
use tonic::transport::{Channel, Endpoint};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A gRPC client of the served process; `window` caps HTTP/2 flow control
/// (a client that stops reading stalls the server once it is full).
async fn grpc(addr: &str, window: Option<u32>) -> ChatModelServiceClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .initial_stream_window_size(window)
        .initial_connection_window_size(window)
        .connect()
        .await
        .unwrap();
    ChatModelServiceClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

fn user_request(model: &str, user: &str) -> pb::ChatRequest {
    pb::ChatRequest {
        model: model.to_string(),
        messages: vec![pb::Message {
            role: pb::Role::User as i32,
            content: vec![pb::ContentBlock {
                block: Some(pb::content_block::Block::Text(user.to_string())),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Streams a call to its end; the status (None = OK).
async fn stream_to_end(
    c: &mut ChatModelServiceClient<Channel>,
    req: pb::ChatRequest,
) -> Option<tonic::Status> {
    let mut s = match c.stream(req).await {
        Ok(r) => r.into_inner(),
        Err(e) => return Some(e),
    };
    loop {
        match s.message().await {
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(e) => return Some(e),
        }
    }
}

/// A log line without its ANSI colour codes.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn caller_values_cannot_forge_or_flood_log_lines() {
    // Ollama takes any model name, so the caller's name reaches the log lines.
    let (url, _) = tiny_upstream(
        200,
        concat!(
            r#"{"model":"m","message":{"role":"assistant","content":"ok"},"done":false}"#,
            "\n",
            r#"{"model":"m","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop"}"#,
            "\n"
        ),
    );
    let Served {
        mut child,
        addr,
        stdout,
        stderr,
    } = serve(&["--log-format", "text"], &[("OLLAMA_HOST", &url)]);
    let forged = "2026-01-01T00:00:00Z INFO call ended outcome=OK";
    let big = format!("ollama:big{}", "m".repeat(1 << 20));
    let rt = runtime();
    rt.block_on(async {
        let mut c = grpc(&addr, None).await;
        // The fake knows only its own names: refused before anything logs the name.
        let model = format!("fake:echo\r\n{forged}");
        let status = stream_to_end(&mut c, user_request(&model, "hi")).await;
        assert_eq!(status.map(|s| s.code()), Some(tonic::Code::NotFound));
        let model = format!("ollama:qwen3\r\n{forged}");
        let status = stream_to_end(&mut c, user_request(&model, "hi")).await;
        assert!(status.is_none(), "{status:?}");
        // A 1 MiB model name is refused by the name limit, and logs nothing of its size.
        let status = stream_to_end(&mut c, user_request(&big, "hi"))
            .await
            .unwrap();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains("MAX_NAME_BYTES"), "{status:?}");
    });
    let status = terminate(&mut child);
    assert!(status.success(), "{status:?}");
    let lines: Vec<String> = stdout.join().unwrap().iter().map(|l| plain(l)).collect();
    let err = stderr.join().unwrap();
    let forgeries: Vec<&String> = lines.iter().filter(|l| l.starts_with(forged)).collect();
    assert!(forgeries.is_empty(), "a forged log line: {forgeries:?}");
    let escaped = format!("ollama:qwen3\\r\\n{forged}");
    assert!(
        lines.iter().filter(|l| l.contains(&escaped)).count() >= 2,
        "the call's lines show CR/LF escaped:\n{}",
        lines.join("\n")
    );
    assert!(
        lines.iter().all(|l| !l.contains(&"m".repeat(1000))),
        "no line carries the 1 MiB model name"
    );
    let total: usize = lines.iter().map(|l| l.len() + 1).sum::<usize>() + err.len();
    assert!(
        total < 64 * 1024,
        "a 1 MiB model name wrote {total} bytes of logs"
    );
}

/// An Anthropic upstream (std only) echoing the key it was sent, picked by a
/// marker in the request: an unknown SSE event named after the key, an error
/// body, a mid-stream `error` event. Counts the requests.
fn echoing_anthropic() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = count.clone();
    std::thread::spawn(move || {
        for mut sock in listener.incoming().flatten() {
            let mut buf = [0u8; 65536];
            let mut seen = Vec::new();
            let mut key = String::new();
            let mut body = String::new();
            while let Ok(n) = sock.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&seen).to_string();
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
                        body = text[h + 4..].to_string();
                        break;
                    }
                }
            }
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let ev = |v: serde_json::Value| {
                format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap())
            };
            let start = ev(
                serde_json::json!({"type":"message_start","message":{"id":"msg_1","type":"message",
                "role":"assistant","model":"claude-3-haiku-20240307","content":[],"stop_reason":null,
                "usage":{"input_tokens":1,"output_tokens":1}}}),
            ) + &ev(
                serde_json::json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
            ) + &ev(
                serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"fine"}}),
            );
            let (status, ctype, answer) = if body.contains("unknown-event") {
                let unknown = format!(
                    "event: {key}\ndata: {}\n\n",
                    serde_json::json!({"type": key})
                );
                let end = ev(serde_json::json!({"type":"content_block_stop","index":0}))
                    + &ev(
                        serde_json::json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":1}}),
                    )
                    + &ev(serde_json::json!({"type":"message_stop"}));
                (200, "text/event-stream", start + &unknown + &end)
            } else if body.contains("error-body") {
                let b = serde_json::json!({"type":"error","error":{"type":"invalid_request_error",
                    "message": format!("invalid x-api-key: {key} (or {})", &key[..key.len() - 4])}});
                (400, "application/json", b.to_string())
            } else {
                let b = serde_json::json!({"type":"error","error":{"type":"overloaded_error",
                    "message": format!("overloaded for {key} / {}", &key[..16])}});
                (
                    200,
                    "text/event-stream",
                    start + &format!("event: error\ndata: {b}\n\n"),
                )
            };
            let _ = write!(
                sock,
                "HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (url, count)
}

#[test]
fn an_upstream_echoing_the_key_anywhere_never_puts_it_in_trace_logs() {
    let (url, count) = echoing_anthropic();
    let secret = "sk-ant-api03-TRACEKEYTRACEKEY-0123";
    let Served {
        mut child,
        addr,
        stdout,
        stderr,
    } = serve(
        &["--log-format", "text"],
        &[
            ("RUST_LOG", "trace"),
            ("ANTHROPIC_API_KEY", secret),
            ("ANTHROPIC_BASE_URL", &url),
        ],
    );
    let model = "anthropic:claude-3-haiku-20240307";
    let rt = runtime();
    let statuses = rt.block_on(async {
        let mut c = grpc(&addr, None).await;
        let mut out = Vec::new();
        for marker in ["unknown-event", "error-body", "mid-stream"] {
            out.push(stream_to_end(&mut c, user_request(model, marker)).await);
        }
        out
    });
    assert!(statuses[0].is_none(), "{:?}", statuses[0]);
    let codes: Vec<_> = statuses[1..]
        .iter()
        .map(|s| s.as_ref().map(tonic::Status::code))
        .collect();
    assert_eq!(
        codes,
        [
            Some(tonic::Code::InvalidArgument),
            Some(tonic::Code::Unavailable)
        ]
    );
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 3);
    terminate(&mut child);
    let logs = stdout.join().unwrap().join("\n") + &stderr.join().unwrap();
    assert!(logs.len() > 1000, "trace logs were written");
    assert!(
        logs.contains("skipping an unknown event type"),
        "the unknown event was logged"
    );
    let prefix = &secret[..12];
    let leaked: Vec<&str> = logs.lines().filter(|l| l.contains(prefix)).collect();
    assert!(
        leaked.is_empty(),
        "the key (or its first 12 characters) reached the logs:\n{}",
        leaked.join("\n")
    );
    for s in statuses.iter().flatten() {
        assert!(!s.message().contains(prefix), "{}", s.message());
    }
}

#[test]
fn sigterm_with_a_client_that_stopped_reading_exits_within_the_grace() {
    let dir = std::env::temp_dir().join(format!("chatwire-grace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("grace.toml");
    std::fs::write(
        &config,
        "shutdown_grace_secs = 1\n\n[fake]\ntoken_delay_ms = 1\n",
    )
    .unwrap();
    let Served {
        mut child,
        addr,
        stdout,
        ..
    } = serve(&["--config", config.to_str().unwrap()], &[]);
    // Kilobyte words: a 64 KiB window is full after some 64 tokens.
    let long = format!("{} ", "w".repeat(1000)).repeat(4000);
    let rt = runtime();
    let stalled = rt.block_on(async {
        let mut c = grpc(&addr, Some(65_535)).await;
        let mut s = c
            .stream(user_request("fake:echo", &long))
            .await
            .unwrap()
            .into_inner();
        let first = s.message().await.unwrap();
        assert!(first.is_some());
        // Stop reading: the stream is kept, never polled again.
        (c, s)
    });
    // Let the server fill the window and block on it.
    std::thread::sleep(Duration::from_millis(500));
    let sent = std::time::Instant::now();
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if sent.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("the server did not stop within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = sent.elapsed();
    drop(stalled);
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    let logs = stdout.join().unwrap().join("\n");
    assert!(
        logs.contains("grace period over"),
        "the stalled call was still in flight when the grace ended:\n{logs}"
    );
    assert!(
        took >= Duration::from_millis(900),
        "the grace period was kept ({took:?})\n{logs}"
    );
    assert!(
        took <= Duration::from_millis(2500),
        "gone within grace + 1.5 s, took {took:?}\n{logs}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The binary allocates with mimalloc (v2), built to commit its arenas' memory
/// as it is used: `.cargo/config.toml` sets that default at build time, and a
/// `CFLAGS` of the builder's own would silently drop it (README, "Allocator").
/// mimalloc prints its version and options on stderr when asked to.
#[cfg(feature = "mimalloc")]
#[test]
fn the_allocator_is_mimalloc_committing_lazily() {
    let out = Command::new(BIN)
        .arg("--version")
        .env("MIMALLOC_VERBOSE", "1")
        .env_remove("MIMALLOC_ARENA_EAGER_COMMIT")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines().any(|l| l.starts_with("mimalloc: v2.")),
        "mimalloc v2 did not report itself:\n{err}"
    );
    let commit = err
        .lines()
        .find(|l| l.contains("option 'arena_eager_commit'"))
        .unwrap_or_default();
    assert_eq!(
        commit.trim_end(),
        "mimalloc: option 'arena_eager_commit': 0",
        "built with mimalloc's eager arena commit (was CFLAGS set in the environment?):\n{err}"
    );
}

/// Serve's flags before a subcommand are refused (they used to be parsed for
/// the default command and dropped, so `serve` ran on the default address);
/// the same setting from the environment still reaches `serve`.
#[test]
fn serve_flags_before_the_subcommand_are_refused_not_dropped() {
    let mut child = Command::new(BIN)
        .args(["--addr", "127.0.0.1:0", "serve"])
        .env_remove("CHATWIRE_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`chatwire --addr 127.0.0.1:0 serve` started serving instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let err = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("--addr must come after `serve`"), "{err}");

    // CHATWIRE_ADDR is read by `serve` as before.
    let mut served = start(&["serve"], &[("CHATWIRE_ADDR", "127.0.0.2:0")]);
    let _ = served.child.kill();
    let _ = served.child.wait();
    assert!(
        served.addr.starts_with("127.0.0.2:"),
        "the address from the environment: {}",
        served.addr
    );
}
