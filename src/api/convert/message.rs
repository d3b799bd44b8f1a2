//! One message of a request, validated and converted by value: its content
//! blocks (tool results' own blocks included), tool calls with their exact
//! arguments, files and images.

use serde_json::{Map, Value as J};

use super::{check_name, JsonCount};
use crate::{chat::types as d, error::Error, pb};

pub(super) fn message(m: pb::Message, i: usize, json: &mut JsonCount) -> Result<d::Message, Error> {
    let path = || format!("messages[{i}]");
    let role = match pb::Role::try_from(m.role) {
        Ok(pb::Role::System) => d::Role::System,
        Ok(pb::Role::User) => d::Role::User,
        Ok(pb::Role::Assistant) => d::Role::Assistant,
        Ok(pb::Role::Tool) => d::Role::Tool,
        Ok(pb::Role::Unspecified) => {
            return Err(Error::invalid(format!("{}.role: must be set", path())))
        }
        Err(_) => {
            return Err(Error::invalid(format!(
                "{}.role: unknown role {}",
                path(),
                m.role
            )))
        }
    };
    if m.content.is_empty() {
        return Err(Error::invalid(format!(
            "{}.content: at least one content block is required",
            path()
        )));
    }
    let mut content = Vec::with_capacity(m.content.len());
    let mut cache = Vec::new();
    let blocks = m.content.len();
    for (j, c) in m.content.into_iter().enumerate() {
        let p = || format!("{}.content[{j}]", path());
        if let Some(cc) = c.cache_control {
            cache.push((j, cc.ttl));
        }
        content.push(block(c.block, &p, json)?);
    }
    if let Some(cc) = m.cache_control {
        cache.push((blocks.saturating_sub(1), cc.ttl));
    }
    check_name(|| format!("{}.name", path()), &m.name)?;
    Ok(d::Message {
        role,
        content,
        name: m.name,
        cache,
    })
}

/// One content block (also a tool result's blocks).
fn block(
    b: Option<pb::content_block::Block>,
    p: &dyn Fn() -> String,
    json: &mut JsonCount,
) -> Result<d::Content, Error> {
    use pb::content_block::Block;
    Ok(match b {
        None => {
            return Err(Error::invalid(format!(
                "{}: must set one of text, refusal, image, toolCall, toolResult, reasoning",
                p()
            )))
        }
        Some(Block::Text(t)) => d::Content::Text(t),
        Some(Block::Refusal(t)) => d::Content::Refusal(t),
        Some(Block::Image(img)) => d::Content::Image(image(img, p)?),
        Some(Block::ToolCall(tc)) => {
            if tc.id.is_empty() || tc.name.is_empty() {
                return Err(Error::invalid(format!(
                    "{}.toolCall: id and name must be set",
                    p()
                )));
            }
            check_name(|| format!("{}.toolCall.id", p()), &tc.id)?;
            check_name(|| format!("{}.toolCall.name", p()), &tc.name)?;
            d::Content::ToolCall(tool_call_in(tc, p, json)?)
        }
        Some(Block::ToolResult(tr)) => {
            if tr.tool_call_id.is_empty() {
                return Err(Error::invalid(format!(
                    "{}.toolResult.toolCallId: must be set",
                    p()
                )));
            }
            check_name(
                || format!("{}.toolResult.toolCallId", p()),
                &tr.tool_call_id,
            )?;
            let mut blocks = Vec::with_capacity(tr.blocks.len());
            for (k, b) in tr.blocks.into_iter().enumerate() {
                let bp = || format!("{}.toolResult.blocks[{k}]", p());
                let b = block(b.block, &bp, json)?;
                if !matches!(
                    b,
                    d::Content::Text(_) | d::Content::Image(_) | d::Content::File(_)
                ) {
                    return Err(Error::invalid(format!(
                        "{}.toolResult.blocks[{k}]: a tool result holds text, image or file blocks",
                        p()
                    )));
                }
                blocks.push(b);
            }
            d::Content::ToolResult(d::ToolResult {
                tool_call_id: tr.tool_call_id,
                content: tr.content,
                is_error: tr.is_error,
                blocks,
            })
        }
        Some(Block::Reasoning(r)) => d::Content::Reasoning(d::Reasoning {
            text: r.text,
            signature: r.signature,
            redacted: r.redacted,
        }),
        Some(Block::File(f)) => d::Content::File(file(f, p)?),
        Some(Block::Audio(a)) => {
            if a.data.is_empty() || a.mime_type.is_empty() {
                return Err(Error::invalid(format!(
                    "{}.audio: data and mimeType must be set",
                    p()
                )));
            }
            d::Content::Audio(d::Audio {
                data: a.data,
                mime_type: a.mime_type,
            })
        }
    })
}

/// A tool call in a request: `argumentsJson`, when set, is the arguments
/// (exact, parsed to check it is an object); else the Struct.
fn tool_call_in(
    tc: pb::ToolCall,
    p: &dyn Fn() -> String,
    json: &mut JsonCount,
) -> Result<d::ToolCall, Error> {
    let (arguments, arguments_json) = if tc.arguments_json.is_empty() {
        let a = match tc.arguments {
            Some(a) => json.take(a)?,
            None => Map::new(),
        };
        (a, String::new())
    } else {
        // An upper bound on its JSON values, counted before parsing: a huge
        // array of numbers must not be parsed (each number a String here) only
        // to be refused.
        let bound = tc
            .arguments_json
            .bytes()
            .filter(|b| matches!(b, b',' | b'[' | b'{' | b':'))
            .count()
            + 1;
        json.add(bound)?;
        match serde_json::from_str::<J>(&tc.arguments_json) {
            Ok(J::Object(o)) => (o, tc.arguments_json),
            _ => {
                return Err(Error::invalid(format!(
                    "{}.toolCall.argumentsJson: must be a JSON object",
                    p()
                )))
            }
        }
    };
    Ok(d::ToolCall {
        id: tc.id,
        name: tc.name,
        arguments,
        arguments_json,
    })
}

fn file(f: pb::File, p: &dyn Fn() -> String) -> Result<d::File, Error> {
    use pb::file::Source;
    let source = match f.source {
        Some(Source::Url(u)) if !u.is_empty() => d::FileSource::Url(u),
        Some(Source::Data(data)) if !data.is_empty() => {
            if f.mime_type.is_empty() {
                return Err(Error::invalid(format!(
                    "{}.file.mimeType: must be set with data (e.g. application/pdf)",
                    p()
                )));
            }
            d::FileSource::Data(data)
        }
        _ => {
            return Err(Error::invalid(format!(
                "{}.file: must set a url or data",
                p()
            )))
        }
    };
    Ok(d::File {
        source,
        mime_type: f.mime_type,
        filename: f.filename,
    })
}

fn image(img: pb::Image, p: &dyn Fn() -> String) -> Result<d::Image, Error> {
    use pb::image::Source;
    match img.source {
        Some(Source::Url(u)) if !u.is_empty() => Ok(d::Image::Url(u)),
        Some(Source::Data(data)) if !data.is_empty() => {
            if img.mime_type.is_empty() {
                return Err(Error::invalid(format!(
                    "{}.image.mimeType: must be set with data (e.g. image/png)",
                    p()
                )));
            }
            Ok(d::Image::Data {
                data,
                mime_type: img.mime_type,
            })
        }
        _ => Err(Error::invalid(format!(
            "{}.image: must set a url or data",
            p()
        ))),
    }
}
