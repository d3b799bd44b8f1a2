//! The wire shape of Anthropic's Messages SSE events, as the decoder
//! (`super::decode`) reads them: borrowed serde enums and structs.

use std::borrow::Cow;

use serde::Deserialize;

use crate::{chat::types::Citation, provider::json_str::JsonStr};

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Event<'a> {
    MessageStart {
        #[serde(borrow)]
        message: StartMessage<'a>,
    },
    ContentBlockStart {
        index: u32,
        #[serde(borrow)]
        content_block: Block<'a>,
    },
    ContentBlockDelta {
        index: u32,
        #[serde(borrow)]
        delta: BlockDelta<'a>,
    },
    ContentBlockStop {
        #[serde(default)]
        index: Option<u32>,
    },
    MessageDelta {
        #[serde(default, borrow)]
        delta: MessageDeltaBody<'a>,
        #[serde(default)]
        usage: Option<WireUsage>,
    },
    MessageStop,
    Ping,
    Error {
        #[serde(borrow)]
        error: ErrorBody<'a>,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Deserialize, Default)]
pub(super) struct StartMessage<'a> {
    #[serde(default, borrow)]
    pub(super) id: Cow<'a, str>,
    #[serde(default, borrow)]
    pub(super) model: Cow<'a, str>,
    #[serde(default)]
    pub(super) usage: Option<WireUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Block<'a> {
    Text {
        #[serde(default, borrow)]
        text: Cow<'a, str>,
        /// Empty when streamed (they come as `citations_delta`).
        #[serde(default, borrow)]
        citations: Option<Vec<WireCitation<'a>>>,
    },
    ToolUse {
        #[serde(default, borrow)]
        id: Cow<'a, str>,
        #[serde(default, borrow)]
        name: Cow<'a, str>,
    },
    Thinking {
        #[serde(default, borrow)]
        thinking: Cow<'a, str>,
        #[serde(default, borrow)]
        signature: Cow<'a, str>,
    },
    RedactedThinking {
        #[serde(default, borrow)]
        data: Cow<'a, str>,
    },
    /// Server-side tools (`server_tool_use`, `web_search_tool_result`, ...) and
    /// block types added later: not the client's content.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum BlockDelta<'a> {
    TextDelta {
        #[serde(borrow)]
        text: Cow<'a, str>,
    },
    InputJsonDelta {
        #[serde(borrow)]
        partial_json: Cow<'a, str>,
    },
    ThinkingDelta {
        #[serde(borrow)]
        thinking: Cow<'a, str>,
    },
    SignatureDelta {
        #[serde(borrow)]
        signature: Cow<'a, str>,
    },
    /// One citation for the text block (boxed: the other deltas are small).
    CitationsDelta {
        #[serde(default, borrow)]
        citation: Option<Box<WireCitation<'a>>>,
    },
    /// Delta types added later.
    #[serde(other)]
    Other,
}

/// A citation of any of Anthropic's kinds: `char_location` (document title,
/// character range), `page_location` (page range), `content_block_location`
/// and `search_result_location` (block range; the latter with a `source`),
/// `web_search_result_location` (url and title).
#[derive(Deserialize, Default)]
pub(super) struct WireCitation<'a> {
    #[serde(default, rename = "type", borrow)]
    pub(super) kind: Cow<'a, str>,
    #[serde(default, borrow)]
    pub(super) cited_text: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    pub(super) url: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    pub(super) source: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    pub(super) title: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    pub(super) document_title: Option<JsonStr<'a>>,
    #[serde(default)]
    pub(super) start_char_index: Option<i64>,
    #[serde(default)]
    pub(super) end_char_index: Option<i64>,
    #[serde(default)]
    pub(super) start_page_number: Option<i64>,
    #[serde(default)]
    pub(super) end_page_number: Option<i64>,
    #[serde(default)]
    pub(super) start_block_index: Option<i64>,
    #[serde(default)]
    pub(super) end_block_index: Option<i64>,
}

impl WireCitation<'_> {
    pub(super) fn into_citation(self) -> Citation {
        let s = |v: Option<JsonStr<'_>>| v.map(JsonStr::into_owned).unwrap_or_default();
        let (start, end) = match (self.start_char_index, self.start_page_number) {
            (Some(start), _) => (start, self.end_char_index),
            (None, Some(start)) => (start, self.end_page_number),
            (None, None) => (self.start_block_index.unwrap_or(0), self.end_block_index),
        };
        Citation {
            kind: self.kind.into_owned(),
            cited_text: s(self.cited_text),
            url: s(self.url.or(self.source)),
            title: s(self.document_title.or(self.title)),
            start,
            end: end.unwrap_or(0),
        }
    }
}

#[derive(Deserialize, Default)]
pub(super) struct MessageDeltaBody<'a> {
    #[serde(default, borrow)]
    pub(super) stop_reason: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    pub(super) stop_sequence: Option<JsonStr<'a>>,
}

/// Anthropic's usage object; every field optional (message_delta may carry
/// only `output_tokens`, or the input and cache fields too).
#[derive(Deserialize, Default, Clone, Copy)]
pub(super) struct WireUsage {
    pub(super) input_tokens: Option<u32>,
    pub(super) output_tokens: Option<u32>,
    pub(super) cache_read_input_tokens: Option<u32>,
    pub(super) cache_creation_input_tokens: Option<u32>,
}

#[derive(Deserialize, Default)]
pub(super) struct ErrorBody<'a> {
    #[serde(default, rename = "type", borrow)]
    pub(super) kind: Cow<'a, str>,
    #[serde(default, borrow)]
    pub(super) message: Cow<'a, str>,
}
