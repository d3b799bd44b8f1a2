//! The request side: a chatwire request as a `streamGenerateContent` body.
//! System messages become `systemInstruction`; tool results travel as
//! `functionResponse` parts of user turns, named after the call they answer;
//! consecutive turns of one role are merged (Gemini wants them to alternate);
//! thought signatures go back on the part that follows the thinking.
//!
//! The request's optional fields, as Gemini takes them (anything else is
//! refused by `codec::refuse_unsupported`, see `SUPPORTS`):
//!
//! | chatwire | Gemini |
//! | --- | --- |
//! | `reasoning.budgetTokens` | `generationConfig.thinkingConfig.thinkingBudget` (wins over an effort) |
//! | `reasoning.effort` NONE | `thinkingBudget: 0` |
//! | `reasoning.effort` on a gemini-3 (or later) model | `thinkingLevel`: `"minimal"`, `"low"`, `"medium"`, `"high"` |
//! | `reasoning.effort` on other models (2.5) | `thinkingBudget`: MINIMAL 512, LOW 1024, MEDIUM 8192, HIGH 24576 |
//! | `reasoning.includeReasoning` | `thinkingConfig.includeThoughts` |
//! | no `reasoning` | no `thinkingConfig` (the model's default) |
//! | `responseFormat` JSON_OBJECT | `generationConfig.responseMimeType: "application/json"` |
//! | `responseFormat` JSON_SCHEMA | the same, and `responseJsonSchema: <schema>` (its name, description and strict have no Gemini field: Gemini always follows the schema) |
//! | `seed`, `topK` | `generationConfig.seed`, `topK` |
//! | `frequencyPenalty`, `presencePenalty` | `generationConfig.frequencyPenalty`, `presencePenalty` |
//! | file, by data / by URL | `inlineData {mimeType, data}` / `fileData {mimeType, fileUri}` (a URL needs its mimeType; a `data:` URL is inline data; the filename has no Gemini field) |
//! | audio | `inlineData {mimeType, data}` |
//! | toolResult blocks | text blocks follow `content` in `functionResponse.response` (`content`, or `error` when isError); image and file blocks are parts of the same user turn right after that `functionResponse` |
//! | tool-call arguments | `functionCall.args`, the object with its numbers exact (`argumentsJson` parsed when the object is empty) |
//! | cache breakpoints | accepted, nothing sent: Gemini caches implicitly |
//! | `providerOptions` | merged into the body; `generationConfig` in it is merged key by key into chatwire's `generationConfig` |
//! | `parallelToolCalls`, `Message.name`, `Tool.strict` | refused: Gemini has none |
//!
//! `providerOptions` may not set what chatwire builds: `contents`,
//! `systemInstruction`, `tools`, `toolConfig`, nor the `generationConfig`
//! keys in `OWNED_GENERATION` (each has its request field); anything else
//! (`safetySettings`, `cachedContent`, `generationConfig.responseModalities`...)
//! passes through.

use serde_json::{json, Map, Value};

use super::{GENERATED_ID_PREFIX, NAME};
use crate::{
    chat::types::{
        Content, File, FileSource, Image, Message, ResponseFormat, Role, ToolCall, ToolChoice,
    },
    error::Error,
    provider::{
        codec::{self, Supports, ToolNames},
        Call,
    },
};

/// The request fields Gemini maps (see the module doc's table).
pub(super) const SUPPORTS: Supports = Supports {
    reasoning: true,
    response_format: true,
    provider_options: true,
    seed: true,
    top_k: true,
    penalties: true,
    parallel_tool_calls: false,
    message_name: false,
    tool_strict: false,
    files: true,
    audio: true,
    tool_result_blocks: true,
    // Gemini caches implicitly: a breakpoint is accepted and changes nothing.
    cache_control: true,
};

/// Top-level keys chatwire builds (`providerOptions` may not set them).
const OWNED: &[&str] = &["contents", "systemInstruction", "tools", "toolConfig"];

/// `generationConfig` keys chatwire builds from the request's own fields.
const OWNED_GENERATION: &[&str] = &[
    "maxOutputTokens",
    "temperature",
    "topP",
    "stopSequences",
    "seed",
    "topK",
    "frequencyPenalty",
    "presencePenalty",
    "responseMimeType",
    "responseJsonSchema",
    "thinkingConfig",
];

/// The JSON body of a `streamGenerateContent` call: the fields Gemini does not
/// map are refused first, then the body is built, then `providerOptions` are
/// merged into it (see the module doc).
pub fn request_body(call: &Call, default_max_tokens: Option<u32>) -> Result<Value, Error> {
    let req = &call.request;
    codec::refuse_unsupported(req, NAME, SUPPORTS)?;
    let mut system: Vec<Value> = Vec::new();
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut names = ToolNames::default();
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
            Role::User | Role::Tool => ("user", user_parts(msg, i, &names)?),
            Role::Assistant => ("model", model_parts(&msg.content, i)?),
        };
        names.add(msg);
        // Gemini wants turns to alternate, and parallel function responses in one turn.
        codec::push_turn(&mut contents, role, parts);
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
                let mut d = codec::tool_declaration(t);
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
    if let Some(n) = codec::max_tokens(req, &call.options, default_max_tokens) {
        gen.insert("maxOutputTokens".into(), json!(n));
    }
    codec::insert_sampling(&mut gen, req, ["temperature", "topP", "stopSequences"]);
    if let Some(seed) = req.seed {
        gen.insert("seed".into(), json!(seed));
    }
    if let Some(k) = req.top_k {
        gen.insert("topK".into(), json!(k));
    }
    if let Some(p) = req.frequency_penalty {
        gen.insert("frequencyPenalty".into(), json!(p));
    }
    if let Some(p) = req.presence_penalty {
        gen.insert("presencePenalty".into(), json!(p));
    }
    match &req.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            gen.insert("responseMimeType".into(), json!("application/json"));
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            gen.insert("responseMimeType".into(), json!("application/json"));
            gen.insert("responseJsonSchema".into(), Value::Object(schema.clone()));
        }
    }
    if let Some(t) = req
        .reasoning
        .as_ref()
        .and_then(|r| super::thinking::thinking_config(&call.model, r))
    {
        gen.insert("thinkingConfig".into(), t);
    }
    // providerOptions: generationConfig key by key into chatwire's, the rest at the top.
    let mut rest = Map::new();
    // The model's options from the config file first, the request's over them.
    for (k, v) in call
        .options
        .provider_options
        .iter()
        .chain(&req.provider_options)
    {
        if k != "generationConfig" {
            rest.insert(k.clone(), v.clone());
            continue;
        }
        let Value::Object(extra) = v else {
            return Err(Error::invalid(
                "providerOptions.generationConfig: must be an object (it is merged key by key \
                 into the generationConfig chatwire builds)",
            ));
        };
        for (key, value) in extra {
            if OWNED_GENERATION.contains(&key.as_str()) {
                return Err(Error::invalid(format!(
                    "providerOptions.generationConfig.{key}: chatwire sets {key:?} itself for the \
                     {NAME} provider; use the request's own field"
                )));
            }
            gen.insert(key.clone(), value.clone());
        }
    }
    if !gen.is_empty() {
        body.insert("generationConfig".into(), Value::Object(gen));
    }
    codec::merge_provider_options(&mut body, &rest, OWNED, NAME)?;
    Ok(Value::Object(body))
}

/// A user or tool message (`messages[i]`) as `user` parts; `names` has the
/// calls made before it.
fn user_parts(msg: &Message, i: usize, names: &ToolNames<'_>) -> Result<Vec<Value>, Error> {
    let mut parts = Vec::new();
    for (j, c) in msg.content.iter().enumerate() {
        let path = || format!("messages[{i}].content[{j}]");
        match c {
            Content::Text(t) => parts.push(json!({ "text": t })),
            Content::Image(img) => parts.push(image_part(img)),
            Content::File(f) => parts.push(file_part(f, &|| format!("{}.file", path()))?),
            Content::Audio(a) => parts.push(inline_data(&a.mime_type, codec::base64(&a.data))),
            Content::ToolResult(r) => {
                let name = names.get(&r.tool_call_id).ok_or_else(|| {
                    Error::invalid(format!(
                        "messages[{i}]: toolResult for toolCallId {:?} matches no earlier toolCall \
                         (gemini needs the function's name)",
                        r.tool_call_id
                    ))
                })?;
                // Text blocks follow `content`; images and files become parts of
                // this turn right after the functionResponse.
                let mut text = r.content.clone();
                let mut media = Vec::new();
                for (k, b) in r.blocks.iter().enumerate() {
                    match b {
                        Content::Text(t) => text.push_str(t),
                        Content::Image(img) => media.push(image_part(img)),
                        Content::File(f) => media.push(file_part(f, &|| {
                            format!("{}.toolResult.blocks[{k}].file", path())
                        })?),
                        _ => {
                            return Err(Error::invalid(format!(
                                "{}.toolResult.blocks[{k}]: a tool result holds text, image or \
                                 file blocks",
                                path()
                            )))
                        }
                    }
                }
                let response = if r.is_error {
                    json!({ "error": text })
                } else {
                    json!({ "content": text })
                };
                let mut fr = Map::new();
                if !is_generated_id(&r.tool_call_id) {
                    fr.insert("id".into(), json!(r.tool_call_id));
                }
                fr.insert("name".into(), json!(name));
                fr.insert("response".into(), response);
                parts.push(json!({ "functionResponse": fr }));
                parts.extend(media);
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

fn inline_data(mime_type: &str, data: impl Into<Value>) -> Value {
    json!({ "inlineData": { "mimeType": mime_type, "data": data.into() } })
}

/// An image: inline data, a data: URL unpacked, any other URL a `fileData` reference.
fn image_part(img: &Image) -> Value {
    match img {
        Image::Data { data, mime_type } => inline_data(mime_type, codec::base64(data)),
        Image::Url(url) => image_url(url),
    }
}

/// A file (`path` names it in errors): bytes (or a data: URL) become
/// `inlineData`, a URL `fileData`, which needs the media type.
fn file_part(f: &File, path: &dyn Fn() -> String) -> Result<Value, Error> {
    match &f.source {
        FileSource::Data(data) => Ok(inline_data(&f.mime_type, codec::base64(data))),
        FileSource::Url(url) => {
            if let Some((mime, data)) = codec::split_data_url(url) {
                let mime = if f.mime_type.is_empty() {
                    mime
                } else {
                    &f.mime_type
                };
                return Ok(inline_data(mime, data));
            }
            if f.mime_type.is_empty() {
                return Err(Error::invalid(format!(
                    "{}.mimeType: must be set with a url for the {NAME} provider \
                     (fileData.mimeType, e.g. application/pdf)",
                    path()
                )));
            }
            Ok(json!({ "fileData": { "mimeType": f.mime_type, "fileUri": url } }))
        }
    }
}

/// A data: URL becomes inline data; any other URL a `fileData` reference.
fn image_url(url: &str) -> Value {
    if let Some((mime, data)) = codec::split_data_url(url) {
        return inline_data(mime, data);
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

fn is_generated_id(id: &str) -> bool {
    id.strip_prefix(GENERATED_ID_PREFIX)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A tool call's arguments as the `args` object: the parsed object (numbers
/// exact), or `argumentsJson` parsed when only the text is known.
fn call_args(tc: &ToolCall, path: &dyn Fn() -> String) -> Result<Value, Error> {
    if tc.arguments.is_empty() && !tc.arguments_json.trim().is_empty() {
        return match serde_json::from_str::<Value>(&tc.arguments_json) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(Error::invalid(format!(
                "{}.toolCall.argumentsJson: must be a JSON object",
                path()
            ))),
        };
    }
    Ok(Value::Object(tc.arguments.clone()))
}

/// An assistant message (`messages[i]`) as `model` parts, thought signatures
/// put back where Gemini gave them (see the provider's module doc).
fn model_parts(content: &[Content], i: usize) -> Result<Vec<Value>, Error> {
    let mut parts: Vec<Value> = Vec::new();
    let mut pending: Option<&str> = None;
    fn attach(mut part: Map<String, Value>, pending: &mut Option<&str>) -> Value {
        if let Some(sig) = pending.take() {
            part.insert("thoughtSignature".into(), json!(sig));
        }
        Value::Object(part)
    }
    for (j, c) in content.iter().enumerate() {
        match c {
            Content::File(_) | Content::Audio(_) => {
                return Err(Error::invalid(format!(
                    "messages[{i}].content[{j}]: file and audio blocks belong in user messages \
                     for the {NAME} provider"
                )))
            }
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
                fc.insert(
                    "args".into(),
                    call_args(tc, &|| format!("messages[{i}].content[{j}]"))?,
                );
                let mut p = Map::new();
                p.insert("functionCall".into(), Value::Object(fc));
                parts.push(attach(p, &mut pending));
            }
            // A refusal here is chatwire's own note of a blocked prompt, not model output.
            Content::Refusal(_) => {}
            // Nothing is dropped silently: these have no place in a model turn.
            Content::Image(_) | Content::ToolResult(_) => {
                return Err(Error::invalid(format!(
                    "messages[{i}].content[{j}]: image and toolResult blocks belong in user or \
                     tool messages for the {NAME} provider, not in assistant messages"
                )))
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
    Ok(parts)
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
