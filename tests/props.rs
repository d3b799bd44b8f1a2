//! Property tests: the framer survives anything (hardening, item 11).
//! Arbitrary bytes never panic; a body cut into reads anywhere gives the
//! frames and error of the whole body; frames respect the cap.
//!
//! The seed is fixed and the case counts modest, so a run is quick and the same
//! everywhere. Explore further with, e.g.,
//! `PROPTEST_CASES=5000 PROPTEST_RNG_SEED=$RANDOM cargo test --test props`;
//! proptest keeps a case that fails in `tests/props.proptest-regressions` (to
//! commit) and replays it first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chatwire::{
    error::Error,
    provider::frame::{Frame, Framer, Framing},
};
use proptest::{prelude::*, sample::Index, test_runner::RngSeed};

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
