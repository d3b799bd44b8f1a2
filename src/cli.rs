//! The command line: `serve` (the default), `check-config`, and a small client
//! (`invoke`, `stream`, `events`, `models`) for people without grpcurl.

use std::{io::Write, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use futures_util::StreamExt;

use crate::pb::{self, chat_model_service_client::ChatModelServiceClient};

#[derive(Debug, Parser)]
#[command(
    name = "chatwire",
    version,
    about = "Every chat-model provider behind one typed streaming gRPC API"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Worker threads of the async runtime (default: the CPUs this process
    /// may use, container CPU limits included). Fewer threads than CPUs leaves
    /// cores to other busy processes on the same machine (README, Performance).
    #[arg(long, global = true, env = "CHATWIRE_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Validate a config file and say what is wrong and where.
    CheckConfig {
        /// The TOML file.
        file: PathBuf,
    },
    /// Call Invoke and print the final message as JSON.
    Invoke(CallArgs),
    /// Call Stream and print the chunks' text separated by `|`.
    Stream(CallArgs),
    /// Call StreamEvents and print one JSON event per line.
    Events(CallArgs),
    /// List the models and providers the server can route.
    Models {
        /// The server to call.
        #[arg(long, default_value = "http://127.0.0.1:50051", env = "CHATWIRE_URL")]
        addr: String,
    },
}

#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CHATWIRE_ADDR")]
    pub addr: Option<String>,
    /// Optional TOML config file (see chatwire.example.toml).
    #[arg(long, env = "CHATWIRE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format (level from RUST_LOG).
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// TLS certificate chain (PEM); with --tls-key, serves TLS.
    #[arg(long, env = "CHATWIRE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "CHATWIRE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) that client certificates must chain to (mTLS).
    #[arg(long, env = "CHATWIRE_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Allow listening on a non-loopback address without callers' auth.
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Also serve grpc.health.v1 (and nothing else) in plaintext on this
    /// address, for probes that cannot present a client certificate.
    #[arg(long, env = "CHATWIRE_HEALTH_ADDR")]
    pub health_addr: Option<String>,
    /// A browser origin allowed to call through gRPC-Web (repeatable; the
    /// env var takes a comma-separated list). None: cross-origin calls refused.
    #[arg(
        long = "cors-origin",
        env = "CHATWIRE_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// Serve the browser playground at / and /playground.
    #[arg(long, env = "CHATWIRE_PLAYGROUND")]
    pub playground: bool,
    /// Serve Prometheus metrics on this address at /metrics (off by default).
    #[arg(long, env = "CHATWIRE_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
    /// Extra CA certificates (PEM) trusted for upstream TLS, beside the
    /// built-in web roots (self-hosted upstreams behind a private CA).
    #[arg(long, env = "CHATWIRE_UPSTREAM_CA")]
    pub upstream_ca: Option<PathBuf>,
}

impl Cli {
    /// Parses the process's command line as [`Parser::parse`] does (exit code
    /// 2 on a bad one), also refusing serve's flags given before a subcommand.
    pub fn parse_command_line() -> Self {
        Self::try_parse_command_line(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// As [`Parser::try_parse_from`], and refuses serve's flags given on the
    /// command line before a subcommand: they belong to the default command,
    /// so `chatwire --addr X serve` would run `serve` without `--addr`, and
    /// `chatwire --addr X stream hi` would call the default server.
    /// `--worker-threads` is global and counts wherever it stands.
    pub fn try_parse_command_line<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{parser::ValueSource, CommandFactory, FromArgMatches};
        let mut cmd = Self::command();
        let matches = cmd.try_get_matches_from_mut(args)?;
        if let Some((name, _)) = matches.subcommand() {
            let early: Vec<String> = cmd
                .get_arguments()
                .filter(|a| !a.is_global_set())
                .filter(|a| {
                    matches.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine)
                })
                .map(|a| format!("--{}", a.get_long().unwrap_or(a.get_id().as_str())))
                .collect();
            if let Some(first) = early.first() {
                let flags = early.join(", ");
                let (it, is) = if early.len() == 1 {
                    ("it", "is a flag")
                } else {
                    ("they", "are flags")
                };
                let why = if name == "serve" {
                    format!("{flags} must come after `serve` (before it, {it} would be ignored): chatwire serve {first} ...")
                } else {
                    format!("{flags} before `{name}` {is} of `serve` (the default command), which `{name}` does not run; `{name}`'s own flags come after it")
                };
                return Err(cmd.error(clap::error::ErrorKind::ArgumentConflict, why));
            }
        }
        Self::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))
    }

    /// The runtime's worker threads: the flag (before or after the
    /// subcommand) or env var, else one per CPU this process may use.
    /// (tokio's own `TOKIO_WORKER_THREADS` is not read: it aborts on a bad value.)
    pub fn worker_threads(&self) -> usize {
        self.worker_threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            usize::from,
        )
    }
}

#[derive(Debug, Args)]
pub struct CallArgs {
    /// `provider:model` or an alias.
    #[arg(long, default_value = "fake:echo")]
    pub model: String,
    /// The server to call.
    #[arg(long, default_value = "http://127.0.0.1:50051", env = "CHATWIRE_URL")]
    pub addr: String,
    /// A system message.
    #[arg(long)]
    pub system: Option<String>,
    /// Output token limit.
    #[arg(long)]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[arg(long)]
    pub temperature: Option<f64>,
    /// The user message.
    pub prompt: String,
}

fn text_message(role: pb::Role, text: &str) -> pb::Message {
    pb::Message {
        role: role as i32,
        content: vec![pb::ContentBlock {
            block: Some(pb::content_block::Block::Text(text.to_string())),
            ..Default::default()
        }],
        ..Default::default()
    }
}

impl CallArgs {
    fn request(&self) -> pb::ChatRequest {
        let mut messages = Vec::new();
        if let Some(s) = &self.system {
            messages.push(text_message(pb::Role::System, s));
        }
        messages.push(text_message(pb::Role::User, &self.prompt));
        pb::ChatRequest {
            model: self.model.clone(),
            messages,
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            ..Default::default()
        }
    }
}

fn url(addr: &str) -> String {
    if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

/// Runs a client subcommand; returns the process exit code.
pub async fn client(cmd: Command) -> Result<i32, Box<dyn std::error::Error>> {
    let addr = match &cmd {
        Command::Invoke(a) | Command::Stream(a) | Command::Events(a) => url(&a.addr),
        Command::Models { addr } => url(addr),
        _ => return Ok(2),
    };
    let mut client = ChatModelServiceClient::connect(addr).await?;
    let mut out = std::io::stdout().lock();
    let result: Result<(), tonic::Status> = async {
        match cmd {
            Command::Invoke(a) => {
                let m = client.invoke(a.request()).await?.into_inner();
                let _ = writeln!(out, "{}", json::message(&m));
            }
            Command::Stream(a) => {
                let mut s = client.stream(a.request()).await?.into_inner();
                while let Some(c) = s.next().await {
                    let c = c?;
                    use pb::message_chunk::Delta;
                    let piece = match &c.delta {
                        Some(Delta::Text(t)) | Some(Delta::Refusal(t)) => t.clone(),
                        Some(Delta::Reasoning(r)) => r.text.clone(),
                        Some(Delta::ToolCall(t)) => format!("{}{}", t.name, t.arguments),
                        Some(Delta::Citation(_)) | None => continue,
                    };
                    let _ = write!(out, "{piece}|");
                    let _ = out.flush();
                }
                let _ = writeln!(out);
            }
            Command::Events(a) => {
                let mut s = client.stream_events(a.request()).await?.into_inner();
                while let Some(e) = s.next().await {
                    let _ = writeln!(out, "{}", json::event(&e?));
                }
            }
            Command::Models { .. } => {
                let r = client
                    .list_models(pb::ListModelsRequest {})
                    .await?
                    .into_inner();
                for p in &r.providers {
                    let _ = writeln!(
                        out,
                        "provider {:<10} configured={:<5} {}",
                        p.name, p.configured, p.base_url
                    );
                }
                for m in &r.models {
                    let _ = writeln!(
                        out,
                        "model    {:<30} -> {} (streaming={})",
                        m.name, m.target, m.streaming
                    );
                }
            }
            _ => {}
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => Ok(0),
        Err(s) => {
            let _ = out.flush();
            eprintln!("\nerror: {:?}: {}", s.code(), s.message());
            Ok(1)
        }
    }
}

/// Small hand-written JSON views for the CLI (prost types carry no serde).
mod json {
    use serde_json::{json, Value};

    use crate::{api::convert::struct_to_json, pb};

    fn usage(u: &Option<pb::Usage>) -> Value {
        match u {
            None => Value::Null,
            Some(u) => json!({
                "inputTokens": u.input_tokens, "outputTokens": u.output_tokens,
                "totalTokens": u.total_tokens, "cacheReadTokens": u.cache_read_tokens,
                "cacheCreationTokens": u.cache_creation_tokens, "reasoningTokens": u.reasoning_tokens,
            }),
        }
    }

    fn stop(s: i32) -> Value {
        pb::StopReason::try_from(s)
            .map(|s| Value::from(s.as_str_name()))
            .unwrap_or(Value::Null)
    }

    pub(super) fn message(m: &pb::ChatMessage) -> Value {
        use pb::content_block::Block;
        let content: Vec<Value> = m
            .content
            .iter()
            .filter_map(|c| match &c.block {
                Some(Block::Text(t)) => Some(json!({ "text": t })),
                Some(Block::Refusal(t)) => Some(json!({ "refusal": t })),
                Some(Block::Reasoning(r)) => {
                    Some(json!({ "reasoning": { "text": r.text, "signature": r.signature } }))
                }
                _ => None,
            })
            .collect();
        let calls: Vec<Value> = m
            .tool_calls
            .iter()
            .map(|t| json!({ "id": t.id, "name": t.name, "arguments": t.arguments.as_ref().map(struct_to_json) }))
            .collect();
        let invalid: Vec<Value> = m
            .invalid_tool_calls
            .iter()
            .map(|t| json!({ "id": t.id, "name": t.name, "arguments": t.arguments, "error": t.error }))
            .collect();
        json!({
            "id": m.id, "model": m.model, "content": content, "toolCalls": calls,
            "invalidToolCalls": invalid, "usage": usage(&m.usage), "stopReason": stop(m.stop_reason),
        })
    }

    pub(super) fn chunk(c: &pb::MessageChunk) -> Value {
        use pb::message_chunk::Delta;
        let mut v = json!({ "id": c.id });
        match &c.delta {
            Some(Delta::Text(t)) => v["text"] = json!(t),
            Some(Delta::Refusal(t)) => v["refusal"] = json!(t),
            Some(Delta::Reasoning(r)) => {
                v["reasoning"] = json!({ "text": r.text, "signature": r.signature })
            }
            Some(Delta::ToolCall(t)) => {
                v["toolCall"] = json!({ "index": t.index, "id": t.id, "name": t.name, "arguments": t.arguments })
            }
            Some(Delta::Citation(c)) => {
                v["citation"] = json!({ "type": c.r#type, "citedText": c.cited_text, "url": c.url, "title": c.title })
            }
            None => {}
        }
        if c.usage.is_some() {
            v["usage"] = usage(&c.usage);
        }
        if c.stop_reason != 0 {
            v["stopReason"] = stop(c.stop_reason);
        }
        if c.last {
            v["last"] = json!(true);
        }
        v
    }

    pub(super) fn event(e: &pb::ChatEvent) -> Value {
        use pb::chat_event::Event;
        let (kind, data) = match &e.event {
            Some(Event::Start(_)) => ("start", json!({})),
            Some(Event::Stream(s)) => ("stream", json!({ "chunk": s.chunk.as_ref().map(chunk) })),
            Some(Event::End(s)) => ("end", json!({ "output": s.output.as_ref().map(message) })),
            Some(Event::Error(s)) => (
                "error",
                json!({ "code": s.code, "message": s.message, "partial": s.partial.as_ref().map(message) }),
            ),
            None => ("unknown", Value::Null),
        };
        json!({ "event": kind, "runId": e.run_id, "name": e.name, "tags": e.tags, "metadata": e.metadata, "data": data })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn workers(args: &[&str]) -> usize {
        Cli::try_parse_command_line(args)
            .map(|cli| cli.worker_threads())
            .unwrap_or_default()
    }

    #[test]
    fn worker_threads_from_either_place_of_the_flag() {
        let default = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        assert_eq!(workers(&["chatwire", "--worker-threads", "3"]), 3);
        assert_eq!(workers(&["chatwire", "serve", "--worker-threads", "4"]), 4);
        assert_eq!(workers(&["chatwire", "--worker-threads", "7", "serve"]), 7);
        assert_eq!(
            workers(&[
                "chatwire",
                "--worker-threads",
                "2",
                "serve",
                "--worker-threads",
                "5"
            ]),
            5
        );
        assert_eq!(workers(&["chatwire", "serve"]), default);
        assert_eq!(workers(&["chatwire", "invoke", "hi"]), default);
        assert_eq!(
            workers(&["chatwire", "--worker-threads", "0"]),
            0,
            "refused"
        );
    }

    /// What `serve` runs with: its own flags, or the top level's when no
    /// subcommand is given; serve's flags before a subcommand are refused.
    fn serve_addr(args: &[&str]) -> Result<Option<String>, String> {
        let cli = Cli::try_parse_command_line(args).map_err(|e| e.to_string())?;
        Ok(match cli.command {
            None => cli.serve.addr,
            Some(Command::Serve(a)) => a.addr,
            Some(_) => None,
        })
    }

    #[test]
    fn serve_flags_before_a_subcommand_are_refused() {
        let a = Some("127.0.0.1:9".to_string());
        assert_eq!(
            serve_addr(&["chatwire", "--addr", "127.0.0.1:9"]),
            Ok(a.clone())
        );
        assert_eq!(
            serve_addr(&["chatwire", "serve", "--addr", "127.0.0.1:9"]),
            Ok(a)
        );
        let e = serve_addr(&["chatwire", "--addr", "127.0.0.1:9", "serve"]).unwrap_err();
        assert!(e.contains("--addr must come after `serve`"), "{e}");
        let e =
            serve_addr(&["chatwire", "--playground", "--config", "x.toml", "serve"]).unwrap_err();
        assert!(e.contains("--config, --playground must come after"), "{e}");
        let e = serve_addr(&["chatwire", "--addr", "h:1", "stream", "hi"]).unwrap_err();
        assert!(
            e.contains("--addr before `stream` is a flag of `serve`"),
            "{e}"
        );
        let e = serve_addr(&["chatwire", "--insecure-no-auth", "check-config", "f"]).unwrap_err();
        assert!(
            e.contains("--insecure-no-auth before `check-config`"),
            "{e}"
        );
        // The global flag is not serve's: it counts before any subcommand.
        assert_eq!(
            serve_addr(&["chatwire", "--worker-threads", "2", "models"]),
            Ok(None)
        );
        assert_eq!(
            Cli::try_parse_command_line(["chatwire", "--addr", "h:1", "serve"])
                .map_err(|e| e.exit_code())
                .err(),
            Some(2)
        );
    }
}
