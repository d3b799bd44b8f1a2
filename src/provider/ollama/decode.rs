//! The pure decoder of Ollama's NDJSON stream: one line in, the domain parts
//! it produces out (see the provider's module doc for the wire facts).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use crate::{
    chat::types::{Delta, Part, Reasoning, StopReason, Usage},
    error::{Error, Kind},
    provider::{Decoder, Frame},
};

use crate::provider::json_str::JsonStr;

#[derive(Debug, Deserialize)]
struct Line<'a> {
    #[serde(default, borrow)]
    message: Option<WireMessage<'a>>,
    /// `/api/generate` lines carry `response` / `thinking` at the top level.
    #[serde(default, borrow)]
    response: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    thinking: Option<JsonStr<'a>>,
    #[serde(default)]
    done: bool,
    #[serde(default, borrow)]
    done_reason: Option<JsonStr<'a>>,
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
    content: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    thinking: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    tool_calls: Vec<WireToolCall<'a>>,
}

#[derive(Debug, Deserialize)]
struct WireToolCall<'a> {
    #[serde(default, borrow)]
    id: Option<JsonStr<'a>>,
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
    // Ollama's errors are bare strings: the words say which HTTP status they
    // stand for, and the one table classes that.
    let lower = text.to_ascii_lowercase();
    let status = if lower.contains("not found") {
        Some(404)
    } else if lower.contains("does not support") || lower.contains("invalid") {
        Some(400)
    } else if lower.contains("too many requests") || lower.contains("rate limit") {
        Some(429)
    } else {
        None
    };
    let (kind, reason) = status.map_or(
        (Kind::Unavailable, "UPSTREAM_ERROR"),
        Kind::from_http_status,
    );
    Error::new(
        kind,
        reason,
        format!("the upstream reported an error mid-stream: {text}"),
    )
}

impl Decoder for OllamaDecoder {
    fn decode(&mut self, frame: &Frame, out: &mut Vec<Part>) -> Result<(), Error> {
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
            if let Some(r) = line.done_reason.as_deref() {
                out.push(Part::Finish {
                    reason: r.to_string(),
                    stop_sequence: String::new(),
                });
            }
            out.push(Part::Done);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<Vec<Part>, Error> {
        Err(Error::truncated(
            "the Ollama stream ended before its done:true line (truncated answer)",
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// The decoder's parts without `Finish` (the raw finish reason is checked
    /// through the gRPC surface, tests/api11.rs).
    fn on<D: Decoder>(d: &mut D, f: &Frame) -> Result<Vec<Part>, Error> {
        d.on_frame(f).map(|v| {
            v.into_iter()
                .filter(|p| !matches!(p, Part::Finish { .. }))
                .collect()
        })
    }

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
            on(&mut d, &frame(
                r#"{"model":"m","message":{"role":"assistant","content":"","thinking":"hm"},"done":false}"#
            ))
            .unwrap(),
            vec![Part::Delta(Delta::Reasoning(Reasoning {
                text: "hm".into(),
                ..Reasoning::default()
            }))]
        );
        assert_eq!(
            on(
                &mut d,
                &frame(
                    r#"{"model":"m","message":{"role":"assistant","content":"Hi"},"done":false}"#
                )
            )
            .unwrap(),
            vec![Part::Delta(Delta::Text("Hi".into()))]
        );
        assert_eq!(
            on(&mut d, &frame(
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
        let p = on(&mut d, &frame(
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
        let p = on(
            &mut d,
            &frame(r#"{"message":{"content":""},"done":true,"done_reason":"stop"}"#),
        )
        .unwrap();
        assert_eq!(p, vec![Part::Stop(StopReason::ToolUse), Part::Done]);
    }

    #[test]
    fn error_line_and_truncation() {
        let mut d = OllamaDecoder::default();
        let e = on(
            &mut d,
            &frame(r#"{"error":"an error was encountered while running the model"}"#),
        )
        .unwrap_err();
        assert_eq!(e.kind, Kind::Unavailable);
        assert!(e.message.contains("an error was encountered"));
        assert_eq!(stream_error("model 'x' not found").kind, Kind::NotFound);
        assert_eq!(d.finish().unwrap_err().reason, "UPSTREAM_TRUNCATED");
        assert_eq!(
            on(&mut d, &frame("{oops")).unwrap_err().reason,
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
}
