//! Protobuf ⇄ domain. This file: requests, validated, every rejected field named
//! by its path (`messages[2].role: must be set`) so the caller can fix it;
//! `out` turns answers into protobuf, `json` converts Structs.

mod json;
mod message;
mod out;

pub use json::{json_to_struct, struct_into_json, struct_to_json};
pub use out::{chunk, message_out, stop_reason, usage};

use prost_types::{value::Kind as PKind, Struct, Value};
use serde_json::{Map, Value as J};

use crate::{chat::types as d, error::Error, pb};

/// Limits on what one request may hold, so that no request the size cap
/// admits costs more than linear work and a few times its size in memory.
/// Each is named in the INVALID_ARGUMENT that refuses a request over it.
pub mod limits {
    /// Messages in one request.
    pub const MAX_MESSAGES: usize = 100_000;
    /// Content blocks across all messages.
    pub const MAX_BLOCKS: usize = 200_000;
    /// Tools in one request.
    pub const MAX_TOOLS: usize = 4_096;
    /// Stop sequences.
    pub const MAX_STOP: usize = 64;
    /// Bytes of the model name, a tool name, a tool-call id.
    pub const MAX_NAME_BYTES: usize = 512;
    /// JSON values (objects, arrays, strings, numbers...) across every tool
    /// schema and tool-call argument object of a request: each costs a few
    /// hundred bytes once parsed, whatever its size on the wire.
    pub const MAX_JSON_VALUES: usize = 250_000;
}

use limits::*;

fn over(what: &str, n: usize, max: usize, name: &str) -> Error {
    Error::invalid(format!(
        "{what}: {n} is over the limit of {max} per request ({name})"
    ))
}

pub(super) fn check_name(path: impl FnOnce() -> String, value: &str) -> Result<(), Error> {
    if value.len() > MAX_NAME_BYTES {
        return Err(Error::invalid(format!(
            "{}: {} bytes is over the limit of {MAX_NAME_BYTES} (MAX_NAME_BYTES)",
            path(),
            value.len()
        )));
    }
    Ok(())
}

/// Validates a request and converts it to the domain, moving every string
/// (the model is routed separately). Linear in the request's size.
pub fn request(r: pb::ChatRequest) -> Result<d::ChatRequest, Error> {
    let mut json = JsonCount(0);
    if r.model.trim().is_empty() {
        return Err(Error::invalid("model: must be set (e.g. \"fake:echo\")"));
    }
    check_name(|| "model".into(), &r.model)?;
    if r.messages.is_empty() {
        return Err(Error::invalid("messages: at least one message is required"));
    }
    if r.messages.len() > MAX_MESSAGES {
        return Err(over(
            "messages",
            r.messages.len(),
            MAX_MESSAGES,
            "MAX_MESSAGES",
        ));
    }
    // Tool results' own blocks count too.
    let blocks: usize = r
        .messages
        .iter()
        .flat_map(|m| &m.content)
        .map(|c| match &c.block {
            Some(pb::content_block::Block::ToolResult(tr)) => 1 + tr.blocks.len(),
            _ => 1,
        })
        .sum();
    if blocks > MAX_BLOCKS {
        return Err(over("messages[].content", blocks, MAX_BLOCKS, "MAX_BLOCKS"));
    }
    if r.tools.len() > MAX_TOOLS {
        return Err(over("tools", r.tools.len(), MAX_TOOLS, "MAX_TOOLS"));
    }
    if r.stop.len() > MAX_STOP {
        return Err(over("stop", r.stop.len(), MAX_STOP, "MAX_STOP"));
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
    if let Some(c) = &r.config {
        if !c.run_id.is_empty() && uuid::Uuid::parse_str(&c.run_id).is_err() {
            return Err(Error::invalid(format!(
                "config.runId: {:?} is not a UUID",
                c.run_id
            )));
        }
    }
    let mut tools = Vec::with_capacity(r.tools.len());
    let mut names = std::collections::HashSet::with_capacity(r.tools.len());
    for (i, t) in r.tools.into_iter().enumerate() {
        if t.name.trim().is_empty() {
            return Err(Error::invalid(format!("tools[{i}].name: must be set")));
        }
        check_name(|| format!("tools[{i}].name"), &t.name)?;
        if !names.insert(t.name.clone()) {
            return Err(Error::invalid(format!(
                "tools[{i}].name: duplicate tool name {:?}",
                t.name
            )));
        }
        let Some(params) = t.parameters else {
            return Err(Error::invalid(format!(
                "tools[{i}].parameters: must be a JSON-schema object"
            )));
        };
        tools.push(d::Tool {
            name: t.name,
            description: t.description,
            parameters: json.take(params)?,
            strict: t.strict,
            cache: t.cache_control.map(|c| c.ttl),
        });
    }
    let tool_choice = match r.tool_choice {
        None => None,
        Some(tc) => {
            use pb::tool_choice::Mode;
            match Mode::try_from(tc.mode) {
                Ok(Mode::Unspecified) => None,
                Ok(Mode::Auto) => Some(d::ToolChoice::Auto),
                Ok(Mode::None) => Some(d::ToolChoice::None),
                Ok(Mode::Any) => Some(d::ToolChoice::Any),
                Ok(Mode::Tool) => {
                    if !names.contains(&tc.name) {
                        return Err(Error::invalid(format!(
                            "toolChoice.name: {:?} is not one of the request's tools",
                            tc.name
                        )));
                    }
                    Some(d::ToolChoice::Tool(tc.name))
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
    let reasoning = r.reasoning.map(reasoning).transpose()?;
    let response_format = r
        .response_format
        .map(|f| response_format(f, &mut json))
        .transpose()?;
    let provider_options = match r.provider_options {
        Some(o) => json.take(o)?,
        None => Map::new(),
    };
    for (what, v) in [
        ("frequencyPenalty", r.frequency_penalty),
        ("presencePenalty", r.presence_penalty),
    ] {
        if let Some(v) = v {
            if !(-2.0..=2.0).contains(&v) {
                return Err(Error::invalid(format!("{what}: {v} is outside [-2, 2]")));
            }
        }
    }
    if r.top_k == Some(0) {
        return Err(Error::invalid("topK: must be greater than 0"));
    }
    let mut messages = Vec::with_capacity(r.messages.len());
    for (i, m) in r.messages.into_iter().enumerate() {
        messages.push(message::message(m, i, &mut json)?);
    }
    Ok(d::ChatRequest {
        messages,
        max_tokens: r.max_tokens,
        temperature: r.temperature,
        top_p: r.top_p,
        stop: r.stop,
        tools,
        tool_choice,
        reasoning,
        response_format,
        provider_options,
        seed: r.seed,
        top_k: r.top_k,
        frequency_penalty: r.frequency_penalty,
        presence_penalty: r.presence_penalty,
        parallel_tool_calls: r.parallel_tool_calls,
    })
}

fn reasoning(r: pb::ReasoningConfig) -> Result<d::ReasoningConfig, Error> {
    use pb::ReasoningEffort as E;
    let effort = match E::try_from(r.effort) {
        Ok(E::Unspecified) => None,
        Ok(E::None) => Some(d::Effort::None),
        Ok(E::Minimal) => Some(d::Effort::Minimal),
        Ok(E::Low) => Some(d::Effort::Low),
        Ok(E::Medium) => Some(d::Effort::Medium),
        Ok(E::High) => Some(d::Effort::High),
        Err(_) => {
            return Err(Error::invalid(format!(
                "reasoning.effort: unknown value {}",
                r.effort
            )))
        }
    };
    if effort == Some(d::Effort::None) && r.budget_tokens.is_some_and(|b| b > 0) {
        return Err(Error::invalid(
            "reasoning: effort NONE and a budget_tokens above 0 contradict each other",
        ));
    }
    Ok(d::ReasoningConfig {
        effort,
        budget_tokens: r.budget_tokens,
        include: r.include_reasoning,
    })
}

fn response_format(
    f: pb::ResponseFormat,
    json: &mut JsonCount,
) -> Result<d::ResponseFormat, Error> {
    use pb::ResponseFormatType as T;
    Ok(match T::try_from(f.r#type) {
        Ok(T::Unspecified | T::Text) => d::ResponseFormat::Text,
        Ok(T::JsonObject) => d::ResponseFormat::JsonObject,
        Ok(T::JsonSchema) => {
            let Some(schema) = f.schema else {
                return Err(Error::invalid(
                    "responseFormat.schema: must be set with RESPONSE_FORMAT_TYPE_JSON_SCHEMA",
                ));
            };
            d::ResponseFormat::JsonSchema {
                name: if f.name.is_empty() {
                    "response".to_string()
                } else {
                    f.name
                },
                schema: json.take(schema)?,
                strict: f.strict,
                description: f.description,
            }
        }
        Err(_) => {
            return Err(Error::invalid(format!(
                "responseFormat.type: unknown value {}",
                f.r#type
            )))
        }
    })
}

/// JSON values converted so far in one request (`MAX_JSON_VALUES`).
pub(super) struct JsonCount(usize);

impl JsonCount {
    pub(super) fn take(&mut self, s: Struct) -> Result<Map<String, J>, Error> {
        self.add(count_struct(&s))?;
        Ok(struct_into_json(s))
    }

    pub(super) fn add(&mut self, n: usize) -> Result<(), Error> {
        self.0 += n;
        if self.0 > MAX_JSON_VALUES {
            return Err(over(
                "JSON values (tool schemas, tool-call arguments, responseFormat.schema, providerOptions)",
                self.0,
                MAX_JSON_VALUES,
                "MAX_JSON_VALUES",
            ));
        }
        Ok(())
    }
}

fn count_struct(s: &Struct) -> usize {
    s.fields.values().map(count_value).sum::<usize>() + 1
}

fn count_value(v: &Value) -> usize {
    match &v.kind {
        Some(PKind::StructValue(s)) => count_struct(s),
        Some(PKind::ListValue(l)) => l.values.iter().map(count_value).sum::<usize>() + 1,
        _ => 1,
    }
}
