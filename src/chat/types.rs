//! Domain types: what a chat request and a streamed answer are, knowing neither
//! protobuf nor any provider's JSON. Conversions live at the two edges
//! (`api::convert` for protobuf, each provider module for its wire format).

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    System,
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
}

/// An image, by URL or inline bytes.
#[derive(Clone, Debug, PartialEq)]
pub enum Image {
    Url(String),
    Data { data: Vec<u8>, mime_type: String },
}

/// A complete tool call; `arguments` is a JSON object.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: serde_json::Map<String, serde_json::Value>,
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
#[derive(Clone, Debug, PartialEq)]
pub struct ToolResult {
    pub tool_call_id: String,
    pub content: String,
    pub is_error: bool,
}

/// The model's reasoning, with the provider's signature (or redacted data).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reasoning {
    pub text: String,
    pub signature: String,
    pub redacted: String,
}

/// One message of the conversation.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: Vec<Content>,
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
#[derive(Clone, Debug, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: String,
    pub parameters: serde_json::Map<String, serde_json::Value>,
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
}

/// One streamed piece of an answer, as the client sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Chunk {
    pub id: String,
    /// The model as the provider names it, on the first chunk that knows it
    /// (domain only: the final message's `model`; chunks on the wire omit it).
    pub model: String,
    pub delta: Option<Delta>,
    pub usage: Option<Usage>,
    pub stop_reason: Option<StopReason>,
    pub last: bool,
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
    /// The terminal event: the response is complete.
    Done,
}
