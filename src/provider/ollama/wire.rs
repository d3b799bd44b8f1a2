//! The request side: a chatwire request as an `/api/chat` body. Text,
//! reasoning, images and tool calls of one message become one Ollama message;
//! each tool result is a `tool` message of its own, named after its call.
//!
//! The request's optional fields, as Ollama takes them (anything else is
//! refused by `codec::refuse_unsupported`, see `SUPPORTS`):
//!
//! | chatwire | Ollama |
//! | --- | --- |
//! | `reasoning.effort` NONE, or `includeReasoning: false` | `think: false` |
//! | `reasoning.effort` LOW / MEDIUM / HIGH | `think: "low"` / `"medium"` / `"high"` (gpt-oss levels; other thinking models take any level as on) |
//! | `reasoning.effort` MINIMAL, or only `includeReasoning: true` | `think: true` |
//! | `reasoning.budgetTokens` | refused: Ollama has no thinking budget |
//! | no `reasoning` | no `think` (the model's default) |
//! | `responseFormat` JSON_OBJECT / JSON_SCHEMA | `format: "json"` / `format: <schema>` |
//! | `seed`, `topK`, `frequencyPenalty`, `presencePenalty` | `options.seed`, `top_k`, `frequency_penalty`, `presence_penalty` |
//! | tool-call arguments | `tool_calls[].function.arguments`, the object with its numbers exact (`argumentsJson` parsed when the object is empty) |
//! | toolResult blocks | text follows `content`; images go in the tool message's `images` (Ollama puts every message's images in the prompt); files refused |
//! | cache breakpoints | accepted, nothing sent: no Ollama form, and nothing to keep |
//! | `providerOptions` | merged into the body; `options` in it is merged key by key into chatwire's `options` |
//! | `parallelToolCalls`, `Message.name`, `Tool.strict`, files, audio | refused: Ollama has none |
//!
//! `providerOptions` may not set what chatwire builds: `model`, `messages`,
//! `stream`, `tools`, `format`, `think`, nor the `options` keys in
//! `OWNED_OPTIONS` (each has its request field); anything else (`keep_alive`,
//! `options.num_ctx`, `options.repeat_penalty`...) passes through.

use serde_json::{json, Map, Value};

use super::NAME;
use crate::{
    chat::types::{Content, Effort, Image, ResponseFormat, Role, ToolCall, ToolChoice},
    error::Error,
    provider::{
        codec::{self, Supports, ToolNames},
        Call,
    },
};

/// The request fields Ollama maps (see the module doc's table).
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
    files: false,
    audio: false,
    // Text and image blocks; a file block is refused by the builder.
    tool_result_blocks: true,
    // Nothing to mark: a breakpoint is accepted and changes nothing.
    cache_control: true,
};

/// Top-level keys chatwire builds (`providerOptions` may not set them).
const OWNED: &[&str] = &["model", "messages", "stream", "tools", "format", "think"];

/// `options` keys chatwire builds from the request's own fields.
const OWNED_OPTIONS: &[&str] = &[
    "temperature",
    "top_p",
    "stop",
    "num_predict",
    "seed",
    "top_k",
    "frequency_penalty",
    "presence_penalty",
];

/// The JSON body of an `/api/chat` call: the fields Ollama does not map are
/// refused first, then the body is built, then `providerOptions` are merged
/// into it (see the module doc).
pub fn request_body(call: &Call, default_max_tokens: Option<u32>) -> Result<Value, Error> {
    let req = &call.request;
    codec::refuse_unsupported(req, NAME, SUPPORTS)?;
    let think = match &req.reasoning {
        None => None,
        Some(r) if r.budget_tokens.is_some() => {
            return Err(Error::invalid(format!(
                "reasoning.budgetTokens: the {NAME} provider does not support it \
                 (Ollama's think takes on / off or a level: use reasoning.effort)"
            )))
        }
        Some(r) if r.include == Some(false) => Some(json!(false)),
        Some(r) => match r.effort {
            Some(Effort::None) => Some(json!(false)),
            Some(Effort::Low) => Some(json!("low")),
            Some(Effort::Medium) => Some(json!("medium")),
            Some(Effort::High) => Some(json!("high")),
            Some(Effort::Minimal) => Some(json!(true)),
            None if r.include == Some(true) => Some(json!(true)),
            None => None,
        },
    };
    let mut messages = Vec::new();
    let mut names = ToolNames::default();
    for (i, msg) in req.messages.iter().enumerate() {
        let role = match msg.role {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        };
        let mut text = String::new();
        let mut thinking = String::new();
        let mut images = Vec::new();
        let mut tool_calls = Vec::new();
        for (j, c) in msg.content.iter().enumerate() {
            let path = || format!("messages[{i}].content[{j}]");
            match c {
                // Refused before the body is built (codec::refuse_unsupported).
                Content::File(_) | Content::Audio(_) => {}
                Content::Text(t) => text.push_str(t),
                Content::Refusal(t) => text.push_str(t),
                Content::Reasoning(r) => thinking.push_str(&r.text),
                Content::Image(img) => images.push(image(img, &path)?),
                Content::ToolCall(tc) => tool_calls.push(json!({
                    "function": { "name": tc.name, "arguments": call_args(tc, &path)? }
                })),
                Content::ToolResult(r) => {
                    // Each result is its own `tool` message, named when the call is known.
                    let mut content = r.content.clone();
                    let mut result_images = Vec::new();
                    for (k, b) in r.blocks.iter().enumerate() {
                        let block = || format!("{}.toolResult.blocks[{k}]", path());
                        match b {
                            Content::Text(t) => content.push_str(t),
                            Content::Image(img) => result_images.push(image(img, &block)?),
                            Content::File(_) => {
                                return Err(Error::invalid(format!(
                                    "{}.file: the {NAME} provider does not support it",
                                    block()
                                )))
                            }
                            _ => {
                                return Err(Error::invalid(format!(
                                    "{}: a tool result holds text, image or file blocks",
                                    block()
                                )))
                            }
                        }
                    }
                    let mut m = Map::new();
                    m.insert("role".into(), json!("tool"));
                    m.insert("content".into(), json!(content));
                    if !result_images.is_empty() {
                        m.insert("images".into(), Value::Array(result_images));
                    }
                    if let Some(name) = names.get(&r.tool_call_id) {
                        m.insert("tool_name".into(), json!(name));
                    }
                    messages.push(Value::Object(m));
                }
            }
        }
        names.add(msg);
        let only_results = msg
            .content
            .iter()
            .all(|c| matches!(c, Content::ToolResult(_)));
        if only_results && !msg.content.is_empty() {
            continue;
        }
        let mut m = Map::new();
        m.insert("role".into(), json!(role));
        m.insert("content".into(), json!(text));
        if !thinking.is_empty() {
            m.insert("thinking".into(), json!(thinking));
        }
        if !images.is_empty() {
            m.insert("images".into(), Value::Array(images));
        }
        if !tool_calls.is_empty() {
            m.insert("tool_calls".into(), Value::Array(tool_calls));
        }
        messages.push(Value::Object(m));
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(call.model));
    body.insert("messages".into(), Value::Array(messages));
    body.insert("stream".into(), json!(true));
    let tools: Vec<Value> = match &req.tool_choice {
        Some(ToolChoice::None) => Vec::new(),
        Some(ToolChoice::Tool(name)) => req
            .tools
            .iter()
            .filter(|t| &t.name == name)
            .map(tool_json)
            .collect(),
        _ => req.tools.iter().map(tool_json).collect(),
    };
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
    }
    match &req.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            body.insert("format".into(), json!("json"));
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            body.insert("format".into(), Value::Object(schema.clone()));
        }
    }
    if let Some(think) = think {
        body.insert("think".into(), think);
    }
    let mut options = Map::new();
    codec::insert_sampling(&mut options, req, ["temperature", "top_p", "stop"]);
    if let Some(n) = codec::max_tokens(req, &call.options, default_max_tokens) {
        options.insert("num_predict".into(), json!(n));
    }
    if let Some(seed) = req.seed {
        options.insert("seed".into(), json!(seed));
    }
    if let Some(k) = req.top_k {
        options.insert("top_k".into(), json!(k));
    }
    if let Some(p) = req.frequency_penalty {
        options.insert("frequency_penalty".into(), json!(p));
    }
    if let Some(p) = req.presence_penalty {
        options.insert("presence_penalty".into(), json!(p));
    }
    // providerOptions: `options` key by key into chatwire's, the rest at the top.
    let mut rest = Map::new();
    // The model's options from the config file first, the request's over them.
    for (k, v) in call
        .options
        .provider_options
        .iter()
        .chain(&req.provider_options)
    {
        if k != "options" {
            rest.insert(k.clone(), v.clone());
            continue;
        }
        let Value::Object(extra) = v else {
            return Err(Error::invalid(
                "providerOptions.options: must be an object (it is merged key by key into the \
                 options chatwire builds)",
            ));
        };
        for (key, value) in extra {
            if OWNED_OPTIONS.contains(&key.as_str()) {
                return Err(Error::invalid(format!(
                    "providerOptions.options.{key}: chatwire sets {key:?} itself for the {NAME} \
                     provider; use the request's own field"
                )));
            }
            options.insert(key.clone(), value.clone());
        }
    }
    if !options.is_empty() {
        body.insert("options".into(), Value::Object(options));
    }
    codec::merge_provider_options(&mut body, &rest, OWNED, NAME)?;
    Ok(Value::Object(body))
}

/// An image as Ollama takes it: base64 only (a data: URL is unpacked; any
/// other URL is INVALID_ARGUMENT naming `path`: the server fetches nothing).
fn image(img: &Image, path: &dyn Fn() -> String) -> Result<Value, Error> {
    match img {
        Image::Data { data, .. } => Ok(Value::String(codec::base64(data))),
        Image::Url(url) => {
            let (_, data) = codec::split_data_url(url).ok_or_else(|| {
                Error::invalid(format!(
                    "{}.image: ollama takes images as inline data only \
                     (data + mimeType, or a data: URL), not {url:?}",
                    path()
                ))
            })?;
            Ok(Value::String(data.to_string()))
        }
    }
}

/// A tool call's arguments as the `arguments` object: the parsed object
/// (numbers exact), or `argumentsJson` parsed when only the text is known.
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

fn tool_json(t: &crate::chat::types::Tool) -> Value {
    json!({
        "type": "function",
        "function": {
            "name": t.name,
            "description": t.description,
            "parameters": t.parameters,
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::chat::types::{ChatRequest, Message, Reasoning, Tool, ToolCall, ToolResult};
    use crate::error::Kind;

    #[test]
    fn request_body_maps_messages_tools_and_options() {
        let mut args = Map::new();
        args.insert("city".into(), json!("Tokyo"));
        let request = ChatRequest {
            messages: vec![
                Message {
                    role: Role::System,
                    content: vec![Content::Text("sys".into())],
                    ..Default::default()
                },
                Message {
                    role: Role::User,
                    content: vec![
                        Content::Text("what is this".into()),
                        Content::Image(Image::Data {
                            data: b"abc".to_vec(),
                            mime_type: "image/png".into(),
                        }),
                        Content::Image(Image::Url("data:image/png;base64,QUJD".into())),
                    ],
                    ..Default::default()
                },
                Message {
                    role: Role::Assistant,
                    content: vec![
                        Content::Reasoning(Reasoning {
                            text: "think".into(),
                            ..Reasoning::default()
                        }),
                        Content::ToolCall(ToolCall {
                            id: "call_0".into(),
                            name: "weather".into(),
                            arguments: args,
                            ..Default::default()
                        }),
                    ],
                    ..Default::default()
                },
                Message {
                    role: Role::Tool,
                    content: vec![Content::ToolResult(ToolResult {
                        tool_call_id: "call_0".into(),
                        content: "rain".into(),
                        is_error: false,
                        ..Default::default()
                    })],
                    ..Default::default()
                },
            ],
            max_tokens: Some(9),
            temperature: Some(0.2),
            top_p: Some(0.5),
            stop: vec!["x".into()],
            tools: vec![Tool {
                name: "weather".into(),
                description: "w".into(),
                parameters: json!({"type":"object"}).as_object().cloned().unwrap(),
                ..Default::default()
            }],
            tool_choice: None,
            ..Default::default()
        };
        let call = Call {
            model: "llama3.2".into(),
            request: request.into(),
            options: crate::provider::ModelOptions::default(),
            fallback_id: "run-1".into(),
            budget: Default::default(),
        };
        assert_eq!(
            request_body(&call, None).unwrap(),
            json!({
                "model": "llama3.2",
                "stream": true,
                "messages": [
                    {"role": "system", "content": "sys"},
                    {"role": "user", "content": "what is this", "images": ["YWJj", "QUJD"]},
                    {"role": "assistant", "content": "", "thinking": "think",
                     "tool_calls": [{"function": {"name": "weather", "arguments": {"city": "Tokyo"}}}]},
                    {"role": "tool", "content": "rain", "tool_name": "weather"}
                ],
                "tools": [{"type": "function", "function": {"name": "weather", "description": "w", "parameters": {"type": "object"}}}],
                "options": {"temperature": 0.2, "top_p": 0.5, "num_predict": 9, "stop": ["x"]}
            })
        );
        let mut c = call.clone();
        std::sync::Arc::make_mut(&mut c.request).tool_choice = Some(ToolChoice::None);
        std::sync::Arc::make_mut(&mut c.request).messages[1].content =
            vec![Content::Image(Image::Url("https://x/y.png".into()))];
        assert_eq!(
            request_body(&c, None).unwrap_err().kind,
            Kind::InvalidArgument
        );
        std::sync::Arc::make_mut(&mut c.request)
            .messages
            .truncate(1);
        let body = request_body(&c, None).unwrap();
        assert!(body.get("tools").is_none() && body.get("think").is_none());
    }

    #[test]
    fn reasoning_becomes_think_and_a_budget_is_refused() {
        use crate::chat::types::ReasoningConfig;
        let r = |effort, include| ReasoningConfig {
            effort,
            budget_tokens: None,
            include,
        };
        let mut call = Call {
            model: "gpt-oss:20b".into(),
            request: ChatRequest {
                messages: vec![Message::new(Role::User, vec![Content::Text("hi".into())])],
                ..Default::default()
            }
            .into(),
            options: crate::provider::ModelOptions::default(),
            fallback_id: "run-1".into(),
            budget: Default::default(),
        };
        for (reasoning, want) in [
            (None, None),
            (Some(r(None, None)), None),
            (Some(r(Some(Effort::None), None)), Some(json!(false))),
            (Some(r(Some(Effort::Minimal), None)), Some(json!(true))),
            (Some(r(Some(Effort::Low), None)), Some(json!("low"))),
            (
                Some(r(Some(Effort::Medium), Some(true))),
                Some(json!("medium")),
            ),
            (Some(r(Some(Effort::High), None)), Some(json!("high"))),
            (Some(r(Some(Effort::High), Some(false))), Some(json!(false))),
            (Some(r(None, Some(true))), Some(json!(true))),
        ] {
            std::sync::Arc::make_mut(&mut call.request).reasoning = reasoning.clone();
            let body = request_body(&call, None).unwrap();
            assert_eq!(body.get("think"), want.as_ref(), "{reasoning:?}");
        }
        std::sync::Arc::make_mut(&mut call.request).reasoning = Some(ReasoningConfig {
            budget_tokens: Some(100),
            ..Default::default()
        });
        let e = request_body(&call, None).unwrap_err();
        assert_eq!(e.kind, Kind::InvalidArgument);
        assert!(
            e.message.contains("reasoning.budgetTokens"),
            "{}",
            e.message
        );
    }
}
