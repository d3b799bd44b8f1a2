//! The request side: a chatwire request as a `streamGenerateContent` body.
//! System messages become `systemInstruction`; tool results travel as
//! `functionResponse` parts of user turns, named after the call they answer;
//! consecutive turns of one role are merged (Gemini wants them to alternate);
//! thought signatures go back on the part that follows the thinking.

use serde_json::{json, Map, Value};

use super::GENERATED_ID_PREFIX;
use crate::{
    chat::types::{Content, Image, Message, Role, ToolChoice},
    error::Error,
    provider::{
        codec::{self, ToolNames},
        Call,
    },
};

/// The JSON body of a `streamGenerateContent` call.
pub fn request_body(call: &Call, default_max_tokens: Option<u32>) -> Result<Value, Error> {
    let req = &call.request;
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
            Role::Assistant => ("model", model_parts(&msg.content)),
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

/// A user or tool message (`messages[i]`) as `user` parts; `names` has the
/// calls made before it.
fn user_parts(msg: &Message, i: usize, names: &ToolNames<'_>) -> Result<Vec<Value>, Error> {
    let mut parts = Vec::new();
    for c in &msg.content {
        match c {
            // Refused before the body is built (codec::refuse_unsupported).
            Content::File(_) | Content::Audio(_) => {}
            Content::Text(t) => parts.push(json!({ "text": t })),
            Content::Image(Image::Data { data, mime_type }) => parts.push(json!({
                "inlineData": { "mimeType": mime_type, "data": codec::base64(data) }
            })),
            Content::Image(Image::Url(url)) => parts.push(image_url(url)),
            Content::ToolResult(r) => {
                let name = names.get(&r.tool_call_id).ok_or_else(|| {
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
    if let Some((mime, data)) = codec::split_data_url(url) {
        return json!({ "inlineData": { "mimeType": mime, "data": data } });
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

/// An assistant message as `model` parts, thought signatures put back where
/// Gemini gave them (see the provider's module doc).
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
            // Refused before the body is built (codec::refuse_unsupported).
            Content::File(_) | Content::Audio(_) => {}
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
    use crate::chat::types::{ChatRequest, Message, Reasoning, Tool, ToolCall, ToolResult};
    use crate::error::Kind;

    fn call(messages: Vec<Message>) -> Call {
        Call {
            model: "gemini-2.0-flash".into(),
            request: ChatRequest {
                messages,
                ..ChatRequest::default()
            }
            .into(),
            options: crate::provider::ModelOptions::default(),
            fallback_id: "run-1".into(),
            budget: Default::default(),
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
                ..Default::default()
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
                ..Default::default()
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
                        ..Default::default()
                    }),
                    Content::ToolCall(ToolCall {
                        id: "abc".into(),
                        name: "time".into(),
                        arguments: Map::new(),
                        ..Default::default()
                    }),
                ],
                ..Default::default()
            },
            Message {
                role: Role::Tool,
                content: vec![Content::ToolResult(ToolResult {
                    tool_call_id: "call_0".into(),
                    content: "sunny".into(),
                    is_error: false,
                    ..Default::default()
                })],
                ..Default::default()
            },
            Message {
                role: Role::Tool,
                content: vec![Content::ToolResult(ToolResult {
                    tool_call_id: "abc".into(),
                    content: "no clock".into(),
                    is_error: true,
                    ..Default::default()
                })],
                ..Default::default()
            },
        ]);
        std::sync::Arc::make_mut(&mut c.request).tools = vec![Tool {
            name: "weather".into(),
            description: "Weather".into(),
            parameters: json!({"type":"object","properties":{"city":{"type":"string"}}})
                .as_object()
                .cloned()
                .unwrap(),
            ..Default::default()
        }];
        std::sync::Arc::make_mut(&mut c.request).tool_choice =
            Some(ToolChoice::Tool("weather".into()));
        std::sync::Arc::make_mut(&mut c.request).max_tokens = Some(50);
        std::sync::Arc::make_mut(&mut c.request).temperature = Some(0.5);
        std::sync::Arc::make_mut(&mut c.request).top_p = Some(0.9);
        std::sync::Arc::make_mut(&mut c.request).stop = vec!["END".into()];
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
                ..Default::default()
            })],
            ..Default::default()
        }]);
        assert_eq!(
            request_body(&c, None).unwrap_err().kind,
            Kind::InvalidArgument
        );
        let mut c = call(vec![Message {
            role: Role::User,
            content: vec![Content::Text("hi".into())],
            ..Default::default()
        }]);
        c.model = "gemini-2.5-pro".into();
        let body = request_body(&c, None).unwrap();
        assert_eq!(
            body["generationConfig"],
            json!({"thinkingConfig": {"includeThoughts": true}})
        );
    }
}
