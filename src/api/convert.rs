//! Protobuf ⇄ domain, with validation: every rejected field is named by its
//! path (`messages[2].role: must be set`) so the caller can fix it.

use prost_types::{value::Kind as PKind, ListValue, Struct, Value};
use serde_json::{Map, Number, Value as J};

use crate::{
    chat::{aggregate::FinalMessage, types as d},
    error::Error,
    pb,
};

/// Validates a request and converts it to the domain (the model is routed separately).
pub fn request(r: &pb::ChatRequest) -> Result<d::ChatRequest, Error> {
    if r.model.trim().is_empty() {
        return Err(Error::invalid("model: must be set (e.g. \"fake:echo\")"));
    }
    if r.messages.is_empty() {
        return Err(Error::invalid("messages: at least one message is required"));
    }
    let mut messages = Vec::with_capacity(r.messages.len());
    for (i, m) in r.messages.iter().enumerate() {
        messages.push(message(m, &format!("messages[{i}]"))?);
    }
    if r.max_tokens == Some(0) {
        return Err(Error::invalid(
            "maxTokens: must be greater than 0 (unset it for the provider's default)",
        ));
    }
    if let Some(t) = r.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(Error::invalid(format!(
                "temperature: {t} is outside [0, 2]"
            )));
        }
    }
    if let Some(p) = r.top_p {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::invalid(format!("topP: {p} is outside [0, 1]")));
        }
    }
    for (i, s) in r.stop.iter().enumerate() {
        if s.is_empty() {
            return Err(Error::invalid(format!("stop[{i}]: must not be empty")));
        }
    }
    let mut tools = Vec::with_capacity(r.tools.len());
    for (i, t) in r.tools.iter().enumerate() {
        let path = format!("tools[{i}]");
        if t.name.trim().is_empty() {
            return Err(Error::invalid(format!("{path}.name: must be set")));
        }
        if r.tools[..i].iter().any(|o| o.name == t.name) {
            return Err(Error::invalid(format!(
                "{path}.name: duplicate tool name {:?}",
                t.name
            )));
        }
        let Some(params) = &t.parameters else {
            return Err(Error::invalid(format!(
                "{path}.parameters: must be a JSON-schema object"
            )));
        };
        tools.push(d::Tool {
            name: t.name.clone(),
            description: t.description.clone(),
            parameters: struct_to_json(params),
        });
    }
    let tool_choice = match &r.tool_choice {
        None => None,
        Some(tc) => {
            use pb::tool_choice::Mode;
            match Mode::try_from(tc.mode) {
                Ok(Mode::Unspecified) => None,
                Ok(Mode::Auto) => Some(d::ToolChoice::Auto),
                Ok(Mode::None) => Some(d::ToolChoice::None),
                Ok(Mode::Any) => Some(d::ToolChoice::Any),
                Ok(Mode::Tool) => {
                    if !tools.iter().any(|t| t.name == tc.name) {
                        return Err(Error::invalid(format!(
                            "toolChoice.name: {:?} is not one of the request's tools",
                            tc.name
                        )));
                    }
                    Some(d::ToolChoice::Tool(tc.name.clone()))
                }
                Err(_) => {
                    return Err(Error::invalid(format!(
                        "toolChoice.mode: unknown value {}",
                        tc.mode
                    )))
                }
            }
        }
    };
    if let Some(c) = &r.config {
        if !c.run_id.is_empty() && uuid::Uuid::parse_str(&c.run_id).is_err() {
            return Err(Error::invalid(format!(
                "config.runId: {:?} is not a UUID",
                c.run_id
            )));
        }
    }
    Ok(d::ChatRequest {
        messages,
        max_tokens: r.max_tokens,
        temperature: r.temperature,
        top_p: r.top_p,
        stop: r.stop.clone(),
        tools,
        tool_choice,
    })
}

fn message(m: &pb::Message, path: &str) -> Result<d::Message, Error> {
    let role = match pb::Role::try_from(m.role) {
        Ok(pb::Role::System) => d::Role::System,
        Ok(pb::Role::User) => d::Role::User,
        Ok(pb::Role::Assistant) => d::Role::Assistant,
        Ok(pb::Role::Tool) => d::Role::Tool,
        Ok(pb::Role::Unspecified) => {
            return Err(Error::invalid(format!("{path}.role: must be set")))
        }
        Err(_) => {
            return Err(Error::invalid(format!(
                "{path}.role: unknown role {}",
                m.role
            )))
        }
    };
    if m.content.is_empty() {
        return Err(Error::invalid(format!(
            "{path}.content: at least one content block is required"
        )));
    }
    let mut content = Vec::with_capacity(m.content.len());
    for (j, c) in m.content.iter().enumerate() {
        let p = format!("{path}.content[{j}]");
        use pb::content_block::Block;
        content.push(match &c.block {
            None => {
                return Err(Error::invalid(format!(
                    "{p}: must set one of text, refusal, image, toolCall, toolResult, reasoning"
                )))
            }
            Some(Block::Text(t)) => d::Content::Text(t.clone()),
            Some(Block::Refusal(t)) => d::Content::Refusal(t.clone()),
            Some(Block::Image(img)) => d::Content::Image(image(img, &p)?),
            Some(Block::ToolCall(tc)) => {
                if tc.id.is_empty() || tc.name.is_empty() {
                    return Err(Error::invalid(format!(
                        "{p}.toolCall: id and name must be set"
                    )));
                }
                d::Content::ToolCall(d::ToolCall {
                    id: tc.id.clone(),
                    name: tc.name.clone(),
                    arguments: tc
                        .arguments
                        .as_ref()
                        .map(struct_to_json)
                        .unwrap_or_default(),
                })
            }
            Some(Block::ToolResult(tr)) => {
                if tr.tool_call_id.is_empty() {
                    return Err(Error::invalid(format!(
                        "{p}.toolResult.toolCallId: must be set"
                    )));
                }
                d::Content::ToolResult(d::ToolResult {
                    tool_call_id: tr.tool_call_id.clone(),
                    content: tr.content.clone(),
                    is_error: tr.is_error,
                })
            }
            Some(Block::Reasoning(r)) => d::Content::Reasoning(d::Reasoning {
                text: r.text.clone(),
                signature: r.signature.clone(),
                redacted: r.redacted.clone(),
            }),
        });
    }
    Ok(d::Message { role, content })
}

fn image(img: &pb::Image, p: &str) -> Result<d::Image, Error> {
    use pb::image::Source;
    match &img.source {
        Some(Source::Url(u)) if !u.is_empty() => Ok(d::Image::Url(u.clone())),
        Some(Source::Data(data)) if !data.is_empty() => {
            if img.mime_type.is_empty() {
                return Err(Error::invalid(format!(
                    "{p}.image.mimeType: must be set with data (e.g. image/png)"
                )));
            }
            Ok(d::Image::Data {
                data: data.clone(),
                mime_type: img.mime_type.clone(),
            })
        }
        _ => Err(Error::invalid(format!("{p}.image: must set a url or data"))),
    }
}

pub fn struct_to_json(s: &Struct) -> Map<String, J> {
    s.fields
        .iter()
        .map(|(k, v)| (k.clone(), value_to_json(v)))
        .collect()
}

fn value_to_json(v: &Value) -> J {
    match &v.kind {
        None | Some(PKind::NullValue(_)) => J::Null,
        Some(PKind::BoolValue(b)) => J::Bool(*b),
        Some(PKind::NumberValue(n)) => {
            // Whole numbers stay integers, as the model and the client wrote them.
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                J::Number(Number::from(*n as i64))
            } else {
                Number::from_f64(*n).map(J::Number).unwrap_or(J::Null)
            }
        }
        Some(PKind::StringValue(s)) => J::String(s.clone()),
        Some(PKind::ListValue(l)) => J::Array(l.values.iter().map(value_to_json).collect()),
        Some(PKind::StructValue(s)) => J::Object(struct_to_json(s)),
    }
}

pub fn json_to_struct(m: &Map<String, J>) -> Struct {
    Struct {
        fields: m
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v)))
            .collect(),
    }
}

fn json_to_value(v: &J) -> Value {
    let kind = match v {
        J::Null => PKind::NullValue(0),
        J::Bool(b) => PKind::BoolValue(*b),
        J::Number(n) => PKind::NumberValue(n.as_f64().unwrap_or(0.0)),
        J::String(s) => PKind::StringValue(s.clone()),
        J::Array(a) => PKind::ListValue(ListValue {
            values: a.iter().map(json_to_value).collect(),
        }),
        J::Object(o) => PKind::StructValue(json_to_struct(o)),
    };
    Value { kind: Some(kind) }
}

pub fn usage(u: &d::Usage) -> pb::Usage {
    pb::Usage {
        input_tokens: u.input,
        output_tokens: u.output,
        total_tokens: u.total,
        cache_read_tokens: u.cache_read,
        cache_creation_tokens: u.cache_creation,
        reasoning_tokens: u.reasoning,
    }
}

pub fn stop_reason(s: Option<d::StopReason>) -> i32 {
    use d::StopReason as S;
    (match s {
        None => pb::StopReason::Unspecified,
        Some(S::EndTurn) => pb::StopReason::EndTurn,
        Some(S::MaxTokens) => pb::StopReason::MaxTokens,
        Some(S::StopSequence) => pb::StopReason::StopSequence,
        Some(S::ToolUse) => pb::StopReason::ToolUse,
        Some(S::ContentFilter) => pb::StopReason::ContentFilter,
        Some(S::Other) => pb::StopReason::Other,
    }) as i32
}

/// Takes the chunk by value: it is converted once per token and dropped after,
/// so its strings move into the message instead of being copied.
pub fn chunk(c: d::Chunk) -> pb::MessageChunk {
    use pb::message_chunk::Delta as P;
    pb::MessageChunk {
        id: c.id,
        delta: c.delta.map(|delta| match delta {
            d::Delta::Text(t) => P::Text(t),
            d::Delta::Refusal(t) => P::Refusal(t),
            d::Delta::ToolCall {
                index,
                id,
                name,
                arguments,
            } => P::ToolCall(pb::ToolCallChunk {
                index,
                id,
                name,
                arguments,
            }),
            d::Delta::Reasoning(r) => P::Reasoning(pb::ReasoningChunk {
                text: r.text,
                signature: r.signature,
                redacted: r.redacted,
            }),
        }),
        usage: c.usage.as_ref().map(usage),
        stop_reason: stop_reason(c.stop_reason),
        last: c.last,
    }
}

/// The final message on the wire; the answer moves in, nothing is copied.
pub fn message_out(m: FinalMessage) -> pb::ChatMessage {
    use pb::content_block::Block;
    pb::ChatMessage {
        id: m.id,
        model: m.model,
        content: m
            .content
            .into_iter()
            .filter_map(|c| {
                let block = match c {
                    d::Content::Text(t) => Block::Text(t),
                    d::Content::Refusal(t) => Block::Refusal(t),
                    d::Content::Reasoning(r) => Block::Reasoning(pb::Reasoning {
                        text: r.text,
                        signature: r.signature,
                        redacted: r.redacted,
                    }),
                    _ => return None,
                };
                Some(pb::ContentBlock { block: Some(block) })
            })
            .collect(),
        tool_calls: m
            .tool_calls
            .into_iter()
            .map(|t| pb::ToolCall {
                id: t.id,
                name: t.name,
                arguments: Some(json_to_struct(&t.arguments)),
            })
            .collect(),
        invalid_tool_calls: m
            .invalid_tool_calls
            .into_iter()
            .map(|t| pb::InvalidToolCall {
                id: t.id,
                name: t.name,
                arguments: t.arguments,
                error: t.error,
            })
            .collect(),
        usage: m.usage.as_ref().map(usage),
        stop_reason: stop_reason(m.stop_reason),
    }
}
