//! The chunk OpenAI repeats per token, read by its exact shape. A token's
//! `chat.completion.chunk` is some 200 bytes of JSON of which only the text is
//! new; serde's derived reading of the full wire type (`super::chunk`) spends
//! most of the decoder's time matching eleven keys, allocating the `choices`
//! array and moving its structs. This reads the shape OpenAI sends, in its
//! order, with nothing else allowed:
//!
//! ```text
//! {"id":S,"object":"chat.completion.chunk","created":N,"model":S
//!  [,"service_tier":S|null][,"system_fingerprint":S|null]
//!  ,"choices":[{"index":0,"delta":D,"logprobs":null,"finish_reason":null}]
//!  [,"usage":null][,"obfuscation":S]}
//! ```
//!
//! where the delta D is a token's text, `{"content":S}`, or a tool call's
//! next fragment of arguments, `{"tool_calls":[{"index":N,"function":{"arguments":S}}]}`
//! (its first fragment, with the call's id and name, takes the full parse),
//! with no whitespace. Anything else (another order, a space, another field,
//! a role, a finish reason, tool calls, a number that is not a plain unsigned
//! integer, a string with a control character) returns `None` and is left to
//! the full parse, which then decides as before. A string with an escape is
//! decoded by serde_json itself (the same checks: lone surrogates, bad
//! escapes), so what this accepts the full parse accepts the same way.

use memchr::memchr2;

use crate::provider::json_str::JsonStr;

/// What a token chunk carries for the decoder.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct TokenChunk<'a> {
    pub(super) id: JsonStr<'a>,
    pub(super) model: JsonStr<'a>,
    pub(super) service_tier: Option<JsonStr<'a>>,
    pub(super) system_fingerprint: Option<JsonStr<'a>>,
    pub(super) delta: TokenDelta<'a>,
}

/// What a token chunk's delta carries.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum TokenDelta<'a> {
    /// The answer's text.
    Content(JsonStr<'a>),
    /// More arguments of the tool call at `index`.
    Arguments { index: u32, arguments: JsonStr<'a> },
}

/// The token chunk in `data`, or `None` for the full parse to decide.
pub(super) fn token_chunk(data: &str) -> Option<TokenChunk<'_>> {
    let mut c = Cursor { s: data, at: 0 };
    c.lit(r#"{"id":"#)?;
    let id = c.string()?;
    c.lit(r#","object":"chat.completion.chunk","created":"#)?;
    c.uint()?;
    c.lit(r#","model":"#)?;
    let model = c.string()?;
    let service_tier = if c.take(r#","service_tier":"#) {
        c.string_or_null()?
    } else {
        None
    };
    let system_fingerprint = if c.take(r#","system_fingerprint":"#) {
        c.string_or_null()?
    } else {
        None
    };
    c.lit(r#","choices":[{"index":0,"delta":{"#)?;
    let delta = if c.take(r#""content":"#) {
        TokenDelta::Content(c.string()?)
    } else {
        c.lit(r#""tool_calls":[{"index":"#)?;
        let index = c.u32()?;
        c.lit(r#","function":{"arguments":"#)?;
        let arguments = c.string()?;
        c.lit("}}]")?;
        TokenDelta::Arguments { index, arguments }
    };
    c.lit(r#"},"logprobs":null,"finish_reason":null}]"#)?;
    c.take(r#","usage":null"#);
    if c.take(r#","obfuscation":"#) {
        c.string()?;
    }
    c.lit("}")?;
    (c.at == data.len()).then_some(TokenChunk {
        id,
        model,
        service_tier,
        system_fingerprint,
        delta,
    })
}

struct Cursor<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a [u8] {
        self.s.as_bytes().get(self.at..).unwrap_or_default()
    }

    /// Consumes `l` if the input continues with it.
    fn take(&mut self, l: &str) -> bool {
        let hit = self.rest().starts_with(l.as_bytes());
        if hit {
            self.at += l.len();
        }
        hit
    }

    fn lit(&mut self, l: &str) -> Option<()> {
        self.take(l).then_some(())
    }

    /// `0` or a digit 1–9 followed by digits (JSON's unsigned integer).
    fn uint(&mut self) -> Option<()> {
        let digits = self
            .rest()
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let first = *self.rest().first()?;
        if digits == 0 || (first == b'0' && digits > 1) {
            return None;
        }
        self.at += digits;
        Some(())
    }

    /// An unsigned integer that fits a `u32` (what serde reads the index as).
    fn u32(&mut self) -> Option<u32> {
        let start = self.at;
        self.uint()?;
        self.s.get(start..self.at)?.parse().ok()
    }

    fn string_or_null(&mut self) -> Option<Option<JsonStr<'a>>> {
        if self.take("null") {
            return Some(None);
        }
        self.string().map(Some)
    }

    /// A JSON string: borrowed when it has no escape; with one, decoded by
    /// serde_json (which checks the escapes as the full parse would).
    fn string(&mut self) -> Option<JsonStr<'a>> {
        let rest = self.rest();
        if rest.first() != Some(&b'"') {
            return None;
        }
        let mut i = 1;
        let mut escaped = false;
        loop {
            i += memchr2(b'"', b'\\', rest.get(i..)?)?;
            if rest[i] == b'"' {
                break;
            }
            // A backslash and the character it escapes (a `\uXXXX`'s hex
            // digits hold no quote or backslash).
            escaped = true;
            i += 2;
        }
        let quoted = self.s.get(self.at..self.at + i + 1)?;
        let inner = &quoted[1..quoted.len() - 1];
        let s = if escaped {
            serde_json::from_str::<JsonStr<'a>>(quoted).ok()?
        } else if inner.bytes().any(|b| b < 0x20) {
            // A raw control character: not JSON; the full parse says so.
            return None;
        } else {
            JsonStr(inner.into())
        };
        self.at += i + 1;
        Some(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::borrow::Cow;

    use proptest::prelude::*;

    use super::*;
    use crate::provider::{openai::decode::OpenAiDecoder, Decoder, Frame};

    const MOCK: &str = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1796664171,"model":"gpt-4o-mini","system_fingerprint":null,"choices":[{"index":0,"delta":{"content":" t1"},"logprobs":null,"finish_reason":null}]}"#;

    #[test]
    fn reads_the_token_chunk_borrowed() {
        let t = token_chunk(MOCK).unwrap();
        assert!(matches!(t.id.0, Cow::Borrowed("chatcmpl-1")));
        assert_eq!(&*t.model, "gpt-4o-mini");
        assert!(matches!(&t.delta, TokenDelta::Content(c) if matches!(c.0, Cow::Borrowed(" t1"))));
        assert_eq!((t.service_tier, t.system_fingerprint), (None, None));
    }

    #[test]
    fn reads_openais_own_optional_fields() {
        let t = token_chunk(r#"{"id":"c","object":"chat.completion.chunk","created":0,"model":"m","service_tier":"default","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":"a\n\"b\" \u00e9"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"x1"}"#).unwrap();
        assert_eq!(t.service_tier.as_deref(), Some("default"));
        assert_eq!(t.system_fingerprint.as_deref(), Some("fp_1"));
        assert!(
            matches!(&t.delta, TokenDelta::Content(c) if matches!(&c.0, Cow::Owned(s) if s == "a\n\"b\" é"))
        );
    }

    const ARGS: &str = r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":2,"function":{"arguments":"{\"x\":"}}]},"logprobs":null,"finish_reason":null}]}"#;

    #[test]
    fn reads_a_tool_calls_next_arguments() {
        let t = token_chunk(ARGS).unwrap();
        assert!(
            matches!(&t.delta, TokenDelta::Arguments { index: 2, arguments } if &**arguments == "{\"x\":")
        );
        for v in [
            // the first fragment (id, type, name), two calls, an index too big or 01
            ARGS.replace(
                r#"{"index":2,"function""#,
                r#"{"index":2,"id":"call_1","type":"function","function""#,
            ),
            ARGS.replace(r#"{"arguments""#, r#"{"name":"f","arguments""#),
            ARGS.replace("}}]}", r#"}},{"index":3,"function":{"arguments":""}}]}"#),
            ARGS.replace(r#""index":2"#, r#""index":4294967296"#),
            ARGS.replace(r#""index":2"#, r#""index":02"#),
        ] {
            assert_eq!(token_chunk(&v), None, "{v}");
        }
        let big = ARGS.replace(r#""index":2"#, r#""index":4294967295"#);
        assert!(matches!(
            token_chunk(&big).unwrap().delta,
            TokenDelta::Arguments {
                index: u32::MAX,
                ..
            }
        ));
    }

    #[test]
    fn anything_else_is_left_to_the_full_parse() {
        let variants = [
            // whitespace, another order, a field more or less
            MOCK.replace(r#""id":"#, r#" "id":"#),
            MOCK.replace(r#""object":"chat.completion.chunk","#, ""),
            MOCK.replace(r#""logprobs":null,"#, r#""logprobs":null,"x":1,"#),
            MOCK.replace("}]}", r#"}],"x":1}"#),
            // a role, a finish reason, a second choice, another index
            MOCK.replace(
                r#"{"content":" t1"}"#,
                r#"{"role":"assistant","content":""}"#,
            ),
            MOCK.replace(r#""finish_reason":null"#, r#""finish_reason":"stop""#),
            MOCK.replace("}]}", r#"},{"index":1}]}"#),
            MOCK.replace(r#""index":0"#, r#""index":1"#),
            // values of another type or shape
            MOCK.replace("1796664171", "-1"),
            MOCK.replace("1796664171", "017"),
            MOCK.replace("1796664171", "1.5"),
            MOCK.replace(r#""content":" t1""#, r#""content":null"#),
            MOCK.replace(r#""system_fingerprint":null"#, r#""system_fingerprint":1"#),
            // strings JSON forbids, or a lone surrogate
            MOCK.replace(" t1", "a\tb"),
            MOCK.replace(" t1", r"a\x"),
            MOCK.replace(" t1", r"\ud800"),
            MOCK.replace(" t1", "a\\"),
            // cut short, or more after the end
            MOCK[..MOCK.len() - 1].to_string(),
            format!("{MOCK}}}"),
        ];
        for v in &variants {
            assert_eq!(token_chunk(v), None, "{v}");
        }
    }

    /// A string field as an upstream might write it: JSON-encoded text, or raw
    /// pieces (quotes, backslashes, escapes good and bad, control characters).
    fn field() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9 _-]{0,8}".prop_map(|s| format!("\"{s}\"")),
            any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
            prop::collection::vec(
                prop_oneof![
                    Just("a".to_string()),
                    Just("\u{e9}".to_string()),
                    Just("\\n".to_string()),
                    Just("\\\"".to_string()),
                    Just("\\\\".to_string()),
                    Just("\\u00e9".to_string()),
                    Just("\\ud83d\\ude00".to_string()),
                    Just("\\ud800".to_string()),
                    Just("\\x".to_string()),
                    Just("\t".to_string()),
                    Just("\"".to_string()),
                    Just("\\".to_string()),
                    Just("\\/".to_string()),
                    Just("\\b\\f\\r".to_string()),
                    Just("\\u0022".to_string()),
                    Just("\\u005C".to_string()),
                    Just("\\uD83D\\uDE00".to_string()),
                    Just("\\u0000".to_string()),
                    Just("\\u00".to_string()),
                ],
                0..6
            )
            .prop_map(|v| format!("\"{}\"", v.concat())),
        ]
    }

    fn optional(name: &'static str) -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just(format!(",\"{name}\":null")),
            field().prop_map(move |f| format!(",\"{name}\":{f}")),
        ]
    }

    /// Token chunks in OpenAI's shape, some of them then damaged.
    fn chunk() -> impl Strategy<Value = String> {
        let created = prop_oneof![
            Just("0"),
            Just("1796664171"),
            Just("017"),
            Just("-1"),
            Just("1.5"),
            Just("1e3"),
            Just("123456789012345678901234567890"),
            Just("")
        ];
        let usage = prop_oneof![Just(""), Just(",\"usage\":null"), Just(",\"usage\":{}")];
        let tail = (usage, optional("obfuscation")).prop_map(|(u, o)| format!("{u}{o}"));
        // Replace one character, or insert before it.
        let edit = prop_oneof![
            3 => Just(None),
            1 => (
                any::<prop::sample::Index>(),
                prop::sample::select(vec!["", " ", "\n", "\"", "\\", ",", "}", "]", "0", "x", "null"]),
                any::<bool>()
            )
                .prop_map(Some),
        ];
        let delta = prop_oneof![
            3 => field().prop_map(|c| format!(r#"{{"content":{c}}}"#)),
            1 => (prop::sample::select(vec!["0", "1", "7", "4294967295", "4294967296", "01", "-1"]), field())
                .prop_map(|(i, a)| format!(r#"{{"tool_calls":[{{"index":{i},"function":{{"arguments":{a}}}}}]}}"#)),
        ];
        (field(), created, field(), optional("service_tier"), optional("system_fingerprint"), delta, tail, edit)
            .prop_map(|(id, created, model, tier, fp, delta, tail, edit)| {
                let mut s = format!(
                    r#"{{"id":{id},"object":"chat.completion.chunk","created":{created},"model":{model}{tier}{fp},"choices":[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":null}}]{tail}}}"#
                );
                if let Some((at, with, insert)) = edit {
                    let mut i = at.index(s.len().max(1));
                    while !s.is_char_boundary(i) {
                        i -= 1;
                    }
                    let end = if insert {
                        i
                    } else {
                        s[i..].chars().next().map_or(i, |c| i + c.len_utf8())
                    };
                    s.replace_range(i..end, with);
                }
                s
            })
    }

    fn parts(
        full_parse_only: bool,
        data: &str,
    ) -> Vec<Result<Vec<crate::chat::types::Part>, String>> {
        let mut d = OpenAiDecoder::new();
        d.full_parse_only = full_parse_only;
        let frame = Frame {
            event: String::new(),
            data: data.to_string(),
        };
        // Twice: the id, model and metadata are reported once.
        (0..2)
            .map(|_| d.on_frame(&frame).map_err(|e| e.message))
            .collect()
    }

    /// Chunks only the full parse takes, as a stream has them around its tokens.
    fn other() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"fp","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_2","type":"function","function":{"name":"g","arguments":""}}]},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"name":"_more"}}]},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}]}"#,
            r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"refusal":"no"},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}"#,
            r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
            r#"{"id":"","choices":[]}"#,
        ])
        .prop_map(str::to_string)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        /// A stream that mixes token chunks with chunks only the full parse
        /// takes decodes to the same parts either way (the decoder's state
        /// carries across the two paths).
        #[test]
        fn a_mixed_stream_decodes_as_the_full_parse(
            frames in prop::collection::vec(prop_oneof![chunk(), other()], 1..12)
        ) {
            let run = |full_parse_only: bool| {
                let mut d = OpenAiDecoder::new();
                d.full_parse_only = full_parse_only;
                let mut out = Vec::new();
                for data in frames.iter().map(String::as_str).chain(["[DONE]"]) {
                    let frame = Frame { event: String::new(), data: data.to_string() };
                    out.push(d.on_frame(&frame).map_err(|e| e.message));
                }
                out.push(d.finish().map_err(|e| e.message));
                out
            };
            prop_assert_eq!(run(false), run(true), "{:?}", frames);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        /// What the shape read accepts, the full parse accepts with the same
        /// parts; what it leaves, the full parse decides alone (same code).
        #[test]
        fn the_shape_read_decodes_as_the_full_parse(data in chunk()) {
            let fast = parts(false, &data);
            prop_assert_eq!(&fast, &parts(true, &data), "{}", data);
            if token_chunk(&data).is_some() {
                prop_assert!(fast.iter().all(Result::is_ok), "{}", data);
            }
        }
    }
}
