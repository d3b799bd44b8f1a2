//! Domain types: what a chat request and a streamed answer are, knowing neither
//! protobuf nor any provider's JSON. Conversions live at the two edges
//! (`api::convert` for protobuf, each provider module for its wire format).

/// Who wrote a message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Role {
    System,
    #[default]
    User,
    Assistant,
    Tool,
}

/// One block of message content.
#[derive(Clone, Debug, PartialEq)]
pub enum Content {
    Text(String),
    Refusal(String),
    Image(Image),
    ToolCall(ToolCall),
    ToolResult(ToolResult),
    Reasoning(Reasoning),
    /// A document (PDF and the like).
    File(File),
    /// Audio input.
    Audio(Audio),
}

/// A document, by URL or inline bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct File {
    pub source: FileSource,
    /// The media type (required with data; may be empty with a URL).
    pub mime_type: String,
    pub filename: String,
}

/// Where a file's bytes are.
#[derive(Clone, Debug, PartialEq)]
pub enum FileSource {
    Url(String),
    Data(Vec<u8>),
}

/// Inline audio.
#[derive(Clone, Debug, PartialEq)]
pub struct Audio {
    pub data: Vec<u8>,
    pub mime_type: String,
}

/// An image, by URL or inline bytes.
#[derive(Clone, Debug, PartialEq)]
pub enum Image {
    Url(String),
    Data { data: Vec<u8>, mime_type: String },
}

/// A complete tool call; `arguments` is a JSON object and `arguments_json`
/// its exact text (the model's own, or the caller's; empty when only the
/// object is known).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: serde_json::Map<String, serde_json::Value>,
    pub arguments_json: String,
}

impl ToolCall {
    /// The arguments as JSON text: the exact text when there is one.
    pub fn arguments_text(&self) -> String {
        if self.arguments_json.is_empty() {
            serde_json::Value::Object(self.arguments.clone()).to_string()
        } else {
            self.arguments_json.clone()
        }
    }
}

/// A tool call whose arguments did not parse as a JSON object.
#[derive(Clone, Debug, PartialEq)]
pub struct InvalidToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
    pub error: String,
}

/// The result of a tool call, sent back to the model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolResult {
    pub tool_call_id: String,
    pub content: String,
    pub is_error: bool,
    /// The result as blocks (text, image, file), after `content` when both are set.
    pub blocks: Vec<Content>,
}

/// The model's reasoning, with the provider's signature (or redacted data).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reasoning {
    pub text: String,
    pub signature: String,
    pub redacted: String,
}

/// One message of the conversation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: Vec<Content>,
    /// A participant name (OpenAI `name`); empty when unset.
    pub name: String,
    /// Prompt-cache breakpoints: after these blocks (indices into `content`), with their TTL.
    pub cache: Vec<(usize, String)>,
}

impl Message {
    /// A message of plain content blocks, no name, no cache breakpoints.
    pub fn new(role: Role, content: Vec<Content>) -> Self {
        Self {
            role,
            content,
            name: String::new(),
            cache: Vec::new(),
        }
    }
}

impl Message {
    /// The message's text blocks joined (what a plain-text provider sees).
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|c| match c {
                Content::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// A tool the model may call; `parameters` is a JSON-schema object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: String,
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// Follow the schema exactly (OpenAI `strict`).
    pub strict: Option<bool>,
    /// A prompt-cache breakpoint after this tool, with its TTL.
    pub cache: Option<String>,
}

/// Whether and which tool the model must call.
#[derive(Clone, Debug, PartialEq)]
pub enum ToolChoice {
    Auto,
    None,
    Any,
    Tool(String),
}

/// A validated chat request, with the model already resolved to its provider.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop: Vec<String>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    pub reasoning: Option<ReasoningConfig>,
    pub response_format: Option<ResponseFormat>,
    /// Merged into the upstream body (keys chatwire owns are refused).
    pub provider_options: serde_json::Map<String, serde_json::Value>,
    pub seed: Option<i64>,
    pub top_k: Option<u32>,
    pub frequency_penalty: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub parallel_tool_calls: Option<bool>,
}

/// How hard to reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effort {
    None,
    Minimal,
    Low,
    Medium,
    High,
}

/// Reasoning controls.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReasoningConfig {
    pub effort: Option<Effort>,
    pub budget_tokens: Option<u32>,
    /// Return the reasoning (or its summary) as reasoning chunks.
    pub include: Option<bool>,
}

/// Structured output.
#[derive(Clone, Debug, PartialEq)]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema {
        name: String,
        schema: serde_json::Map<String, serde_json::Value>,
        strict: bool,
        description: String,
    },
}

/// Token counts for one response. `input` counts cached tokens too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: u32,
    pub output: u32,
    pub total: u32,
    pub cache_read: u32,
    pub cache_creation: u32,
    pub reasoning: u32,
}

/// Why the model stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    EndTurn,
    MaxTokens,
    StopSequence,
    ToolUse,
    ContentFilter,
    Other,
}

/// What one chunk adds to the message.
#[derive(Clone, Debug, PartialEq)]
pub enum Delta {
    Text(String),
    Refusal(String),
    /// A tool-call fragment: `id` and `name` on the first fragment of an index.
    ToolCall {
        index: u32,
        id: String,
        name: String,
        arguments: String,
    },
    Reasoning(Reasoning),
    /// A citation for the text block the relay's block index points at
    /// (boxed: rare, and the largest delta).
    Citation(Box<Citation>),
}

/// A citation of a source.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Citation {
    pub kind: String,
    pub cited_text: String,
    pub url: String,
    pub title: String,
    pub start: i64,
    pub end: i64,
}

/// One streamed piece of an answer, as the client sees it.
///
/// Kept small (a token's chunk is moved through several stream layers): what
/// only the last chunk carries is boxed in [`End`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Chunk {
    pub id: String,
    /// The model as the provider names it, on every chunk once known.
    pub model: String,
    /// The provider that answered, on every chunk.
    pub provider: &'static str,
    /// The content block a text, refusal, reasoning or citation delta belongs to.
    pub block_index: u32,
    pub delta: Option<Delta>,
    /// Usage, stop reason and response metadata: on the last chunk only.
    pub end: Option<Box<End>>,
    pub last: bool,
}

// A token's chunk is moved several times on its way to the client: a field
// that makes it larger belongs in `End` (or a box), not here.
const _: () = assert!(std::mem::size_of::<Chunk>() <= 160);

/// What the last chunk adds: usage, why the model stopped, response metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct End {
    pub usage: Option<Usage>,
    pub stop_reason: Option<StopReason>,
    /// The provider's own finish reason and stop sequence.
    pub finish_reason: String,
    pub stop_sequence: String,
    /// Response metadata: request_id, system_fingerprint, service_tier.
    pub metadata: Vec<(String, String)>,
}

impl Chunk {
    pub fn usage(&self) -> Option<Usage> {
        self.end.as_ref().and_then(|e| e.usage)
    }

    pub fn stop_reason(&self) -> Option<StopReason> {
        self.end.as_ref().and_then(|e| e.stop_reason)
    }

    pub fn finish_reason(&self) -> &str {
        self.end.as_ref().map_or("", |e| &e.finish_reason)
    }

    pub fn metadata(&self) -> &[(String, String)] {
        self.end.as_ref().map_or(&[], |e| &e.metadata)
    }
}

/// What a provider's decoder reports, in upstream order. The relay
/// (`provider::relay`) turns these into client chunks: it stamps the message id
/// on every chunk and emits the one `last` chunk with usage and stop reason.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    /// The provider's message id and model name (may come more than once; the first non-empty wins).
    Meta { id: String, model: String },
    /// Content to forward now.
    Delta(Delta),
    /// Complete usage so far; a later report replaces an earlier one.
    Usage(Usage),
    /// The stop reason; a later report replaces an earlier one.
    Stop(StopReason),
    /// The provider's own finish reason (and matched stop sequence, if any).
    Finish {
        reason: String,
        stop_sequence: String,
    },
    /// A response metadata entry (system fingerprint, service tier...).
    Metadata(&'static str, String),
    /// The terminal event: the response is complete.
    Done,
}
