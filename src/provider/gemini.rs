//! The `gemini` provider: Google's Gemini API, `streamGenerateContent?alt=sse`.
//!
//! Wire facts this module relies on (Gemini API reference, `GenerateContentResponse`):
//! every SSE `data:` line is one whole response object; text comes as `parts[].text`
//! (with `thought: true` for thought summaries), function calls come whole (never
//! in fragments), `usageMetadata` repeats on every chunk (the last one wins),
//! and there is no terminal event: the stream simply ends after the chunk with a
//! `finishReason`. So EOF after a finishReason (or a blocked prompt) is the end;
//! EOF before it is a truncated answer (UNAVAILABLE).
//!
//! Thought signatures: Gemini puts `thoughtSignature` on the part that *follows*
//! the model's thinking (the first answer text part or the first functionCall),
//! and wants it back on that same part. The decoder turns a signature on a
//! non-thought part into a `Reasoning { text: "", signature }` delta emitted just
//! before that part's own delta (so the aggregator closes the preceding thought
//! block with it, or keeps it as a signature-only block). The request builder does
//! the inverse: a reasoning block's signature is put on the next non-thought part
//! of the same message (text or functionCall); with no such part it stays on the
//! thought part itself. Tool calls therefore carry no signature of their own: the
//! reasoning block that preceded them does.

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

const NAME: &str = "gemini";
const CLASS: &str = "ChatGoogleGenerativeAI";
const HOW: &str = "GEMINI_API_KEY (or GOOGLE_API_KEY)";
const DEFAULT_BASE: &str = "https://generativelanguage.googleapis.com";
/// Ids this module makes up when Gemini gives none; they are not sent back.
const GENERATED_ID_PREFIX: &str = "call_";

/// The provider, configured from the file and the environment.
pub fn provider(
    config: &crate::config::Config,
    env: &crate::server::Env,
) -> Result<Arc<dyn Provider>, Error> {
    let settings = Settings::resolve(
        config,
        env,
        NAME,
        &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
        "GEMINI_BASE_URL",
        DEFAULT_BASE,
    );
    if settings.api_key.is_none() {
        return Ok(super::pending(NAME, CLASS, HOW));
    }
    let max_frame = settings.max_frame;
    let wire = Gemini::new(settings);
    Ok(Arc::new(HttpProvider::new(
        wire,
        super::http_client()?,
        max_frame,
    )))
}

/// The Gemini wire format.
pub struct Gemini {
    info: ProviderInfo,
    settings: Settings,
}

impl Gemini {
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

    fn url(&self, model: &str) -> Result<String, Error> {
        let model = model.strip_prefix("models/").unwrap_or(model);
        if model.is_empty()
            || !model
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        {
            return Err(Error::invalid(format!(
                "model: {model:?} is not a Gemini model name (letters, digits, '-', '.', '_')"
            )));
        }
        let base = &self.settings.base_url;
        // A base URL that already names the API version is used as given.
        let prefix = if base.ends_with("/v1beta") || base.ends_with("/v1") {
            base.clone()
        } else {
            format!("{base}/v1beta")
        };
        Ok(format!(
            "{prefix}/models/{model}:streamGenerateContent?alt=sse"
        ))
    }
}

impl Wire for Gemini {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn framing(&self) -> Framing {
        Framing::Sse
    }

    fn request(
        &self,
        client: &reqwest::Client,
        call: &Call,
    ) -> Result<reqwest::RequestBuilder, Error> {
        let url = self.url(&call.model)?;
        let body = request_body(call, self.settings.default_max_tokens)?;
        let mut req = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        req = super::with_extra_headers(req, &self.settings.headers)?;
        // The key goes in a header, never in the URL (URLs end up in logs).
        if let Some(key) = &self.settings.api_key {
            req = req.header("x-goog-api-key", super::secret_header(key)?);
        }
        Ok(req)
    }

    fn decoder(&self, _call: &Call) -> Box<dyn Decoder> {
        Box::new(GeminiDecoder::default())
    }

    fn http_error(&self, status: u16, body: &str) -> Error {
        http_error(status, body)
    }
}

/// Google's `{"error": {"code", "message", "status", "details"}}` envelope.
#[derive(Debug, Deserialize)]
struct ErrorEnvelope<'a> {
    #[serde(borrow)]
    error: ApiError<'a>,
}

#[derive(Debug, Deserialize)]
struct ApiError<'a> {
    #[serde(default)]
    code: Option<u16>,
    #[serde(default, borrow)]
    message: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(default)]
    details: Vec<Value>,
}

impl ApiError<'_> {
    fn text(&self) -> String {
        let message = self.message.as_deref().unwrap_or("").trim();
        match self.status.as_deref() {
            Some(s) if !s.is_empty() && !message.is_empty() => format!("{message} ({s})"),
            Some(s) if !s.is_empty() => s.to_string(),
            _ => message.to_string(),
        }
    }

    /// Gemini answers a bad key with HTTP 400 `API_KEY_INVALID`, not 401.
    fn bad_key(&self) -> bool {
        self.details
            .iter()
            .any(|d| d.get("reason").and_then(Value::as_str) == Some("API_KEY_INVALID"))
    }
}

/// The error for a non-2xx answer: mapped by HTTP status, with Google's message.
pub fn http_error(status: u16, body: &str) -> Error {
    match serde_json::from_str::<ErrorEnvelope<'_>>(body) {
        Ok(env) if env.error.bad_key() => Error::new(
            Kind::PermissionDenied,
            "UPSTREAM_PERMISSION_DENIED",
            format!(
                "the upstream refused the server's credentials (HTTP {status}): {}",
                env.error.text()
            ),
        )
        .with_status(status),
        Ok(env) => Error::from_upstream_status(status, &env.error.text()),
        Err(_) => Error::from_upstream_status(status, &super::http::generic_error_message(body)),
    }
}

/// A mid-stream `error` object: classed by its gRPC-style `status`, else its code.
fn stream_error(e: &ApiError<'_>) -> Error {
    let text = e.text();
    let (kind, reason) = match e.status.as_deref().unwrap_or("") {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => {
            (Kind::InvalidArgument, "UPSTREAM_INVALID_REQUEST")
        }
        "PERMISSION_DENIED" | "UNAUTHENTICATED" => {
            (Kind::PermissionDenied, "UPSTREAM_PERMISSION_DENIED")
        }
        "NOT_FOUND" => (Kind::NotFound, "UPSTREAM_NOT_FOUND"),
        "RESOURCE_EXHAUSTED" => (Kind::ResourceExhausted, "UPSTREAM_RATE_LIMITED"),
        "DEADLINE_EXCEEDED" => (Kind::DeadlineExceeded, "UPSTREAM_TIMEOUT"),
        "" => {
            let mut err = Error::from_upstream_status(e.code.unwrap_or(500), &text);
            err.message = format!("the upstream reported an error mid-stream: {text}");
            return err;
        }
        _ => (Kind::Unavailable, "UPSTREAM_ERROR"),
    };
    let mut err = Error::new(
        kind,
        reason,
        format!("the upstream reported an error mid-stream: {text}"),
    );
    err.upstream_status = e.code;
    err
}

// ---------------------------------------------------------------- the stream

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StreamChunk<'a> {
    #[serde(default, borrow)]
    candidates: Vec<Candidate<'a>>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default, borrow)]
    response_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    model_version: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    prompt_feedback: Option<PromptFeedback<'a>>,
    #[serde(default, borrow)]
    error: Option<ApiError<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<'a> {
    #[serde(default, borrow)]
    content: Option<CandidateContent<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    index: u32,
}

#[derive(Debug, Deserialize)]
struct CandidateContent<'a> {
    #[serde(default, borrow)]
    parts: Vec<WirePart<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePart<'a> {
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default)]
    thought: bool,
    #[serde(default, borrow)]
    thought_signature: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    function_call: Option<FunctionCall<'a>>,
}

#[derive(Debug, Deserialize)]
struct FunctionCall<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    /// An object; the one place a `Value` is right (it is re-serialized as is).
    #[serde(default)]
    args: Option<Value>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u32,
    #[serde(default)]
    candidates_token_count: u32,
    #[serde(default)]
    total_token_count: Option<u32>,
    #[serde(default)]
    thoughts_token_count: u32,
    #[serde(default)]
    cached_content_token_count: u32,
}

impl From<UsageMetadata> for Usage {
    fn from(u: UsageMetadata) -> Self {
        // promptTokenCount already includes cached content (Gemini's definition).
        let output = u
            .candidates_token_count
            .saturating_add(u.thoughts_token_count);
        Usage {
            input: u.prompt_token_count,
            output,
            total: u
                .total_token_count
                .unwrap_or(u.prompt_token_count.saturating_add(output)),
            cache_read: u.cached_content_token_count,
            cache_creation: 0,
            reasoning: u.thoughts_token_count,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback<'a> {
    #[serde(default, borrow)]
    block_reason: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    block_reason_message: Option<Cow<'a, str>>,
}

/// The pure decoder for one Gemini response.
#[derive(Debug, Default)]
pub struct GeminiDecoder {
    meta_sent: bool,
    /// Function calls seen so far (their `index`, and the STOP → TOOL_USE switch).
    calls: u32,
    /// A finishReason (or a blocked prompt) was seen: EOF is then the end.
    finished: bool,
}

/// The contract's stop reason for a Gemini `finishReason`.
pub fn stop_reason(finish: &str, saw_calls: bool) -> StopReason {
    match finish {
        "STOP" if saw_calls => StopReason::ToolUse,
        "STOP" => StopReason::EndTurn,
        "MAX_TOKENS" => StopReason::MaxTokens,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            StopReason::ContentFilter
        }
        _ => StopReason::Other,
    }
}

impl Decoder for GeminiDecoder {
    fn on_frame(&mut self, frame: &Frame) -> Result<Vec<Part>, Error> {
        let data = frame.data.trim();
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let chunk: StreamChunk<'_> = serde_json::from_str(data).map_err(|e| {
            Error::protocol(format!(
                "the upstream sent an event that is not valid JSON: {e}"
            ))
        })?;
        if let Some(e) = &chunk.error {
            return Err(stream_error(e));
        }
        let mut out = Vec::new();
        if !self.meta_sent {
            if let Some(id) = chunk.response_id.as_deref().filter(|s| !s.is_empty()) {
                out.push(Part::Meta {
                    id: id.to_string(),
                    model: chunk.model_version.as_deref().unwrap_or("").to_string(),
                });
                self.meta_sent = true;
            }
        }
        let mut stop = None;
        for cand in &chunk.candidates {
            if cand.index != 0 {
                tracing::debug!(
                    index = cand.index,
                    "gemini: skipping a candidate other than 0"
                );
                continue;
            }
            for part in cand.content.iter().flat_map(|c| &c.parts) {
                self.part(part, &mut out);
            }
            if let Some(reason) = cand.finish_reason.as_deref().filter(|r| !r.is_empty()) {
                stop = Some(stop_reason(reason, self.calls > 0));
                self.finished = true;
            }
        }
        if let Some(block) = chunk
            .prompt_feedback
            .as_ref()
            .and_then(|f| f.block_reason.as_deref().map(|r| (r, f)))
        {
            // The prompt itself was refused: no candidates will come. The reason is
            // kept visible as refusal text (the contract's place for refusals).
            let (reason, feedback) = block;
            let mut text = format!("Gemini blocked the prompt (blockReason {reason})");
            if let Some(m) = feedback.block_reason_message.as_deref() {
                text.push_str(": ");
                text.push_str(m);
            }
            out.push(Part::Delta(Delta::Refusal(text)));
            stop = Some(StopReason::ContentFilter);
            self.finished = true;
        }
        if let Some(u) = chunk.usage_metadata {
            out.push(Part::Usage(u.into()));
        }
        if let Some(s) = stop {
            out.push(Part::Stop(s));
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<Part>, Error> {
        if self.finished {
            Ok(vec![Part::Done])
        } else {
            Err(Error::truncated(
                "the Gemini stream ended without a finishReason (truncated answer)",
            ))
        }
    }
}

impl GeminiDecoder {
    fn part(&mut self, part: &WirePart<'_>, out: &mut Vec<Part>) {
        let signature = part.thought_signature.as_deref().unwrap_or("");
        if part.thought {
            let text = part.text.as_deref().unwrap_or("");
            if !text.is_empty() || !signature.is_empty() {
                out.push(reasoning(text, signature));
            }
            return;
        }
        // A signature on an answer part closes the thinking before it.
        if !signature.is_empty() {
            out.push(reasoning("", signature));
        }
        if let Some(fc) = &part.function_call {
            let index = self.calls;
            self.calls += 1;
            let id = match fc.id.as_deref() {
                Some(id) if !id.is_empty() => id.to_string(),
                _ => format!("{GENERATED_ID_PREFIX}{index}"),
            };
            let arguments = match &fc.args {
                Some(v) => v.to_string(),
                None => "{}".to_string(),
            };
            out.push(Part::Delta(Delta::ToolCall {
                index,
                id,
                name: fc.name.to_string(),
                arguments,
            }));
        } else if let Some(text) = part.text.as_deref().filter(|t| !t.is_empty()) {
            out.push(Part::Delta(Delta::Text(text.to_string())));
        } else if part.text.is_none() && signature.is_empty() {
            tracing::debug!("gemini: skipping a part of an unknown kind");
        }
    }
}

fn reasoning(text: &str, signature: &str) -> Part {
    Part::Delta(Delta::Reasoning(Reasoning {
        text: text.to_string(),
        signature: signature.to_string(),
        redacted: String::new(),
    }))
}

/// Runs a whole body through framer → decoder → relay, as the http shell does
/// (used by the fixture check and the unit tests).
pub fn decode_body(body: &[u8]) -> (Vec<crate::chat::types::Chunk>, Option<Error>) {
    super::codec::decode_body(
        Framing::Sse,
        &mut GeminiDecoder::default(),
        body,
        &[],
        "run-fallback",
    )
}

// --------------------------------------------------------------- the request

/// The JSON body of a `streamGenerateContent` call.
pub fn request_body(call: &Call, default_max_tokens: Option<u32>) -> Result<Value, Error> {
    let req = &call.request;
    let mut system: Vec<Value> = Vec::new();
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, msg) in req.messages.iter().enumerate() {
        let (role, parts) = match msg.role {
            Role::System => {
                for c in &msg.content {
                    match c {
                        Content::Text(t) => system.push(json!({ "text": t })),
                        _ => {
                            return Err(Error::invalid(format!(
                                "messages[{i}]: a system message may hold text only for gemini"
                            )))
                        }
                    }
                }
                continue;
            }
            Role::User | Role::Tool => ("user", user_parts(req, i)?),
            Role::Assistant => ("model", model_parts(&msg.content)),
        };
        if parts.is_empty() {
            continue;
        }
        // Gemini wants turns to alternate, and parallel function responses in one turn.
        match contents.last_mut() {
            Some((r, prev)) if *r == role => prev.extend(parts),
            _ => contents.push((role, parts)),
        }
    }
    let mut body = Map::new();
    body.insert(
        "contents".into(),
        Value::Array(
            contents
                .into_iter()
                .map(|(role, parts)| json!({ "role": role, "parts": parts }))
                .collect(),
        ),
    );
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({ "parts": system }));
    }
    let choice_none = matches!(req.tool_choice, Some(ToolChoice::None));
    if !req.tools.is_empty() {
        let decls: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut d = Map::new();
                d.insert("name".into(), json!(t.name));
                if !t.description.is_empty() {
                    d.insert("description".into(), json!(t.description));
                }
                // Full JSON Schema (`parametersJsonSchema`), not the OpenAPI subset of
                // `parameters`, so schemas pass through unchanged.
                if !t.parameters.is_empty() {
                    d.insert(
                        "parametersJsonSchema".into(),
                        Value::Object(t.parameters.clone()),
                    );
                }
                Value::Object(d)
            })
            .collect();
        body.insert("tools".into(), json!([{ "functionDeclarations": decls }]));
    }
    if let Some(choice) = &req.tool_choice {
        let config = match choice {
            ToolChoice::Auto => json!({ "mode": "AUTO" }),
            ToolChoice::None => json!({ "mode": "NONE" }),
            ToolChoice::Any => json!({ "mode": "ANY" }),
            ToolChoice::Tool(name) => json!({ "mode": "ANY", "allowedFunctionNames": [name] }),
        };
        if !req.tools.is_empty() || choice_none {
            body.insert(
                "toolConfig".into(),
                json!({ "functionCallingConfig": config }),
            );
        }
    }
    let mut gen = Map::new();
    if let Some(n) = req
        .max_tokens
        .or(call.options.default_max_tokens)
        .or(default_max_tokens)
    {
        gen.insert("maxOutputTokens".into(), json!(n));
    }
    if let Some(t) = req.temperature {
        gen.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        gen.insert("topP".into(), json!(p));
    }
    if !req.stop.is_empty() {
        gen.insert("stopSequences".into(), json!(req.stop));
    }
    if thinks(&call.model) {
        gen.insert("thinkingConfig".into(), json!({ "includeThoughts": true }));
    }
    if !gen.is_empty() {
        body.insert("generationConfig".into(), Value::Object(gen));
    }
    Ok(Value::Object(body))
}

/// Models that always think (2.5 and later): ask for their thought summaries so
/// reasoning reaches the client. Older models reject `thinkingConfig`.
fn thinks(model: &str) -> bool {
    let m = model.strip_prefix("models/").unwrap_or(model);
    (m.starts_with("gemini-2.5") || m.starts_with("gemini-3"))
        && !m.contains("image")
        && !m.contains("tts")
        && !m.contains("lite")
}

fn user_parts(req: &crate::chat::types::ChatRequest, i: usize) -> Result<Vec<Value>, Error> {
    let mut parts = Vec::new();
    for c in &req.messages[i].content {
        match c {
            Content::Text(t) => parts.push(json!({ "text": t })),
            Content::Image(Image::Data { data, mime_type }) => parts.push(json!({
                "inlineData": { "mimeType": mime_type, "data": super::codec::base64(data) }
            })),
            Content::Image(Image::Url(url)) => parts.push(image_url(url)),
            Content::ToolResult(r) => {
                let name = tool_name(req, i, &r.tool_call_id).ok_or_else(|| {
                    Error::invalid(format!(
                        "messages[{i}]: toolResult for toolCallId {:?} matches no earlier toolCall \
                         (gemini needs the function's name)",
                        r.tool_call_id
                    ))
                })?;
                let response = if r.is_error {
                    json!({ "error": r.content })
                } else {
                    json!({ "content": r.content })
                };
                let mut fr = Map::new();
                if !is_generated_id(&r.tool_call_id) {
                    fr.insert("id".into(), json!(r.tool_call_id));
                }
                fr.insert("name".into(), json!(name));
                fr.insert("response".into(), response);
                parts.push(json!({ "functionResponse": fr }));
            }
            Content::Refusal(_) | Content::Reasoning(_) | Content::ToolCall(_) => {
                return Err(Error::invalid(format!(
                    "messages[{i}]: refusal, reasoning and toolCall blocks belong in assistant messages"
                )))
            }
        }
    }
    Ok(parts)
}

/// A data: URL becomes inline data; any other URL a `fileData` reference.
fn image_url(url: &str) -> Value {
    if let Some(rest) = url.strip_prefix("data:") {
        if let Some((mime, data)) = rest.split_once(";base64,") {
            return json!({ "inlineData": { "mimeType": mime, "data": data } });
        }
    }
    let mut fd = Map::new();
    if let Some(mime) = mime_from_path(url) {
        fd.insert("mimeType".into(), json!(mime));
    }
    fd.insert("fileUri".into(), json!(url));
    json!({ "fileData": fd })
}

fn mime_from_path(url: &str) -> Option<&'static str> {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    let ext = path.rsplit_once('.')?.1.to_string();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        _ => return None,
    })
}

/// The name of the tool call `id`, from the nearest earlier assistant message.
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

fn is_generated_id(id: &str) -> bool {
    id.strip_prefix(GENERATED_ID_PREFIX)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// An assistant message as `model` parts, thought signatures put back where
/// Gemini gave them (see the module doc).
fn model_parts(content: &[Content]) -> Vec<Value> {
    let mut parts: Vec<Value> = Vec::new();
    let mut pending: Option<&str> = None;
    fn attach(mut part: Map<String, Value>, pending: &mut Option<&str>) -> Value {
        if let Some(sig) = pending.take() {
            part.insert("thoughtSignature".into(), json!(sig));
        }
        Value::Object(part)
    }
    for c in content {
        match c {
            Content::Reasoning(r) => {
                if let Some(sig) = pending.take() {
                    // Two signatures in a row: the earlier one stays where it was.
                    parts.push(json!({ "text": "", "thoughtSignature": sig }));
                }
                if !r.text.is_empty() {
                    parts.push(json!({ "text": r.text, "thought": true }));
                }
                if !r.signature.is_empty() {
                    pending = Some(&r.signature);
                }
            }
            Content::Text(t) => {
                let mut p = Map::new();
                p.insert("text".into(), json!(t));
                parts.push(attach(p, &mut pending));
            }
            Content::ToolCall(tc) => {
                let mut fc = Map::new();
                if !is_generated_id(&tc.id) && !tc.id.is_empty() {
                    fc.insert("id".into(), json!(tc.id));
                }
                fc.insert("name".into(), json!(tc.name));
                fc.insert("args".into(), Value::Object(tc.arguments.clone()));
                let mut p = Map::new();
                p.insert("functionCall".into(), Value::Object(fc));
                parts.push(attach(p, &mut pending));
            }
            // A refusal here is chatwire's own note of a blocked prompt, not model output.
            Content::Refusal(_) => {}
            Content::Image(_) | Content::ToolResult(_) => {
                tracing::debug!("gemini: skipping an image / toolResult in an assistant message");
            }
        }
    }
    if let Some(sig) = pending {
        // No part after the thinking: keep the signature on the thought part.
        match parts.last_mut() {
            Some(Value::Object(last))
                if last.get("thought") == Some(&Value::Bool(true))
                    && !last.contains_key("thoughtSignature") =>
            {
                last.insert("thoughtSignature".into(), json!(sig));
            }
            _ => parts.push(json!({ "text": "", "thoughtSignature": sig })),
        }
    }
    parts
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

    fn text(t: &str) -> Part {
        Part::Delta(Delta::Text(t.to_string()))
    }

    #[test]
    fn text_usage_and_stop_frame_by_frame() {
        let mut d = GeminiDecoder::default();
        let p = d
            .on_frame(&frame(
                r#"{"candidates":[{"content":{"parts":[{"text":"Hel"}],"role":"model"}}],"usageMetadata":{"promptTokenCount":4,"totalTokenCount":4},"modelVersion":"gemini-2.0-flash","responseId":"r1"}"#,
            ))
            .unwrap();
        assert_eq!(
            p,
            vec![
                Part::Meta {
                    id: "r1".into(),
                    model: "gemini-2.0-flash".into()
                },
                text("Hel"),
                Part::Usage(Usage {
                    input: 4,
                    total: 4,
                    ..Usage::default()
                })
            ]
        );
        let p = d
            .on_frame(&frame(
                r#"{"candidates":[{"content":{"parts":[{"text":"lo"}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":2,"totalTokenCount":9,"thoughtsTokenCount":3,"cachedContentTokenCount":1},"responseId":"r1"}"#,
            ))
            .unwrap();
        assert_eq!(
            p,
            vec![
                text("lo"),
                Part::Usage(Usage {
                    input: 4,
                    output: 5,
                    total: 9,
                    cache_read: 1,
                    cache_creation: 0,
                    reasoning: 3
                }),
                Part::Stop(StopReason::EndTurn)
            ]
        );
        assert_eq!(d.finish().unwrap(), vec![Part::Done]);
    }

    #[test]
    fn eof_without_finish_reason_is_truncated() {
        let mut d = GeminiDecoder::default();
        d.on_frame(&frame(
            r#"{"candidates":[{"content":{"parts":[{"text":"a"}]}}]}"#,
        ))
        .unwrap();
        let e = d.finish().unwrap_err();
        assert_eq!(
            (e.kind, e.reason),
            (Kind::Unavailable, "UPSTREAM_TRUNCATED")
        );
    }

    #[test]
    fn thoughts_signatures_and_function_calls() {
        let mut d = GeminiDecoder::default();
        let p = d
            .on_frame(&frame(
                r#"{"candidates":[{"content":{"parts":[{"text":"think","thought":true},{"functionCall":{"name":"f","args":{"a":1}},"thoughtSignature":"SIG"},{"functionCall":{"id":"g1","name":"g","args":{}}}]},"finishReason":"STOP"}]}"#,
            ))
            .unwrap();
        assert_eq!(
            p,
            vec![
                reasoning("think", ""),
                reasoning("", "SIG"),
                Part::Delta(Delta::ToolCall {
                    index: 0,
                    id: "call_0".into(),
                    name: "f".into(),
                    arguments: r#"{"a":1}"#.into()
                }),
                Part::Delta(Delta::ToolCall {
                    index: 1,
                    id: "g1".into(),
                    name: "g".into(),
                    arguments: "{}".into()
                }),
                Part::Stop(StopReason::ToolUse)
            ]
        );
    }

    #[test]
    fn finish_reasons_map() {
        for (r, s) in [
            ("MAX_TOKENS", StopReason::MaxTokens),
            ("SAFETY", StopReason::ContentFilter),
            ("RECITATION", StopReason::ContentFilter),
            ("BLOCKLIST", StopReason::ContentFilter),
            ("PROHIBITED_CONTENT", StopReason::ContentFilter),
            ("SPII", StopReason::ContentFilter),
            ("MALFORMED_FUNCTION_CALL", StopReason::Other),
            ("OTHER", StopReason::Other),
        ] {
            assert_eq!(stop_reason(r, false), s, "{r}");
        }
        assert_eq!(stop_reason("MAX_TOKENS", true), StopReason::MaxTokens);
    }

    #[test]
    fn blocked_prompt_is_a_refusal_with_the_reason() {
        let mut d = GeminiDecoder::default();
        let p = d
            .on_frame(&frame(
                r#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":7,"totalTokenCount":7}}"#,
            ))
            .unwrap();
        assert_eq!(
            p,
            vec![
                Part::Delta(Delta::Refusal(
                    "Gemini blocked the prompt (blockReason SAFETY)".into()
                )),
                Part::Usage(Usage {
                    input: 7,
                    total: 7,
                    ..Usage::default()
                }),
                Part::Stop(StopReason::ContentFilter)
            ]
        );
        assert_eq!(d.finish().unwrap(), vec![Part::Done]);
    }

    #[test]
    fn stream_error_object_maps_by_status() {
        let mut d = GeminiDecoder::default();
        let e = d
            .on_frame(&frame(
                r#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#,
            ))
            .unwrap_err();
        assert_eq!(e.kind, Kind::Unavailable);
        assert!(
            e.message.contains("The model is overloaded."),
            "{}",
            e.message
        );
        let e = d
            .on_frame(&frame(
                r#"{"error":{"code":429,"message":"Quota","status":"RESOURCE_EXHAUSTED"}}"#,
            ))
            .unwrap_err();
        assert_eq!(e.kind, Kind::ResourceExhausted);
        let e = d
            .on_frame(&frame(r#"{"error":{"code":400,"message":"bad"}}"#))
            .unwrap_err();
        assert_eq!(e.kind, Kind::InvalidArgument);
    }

    #[test]
    fn bad_json_is_a_protocol_error_and_unknown_parts_are_skipped() {
        let mut d = GeminiDecoder::default();
        assert_eq!(
            d.on_frame(&frame("{not json")).unwrap_err().reason,
            "UPSTREAM_PROTOCOL_ERROR"
        );
        let p = d
            .on_frame(&frame(
                r#"{"candidates":[{"content":{"parts":[{"executableCode":{"code":"1"}},{"text":"x"}]},"groundingMetadata":{}}],"somethingNew":1}"#,
            ))
            .unwrap();
        assert_eq!(p, vec![text("x")]);
    }

    #[test]
    fn http_errors_use_googles_message() {
        let e = http_error(
            400,
            r#"{"error":{"code":400,"message":"Invalid value at 'x'","status":"INVALID_ARGUMENT"}}"#,
        );
        assert_eq!(e.kind, Kind::InvalidArgument);
        assert!(e.message.contains("Invalid value at 'x'"));
        let e = http_error(
            400,
            r#"{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}"#,
        );
        assert_eq!(e.kind, Kind::PermissionDenied);
        assert_eq!(http_error(503, "oops").kind, Kind::Unavailable);
        assert_eq!(http_error(404, "{}").kind, Kind::NotFound);
    }

    #[test]
    fn decode_body_handles_crlf_and_missing_end() {
        let body = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"A\"}]},\"finishReason\":\"STOP\"}],\"responseId\":\"x\"}\r\n\r\n";
        let (chunks, err) = decode_body(body.as_bytes());
        assert!(err.is_none());
        assert_eq!(chunks.len(), 2);
        assert!(chunks.iter().all(|c| c.id == "x"));
        assert!(chunks[1].last);
        let (_, err) = decode_body(b"data: {\"candidates\":[]}\n\n");
        assert_eq!(err.unwrap().reason, "UPSTREAM_TRUNCATED");
    }

    fn call(messages: Vec<Message>) -> Call {
        Call {
            model: "gemini-2.0-flash".into(),
            request: ChatRequest {
                messages,
                ..ChatRequest::default()
            },
            options: super::super::ModelOptions::default(),
            fallback_id: "run-1".into(),
        }
    }

    #[test]
    fn request_body_maps_roles_tools_signatures_and_config() {
        let mut args = Map::new();
        args.insert("city".into(), json!("Paris"));
        let mut c = call(vec![
            Message {
                role: Role::System,
                content: vec![Content::Text("be brief".into())],
            },
            Message {
                role: Role::User,
                content: vec![
                    Content::Text("weather?".into()),
                    Content::Image(Image::Data {
                        data: b"abc".to_vec(),
                        mime_type: "image/png".into(),
                    }),
                    Content::Image(Image::Url("https://x.test/cat.jpg".into())),
                ],
            },
            Message {
                role: Role::Assistant,
                content: vec![
                    Content::Reasoning(Reasoning {
                        text: "hmm".into(),
                        signature: "SIG".into(),
                        redacted: String::new(),
                    }),
                    Content::ToolCall(ToolCall {
                        id: "call_0".into(),
                        name: "weather".into(),
                        arguments: args.clone(),
                    }),
                    Content::ToolCall(ToolCall {
                        id: "abc".into(),
                        name: "time".into(),
                        arguments: Map::new(),
                    }),
                ],
            },
            Message {
                role: Role::Tool,
                content: vec![Content::ToolResult(ToolResult {
                    tool_call_id: "call_0".into(),
                    content: "sunny".into(),
                    is_error: false,
                })],
            },
            Message {
                role: Role::Tool,
                content: vec![Content::ToolResult(ToolResult {
                    tool_call_id: "abc".into(),
                    content: "no clock".into(),
                    is_error: true,
                })],
            },
        ]);
        c.request.tools = vec![Tool {
            name: "weather".into(),
            description: "Weather".into(),
            parameters: json!({"type":"object","properties":{"city":{"type":"string"}}})
                .as_object()
                .cloned()
                .unwrap(),
        }];
        c.request.tool_choice = Some(ToolChoice::Tool("weather".into()));
        c.request.max_tokens = Some(50);
        c.request.temperature = Some(0.5);
        c.request.top_p = Some(0.9);
        c.request.stop = vec!["END".into()];
        let body = request_body(&c, None).unwrap();
        assert_eq!(
            body,
            json!({
                "systemInstruction": {"parts": [{"text": "be brief"}]},
                "contents": [
                    {"role": "user", "parts": [
                        {"text": "weather?"},
                        {"inlineData": {"mimeType": "image/png", "data": "YWJj"}},
                        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://x.test/cat.jpg"}}
                    ]},
                    {"role": "model", "parts": [
                        {"text": "hmm", "thought": true},
                        {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": "SIG"},
                        {"functionCall": {"id": "abc", "name": "time", "args": {}}}
                    ]},
                    {"role": "user", "parts": [
                        {"functionResponse": {"name": "weather", "response": {"content": "sunny"}}},
                        {"functionResponse": {"id": "abc", "name": "time", "response": {"error": "no clock"}}}
                    ]}
                ],
                "tools": [{"functionDeclarations": [{"name": "weather", "description": "Weather",
                    "parametersJsonSchema": {"type":"object","properties":{"city":{"type":"string"}}}}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}},
                "generationConfig": {"maxOutputTokens": 50, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]}
            })
        );
    }

    #[test]
    fn signature_without_a_following_part_stays_on_the_thought() {
        let parts = model_parts(&[
            Content::Reasoning(Reasoning {
                text: "a".into(),
                signature: "S1".into(),
                redacted: String::new(),
            }),
            Content::Text("answer".into()),
            Content::Reasoning(Reasoning {
                text: "b".into(),
                signature: "S2".into(),
                redacted: String::new(),
            }),
        ]);
        assert_eq!(
            parts,
            vec![
                json!({"text": "a", "thought": true}),
                json!({"text": "answer", "thoughtSignature": "S1"}),
                json!({"text": "b", "thought": true, "thoughtSignature": "S2"}),
            ]
        );
    }

    #[test]
    fn unknown_tool_result_id_is_invalid_and_thinking_models_ask_for_thoughts() {
        let c = call(vec![Message {
            role: Role::Tool,
            content: vec![Content::ToolResult(ToolResult {
                tool_call_id: "nope".into(),
                content: "x".into(),
                is_error: false,
            })],
        }]);
        assert_eq!(
            request_body(&c, None).unwrap_err().kind,
            Kind::InvalidArgument
        );
        let mut c = call(vec![Message {
            role: Role::User,
            content: vec![Content::Text("hi".into())],
        }]);
        c.model = "gemini-2.5-pro".into();
        let body = request_body(&c, None).unwrap();
        assert_eq!(
            body["generationConfig"],
            json!({"thinkingConfig": {"includeThoughts": true}})
        );
    }

    #[test]
    fn url_uses_v1beta_and_rejects_odd_model_names() {
        let g = Gemini::new(Settings {
            base_url: "http://h".into(),
            ..Settings::default()
        });
        assert_eq!(
            g.url("models/gemini-2.0-flash").unwrap(),
            "http://h/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
        );
        assert!(g.url("a/../b").is_err());
    }
}
