//! The pure decoder of Gemini's SSE stream: one `GenerateContentResponse` in,
//! the domain parts it produces out (see the provider's module doc for the wire
//! facts and where thought signatures go).

use std::{borrow::Cow, collections::HashSet};

use serde::Deserialize;
use serde_json::Value;

use super::{stream_error, ApiError, GENERATED_ID_PREFIX};
use crate::{
    chat::types::{Citation, Delta, Part, Reasoning, StopReason, Usage},
    error::Error,
    provider::{Decoder, Frame},
};

use crate::provider::json_str::JsonStr;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StreamChunk<'a> {
    #[serde(default, borrow)]
    candidates: Vec<Candidate<'a>>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default, borrow)]
    response_id: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    model_version: Option<JsonStr<'a>>,
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
    finish_reason: Option<JsonStr<'a>>,
    #[serde(default)]
    index: u32,
    #[serde(default, borrow)]
    grounding_metadata: Option<GroundingMetadata<'a>>,
}

/// Search grounding: the sources (`groundingChunks`) and which answer
/// segments they support (`groundingSupports`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroundingMetadata<'a> {
    #[serde(default, borrow)]
    grounding_chunks: Vec<GroundingChunk<'a>>,
    #[serde(default, borrow)]
    grounding_supports: Vec<GroundingSupport<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroundingChunk<'a> {
    /// A web page (Google Search grounding).
    #[serde(default, borrow)]
    web: Option<Source<'a>>,
    /// A retrieved document (File Search / Vertex AI Search grounding).
    #[serde(default, borrow)]
    retrieved_context: Option<Source<'a>>,
}

#[derive(Debug, Default, Deserialize)]
struct Source<'a> {
    #[serde(default, borrow)]
    uri: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    title: Option<JsonStr<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroundingSupport<'a> {
    #[serde(default, borrow)]
    segment: Option<Segment<'a>>,
    #[serde(default)]
    grounding_chunk_indices: Vec<usize>,
}

/// A part of the answer text; the indices are byte offsets (0 is left out on the wire).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Segment<'a> {
    #[serde(default)]
    start_index: i64,
    #[serde(default)]
    end_index: i64,
    #[serde(default, borrow)]
    text: Option<JsonStr<'a>>,
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
    text: Option<JsonStr<'a>>,
    #[serde(default)]
    thought: bool,
    #[serde(default, borrow)]
    thought_signature: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    function_call: Option<FunctionCall<'a>>,
}

#[derive(Debug, Deserialize)]
struct FunctionCall<'a> {
    #[serde(default, borrow)]
    id: Option<JsonStr<'a>>,
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
    block_reason: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    block_reason_message: Option<JsonStr<'a>>,
}

/// The pure decoder for one Gemini response.
#[derive(Debug, Default)]
pub struct GeminiDecoder {
    meta_sent: bool,
    /// Function calls seen so far (their `index`, and the STOP → TOOL_USE switch).
    calls: u32,
    /// A finishReason (or a blocked prompt) was seen: EOF is then the end.
    finished: bool,
    /// Citations already emitted (segment range, source URL, title), so that
    /// grounding repeated on a later chunk is not reported twice.
    cited: HashSet<(i64, i64, String, String)>,
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
    fn decode(&mut self, frame: &Frame, out: &mut Vec<Part>) -> Result<(), Error> {
        let data = frame.data.trim();
        if data.is_empty() {
            return Ok(());
        }
        let chunk: StreamChunk<'_> = serde_json::from_str(data).map_err(|e| {
            Error::protocol(format!(
                "the upstream sent an event that is not valid JSON: {e}"
            ))
        })?;
        if let Some(e) = &chunk.error {
            return Err(stream_error(e));
        }
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
                self.part(part, out);
            }
            if let Some(g) = &cand.grounding_metadata {
                self.citations(g, out);
            }
            if let Some(reason) = cand.finish_reason.as_deref().filter(|r| !r.is_empty()) {
                stop = Some(stop_reason(reason, self.calls > 0));
                out.push(Part::Finish {
                    reason: reason.to_string(),
                    stop_sequence: String::new(),
                });
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
        Ok(())
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

/// The most grounding citations one response reports (each is a source's
/// URL, title and a segment: supports × sources could otherwise turn one
/// event into gigabytes).
const MAX_CITATIONS: usize = 1024;

impl GeminiDecoder {
    /// One `grounding` citation per (supported segment, source) pair, after
    /// the candidate's parts (the relay puts them on the current text block).
    fn citations(&mut self, g: &GroundingMetadata<'_>, out: &mut Vec<Part>) {
        for support in &g.grounding_supports {
            // Supports × sources can multiply one event many times over: a
            // response carries at most MAX_CITATIONS (the rest is logged).
            if self.cited.len() >= MAX_CITATIONS {
                tracing::debug!(
                    "gemini: more grounding citations than {MAX_CITATIONS}; the rest are dropped"
                );
                return;
            }
            let Some(seg) = &support.segment else {
                continue;
            };
            for &i in &support.grounding_chunk_indices {
                let Some(chunk) = g.grounding_chunks.get(i) else {
                    tracing::debug!(index = i, "gemini: a grounding support names no chunk");
                    continue;
                };
                let Some(source) = chunk.web.as_ref().or(chunk.retrieved_context.as_ref()) else {
                    continue;
                };
                let url = source.uri.as_deref().unwrap_or("").to_string();
                let title = source.title.as_deref().unwrap_or("").to_string();
                let key = (seg.start_index, seg.end_index, url, title);
                if self.cited.len() >= MAX_CITATIONS {
                    return;
                }
                if self.cited.contains(&key) {
                    continue;
                }
                let (start, end, url, title) = key.clone();
                self.cited.insert(key);
                out.push(Part::Delta(Delta::Citation(Box::new(Citation {
                    kind: "grounding".into(),
                    cited_text: seg.text.as_deref().unwrap_or("").to_string(),
                    url,
                    title,
                    start,
                    end,
                }))));
            }
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

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
