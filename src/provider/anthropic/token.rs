//! The event Anthropic repeats per token, read flat. `content_block_delta`
//! carries each text, thinking, signature or tool-input fragment; the full
//! event type (`super::decode`) is a serde internally tagged enum, which
//! buffers every event into a tree of values before choosing its variant (four
//! allocations per token, and the text read twice). This reads the same JSON
//! straight into borrowed fields; anything it does not match exactly (another
//! event, another delta type, a field missing, extra or of another type) is
//! left to the full parse, which then decides as before.

use std::borrow::Cow;

use serde::Deserialize;

use crate::provider::json_str::JsonStr;

/// Which fragment a token delta carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Text,
    InputJson,
    Thinking,
    Signature,
}

/// One `content_block_delta` of a token-sized kind.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct TokenDelta<'a> {
    pub(super) index: u32,
    pub(super) kind: Kind,
    pub(super) text: Cow<'a, str>,
}

// `deny_unknown_fields`: serde_json skips an unknown field without the checks
// a parse into a value makes (lone surrogates, number range, nesting depth), so
// an event with any field more than these goes to the full parse, which
// refuses what it refused before.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Flat<'a> {
    #[serde(rename = "type", borrow)]
    kind: JsonStr<'a>,
    index: u32,
    #[serde(borrow)]
    delta: FlatDelta<'a>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlatDelta<'a> {
    #[serde(rename = "type", borrow)]
    kind: JsonStr<'a>,
    #[serde(default, borrow)]
    text: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    partial_json: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    thinking: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    signature: Option<JsonStr<'a>>,
}

/// The token delta in `data`, or `None` for the full parse to decide.
pub(super) fn token_delta(data: &str) -> Option<TokenDelta<'_>> {
    let f: Flat<'_> = serde_json::from_str(data).ok()?;
    if &*f.kind != "content_block_delta" {
        return None;
    }
    let d = f.delta;
    let (kind, text) = match &*d.kind {
        "text_delta" => (Kind::Text, d.text?),
        "input_json_delta" => (Kind::InputJson, d.partial_json?),
        "thinking_delta" => (Kind::Thinking, d.thinking?),
        "signature_delta" => (Kind::Signature, d.signature?),
        _ => return None,
    };
    Some(TokenDelta {
        index: f.index,
        kind,
        text: text.0,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn delta(index: u32, kind: Kind, text: &str) -> Option<TokenDelta<'_>> {
        Some(TokenDelta {
            index,
            kind,
            text: Cow::Borrowed(text),
        })
    }

    #[test]
    fn token_deltas_are_read_borrowed() {
        let t = token_delta(
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
        );
        assert_eq!(t, delta(0, Kind::Text, "Hi"));
        assert!(matches!(t.unwrap().text, Cow::Borrowed(_)));
        assert_eq!(
            token_delta(
                r#"{"index":1,"delta":{"partial_json":"{\"a","type":"input_json_delta"},"type":"content_block_delta"}"#
            ),
            Some(TokenDelta {
                index: 1,
                kind: Kind::InputJson,
                text: Cow::Owned("{\"a".into())
            })
        );
        assert_eq!(
            token_delta(
                r#"{"type":"content_block_delta","index":2,"delta":{"type":"thinking_delta","thinking":"hm"}}"#
            ),
            delta(2, Kind::Thinking, "hm")
        );
        assert_eq!(
            token_delta(
                r#"{"type":"content_block_delta","index":2,"delta":{"type":"signature_delta","signature":"c2ln"}}"#
            ),
            delta(2, Kind::Signature, "c2ln")
        );
    }

    #[test]
    fn anything_else_is_left_to_the_full_parse() {
        for data in [
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{}}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":null}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":5}}"#,
            r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"x"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a","text":"b"}}"#,
            r#"{"type":"content_block_start","index":0,"delta":{"type":"text_delta","text":"x"}}"#,
            r#"{"type":"ping"}"#,
            // Fields beyond the delta's own: the full parse decides (here: it
            // refuses a lone surrogate, which skipping a field would not see).
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"},"x":"\ud800"}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi","x":1e400}}"#,
            "not json",
        ] {
            assert_eq!(token_delta(data), None, "{data}");
        }
    }
}
