//! Property tests: the framer and every decoder survive anything (hardening,
//! item 11). Arbitrary bytes never panic; a body cut into reads anywhere gives
//! the frames, chunks and error of the whole body; frames respect the cap; what
//! a decoder makes of a valid stream generated from its provider's documented
//! format is the text, reasoning and tool calls the stream was generated from.
//!
//! The seed is fixed and the case counts modest, so a run is quick and the same
//! everywhere. Explore further with, e.g.,
//! `PROPTEST_CASES=5000 PROPTEST_RNG_SEED=$RANDOM cargo test --test props`;
//! proptest keeps a case that fails in `tests/props.proptest-regressions` (to
//! commit) and replays it first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Once;

use chatwire::{
    chat::types::{Chunk, Delta, StopReason},
    error::{register_secret, Error},
    provider::{
        anthropic::{self, AnthropicDecoder},
        frame::{Frame, Framer, Framing},
        gemini::{self, GeminiDecoder},
        ollama::{self, OllamaDecoder},
        openai::{self, responses::ResponsesDecoder, OpenAiDecoder},
        pump::decode_body,
    },
};
use proptest::{prelude::*, sample::Index, test_runner::RngSeed};
use serde_json::{json, Map, Value};

/// Fixed seed, `cases` cases (both overridable by PROPTEST_RNG_SEED / PROPTEST_CASES).
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(0x00c4_a7e1_1e11),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Reads: a body cut at chosen points.

/// Cut points in `0..=len` from proptest indices, sorted and distinct.
fn cuts(len: usize, at: &[Index]) -> Vec<usize> {
    let mut c: Vec<usize> = at.iter().map(|i| i.index(len + 1)).collect();
    c.sort_unstable();
    c.dedup();
    c
}

/// One read per byte.
fn every_byte(len: usize) -> Vec<usize> {
    (1..len).collect()
}

fn pieces<'a>(body: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut at = 0;
    for &c in cuts {
        out.push(&body[at..c]);
        at = c;
    }
    out.push(&body[at..]);
    out
}

// ---------------------------------------------------------------------------
// Generators shared by the framer and the decoders.

/// Bytes that look like SSE or NDJSON often enough to reach deep states:
/// field names, line ends of every kind, BOMs, multi-byte and broken UTF-8.
fn soup() -> BoxedStrategy<Vec<u8>> {
    let tokens: Vec<&'static [u8]> = vec![
        b"\n",
        b"\r",
        b"\r\n",
        b"\n\n",
        b"data:",
        b"data: ",
        b"data",
        b"event:",
        b"event: ",
        b"id: 7",
        b"retry: 10",
        b":",
        b": ping",
        b" ",
        b"{\"a\":1}",
        "\u{feff}".as_bytes(),
        "é".as_bytes(),
        "😀".as_bytes(),
    ];
    let token = prop_oneof![
        5 => prop::sample::select(tokens).prop_map(<[u8]>::to_vec),
        3 => "[a-z{}\":, ]{1,8}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 1..4),
    ];
    prop::collection::vec(token, 0..48)
        .prop_map(|t| t.concat())
        .boxed()
}

/// Whole SSE-ish lines (a field, a short value, any line end): events of
/// several data lines, with CRs that a read may cut from their LF.
fn sse_lines() -> BoxedStrategy<Vec<u8>> {
    let prefixes = vec!["data: ", "data:", "data", "event: ", ": ", "id: 1", ""];
    let line = (
        prop::sample::select(prefixes),
        "[a-z é{}\"]{0,6}",
        prop::sample::select(vec!["\n", "\r\n", "\r", "\n\n", "\r\n\r\n"]),
    )
        .prop_map(|(p, v, end)| format!("{p}{v}{end}"));
    prop::collection::vec(line, 0..16)
        .prop_map(|l| l.concat().into_bytes())
        .boxed()
}

fn any_bytes() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..400),
        soup(),
        sse_lines(),
    ]
    .boxed()
}

fn split_points() -> impl Strategy<Value = Vec<Index>> {
    prop::collection::vec(any::<Index>(), 0..10)
}

// ---------------------------------------------------------------------------
// 1. The framer.

type Framed = (Vec<Frame>, Option<Error>);

/// Pushes the pieces in order, stopping at the first error, then finishes.
fn framer_run(framing: Framing, cap: usize, body: &[u8], cuts: &[usize]) -> Framed {
    let mut f = Framer::new(framing, cap);
    let mut out = Vec::new();
    for piece in pieces(body, cuts) {
        if let Err(e) = f.push(piece, &mut out) {
            return (out, Some(e));
        }
    }
    match f.finish(&mut out) {
        Ok(()) => (out, None),
        Err(e) => (out, Some(e)),
    }
}

/// The whole body's frames and error, checked against random reads and
/// byte-by-byte reads, and against the cap and the framing's shape.
fn check_framer(
    framing: Framing,
    cap: usize,
    body: &[u8],
    at: &[Index],
) -> Result<Framed, TestCaseError> {
    let whole = framer_run(framing, cap, body, &[]);
    let cut = cuts(body.len(), at);
    prop_assert_eq!(
        &framer_run(framing, cap, body, &cut),
        &whole,
        "cut at {:?}",
        cut
    );
    prop_assert_eq!(
        &framer_run(framing, cap, body, &every_byte(body.len())),
        &whole,
        "byte by byte"
    );
    for f in &whole.0 {
        prop_assert!(f.data.len() <= cap, "data over the cap: {:?}", f);
        prop_assert!(f.event.len() <= cap, "event over the cap: {:?}", f);
        prop_assert!(!f.event.contains(['\r', '\n']), "{:?}", f);
        prop_assert!(!f.data.contains('\r'), "{:?}", f);
        if framing == Framing::Ndjson {
            prop_assert!(f.event.is_empty(), "{:?}", f);
            prop_assert!(!f.data.contains('\n'), "{:?}", f);
            prop_assert!(!f.data.trim().is_empty(), "{:?}", f);
        }
    }
    Ok(whole)
}

fn any_framing() -> impl Strategy<Value = Framing> {
    prop_oneof![Just(Framing::Sse), Just(Framing::Ndjson)]
}

const TOO_LARGE: &str = "UPSTREAM_FRAME_TOO_LARGE";

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary bytes, any cap (tiny ones included): no panic, and the same
    /// frames and error however the reads cut the body.
    #[test]
    fn framer_any_bytes_any_reads_same_frames(
        framing in any_framing(),
        cap in prop_oneof![1usize..64, Just(1usize << 20)],
        body in any_bytes(),
        at in split_points(),
    ) {
        check_framer(framing, cap, &body, &at)?;
    }

    /// NDJSON frames are the non-blank lines, whatever the line ends.
    #[test]
    fn ndjson_frames_are_the_non_blank_lines(
        lines in prop::collection::vec(("[^\r\n]{0,12}", 0usize..3), 0..12),
        last_end in 0usize..4,
        at in split_points(),
    ) {
        let mut body = String::new();
        for (i, (text, end)) in lines.iter().enumerate() {
            body.push_str(text);
            // Only the last line may end without a line end (else two lines join).
            let end = if i + 1 == lines.len() { last_end } else { *end };
            body.push_str(["\n", "\r\n", "\r", ""][end]);
        }
        let (frames, err) = check_framer(Framing::Ndjson, 1 << 20, body.as_bytes(), &at)?;
        prop_assert!(err.is_none(), "{:?}", err);
        let want: Vec<&str> = lines
            .iter()
            .map(|(t, _)| t.as_str())
            .filter(|t| !t.trim().is_empty())
            .collect();
        let got: Vec<&str> = frames.iter().map(|f| f.data.as_str()).collect();
        prop_assert_eq!(got, want);
    }

    /// Long lines against a small cap: an event whose data alone exceeds the
    /// cap is UPSTREAM_FRAME_TOO_LARGE; one whose lines fit is framed whole.
    /// An NDJSON line is an error exactly when it is longer than the cap.
    #[test]
    fn long_lines_against_the_cap(
        lines in prop::collection::vec(
            (0usize..1500, prop::sample::select(vec!["x", "é", "😀"])),
            1..4,
        ),
        cap in 1usize..3000,
        at in split_points(),
    ) {
        let values: Vec<String> = lines.iter().map(|(n, c)| c.repeat(*n)).collect();

        let mut sse = String::new();
        for v in &values {
            sse.push_str("data:");
            sse.push_str(v);
            sse.push('\n');
        }
        sse.push('\n');
        let data = values.join("\n");
        let line_bytes: usize = values.iter().map(|v| 5 + v.len() + 1).sum();
        let (frames, err) = check_framer(Framing::Sse, cap, sse.as_bytes(), &at)?;
        if data.len() > cap {
            prop_assert_eq!(err.map(|e| e.reason), Some(TOO_LARGE));
            prop_assert!(frames.is_empty());
        } else if line_bytes <= cap {
            prop_assert!(err.is_none(), "{:?}", err);
            prop_assert_eq!(frames, vec![Frame { event: String::new(), data }]);
        }

        let ndjson = values.join("\n");
        let (frames, err) = check_framer(Framing::Ndjson, cap, ndjson.as_bytes(), &at)?;
        let fits = values.iter().take_while(|v| v.len() <= cap);
        let want: Vec<&str> = fits.map(String::as_str).filter(|v| !v.is_empty()).collect();
        let got: Vec<&str> = frames.iter().map(|f| f.data.as_str()).collect();
        prop_assert_eq!(got, want);
        let too_long = values.iter().any(|v| v.len() > cap);
        prop_assert_eq!(err.map(|e| e.reason), too_long.then_some(TOO_LARGE));
    }
}

// ---------------------------------------------------------------------------
// 2. The decoders, each through the one pump (framer → decoder → relay).

/// The fallback id the providers' own `decode_body` functions use.
const FALLBACK: &str = "run-fallback";

/// A credential registered for redaction and echoed (whole, cut, masked) by
/// the generated upstream texts: no decoder error may carry it out. It has
/// multi-byte characters where redaction cuts its anchor (the 12th byte).
const SECRET: &str = "sk-prop-ü7ßé-0123456789abcdefSECRET";

fn register_the_secret() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| register_secret(SECRET));
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Provider {
    Anthropic,
    OpenAi,
    Gemini,
    Ollama,
    Responses,
}

const PROVIDERS: [Provider; 5] = [
    Provider::Anthropic,
    Provider::OpenAi,
    Provider::Gemini,
    Provider::Ollama,
    Provider::Responses,
];

impl Provider {
    fn framing(self) -> Framing {
        match self {
            Provider::Ollama => Framing::Ndjson,
            _ => Framing::Sse,
        }
    }
}

fn any_provider() -> impl Strategy<Value = Provider> {
    prop::sample::select(PROVIDERS.to_vec())
}

type Decoded = (Vec<Chunk>, Option<Error>);

/// `pump::decode_body` with the provider's decoder, reads cut at `cuts`.
fn run(p: Provider, body: &[u8], cuts: &[usize]) -> Decoded {
    register_the_secret();
    let framing = p.framing();
    match p {
        Provider::Anthropic => {
            decode_body(framing, &mut AnthropicDecoder::new(), body, cuts, FALLBACK)
        }
        Provider::OpenAi => decode_body(framing, &mut OpenAiDecoder::new(), body, cuts, FALLBACK),
        Provider::Gemini => {
            decode_body(framing, &mut GeminiDecoder::default(), body, cuts, FALLBACK)
        }
        Provider::Ollama => {
            decode_body(framing, &mut OllamaDecoder::default(), body, cuts, FALLBACK)
        }
        Provider::Responses => {
            decode_body(framing, &mut ResponsesDecoder::new(), body, cuts, FALLBACK)
        }
    }
}

/// The provider module's own whole-body entry point.
fn provider_decode_body(p: Provider, body: &[u8]) -> Decoded {
    match p {
        Provider::Anthropic => anthropic::decode_body(body, FALLBACK),
        Provider::OpenAi => openai::decode_body(body, &[]),
        Provider::Gemini => gemini::decode_body(body),
        Provider::Ollama => ollama::decode_body(body),
        Provider::Responses => openai::responses::decode_body(body, &[]),
    }
}

/// Decodes the whole body and checks what must hold for any body: the same
/// chunks and error under random reads and byte-by-byte reads; an answer is
/// complete (one `last` chunk, at the end) exactly when there is no error;
/// every chunk has an id; the model, once known, is the same on every chunk; no error carries the secret.
fn check_decoded(p: Provider, body: &[u8], at: &[Index]) -> Result<Decoded, TestCaseError> {
    let whole = run(p, body, &[]);
    prop_assert_eq!(
        &provider_decode_body(p, body),
        &whole,
        "{:?}::decode_body",
        p
    );
    let cut = cuts(body.len(), at);
    prop_assert_eq!(&run(p, body, &cut), &whole, "{:?}, cut at {:?}", p, cut);
    prop_assert_eq!(
        &run(p, body, &every_byte(body.len())),
        &whole,
        "{:?}, byte by byte",
        p
    );
    let (chunks, err) = &whole;
    let lasts = chunks.iter().filter(|c| c.last).count();
    prop_assert!(lasts <= 1, "{} last chunks", lasts);
    prop_assert_eq!(
        err.is_none(),
        lasts == 1,
        "complete exactly when there is no error: {:?}",
        err
    );
    if lasts == 1 {
        prop_assert!(chunks.last().is_some_and(|c| c.last), "last is not last");
    }
    for c in chunks {
        prop_assert!(!c.id.is_empty(), "{:?}", c);
        if c.last {
            prop_assert!(c.delta.is_none() && c.stop_reason().is_some(), "{:?}", c);
        } else {
            prop_assert!(c.delta.is_some(), "{:?}", c);
            prop_assert!(c.end.is_none(), "{:?}", c);
        }
    }
    // The model is on every chunk once known (API 1.1), and never changes.
    let models: std::collections::BTreeSet<&str> = chunks
        .iter()
        .map(|c| c.model.as_str())
        .filter(|m| !m.is_empty())
        .collect();
    prop_assert!(models.len() <= 1, "{:?}", models);
    if let Some(e) = err {
        prop_assert!(!e.message.contains(SECRET), "{:?}", e);
    }
    Ok(whole)
}

// --- Rendering events as a provider sends them.

/// One upstream frame to render: a JSON event (SSE: with its event name), a
/// data text as is, or a raw line of bytes (noise).
#[derive(Clone, Debug)]
enum Ev {
    Json(Option<String>, Value),
    Text(Option<String>, String),
    Bytes(Vec<u8>),
}

/// How a body is laid out: line ends (picked in turn from LF, CRLF, CR),
/// pretty-printed JSON (several `data:` lines per SSE event), comments / blank
/// lines between events.
#[derive(Clone, Debug)]
struct Layout {
    ends: Vec<Index>,
    pretty: bool,
    filler: bool,
}

fn layout() -> impl Strategy<Value = Layout> {
    (
        prop::collection::vec(any::<Index>(), 1..6),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(ends, pretty, filler)| Layout {
            ends,
            pretty,
            filler,
        })
}

struct Lines<'a> {
    out: Vec<u8>,
    layout: &'a Layout,
    n: usize,
    after_cr: bool,
}

impl Lines<'_> {
    fn line(&mut self, text: &[u8]) {
        let pick = &self.layout.ends[self.n % self.layout.ends.len()];
        self.n += 1;
        let mut end: &[u8] = [&b"\n"[..], b"\r\n", b"\r"][pick.index(3)];
        // A CR then an empty line ended by LF would read as one CRLF.
        if self.after_cr && text.is_empty() && end == b"\n" {
            end = b"\r\n";
        }
        self.out.extend_from_slice(text);
        self.out.extend_from_slice(end);
        self.after_cr = end == b"\r";
    }
}

fn render(framing: Framing, events: &[Ev], layout: &Layout) -> Vec<u8> {
    let mut l = Lines {
        out: Vec::new(),
        layout,
        n: 0,
        after_cr: false,
    };
    for (i, ev) in events.iter().enumerate() {
        if layout.filler && i % 3 == 1 {
            match framing {
                Framing::Sse => l.line(b": keep-alive"),
                Framing::Ndjson => l.line(b""),
                Framing::EventStream => {
                    unreachable!("text framings only (bedrock's binary one: tests/bedrock.rs)")
                }
            }
        }
        let (name, data) = match ev {
            Ev::Bytes(b) => {
                l.line(b);
                if framing == Framing::Sse {
                    l.line(b"");
                }
                continue;
            }
            Ev::Json(name, v) if layout.pretty && framing == Framing::Sse => {
                (name, serde_json::to_string_pretty(v).unwrap())
            }
            Ev::Json(name, v) => (name, v.to_string()),
            Ev::Text(name, t) => (name, t.clone()),
        };
        match framing {
            Framing::Sse => {
                if let Some(name) = name {
                    l.line(format!("event: {name}").as_bytes());
                }
                for d in data.split('\n') {
                    l.line(format!("data: {d}").as_bytes());
                }
                l.line(b"");
            }
            Framing::EventStream => unreachable!("text framings only"),
            Framing::Ndjson => {
                for d in data.split('\n') {
                    l.line(d.as_bytes());
                }
            }
        }
    }
    l.out
}

// --- Strings and JSON values.

/// Texts that have broken parsers before: the empty one, multi-byte and
/// joined emoji, line ends, quotes, U+2028, a BOM, SSE inside JSON, NUL, and
/// the secret (whole, cut around its multi-byte characters, masked).
fn interesting() -> Vec<String> {
    let mut v: Vec<String> = [
        "",
        "é",
        "😀",
        "👩‍💻",
        "你好，世界",
        "\n",
        "\r\n",
        "\r",
        "\"",
        "\\",
        "\u{2028}",
        "\u{feff}",
        "data: x\n\n",
        "\u{0}",
        " ",
        "[DONE]",
        "}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(SECRET.to_string());
    v.push(format!("key {SECRET} refused"));
    for n in [10, 11, 12, 13, 20] {
        v.push(SECRET.chars().take(n).collect());
    }
    v.push(format!(
        "{}***",
        SECRET.chars().take(14).collect::<String>()
    ));
    v
}

fn token() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "\\PC{0,6}",
        2 => prop::collection::vec(any::<char>(), 0..5).prop_map(String::from_iter),
        2 => prop::sample::select(interesting()),
    ]
    .boxed()
}

fn text() -> BoxedStrategy<Value> {
    token().prop_map(Value::String).boxed()
}

/// A known name (usually) or any text.
fn tag(names: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop_oneof![
        4 => prop::sample::select(names).prop_map(|s| Value::String(s.to_string())),
        1 => text(),
    ]
    .boxed()
}

/// Counts, including ones that overflow u32 or are not counts at all.
fn num() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => (0u32..5).prop_map(Value::from),
        2 => any::<u32>().prop_map(Value::from),
        1 => prop::sample::select(vec![
            json!(u32::MAX),
            json!(u64::from(u32::MAX) + 1),
            json!(-1),
            json!(1.5),
            json!(1e300),
            json!("7"),
        ]),
        1 => any::<i64>().prop_map(Value::from),
    ]
    .boxed()
}

fn any_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        num(),
        text(),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{0,8}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
    .boxed()
}

/// How plausible events are built. With `chaos` any field may hold any JSON
/// value or be missing, counts may be negative, fractional or too large, event
/// names are random and some data is not an event: such streams mostly end at
/// an early event. Without it values have the right shapes and a field is
/// missing now and then, so streams reach deeper states.
#[derive(Clone, Copy, Debug)]
struct Shapes {
    chaos: bool,
}

impl Shapes {
    /// A field usually of the right shape, sometimes absent, and with chaos
    /// sometimes any JSON value.
    fn field(self, right: BoxedStrategy<Value>) -> BoxedStrategy<Option<Value>> {
        if self.chaos {
            prop_oneof![
                8 => right.prop_map(Some),
                1 => any_json().prop_map(Some),
                2 => Just(None),
            ]
            .boxed()
        } else {
            prop_oneof![16 => right.prop_map(Some), 1 => Just(None)].boxed()
        }
    }

    /// A field that is usually absent (an error object ends the stream at once).
    fn rare(self, right: BoxedStrategy<Value>) -> BoxedStrategy<Option<Value>> {
        prop_oneof![1 => right.prop_map(Some), 12 => Just(None)].boxed()
    }

    /// A field present in about a third of the events.
    fn sometimes(self, right: BoxedStrategy<Value>) -> BoxedStrategy<Option<Value>> {
        prop_oneof![1 => right.prop_map(Some), 2 => Just(None)].boxed()
    }

    fn num(self) -> BoxedStrategy<Value> {
        if self.chaos {
            num()
        } else {
            prop_oneof![
                4 => (0u32..5).prop_map(Value::from),
                1 => any::<u32>().prop_map(Value::from),
                1 => Just(json!(u32::MAX)),
            ]
            .boxed()
        }
    }

    fn index(self) -> BoxedStrategy<Value> {
        prop_oneof![4 => (0u32..4).prop_map(Value::from), 1 => self.num()].boxed()
    }
}

fn object(fields: Vec<(&'static str, BoxedStrategy<Option<Value>>)>) -> BoxedStrategy<Value> {
    let (names, values): (Vec<_>, Vec<_>) = fields.into_iter().unzip();
    values
        .prop_map(move |values| {
            let mut m = Map::new();
            for (name, v) in names.iter().zip(values) {
                if let Some(v) = v {
                    m.insert((*name).to_string(), v);
                }
            }
            Value::Object(m)
        })
        .boxed()
}

fn array(item: BoxedStrategy<Value>, max: usize) -> BoxedStrategy<Value> {
    prop::collection::vec(item, 0..max)
        .prop_map(Value::Array)
        .boxed()
}

fn flag() -> BoxedStrategy<Value> {
    any::<bool>().prop_map(Value::Bool).boxed()
}

// --- Structurally plausible events, per provider: the right keys, values of
// --- the right shapes mostly, random names and texts, fields missing.

fn anthropic_event(s: Shapes) -> BoxedStrategy<Value> {
    let usage = || {
        object(vec![
            ("input_tokens", s.field(s.num())),
            ("output_tokens", s.field(s.num())),
            ("cache_read_input_tokens", s.field(s.num())),
            ("cache_creation_input_tokens", s.field(s.num())),
        ])
    };
    let message = object(vec![
        ("id", s.field(text())),
        ("model", s.field(text())),
        ("usage", s.field(usage())),
    ]);
    let block = object(vec![
        (
            "type",
            s.field(tag(&[
                "text",
                "tool_use",
                "thinking",
                "redacted_thinking",
                "server_tool_use",
                "web_search_tool_result",
            ])),
        ),
        ("text", s.field(text())),
        ("id", s.field(text())),
        ("name", s.field(text())),
        ("thinking", s.field(text())),
        ("signature", s.field(text())),
        ("data", s.field(text())),
        ("input", s.field(any_json())),
    ]);
    let delta = object(vec![
        (
            "type",
            s.field(tag(&[
                "text_delta",
                "input_json_delta",
                "thinking_delta",
                "signature_delta",
                "citations_delta",
            ])),
        ),
        ("text", s.field(text())),
        ("partial_json", s.field(text())),
        ("thinking", s.field(text())),
        ("signature", s.field(text())),
        (
            "stop_reason",
            s.field(tag(&[
                "end_turn",
                "max_tokens",
                "stop_sequence",
                "tool_use",
                "refusal",
                "pause_turn",
            ])),
        ),
    ]);
    let error = object(vec![
        (
            "type",
            s.field(tag(&[
                "overloaded_error",
                "rate_limit_error",
                "invalid_request_error",
                "api_error",
                "authentication_error",
            ])),
        ),
        ("message", s.field(text())),
    ]);
    object(vec![
        (
            "type",
            s.field(tag(&[
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
                "ping",
                "error",
            ])),
        ),
        ("index", s.field(s.index())),
        ("message", s.field(message)),
        ("content_block", s.field(block)),
        ("delta", s.field(delta)),
        ("usage", s.field(usage())),
        // Only `type: error` events read it.
        ("error", s.field(error)),
    ])
}

fn openai_event(s: Shapes) -> BoxedStrategy<Value> {
    let function = || {
        object(vec![
            ("name", s.field(text())),
            ("arguments", s.field(text())),
        ])
    };
    let tool_call = object(vec![
        ("index", s.field(s.index())),
        ("id", s.field(text())),
        ("type", s.field(tag(&["function"]))),
        ("function", s.field(function())),
    ]);
    let content_part = object(vec![
        ("type", s.field(tag(&["text", "thinking", "image_url"]))),
        ("text", s.field(text())),
        (
            "thinking",
            s.field(array(
                object(vec![
                    ("type", s.field(tag(&["text"]))),
                    ("text", s.field(text())),
                ]),
                3,
            )),
        ),
    ]);
    let content = prop_oneof![3 => text(), 1 => array(content_part, 3)].boxed();
    let delta = object(vec![
        ("role", s.field(tag(&["assistant"]))),
        ("content", s.field(content)),
        ("refusal", s.field(text())),
        ("reasoning_content", s.field(text())),
        ("reasoning", s.field(text())),
        ("tool_calls", s.field(array(tool_call, 3))),
        ("function_call", s.field(function())),
    ]);
    let choice = object(vec![
        ("index", s.field(s.index())),
        ("delta", s.field(delta)),
        (
            "finish_reason",
            s.field(tag(&[
                "stop",
                "length",
                "tool_calls",
                "content_filter",
                "function_call",
                "eos",
            ])),
        ),
    ]);
    let usage = object(vec![
        ("prompt_tokens", s.field(s.num())),
        ("completion_tokens", s.field(s.num())),
        ("total_tokens", s.field(s.num())),
        (
            "prompt_tokens_details",
            s.field(object(vec![("cached_tokens", s.field(s.num()))])),
        ),
        (
            "completion_tokens_details",
            s.field(object(vec![("reasoning_tokens", s.field(s.num()))])),
        ),
        ("prompt_cache_hit_tokens", s.field(s.num())),
    ]);
    let error = prop_oneof![
        text(),
        object(vec![
            ("message", s.field(text())),
            (
                "type",
                s.field(tag(&[
                    "server_error",
                    "invalid_request_error",
                    "rate_limit_exceeded"
                ]))
            ),
            ("code", s.field(prop_oneof![s.num(), text()].boxed())),
            ("status", s.field(s.num())),
            ("status_code", s.field(s.num())),
        ]),
    ]
    .boxed();
    object(vec![
        ("id", s.field(text())),
        ("object", s.field(tag(&["chat.completion.chunk"]))),
        ("model", s.field(text())),
        ("choices", s.field(array(choice, 3))),
        ("usage", s.field(usage)),
        ("error", s.rare(error)),
    ])
}

fn gemini_event(s: Shapes) -> BoxedStrategy<Value> {
    let part = object(vec![
        ("text", s.field(text())),
        ("thought", s.field(flag())),
        ("thoughtSignature", s.field(text())),
        (
            "functionCall",
            s.sometimes(object(vec![
                ("id", s.field(text())),
                ("name", s.field(text())),
                ("args", s.field(any_json())),
            ])),
        ),
    ]);
    let candidate = object(vec![
        (
            "content",
            s.field(object(vec![
                ("parts", s.field(array(part, 4))),
                ("role", s.field(tag(&["model"]))),
            ])),
        ),
        (
            "finishReason",
            s.field(tag(&[
                "STOP",
                "MAX_TOKENS",
                "SAFETY",
                "RECITATION",
                "OTHER",
                "",
            ])),
        ),
        ("index", s.field(s.index())),
    ]);
    let usage = object(vec![
        ("promptTokenCount", s.field(s.num())),
        ("candidatesTokenCount", s.field(s.num())),
        ("totalTokenCount", s.field(s.num())),
        ("thoughtsTokenCount", s.field(s.num())),
        ("cachedContentTokenCount", s.field(s.num())),
    ]);
    let feedback = object(vec![
        (
            "blockReason",
            s.field(tag(&["SAFETY", "OTHER", "BLOCKLIST"])),
        ),
        ("blockReasonMessage", s.field(text())),
    ]);
    let error = object(vec![
        (
            "code",
            s.field(prop_oneof![s.num(), any::<u16>().prop_map(Value::from).boxed()].boxed()),
        ),
        ("message", s.field(text())),
        (
            "status",
            s.field(tag(&[
                "UNAVAILABLE",
                "INVALID_ARGUMENT",
                "RESOURCE_EXHAUSTED",
                "INTERNAL",
            ])),
        ),
        (
            "details",
            s.field(array(
                object(vec![("reason", s.field(tag(&["API_KEY_INVALID"])))]),
                2,
            )),
        ),
    ]);
    object(vec![
        ("candidates", s.field(array(candidate, 3))),
        ("usageMetadata", s.field(usage)),
        ("responseId", s.field(text())),
        ("modelVersion", s.field(text())),
        ("promptFeedback", s.rare(feedback)),
        ("error", s.rare(error)),
    ])
}

fn ollama_event(s: Shapes) -> BoxedStrategy<Value> {
    let tool_call = object(vec![
        ("id", s.field(text())),
        (
            "function",
            s.field(object(vec![
                ("name", s.field(text())),
                ("arguments", s.field(any_json())),
            ])),
        ),
    ]);
    let message = object(vec![
        ("role", s.field(tag(&["assistant"]))),
        ("content", s.field(text())),
        ("thinking", s.field(text())),
        ("tool_calls", s.sometimes(array(tool_call, 3))),
    ]);
    let error = prop_oneof![
        tag(&[
            "model 'x' not found",
            "invalid format",
            "rate limit",
            "out of memory"
        ]),
        any_json(),
    ]
    .boxed();
    object(vec![
        ("model", s.field(text())),
        ("created_at", s.field(text())),
        ("message", s.field(message)),
        ("response", s.rare(text())),
        ("thinking", s.rare(text())),
        ("done", s.rare(flag())),
        (
            "done_reason",
            s.field(tag(&["stop", "length", "load", "unload"])),
        ),
        ("prompt_eval_count", s.field(s.num())),
        ("eval_count", s.field(s.num())),
        ("error", s.rare(error)),
    ])
}

/// OpenAI Responses API events: the typed events chatwire reads, with random
/// shapes (items of every kind, indices, deltas, responses, errors).
fn responses_event(s: Shapes) -> BoxedStrategy<Value> {
    let part = || {
        object(vec![
            (
                "type",
                s.field(tag(&[
                    "summary_text",
                    "output_text",
                    "refusal",
                    "reasoning_text",
                ])),
            ),
            ("text", s.field(text())),
            ("refusal", s.rare(text())),
        ])
    };
    let item = object(vec![
        (
            "type",
            s.field(tag(&[
                "message",
                "reasoning",
                "function_call",
                "web_search_call",
            ])),
        ),
        ("id", s.field(text())),
        ("call_id", s.field(text())),
        ("name", s.field(text())),
        ("arguments", s.field(text())),
        ("encrypted_content", s.field(text())),
        ("summary", s.field(array(part(), 3))),
        ("content", s.field(array(part(), 3))),
    ]);
    let usage = object(vec![
        ("input_tokens", s.field(s.num())),
        ("output_tokens", s.field(s.num())),
        ("total_tokens", s.rare(s.num())),
    ]);
    let error = object(vec![
        (
            "code",
            s.field(tag(&[
                "rate_limit_exceeded",
                "server_error",
                "invalid_prompt",
            ])),
        ),
        ("message", s.field(text())),
    ]);
    let response = object(vec![
        ("id", s.field(text())),
        ("model", s.field(text())),
        ("usage", s.field(usage)),
        (
            "incomplete_details",
            s.rare(object(vec![(
                "reason",
                s.field(tag(&["max_output_tokens", "content_filter"])),
            )])),
        ),
        ("error", s.rare(error.clone())),
    ]);
    object(vec![
        (
            "type",
            s.field(tag(&[
                "response.created",
                "response.output_item.added",
                "response.output_item.done",
                "response.output_text.delta",
                "response.refusal.delta",
                "response.reasoning_summary_text.delta",
                "response.reasoning_text.delta",
                "response.function_call_arguments.delta",
                "response.output_text.annotation.added",
                "response.completed",
                "response.incomplete",
                "response.failed",
                "error",
            ])),
        ),
        ("output_index", s.field(s.index())),
        ("summary_index", s.rare(s.index())),
        ("delta", s.field(text())),
        ("item", s.field(item)),
        ("response", s.field(response)),
        ("code", s.rare(text())),
        ("message", s.rare(text())),
        ("error", s.rare(error)),
    ])
}

/// An SSE event name: none, the usual ones, or any one-line text.
fn event_name() -> BoxedStrategy<Option<String>> {
    prop::option::of(prop_oneof![
        3 => prop::sample::select(vec![
            "message_start", "content_block_delta", "message_stop", "error", "message", "",
        ])
        .prop_map(str::to_string),
        1 => token().prop_map(|t| t.replace(['\r', '\n'], "")),
    ])
    .boxed()
}

/// Data that is not an event object (or not JSON at all).
fn odd_data() -> BoxedStrategy<String> {
    prop::sample::select(vec![
        "", " ", "[DONE]", "[DONE] ", "{", "null", "[]", "42", "\"x\"", "{}",
    ])
    .prop_map(str::to_string)
    .boxed()
}

fn plausible_stream(p: Provider, chaos: bool) -> BoxedStrategy<Vec<Ev>> {
    let s = Shapes { chaos };
    let event = match p {
        Provider::Anthropic => anthropic_event(s),
        Provider::OpenAi => openai_event(s),
        Provider::Gemini => gemini_event(s),
        Provider::Ollama => ollama_event(s),
        Provider::Responses => responses_event(s),
    };
    let ev = if chaos {
        prop_oneof![
            8 => (event_name(), event).prop_map(|(n, v)| Ev::Json(n, v)),
            1 => (event_name(), odd_data()).prop_map(|(n, d)| Ev::Text(n, d)),
        ]
        .boxed()
    } else {
        // Named as the providers name them (Anthropic: the type; others: none).
        event.prop_map(sse).boxed()
    };
    prop::collection::vec(ev, 0..12).boxed()
}

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary bytes (and SSE-looking soup) into every decoder: no panic,
    /// split-independent, complete only with a `last` chunk.
    #[test]
    fn decoders_any_bytes(p in any_provider(), body in any_bytes(), at in split_points()) {
        check_decoded(p, &body, &at)?;
    }
}

// One test per provider, so a failure names it and each explores its own shapes.
macro_rules! plausible {
    ($name:ident, $p:expr) => {
        proptest! {
            #![proptest_config(config(128))]

            /// Plausible events (right keys, random shapes, names, texts,
            /// missing fields, odd data): no panic, split-independent.
            #[test]
            fn $name(
                events in prop_oneof![plausible_stream($p, false), plausible_stream($p, true)],
                layout in layout(),
                at in split_points(),
            ) {
                let body = render($p.framing(), &events, &layout);
                check_decoded($p, &body, &at)?;
            }
        }
    };
}

plausible!(anthropic_plausible_events, Provider::Anthropic);
plausible!(openai_plausible_events, Provider::OpenAi);
plausible!(gemini_plausible_events, Provider::Gemini);
plausible!(ollama_plausible_events, Provider::Ollama);
plausible!(responses_plausible_events, Provider::Responses);

// --- Valid streams, generated from a script.

#[derive(Clone, Debug)]
enum Step {
    Text(Vec<String>),
    Think(Vec<String>),
    /// A tool call: its name (cut once, for OpenAI's split names), its
    /// arguments (an object) and where their JSON text is cut into fragments.
    Tool {
        name: String,
        name_cut: Index,
        args: Value,
        cuts: Vec<Index>,
    },
}

#[derive(Clone, Debug)]
struct Script {
    id: String,
    model: String,
    steps: Vec<Step>,
    input: u32,
    output: u32,
    /// OpenAI: end with `data: [DONE]` (else EOF after the finish_reason).
    done: bool,
}

impl Script {
    fn texts(&self) -> String {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Step::Text(p) => Some(p.concat()),
                _ => None,
            })
            .collect()
    }

    fn thoughts(&self) -> String {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Step::Think(p) => Some(p.concat()),
                _ => None,
            })
            .collect()
    }

    fn tools(&self) -> Vec<(&str, &Value)> {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Step::Tool { name, args, .. } => Some((name.as_str(), args)),
                _ => None,
            })
            .collect()
    }
}

/// `text` cut at character boundaries picked by `at` (empty pieces included).
fn split_text(text: &str, at: &[Index]) -> Vec<String> {
    let bounds: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect();
    let mut c: Vec<usize> = at.iter().map(|i| bounds[i.index(bounds.len())]).collect();
    c.sort_unstable();
    let mut out = Vec::new();
    let mut from = 0;
    for c in c {
        out.push(text[from..c].to_string());
        from = c;
    }
    out.push(text[from..].to_string());
    out
}

fn args_object() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        token().prop_map(Value::String),
        any::<i32>().prop_map(Value::from),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ];
    let value = leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,5}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::btree_map(token(), value, 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
        .boxed()
}

fn script() -> impl Strategy<Value = Script> {
    let pieces = || prop::collection::vec(token(), 0..4);
    let step = prop_oneof![
        3 => pieces().prop_map(Step::Text),
        1 => pieces().prop_map(Step::Think),
        1 => (
            "[a-zA-Z_][a-zA-Z0-9_]{0,8}|\\PC{1,4}",
            any::<Index>(),
            args_object(),
            prop::collection::vec(any::<Index>(), 0..4),
        )
            .prop_map(|(name, name_cut, args, cuts)| Step::Tool { name, name_cut, args, cuts }),
    ];
    (
        "[a-zA-Z0-9_-]{1,16}",
        "[a-z0-9.-]{1,16}",
        prop::collection::vec(step, 0..6),
        0u32..1_000_000,
        0u32..1_000_000,
        any::<bool>(),
    )
        .prop_map(|(id, model, steps, input, output, done)| Script {
            id,
            model,
            steps,
            input,
            output,
            done,
        })
}

fn sse(v: Value) -> Ev {
    let name = v["type"].as_str().map(str::to_string);
    Ev::Json(name, v)
}

/// Anthropic's Messages stream: message_start, one content block per step
/// (text / thinking with its signature / tool_use with input_json_delta
/// fragments), pings, message_delta with the stop reason, message_stop.
fn anthropic_events(s: &Script) -> Vec<Ev> {
    let mut e = vec![sse(json!({"type": "message_start", "message": {
        "id": s.id, "type": "message", "role": "assistant", "model": s.model, "content": [],
        "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": s.input, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0, "output_tokens": 1}}}))];
    for (i, step) in s.steps.iter().enumerate() {
        let delta = |d: Value| sse(json!({"type": "content_block_delta", "index": i, "delta": d}));
        let start =
            |b: Value| sse(json!({"type": "content_block_start", "index": i, "content_block": b}));
        match step {
            Step::Text(pieces) => {
                e.push(start(json!({"type": "text", "text": ""})));
                for p in pieces {
                    e.push(delta(json!({"type": "text_delta", "text": p})));
                }
            }
            Step::Think(pieces) => {
                e.push(start(
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                ));
                for p in pieces {
                    e.push(delta(json!({"type": "thinking_delta", "thinking": p})));
                }
                e.push(delta(
                    json!({"type": "signature_delta", "signature": "EqQB"}),
                ));
            }
            Step::Tool {
                name, args, cuts, ..
            } => {
                e.push(start(
                    json!({"type": "tool_use", "id": format!("toolu_{i}"),
                    "name": name, "input": {}}),
                ));
                for f in split_text(&args.to_string(), cuts) {
                    e.push(delta(
                        json!({"type": "input_json_delta", "partial_json": f}),
                    ));
                }
            }
        }
        e.push(sse(json!({"type": "content_block_stop", "index": i})));
        if i == 0 {
            e.push(sse(json!({"type": "ping"})));
        }
    }
    let stop = if s.tools().is_empty() {
        "end_turn"
    } else {
        "tool_use"
    };
    e.push(sse(json!({"type": "message_delta",
        "delta": {"stop_reason": stop, "stop_sequence": null},
        "usage": {"output_tokens": s.output}})));
    e.push(sse(json!({"type": "message_stop"})));
    e
}

/// Chat Completions chunks: role first, content / reasoning_content deltas,
/// tool calls (id and a name cut in two, then argument fragments), the
/// finish_reason chunk, the usage chunk, `[DONE]` or EOF.
fn openai_events(s: &Script) -> Vec<Ev> {
    let chunk = |delta: Value, finish: Value| {
        Ev::Json(
            None,
            json!({"id": s.id, "object": "chat.completion.chunk", "created": 1, "model": s.model,
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]}),
        )
    };
    let mut e = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    let mut k = 0;
    for step in &s.steps {
        match step {
            Step::Text(pieces) => {
                for p in pieces {
                    e.push(chunk(json!({"content": p}), Value::Null));
                }
            }
            Step::Think(pieces) => {
                for p in pieces {
                    e.push(chunk(json!({"reasoning_content": p}), Value::Null));
                }
            }
            Step::Tool {
                name,
                name_cut,
                args,
                cuts,
            } => {
                let names = split_text(name, std::slice::from_ref(name_cut));
                e.push(chunk(
                    json!({"tool_calls": [{"index": k, "id": format!("call_{k}"), "type": "function",
                        "function": {"name": names[0], "arguments": ""}}]}),
                    Value::Null,
                ));
                e.push(chunk(
                    json!({"tool_calls": [{"index": k, "function": {"name": names[1]}}]}),
                    Value::Null,
                ));
                for f in split_text(&args.to_string(), cuts) {
                    e.push(chunk(
                        json!({"tool_calls": [{"index": k, "function": {"arguments": f}}]}),
                        Value::Null,
                    ));
                }
                k += 1;
            }
        }
    }
    let finish = if k == 0 { "stop" } else { "tool_calls" };
    e.push(chunk(json!({}), json!(finish)));
    e.push(Ev::Json(
        None,
        json!({"id": s.id, "object": "chat.completion.chunk", "created": 1, "model": s.model,
            "choices": [], "usage": {"prompt_tokens": s.input, "completion_tokens": s.output,
            "total_tokens": s.input + s.output}}),
    ));
    if s.done {
        e.push(Ev::Text(None, "[DONE]".into()));
    }
    e
}

/// GenerateContentResponse objects: one part per chunk (text, thought text,
/// whole functionCall), usage on every chunk, the last with finishReason STOP
/// and no terminal event.
fn gemini_events(s: &Script) -> Vec<Ev> {
    let chunk = |parts: Value, finish: Option<&str>, usage: Value| {
        let mut cand = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
        if let Some(f) = finish {
            cand["finishReason"] = json!(f);
        }
        Ev::Json(
            None,
            json!({"candidates": [cand], "usageMetadata": usage,
                "modelVersion": s.model, "responseId": s.id}),
        )
    };
    let partial = json!({"promptTokenCount": s.input, "totalTokenCount": s.input});
    let mut e = Vec::new();
    for step in &s.steps {
        match step {
            Step::Text(pieces) => {
                for p in pieces {
                    e.push(chunk(json!([{"text": p}]), None, partial.clone()));
                }
            }
            Step::Think(pieces) => {
                for p in pieces {
                    e.push(chunk(
                        json!([{"text": p, "thought": true}]),
                        None,
                        partial.clone(),
                    ));
                }
            }
            Step::Tool { name, args, .. } => {
                e.push(chunk(
                    json!([{"functionCall": {"name": name, "args": args}}]),
                    None,
                    partial.clone(),
                ));
            }
        }
    }
    e.push(chunk(
        json!([{"text": ""}]),
        Some("STOP"),
        json!({"promptTokenCount": s.input, "candidatesTokenCount": s.output,
            "totalTokenCount": s.input + s.output}),
    ));
    e
}

/// /api/chat NDJSON lines: content, thinking and tool_calls lines, then the
/// done line with done_reason and the counts.
fn ollama_events(s: &Script) -> Vec<Ev> {
    let line = |message: Value| {
        Ev::Json(
            None,
            json!({"model": s.model, "created_at": "2025-06-01T10:00:00.000Z",
                "message": message, "done": false}),
        )
    };
    let mut e = Vec::new();
    for step in &s.steps {
        match step {
            Step::Text(pieces) => {
                for p in pieces {
                    e.push(line(json!({"role": "assistant", "content": p})));
                }
            }
            Step::Think(pieces) => {
                for p in pieces {
                    e.push(line(
                        json!({"role": "assistant", "content": "", "thinking": p}),
                    ));
                }
            }
            Step::Tool { name, args, .. } => {
                e.push(line(json!({"role": "assistant", "content": "",
                    "tool_calls": [{"function": {"name": name, "arguments": args}}]})));
            }
        }
    }
    e.push(Ev::Json(
        None,
        json!({"model": s.model, "created_at": "2025-06-01T10:00:01.000Z",
            "message": {"role": "assistant", "content": ""}, "done_reason": "stop", "done": true,
            "total_duration": 1, "prompt_eval_count": s.input, "eval_count": s.output}),
    ));
    e
}

/// A valid Responses API stream for a script: one output item per step.
fn responses_events(s: &Script) -> Vec<Ev> {
    let ev = |v: Value| Ev::Json(v["type"].as_str().map(str::to_string), v);
    let mut e = vec![ev(
        json!({"type": "response.created", "response": {"id": s.id, "model": s.model, "status": "in_progress"}}),
    )];
    let mut calls = 0;
    for (i, step) in s.steps.iter().enumerate() {
        match step {
            Step::Text(pieces) => {
                e.push(ev(
                    json!({"type": "response.output_item.added", "output_index": i,
                    "item": {"type": "message", "id": format!("msg_{i}"), "content": []}}),
                ));
                for p in pieces {
                    e.push(ev(
                        json!({"type": "response.output_text.delta", "output_index": i,
                        "content_index": 0, "delta": p}),
                    ));
                }
            }
            Step::Think(pieces) => {
                e.push(ev(
                    json!({"type": "response.output_item.added", "output_index": i,
                    "item": {"type": "reasoning", "id": format!("rs_{i}"), "summary": []}}),
                ));
                for p in pieces {
                    e.push(ev(json!({"type": "response.reasoning_summary_text.delta",
                        "output_index": i, "summary_index": 0, "delta": p})));
                }
            }
            Step::Tool {
                name, args, cuts, ..
            } => {
                e.push(ev(
                    json!({"type": "response.output_item.added", "output_index": i,
                    "item": {"type": "function_call", "id": format!("fc_{i}"),
                             "call_id": format!("call_{calls}"), "name": name, "arguments": ""}}),
                ));
                for f in split_text(&args.to_string(), cuts) {
                    e.push(ev(json!({"type": "response.function_call_arguments.delta",
                        "output_index": i, "delta": f})));
                }
                e.push(ev(
                    json!({"type": "response.output_item.done", "output_index": i,
                    "item": {"type": "function_call", "id": format!("fc_{i}"),
                             "call_id": format!("call_{calls}"), "name": name,
                             "arguments": args.to_string()}}),
                ));
                calls += 1;
            }
        }
    }
    e.push(ev(
        json!({"type": "response.completed", "response": {"id": s.id, "model": s.model,
        "status": "completed", "usage": {"input_tokens": s.input, "output_tokens": s.output,
        "total_tokens": s.input + s.output}}}),
    ));
    if s.done {
        e.push(Ev::Text(None, "[DONE]".into()));
    }
    e
}

fn valid_events(p: Provider, s: &Script) -> Vec<Ev> {
    match p {
        Provider::Anthropic => anthropic_events(s),
        Provider::OpenAi => openai_events(s),
        Provider::Gemini => gemini_events(s),
        Provider::Ollama => ollama_events(s),
        Provider::Responses => responses_events(s),
    }
}

/// The chunks say what the script said: the texts, the reasoning, the tool
/// calls (id and name on the first fragment, the arguments whole when joined),
/// the usage, the stop reason, the id and model.
fn check_script(p: Provider, s: &Script, decoded: &Decoded) -> Result<(), TestCaseError> {
    let (chunks, err) = decoded;
    prop_assert!(err.is_none(), "{:?}", err);
    let deltas = || chunks.iter().filter_map(|c| c.delta.as_ref());
    let text: String = deltas()
        .filter_map(|d| match d {
            Delta::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    prop_assert_eq!(text, s.texts());
    let thoughts: String = deltas()
        .filter_map(|d| match d {
            Delta::Reasoning(r) => Some(r.text.as_str()),
            _ => None,
        })
        .collect();
    prop_assert_eq!(thoughts, s.thoughts());
    prop_assert!(!deltas().any(|d| matches!(d, Delta::Refusal(_))));

    // Tool calls by index, in the order they start.
    let mut calls: Vec<(u32, String, String, String)> = Vec::new();
    for d in deltas() {
        if let Delta::ToolCall {
            index,
            id,
            name,
            arguments,
        } = d
        {
            match calls.iter_mut().find(|c| c.0 == *index) {
                Some(c) => {
                    prop_assert!(id.is_empty() && name.is_empty(), "id/name again: {:?}", d);
                    c.3.push_str(arguments);
                }
                None => calls.push((*index, id.clone(), name.clone(), arguments.clone())),
            }
        }
    }
    let want = s.tools();
    prop_assert_eq!(calls.len(), want.len(), "{:?}", calls);
    for ((_, id, name, args), (want_name, want_args)) in calls.iter().zip(&want) {
        prop_assert!(!id.is_empty());
        prop_assert_eq!(name.as_str(), *want_name);
        let got: Value = serde_json::from_str(args)
            .map_err(|e| TestCaseError::fail(format!("arguments {args:?}: {e}")))?;
        prop_assert_eq!(&got, *want_args);
        if matches!(p, Provider::Anthropic | Provider::OpenAi) {
            // Streamed fragments: the joined text is the text sent, byte for byte.
            prop_assert_eq!(args, &want_args.to_string());
        }
    }

    let last = chunks.last().unwrap();
    prop_assert!(last.last);
    let usage = last.usage().unwrap();
    prop_assert_eq!((usage.input, usage.output), (s.input, s.output));
    let stop = if want.is_empty() {
        StopReason::EndTurn
    } else {
        StopReason::ToolUse
    };
    prop_assert_eq!(last.stop_reason(), Some(stop));
    let (id, model) = match p {
        Provider::Ollama => (FALLBACK, ""),
        _ => (s.id.as_str(), s.model.as_str()),
    };
    prop_assert!(chunks.iter().all(|c| c.id == id), "ids: {:?}", chunks);
    prop_assert_eq!(chunks[0].model.as_str(), model);
    Ok(())
}

/// Garbage that ends a stream: broken UTF-8, a line that is not JSON.
fn noise(framing: Framing) -> BoxedStrategy<Ev> {
    let lines: Vec<&'static [u8]> = match framing {
        Framing::Sse => vec![
            b"\xff\xfe",
            b"data: \xc3(",
            b"data: {\"type\": \"content_block_delta\", \"index\"",
            b"data: {not json",
            b"\xf0\x9f\x98",
        ],
        Framing::Ndjson => vec![b"\xff\xfe", b"{not json", b"\xf0\x9f\x98", b"[1, 2"],
        Framing::EventStream => unreachable!("text framings only"),
    };
    prop::sample::select(lines)
        .prop_map(|b| Ev::Bytes(b.to_vec()))
        .boxed()
}

proptest! {
    #![proptest_config(config(128))]

    /// A valid stream decodes to what it was generated from, the same under
    /// every split.
    #[test]
    fn valid_streams_decode_to_their_script(
        p in any_provider(),
        s in script(),
        layout in layout(),
        at in split_points(),
    ) {
        let body = render(p.framing(), &valid_events(p, &s), &layout);
        let decoded = check_decoded(p, &body, &at)?;
        check_script(p, &s, &decoded)?;
    }

    /// Garbage before the terminal event ends the stream with an error, the
    /// same error and the same chunks before it under every split.
    #[test]
    fn garbage_before_the_end_is_the_same_error_under_every_split(
        p in any_provider(),
        s in script(),
        layout in layout(),
        junk in (noise(Framing::Sse), noise(Framing::Ndjson)),
        pos in any::<Index>(),
        at in split_points(),
    ) {
        let junk = if p.framing() == Framing::Sse { junk.0 } else { junk.1 };
        let mut events = valid_events(p, &s);
        // Responses: the terminal event is response.completed, before any [DONE].
        let end = events.len() - usize::from(p == Provider::Responses && s.done);
        events.insert(pos.index(end), junk);
        let body = render(p.framing(), &events, &layout);
        let (_, err) = check_decoded(p, &body, &at)?;
        prop_assert!(err.is_some());
    }
}

// ---------------------------------------------------------------------------
// Bugs found by the properties above, kept as minimal cases until fixed.

/// Found by a split-independence property: bytes after the terminal event
/// that the framer rejects (here one invalid UTF-8 line) end a *complete*
/// answer with UPSTREAM_PROTOCOL_ERROR when they arrive in the same read as
/// the terminal event, but are ignored when a read ends right after it. The
/// `last` chunk is sent and then the error follows it. `Pump::feed` decodes
/// the frames completed before the framing error (the terminal one among
/// them) and then returns the framing error even though the relay is done.
#[test]
fn bytes_after_the_terminal_event_are_ignored_whatever_the_split() {
    for (p, body, cut) in [
        (Provider::OpenAi, &b"data: [DONE]\n\n\xff\n"[..], 14),
        (Provider::Ollama, b"{\"done\":true}\n\xff\n", 14),
        (
            Provider::Anthropic,
            b"data: {\"type\":\"message_stop\"}\n\n\xff\n",
            32,
        ),
    ] {
        let whole = run(p, body, &[]);
        let split = run(p, body, &[cut]);
        assert_eq!(
            split.1, None,
            "{p:?}: the answer ended at its terminal event"
        );
        assert_eq!(
            whole, split,
            "{p:?}: one read vs. a read ending at the terminal event"
        );
    }
}

/// The same as a property: a valid stream with garbage anywhere after its
/// terminal event (un-ignore with the fix above).
#[test]
fn garbage_after_the_terminal_event_changes_nothing() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        failure_persistence: None,
        ..config(64)
    });
    let strategy = (
        prop::sample::select(vec![
            Provider::Anthropic,
            Provider::OpenAi,
            Provider::Ollama,
        ]),
        script(),
        layout(),
        (noise(Framing::Sse), noise(Framing::Ndjson)),
        split_points(),
    );
    runner
        .run(&strategy, |(p, mut s, layout, junk, at)| {
            let junk = if p.framing() == Framing::Sse {
                junk.0
            } else {
                junk.1
            };
            s.done = true;
            let mut events = valid_events(p, &s);
            events.push(junk);
            let body = render(p.framing(), &events, &layout);
            let decoded = check_decoded(p, &body, &at)?;
            check_script(p, &s, &decoded)
        })
        .unwrap();
}

/// Every provider is exercised by the shared properties (a guard against a
/// provider added to the list but not to `run`).
#[test]
fn every_provider_decodes_an_empty_body_as_truncated() {
    for p in PROVIDERS {
        let (chunks, err) = run(p, b"", &[]);
        assert!(chunks.is_empty(), "{p:?}");
        assert_eq!(err.map(|e| e.reason), Some("UPSTREAM_TRUNCATED"), "{p:?}");
    }
}
