//! Tests of the aggregator (`aggregate`): chunks in, the final message out.

use super::*;

fn delta(d: Delta) -> Chunk {
    Chunk {
        id: "m1".into(),
        delta: Some(d),
        ..Chunk::default()
    }
}

#[test]
fn merges_text_and_joins_tool_fragments_by_index() {
    let mut agg = Aggregator::new("fake:x");
    let call = |index, id: &str, name: &str, args: &str| Delta::ToolCall {
        index,
        id: id.into(),
        name: name.into(),
        arguments: args.into(),
    };
    for d in [
        Delta::Text("Hel".into()),
        Delta::Text("lo".into()),
        call(0, "a", "f", "{\"x\":"),
        call(1, "b", "g", "{\"y\""),
        call(0, "", "", "1}"),
        call(1, "", "", ": 2"),
    ] {
        agg.push(&delta(d));
    }
    agg.push(&Chunk {
        id: "m1".into(),
        end: Some(Box::new(End {
            usage: Some(Usage {
                input: 3,
                output: 4,
                total: 7,
                ..Usage::default()
            }),
            stop_reason: Some(StopReason::ToolUse),
            ..End::default()
        })),
        last: true,
        ..Chunk::default()
    });
    let m = agg.snapshot();
    assert_eq!(m.id, "m1");
    assert_eq!(m.content, vec![Content::Text("Hello".into())]);
    assert_eq!(m.tool_calls.len(), 1);
    assert_eq!(m.tool_calls[0].id, "a");
    assert_eq!(m.tool_calls[0].arguments["x"], 1);
    assert_eq!(m.invalid_tool_calls.len(), 1);
    assert_eq!(m.invalid_tool_calls[0].arguments, "{\"y\": 2");
    assert!(m.invalid_tool_calls[0].error.contains("not valid JSON"));
    assert_eq!(m.usage.map(|u| u.total), Some(7));
    assert_eq!(m.stop_reason, Some(StopReason::ToolUse));
}

#[test]
fn reasoning_signature_closes_a_block() {
    let mut agg = Aggregator::new("m");
    let r = |t: &str, s: &str| {
        Delta::Reasoning(Reasoning {
            text: t.into(),
            signature: s.into(),
            redacted: String::new(),
        })
    };
    for d in [r("a", ""), r("b", ""), r("", "sig"), r("c", "")] {
        agg.push(&delta(d));
    }
    let m = agg.snapshot();
    assert_eq!(m.content.len(), 2);
    assert_eq!(
        m.content[0],
        Content::Reasoning(Reasoning {
            text: "ab".into(),
            signature: "sig".into(),
            redacted: String::new()
        })
    );
}
