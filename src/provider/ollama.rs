//! The `ollama` provider: Ollama's native `/api/chat`, streamed as NDJSON.
//!
//! Wire facts this module relies on (ollama `docs/api.md`): one JSON object per
//! line; `message.content` / `message.thinking` carry text and reasoning pieces;
//! `message.tool_calls` come whole, with `arguments` as a JSON *object* (so they
//! are serialized once, here); the last line has `done: true`, `done_reason` and
//! the counters (`prompt_eval_count`, `eval_count`); a failure after the 200 is a
//! line `{"error": "..."}`. EOF before `done: true` is a truncated answer.
//! Ollama gives no message id: the relay's fallback id (`run-<runId>`) is used.
//!
//! Choices the contract leaves open:
//! - `think`: the contract has no per-request reasoning switch, and `think: true`
//!   makes Ollama fail (HTTP 400) on models without thinking support. So `think`
//!   is left unset (the model's own default applies; thinking models then still
//!   stream `message.thinking`), except that a conversation which already
//!   carries the model's reasoning sends `think: true` to keep it thinking.
//! - `toolChoice`: Ollama has none. `none` sends no tools, a named tool sends
//!   only that tool, `auto` / `any` send them all (`any` cannot be enforced).
//! - Images: Ollama takes base64 only; a `data:` URL is unpacked, any other URL
//!   is INVALID_ARGUMENT (the server does not fetch URLs for the caller).

use std::{borrow::Cow, sync::Arc};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{
    frame::{Frame, Framing},
    http::{HttpProvider, Wire},
    Call, Decoder, Provider, ProviderInfo, Settings,
};
use crate::{
    chat::types::{Content, Delta, Image, Part, Reasoning, Role, StopReason, ToolChoice, Usage},
    error::{Error, Kind},
};

const NAME: &str = "ollama";
const CLASS: &str = "ChatOllama";
const HOW: &str = "OLLAMA_HOST (e.g. 127.0.0.1:11434)";
const DEFAULT_HOST: &str = "http://127.0.0.1:11434";

/// The provider: configured only when `OLLAMA_HOST` is set or the file has a
/// `[providers.ollama]` section (a local server needs no key).
pub fn provider(
    config: &crate::config::Config,
    env: &crate::server::Env,
) -> Result<Arc<dyn Provider>, Error> {
    let mut settings = Settings::resolve(
        config,
        env,
        NAME,
        &["OLLAMA_API_KEY"],
        "OLLAMA_HOST",
        DEFAULT_HOST,
    );
    if !settings.explicit_base_url && !config.providers.contains_key(NAME) {
        return Ok(super::pending(NAME, CLASS, HOW));
    }
    settings.base_url = normalize_host(&settings.base_url);
    let max_frame = settings.max_frame;
    Ok(Arc::new(HttpProvider::new(
        Ollama::new(settings),
        super::http_client()?,
        max_frame,
    )))
}

/// `OLLAMA_HOST` as Ollama itself reads it: the scheme defaults to http, the port
/// to 11434 without a scheme (80 / 443 with an explicit http / https).
pub fn normalize_host(host: &str) -> String {
    let s = host.trim();
    let (scheme, rest, default_port) = match s.split_once("://") {
        None => ("http", s, "11434"),
        Some(("https", rest)) => ("https", rest, "443"),
        Some((scheme, rest)) => (scheme, rest, if scheme == "http" { "80" } else { "11434" }),
    };
    let (hostport, path) = match rest.split_once('/') {
        Some((h, p)) => (h, p.trim_end_matches('/')),
        None => (rest, ""),
    };
    let has_port = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split_once(']')
            .is_some_and(|(_, after)| after.starts_with(':'))
    } else {
        hostport.contains(':') && hostport.matches(':').count() == 1
    };
    let hostport = if hostport.is_empty() {
        format!("127.0.0.1:{default_port}")
    } else if has_port {
        hostport.to_string()
    } else if hostport.contains(':') && !hostport.starts_with('[') {
        format!("[{hostport}]:{default_port}") // a bare IPv6 address
    } else {
        format!("{hostport}:{default_port}")
    };
    if path.is_empty() {
        format!("{scheme}://{hostport}")
    } else {
        format!("{scheme}://{hostport}/{path}")
    }
}

/// The Ollama wire format.
pub struct Ollama {
    info: ProviderInfo,
    settings: Settings,
}

impl Ollama {
    pub fn new(settings: Settings) -> Self {
        Self {
            info: ProviderInfo {
                name: NAME,
                chat_class: CLASS,
                configured: true,
                base_url: settings.base_url.clone(),
                features: &["tools", "reasoning", "images", "usage"],
                models: Vec::new(),
                how_to_configure: HOW,
            },
            settings,
        }
    }
}

impl Wire for Ollama {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn framing(&self) -> Framing {
        Framing::Ndjson
    }

    fn request(
        &self,
        client: &reqwest::Client,
        call: &Call,
    ) -> Result<reqwest::RequestBuilder, Error> {
        let body = request_body(call, self.settings.default_max_tokens)?;
        let mut req = client
            .post(format!("{}/api/chat", self.settings.base_url))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        req = super::with_extra_headers(req, &self.settings.headers)?;
        // A key only matters behind an authenticating proxy or on ollama.com.
        if let Some(key) = &self.settings.api_key {
            req = req.bearer_auth(key);
        }
        Ok(req)
    }

    fn decoder(&self, _call: &Call) -> Box<dyn Decoder> {
        Box::new(OllamaDecoder::default())
    }
}

// ---------------------------------------------------------------- the stream

#[derive(Debug, Deserialize)]
struct Line<'a> {
    #[serde(default, borrow)]
    message: Option<WireMessage<'a>>,
    /// `/api/generate` lines carry `response` / `thinking` at the top level.
    #[serde(default, borrow)]
    response: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    thinking: Option<Cow<'a, str>>,
    #[serde(default)]
    done: bool,
    #[serde(default, borrow)]
    done_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    prompt_eval_count: Option<u32>,
    #[serde(default)]
    eval_count: Option<u32>,
    /// A string in practice; kept loose because it ends the stream anyway.
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct WireMessage<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    thinking: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    tool_calls: Vec<WireToolCall<'a>>,
}

#[derive(Debug, Deserialize)]
struct WireToolCall<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    function: WireFunction<'a>,
}

#[derive(Debug, Deserialize)]
struct WireFunction<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    /// An object (serialized once, here); a string is passed on as is.
    #[serde(default)]
    arguments: Option<Value>,
}

/// The pure decoder for one Ollama response.
#[derive(Debug, Default)]
pub struct OllamaDecoder {
    calls: u32,
}

/// The contract's stop reason for an Ollama `done_reason`.
pub fn stop_reason(done_reason: Option<&str>, saw_calls: bool) -> StopReason {
    match done_reason.unwrap_or("stop") {
        "stop" if saw_calls => StopReason::ToolUse,
        "stop" => StopReason::EndTurn,
        "length" => StopReason::MaxTokens,
        _ => StopReason::Other,
    }
}

/// A mid-stream `{"error": "..."}`. After the 200 these are the runner failing
/// (crash, out of memory, "an error was encountered while running the model"):
/// UNAVAILABLE, retryable elsewhere. Only a text that plainly says otherwise
/// (a missing model, a rejected request) gets a narrower class.
pub fn stream_error(text: &str) -> Error {
    let lower = text.to_ascii_lowercase();
    let (kind, reason) = if lower.contains("not found") {
        (Kind::NotFound, "UPSTREAM_NOT_FOUND")
    } else if lower.contains("does not support") || lower.contains("invalid") {
        (Kind::InvalidArgument, "UPSTREAM_INVALID_REQUEST")
    } else if lower.contains("too many requests") || lower.contains("rate limit") {
        (Kind::ResourceExhausted, "UPSTREAM_RATE_LIMITED")
    } else {
        (Kind::Unavailable, "UPSTREAM_ERROR")
    };
    Error::new(
        kind,
        reason,
        format!("the upstream reported an error mid-stream: {text}"),
    )
}

impl Decoder for OllamaDecoder {
    fn on_frame(&mut self, frame: &Frame) -> Result<Vec<Part>, Error> {
        let line: Line<'_> = serde_json::from_str(frame.data.trim()).map_err(|e| {
            Error::protocol(format!(
                "the upstream sent a line that is not valid JSON: {e}"
            ))
        })?;
        if let Some(e) = &line.error {
            let text = match e {
                Value::String(s) => s.clone(),
                other => other
                    .get("message")
                    .and_then(Value::as_str)
                    .map_or_else(|| other.to_string(), str::to_string),
            };
            return Err(stream_error(&text));
        }
        let mut out = Vec::new();
        let (content, thinking) = match &line.message {
            Some(m) => (m.content.as_deref(), m.thinking.as_deref()),
            None => (line.response.as_deref(), line.thinking.as_deref()),
        };
        if let Some(t) = thinking.filter(|t| !t.is_empty()) {
            out.push(Part::Delta(Delta::Reasoning(Reasoning {
                text: t.to_string(),
                ..Reasoning::default()
            })));
        }
        if let Some(t) = content.filter(|t| !t.is_empty()) {
            out.push(Part::Delta(Delta::Text(t.to_string())));
        }
        for tc in line.message.iter().flat_map(|m| &m.tool_calls) {
            let index = self.calls;
            self.calls += 1;
            let arguments = match &tc.function.arguments {
                None | Some(Value::Null) => "{}".to_string(),
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
            };
            let id = match tc.id.as_deref() {
                Some(id) if !id.is_empty() => id.to_string(),
                _ => format!("call_{index}"),
            };
            out.push(Part::Delta(Delta::ToolCall {
                index,
                id,
                name: tc.function.name.to_string(),
                arguments,
            }));
        }
        if line.done {
            if line.prompt_eval_count.is_some() || line.eval_count.is_some() {
                let input = line.prompt_eval_count.unwrap_or(0);
                let output = line.eval_count.unwrap_or(0);
                out.push(Part::Usage(Usage {
                    input,
                    output,
                    total: input.saturating_add(output),
                    ..Usage::default()
                }));
            }
            out.push(Part::Stop(stop_reason(
                line.done_reason.as_deref(),
                self.calls > 0,
            )));
            out.push(Part::Done);
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<Part>, Error> {
        Err(Error::truncated(
            "the Ollama stream ended before its done:true line (truncated answer)",
        ))
    }
}

/// Runs a whole NDJSON body through framer → decoder → relay (fixture check, tests).
pub fn decode_body(body: &[u8]) -> (Vec<crate::chat::types::Chunk>, Option<Error>) {
    super::codec::decode_body(
        Framing::Ndjson,
        &mut OllamaDecoder::default(),
        body,
        &[],
        "run-fallback",
    )
}

// --------------------------------------------------------------- the request

/// The JSON body of an `/api/chat` call.
pub fn request_body(call: &Call, default_max_tokens: Option<u32>) -> Result<Value, Error> {
    let req = &call.request;
    let mut messages = Vec::new();
    let mut had_reasoning = false;
    for (i, msg) in req.messages.iter().enumerate() {
        let role = match msg.role {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        };
        let mut text = String::new();
        let mut thinking = String::new();
        let mut images = Vec::new();
        let mut tool_calls = Vec::new();
        for c in &msg.content {
            match c {
                Content::Text(t) => text.push_str(t),
                Content::Refusal(t) => text.push_str(t),
                Content::Reasoning(r) => thinking.push_str(&r.text),
                Content::Image(Image::Data { data, .. }) => {
                    images.push(Value::String(super::codec::base64(data)))
                }
                Content::Image(Image::Url(url)) => {
                    images.push(Value::String(data_url_payload(url).ok_or_else(|| {
                        Error::invalid(format!(
                            "messages[{i}]: ollama takes images as inline data only \
                             (data + mimeType, or a data: URL), not {url:?}"
                        ))
                    })?))
                }
                Content::ToolCall(tc) => tool_calls.push(json!({
                    "function": { "name": tc.name, "arguments": tc.arguments }
                })),
                Content::ToolResult(r) => {
                    // Each result is its own `tool` message, named when the call is known.
                    let mut m = Map::new();
                    m.insert("role".into(), json!("tool"));
                    m.insert("content".into(), json!(r.content));
                    if let Some(name) = tool_name(req, i, &r.tool_call_id) {
                        m.insert("tool_name".into(), json!(name));
                    }
                    messages.push(Value::Object(m));
                }
            }
        }
        let only_results = msg
            .content
            .iter()
            .all(|c| matches!(c, Content::ToolResult(_)));
        if only_results && !msg.content.is_empty() {
            continue;
        }
        let mut m = Map::new();
        m.insert("role".into(), json!(role));
        m.insert("content".into(), json!(text));
        if !thinking.is_empty() {
            had_reasoning |= msg.role == Role::Assistant;
            m.insert("thinking".into(), json!(thinking));
        }
        if !images.is_empty() {
            m.insert("images".into(), Value::Array(images));
        }
        if !tool_calls.is_empty() {
            m.insert("tool_calls".into(), Value::Array(tool_calls));
        }
        messages.push(Value::Object(m));
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(call.model));
    body.insert("messages".into(), Value::Array(messages));
    body.insert("stream".into(), json!(true));
    let tools: Vec<Value> = match &req.tool_choice {
        Some(ToolChoice::None) => Vec::new(),
        Some(ToolChoice::Tool(name)) => req
            .tools
            .iter()
            .filter(|t| &t.name == name)
            .map(tool_json)
            .collect(),
        _ => req.tools.iter().map(tool_json).collect(),
    };
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
    }
    if had_reasoning {
        body.insert("think".into(), json!(true));
    }
    let mut options = Map::new();
    if let Some(t) = req.temperature {
        options.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        options.insert("top_p".into(), json!(p));
    }
    if let Some(n) = req
        .max_tokens
        .or(call.options.default_max_tokens)
        .or(default_max_tokens)
    {
        options.insert("num_predict".into(), json!(n));
    }
    if !req.stop.is_empty() {
        options.insert("stop".into(), json!(req.stop));
    }
    if !options.is_empty() {
        body.insert("options".into(), Value::Object(options));
    }
    Ok(Value::Object(body))
}

fn tool_json(t: &crate::chat::types::Tool) -> Value {
    json!({
        "type": "function",
        "function": {
            "name": t.name,
            "description": t.description,
            "parameters": t.parameters,
        }
    })
}

fn data_url_payload(url: &str) -> Option<String> {
    let rest = url.strip_prefix("data:")?;
    let (_, data) = rest.split_once(";base64,")?;
    Some(data.to_string())
}

/// The name of the tool call `id`, from the nearest earlier message.
fn tool_name<'a>(
    req: &'a crate::chat::types::ChatRequest,
    before: usize,
    id: &str,
) -> Option<&'a str> {
    req.messages[..before].iter().rev().find_map(|m| {
        m.content.iter().find_map(|c| match c {
            Content::ToolCall(tc) if tc.id == id => Some(tc.name.as_str()),
            _ => None,
        })
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::chat::types::{ChatRequest, Message, Tool, ToolCall, ToolResult};

    fn frame(data: &str) -> Frame {
        Frame {
            event: String::new(),
            data: data.to_string(),
        }
    }

    #[test]
    fn content_thinking_and_done_line() {
        let mut d = OllamaDecoder::default();
        assert_eq!(
            d.on_frame(&frame(
                r#"{"model":"m","message":{"role":"assistant","content":"","thinking":"hm"},"done":false}"#
            ))
            .unwrap(),
            vec![Part::Delta(Delta::Reasoning(Reasoning {
                text: "hm".into(),
                ..Reasoning::default()
            }))]
        );
        assert_eq!(
            d.on_frame(&frame(
                r#"{"model":"m","message":{"role":"assistant","content":"Hi"},"done":false}"#
            ))
            .unwrap(),
            vec![Part::Delta(Delta::Text("Hi".into()))]
        );
        assert_eq!(
            d.on_frame(&frame(
                r#"{"model":"m","message":{"role":"assistant","content":""},"done":true,"done_reason":"length","prompt_eval_count":5,"eval_count":7}"#
            ))
            .unwrap(),
            vec![
                Part::Usage(Usage {
                    input: 5,
                    output: 7,
                    total: 12,
                    ..Usage::default()
                }),
                Part::Stop(StopReason::MaxTokens),
                Part::Done
            ]
        );
    }

    #[test]
    fn tool_calls_get_ids_indexes_and_serialized_arguments() {
        let mut d = OllamaDecoder::default();
        let p = d
            .on_frame(&frame(
                r#"{"message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"a","arguments":{"x":"é"}}},{"function":{"name":"b","arguments":{}}}]},"done":false}"#,
            ))
            .unwrap();
        assert_eq!(
            p,
            vec![
                Part::Delta(Delta::ToolCall {
                    index: 0,
                    id: "call_0".into(),
                    name: "a".into(),
                    arguments: r#"{"x":"é"}"#.into()
                }),
                Part::Delta(Delta::ToolCall {
                    index: 1,
                    id: "call_1".into(),
                    name: "b".into(),
                    arguments: "{}".into()
                }),
            ]
        );
        let p = d
            .on_frame(&frame(
                r#"{"message":{"content":""},"done":true,"done_reason":"stop"}"#,
            ))
            .unwrap();
        assert_eq!(p, vec![Part::Stop(StopReason::ToolUse), Part::Done]);
    }

    #[test]
    fn error_line_and_truncation() {
        let mut d = OllamaDecoder::default();
        let e = d
            .on_frame(&frame(
                r#"{"error":"an error was encountered while running the model"}"#,
            ))
            .unwrap_err();
        assert_eq!(e.kind, Kind::Unavailable);
        assert!(e.message.contains("an error was encountered"));
        assert_eq!(stream_error("model 'x' not found").kind, Kind::NotFound);
        assert_eq!(d.finish().unwrap_err().reason, "UPSTREAM_TRUNCATED");
        assert_eq!(
            d.on_frame(&frame("{oops")).unwrap_err().reason,
            "UPSTREAM_PROTOCOL_ERROR"
        );
    }

    #[test]
    fn done_reasons_map() {
        assert_eq!(stop_reason(Some("stop"), false), StopReason::EndTurn);
        assert_eq!(stop_reason(Some("length"), true), StopReason::MaxTokens);
        assert_eq!(stop_reason(Some("unload"), false), StopReason::Other);
        assert_eq!(stop_reason(None, false), StopReason::EndTurn);
    }

    #[test]
    fn hosts_normalize_like_ollama() {
        for (i, o) in [
            ("127.0.0.1:11434", "http://127.0.0.1:11434"),
            ("0.0.0.0", "http://0.0.0.0:11434"),
            ("example.com", "http://example.com:11434"),
            ("http://example.com", "http://example.com:80"),
            ("https://example.com/", "https://example.com:443"),
            ("http://127.0.0.1:9999", "http://127.0.0.1:9999"),
            ("https://h:8443/proxy/", "https://h:8443/proxy"),
            ("[::1]:5000", "http://[::1]:5000"),
            ("::1", "http://[::1]:11434"),
            ("", "http://127.0.0.1:11434"),
        ] {
            assert_eq!(normalize_host(i), o, "{i}");
        }
    }

    #[test]
    fn request_body_maps_messages_tools_and_options() {
        let mut args = Map::new();
        args.insert("city".into(), json!("Tokyo"));
        let request = ChatRequest {
            messages: vec![
                Message {
                    role: Role::System,
                    content: vec![Content::Text("sys".into())],
                },
                Message {
                    role: Role::User,
                    content: vec![
                        Content::Text("what is this".into()),
                        Content::Image(Image::Data {
                            data: b"abc".to_vec(),
                            mime_type: "image/png".into(),
                        }),
                        Content::Image(Image::Url("data:image/png;base64,QUJD".into())),
                    ],
                },
                Message {
                    role: Role::Assistant,
                    content: vec![
                        Content::Reasoning(Reasoning {
                            text: "think".into(),
                            ..Reasoning::default()
                        }),
                        Content::ToolCall(ToolCall {
                            id: "call_0".into(),
                            name: "weather".into(),
                            arguments: args,
                        }),
                    ],
                },
                Message {
                    role: Role::Tool,
                    content: vec![Content::ToolResult(ToolResult {
                        tool_call_id: "call_0".into(),
                        content: "rain".into(),
                        is_error: false,
                    })],
                },
            ],
            max_tokens: Some(9),
            temperature: Some(0.2),
            top_p: Some(0.5),
            stop: vec!["x".into()],
            tools: vec![Tool {
                name: "weather".into(),
                description: "w".into(),
                parameters: json!({"type":"object"}).as_object().cloned().unwrap(),
            }],
            tool_choice: None,
        };
        let call = Call {
            model: "llama3.2".into(),
            request,
            options: super::super::ModelOptions::default(),
            fallback_id: "run-1".into(),
        };
        assert_eq!(
            request_body(&call, None).unwrap(),
            json!({
                "model": "llama3.2",
                "stream": true,
                "think": true,
                "messages": [
                    {"role": "system", "content": "sys"},
                    {"role": "user", "content": "what is this", "images": ["YWJj", "QUJD"]},
                    {"role": "assistant", "content": "", "thinking": "think",
                     "tool_calls": [{"function": {"name": "weather", "arguments": {"city": "Tokyo"}}}]},
                    {"role": "tool", "content": "rain", "tool_name": "weather"}
                ],
                "tools": [{"type": "function", "function": {"name": "weather", "description": "w", "parameters": {"type": "object"}}}],
                "options": {"temperature": 0.2, "top_p": 0.5, "num_predict": 9, "stop": ["x"]}
            })
        );
        let mut c = call.clone();
        c.request.tool_choice = Some(ToolChoice::None);
        c.request.messages[1].content = vec![Content::Image(Image::Url("https://x/y.png".into()))];
        assert_eq!(
            request_body(&c, None).unwrap_err().kind,
            Kind::InvalidArgument
        );
        c.request.messages.truncate(1);
        let body = request_body(&c, None).unwrap();
        assert!(body.get("tools").is_none() && body.get("think").is_none());
    }
}
