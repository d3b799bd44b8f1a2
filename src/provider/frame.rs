//! Framing: upstream bytes → whole frames, for SSE (`text/event-stream`) and
//! NDJSON. Pure and synchronous, so it is tested over every split of a body and
//! benchmarked; the http shell feeds it whatever reads the socket gives.
//!
//! Why not eventsource-stream: its line parser is private (only an async adapter
//! is public, so it cannot be driven synchronously here), it re-parses the
//! pending line on every read (quadratic on one large event arriving in small
//! reads), has no cap on event size and waits forever on invalid UTF-8. This
//! framer is linear: each byte is scanned once for a line end, lines are capped,
//! and a line that is not UTF-8 is an error.

use crate::error::Error;

/// The line buffer's allocation kept between lines: token-sized events fit, a
/// large one grows it on demand and gives the excess back once it is framed.
/// Also the largest frame string `recycle` keeps for the next frame.
const LINE_KEEP: usize = 1024;

/// One upstream frame: an SSE event (`event` empty when the stream gave none)
/// or one NDJSON line (`event` always empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    pub event: String,
    pub data: String,
}

/// The upstream's framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Sse,
    Ndjson,
    /// AWS's binary event stream (Bedrock), cut by `super::eventstream`.
    EventStream,
}

/// Splits bytes into lines (LF, CRLF or lone CR) and lines into frames.
#[derive(Debug)]
pub struct Framer {
    framing: Framing,
    max_frame: usize,
    /// Bytes of the current, unfinished line.
    line: Vec<u8>,
    /// The previous byte was a CR: a following LF belongs to the same line end.
    after_cr: bool,
    /// The SSE event being built.
    event: String,
    data: String,
    has_data: bool,
    /// The binary framer, for `Framing::EventStream` (the line fields then stay empty).
    binary: Option<Box<super::eventstream::EventStreamFramer>>,
}

impl Framer {
    /// `max_frame` caps one event (SSE) or line (NDJSON) in bytes.
    pub fn new(framing: Framing, max_frame: usize) -> Self {
        Self {
            framing,
            max_frame,
            line: Vec::new(),
            after_cr: false,
            event: String::new(),
            data: String::new(),
            has_data: false,
            binary: (framing == Framing::EventStream)
                .then(|| Box::new(super::eventstream::EventStreamFramer::new(max_frame))),
        }
    }

    /// Feeds bytes; complete frames are appended to `out`. A line that ends
    /// within `bytes` and has nothing buffered before it (the common case: a
    /// read holds whole lines) is taken from `bytes` in place, not copied into
    /// the line buffer first.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<Frame>) -> Result<(), Error> {
        if let Some(b) = &mut self.binary {
            return b.push(bytes, out);
        }
        while !bytes.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if bytes[0] == b'\n' {
                    bytes = &bytes[1..];
                    continue;
                }
            }
            match memchr::memchr2(b'\n', b'\r', bytes) {
                Some(pos) => {
                    self.after_cr = bytes[pos] == b'\r';
                    if self.line.is_empty() {
                        self.check_size(pos)?;
                        self.take_line(&bytes[..pos], out)?;
                    } else {
                        self.extend_line(&bytes[..pos])?;
                        self.end_buffered_line(out)?;
                    }
                    bytes = &bytes[pos + 1..];
                }
                None => {
                    self.extend_line(bytes)?;
                    bytes = &[];
                }
            }
        }
        Ok(())
    }

    /// Bytes held for the event or line not yet complete, and the token-sized
    /// buffers kept for the next one (`recycle`): what the budget counts.
    pub fn buffered(&self) -> usize {
        self.binary.as_ref().map_or(0, |b| b.buffered())
            + self.line.capacity()
            + self.data.capacity()
            + self.event.capacity()
    }

    /// End of input: a last line or event without its terminator still counts
    /// (some servers omit the final blank line).
    pub fn finish(&mut self, out: &mut Vec<Frame>) -> Result<(), Error> {
        if let Some(b) = &mut self.binary {
            return b.finish();
        }
        if !self.line.is_empty() {
            self.end_buffered_line(out)?;
        }
        if self.framing == Framing::Sse {
            self.dispatch(out);
        }
        Ok(())
    }

    /// A line of `len` more bytes must keep the event within the cap.
    fn check_size(&self, len: usize) -> Result<(), Error> {
        if self.line.len() + len + self.data.len() > self.max_frame {
            return Err(too_large(self.max_frame));
        }
        Ok(())
    }

    fn extend_line(&mut self, part: &[u8]) -> Result<(), Error> {
        self.check_size(part.len())?;
        self.line.extend_from_slice(part);
        Ok(())
    }

    /// The buffered line is whole: taken like any line. The buffer keeps its
    /// allocation for the next line (cleared, not dropped), and gives it back
    /// only when an outsized line grew it.
    fn end_buffered_line(&mut self, out: &mut Vec<Frame>) -> Result<(), Error> {
        let line = std::mem::take(&mut self.line);
        let result = self.take_line(&line, out);
        self.line = line;
        self.line.clear();
        if self.line.capacity() > LINE_KEEP {
            self.line.shrink_to(LINE_KEEP);
        }
        result
    }

    /// One whole line (without its line end): checked as UTF-8, then copied
    /// once into its frame. Its size is the caller's to check (`check_size`).
    fn take_line(&mut self, line: &[u8], out: &mut Vec<Frame>) -> Result<(), Error> {
        let Ok(text) = std::str::from_utf8(line) else {
            return Err(Error::protocol(
                "the upstream sent a line that is not valid UTF-8",
            ));
        };
        match self.framing {
            Framing::Ndjson => {
                if !text.trim().is_empty() {
                    // Into the recycled buffer when there is one (`recycle`).
                    let mut data = std::mem::take(&mut self.data);
                    data.clear();
                    data.push_str(text);
                    out.push(Frame {
                        event: String::new(),
                        data,
                    });
                }
                Ok(())
            }
            Framing::Sse => self.sse_line(text, out),
            // Handled by `binary` before any line is cut.
            Framing::EventStream => Ok(()),
        }
    }

    fn sse_line(&mut self, line: &str, out: &mut Vec<Frame>) -> Result<(), Error> {
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        // A leading BOM is ignored (WHATWG); comments start with ':'.
        let line = line.strip_prefix('\u{feff}').unwrap_or(line);
        if line.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
                if self.data.len() > self.max_frame {
                    return Err(too_large(self.max_frame));
                }
            }
            // `id` and `retry` matter to browsers reconnecting, not to a relay.
            _ => {}
        }
        Ok(())
    }

    /// A frame the caller is done with: its strings become the buffers of a
    /// later frame, so a stream of token-sized events allocates none per event.
    /// Only token-sized ones are kept (no more than `LINE_KEEP` bytes each),
    /// and only into an empty place: at most one frame's worth is held.
    pub fn recycle(&mut self, frame: Frame) {
        if self.binary.is_some() {
            return;
        }
        let Frame {
            mut event,
            mut data,
        } = frame;
        if self.data.capacity() == 0 && data.capacity() <= LINE_KEEP {
            data.clear();
            self.data = data;
        }
        if self.event.capacity() == 0 && event.capacity() <= LINE_KEEP {
            event.clear();
            self.event = event;
        }
    }

    fn dispatch(&mut self, out: &mut Vec<Frame>) {
        if self.has_data {
            out.push(Frame {
                event: std::mem::take(&mut self.event),
                data: std::mem::take(&mut self.data),
            });
        } else {
            self.event.clear();
        }
        self.has_data = false;
    }
}

fn too_large(max: usize) -> Error {
    Error::new(
        crate::error::Kind::UpstreamProtocol,
        "UPSTREAM_FRAME_TOO_LARGE",
        format!("the upstream sent an event larger than the {max}-byte cap (max_frame_bytes)"),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A decoded frame's strings come back as the next frame's buffers (the
    /// same allocations, told by their capacity, cleared), outsized ones are
    /// not kept, and the binary framer ignores them.
    #[test]
    fn recycled_frames_give_their_buffers_to_the_next_frame() {
        let spent = || Frame {
            event: String::with_capacity(555),
            data: String::with_capacity(777) + "old",
        };
        let mut f = Framer::new(Framing::Sse, 1 << 20);
        let mut out = Vec::new();
        f.push(b"event: a\ndata: first\n\n", &mut out).unwrap();
        out.clear();
        f.recycle(spent());
        f.push(b"event: b\ndata: 2\n\n", &mut out).unwrap();
        let second = out.pop().unwrap();
        assert_eq!((second.event.as_str(), second.data.as_str()), ("b", "2"));
        assert_eq!(
            (second.event.capacity(), second.data.capacity()),
            (555, 777)
        );
        // An outsized frame's buffer is dropped, not kept.
        f.recycle(Frame {
            event: String::new(),
            data: "x".repeat(LINE_KEEP + 1),
        });
        assert_eq!(f.data.capacity(), 0);
        // NDJSON lines take the recycled buffer too.
        let mut n = Framer::new(Framing::Ndjson, 1 << 20);
        n.recycle(spent());
        n.push(b"{\"b\":2}\n", &mut out).unwrap();
        let line = out.pop().unwrap();
        assert_eq!(
            (line.data.as_str(), line.data.capacity()),
            ("{\"b\":2}", 777)
        );
        // The binary framer has no line buffers to fill.
        let mut b = Framer::new(Framing::EventStream, 1 << 20);
        b.recycle(spent());
        assert_eq!(b.data.capacity(), 0);
    }

    fn frames(framing: Framing, body: &[u8], split: &[usize]) -> Result<Vec<Frame>, Error> {
        let mut f = Framer::new(framing, 1 << 20);
        let mut out = Vec::new();
        let mut at = 0;
        for &s in split {
            f.push(&body[at..s], &mut out)?;
            at = s;
        }
        f.push(&body[at..], &mut out)?;
        f.finish(&mut out)?;
        Ok(out)
    }

    #[test]
    fn sse_every_two_way_split_gives_the_same_frames() {
        let body = "event: a\r\ndata: h\u{e9}llo \u{1f600}\r\n\r\n: ping\r\ndata: x\r\ndata:y\r\r\ndata: last".as_bytes();
        let want = frames(Framing::Sse, body, &[]).unwrap_or_default();
        assert_eq!(
            want,
            vec![
                Frame {
                    event: "a".into(),
                    data: "h\u{e9}llo \u{1f600}".into()
                },
                Frame {
                    event: String::new(),
                    data: "x\ny".into()
                },
                Frame {
                    event: String::new(),
                    data: "last".into()
                },
            ]
        );
        for i in 0..=body.len() {
            for j in i..=body.len() {
                assert_eq!(frames(Framing::Sse, body, &[i, j]).ok(), Some(want.clone()));
            }
        }
    }

    #[test]
    fn ndjson_lines_and_caps() {
        let body = b"{\"a\":1}\n\n{\"b\":2}\r\n{\"c\":3}";
        let got = frames(Framing::Ndjson, body, &[3]).unwrap_or_default();
        assert_eq!(got.len(), 3);
        assert_eq!(got[2].data, "{\"c\":3}");

        let mut f = Framer::new(Framing::Sse, 16);
        let mut out = Vec::new();
        let err = f.push(b"data: 0123456789abcdefXYZ", &mut out).err();
        assert_eq!(err.map(|e| e.reason), Some("UPSTREAM_FRAME_TOO_LARGE"));
        let mut f = Framer::new(Framing::Sse, 16);
        let err = f
            .push(b"data: 0123456789\ndata: 0123456789\n", &mut out)
            .err();
        assert_eq!(err.map(|e| e.reason), Some("UPSTREAM_FRAME_TOO_LARGE"));
        // Whole lines over the cap within one read (taken in place, not buffered).
        let mut f = Framer::new(Framing::Ndjson, 16);
        let err = f.push(b"{\"a\":\"0123456789abcdef\"}\n", &mut out).err();
        assert_eq!(err.map(|e| e.reason), Some("UPSTREAM_FRAME_TOO_LARGE"));
        let mut f = Framer::new(Framing::Sse, 16);
        let err = f.push(b"event: 0123456789abcdef\n", &mut out).err();
        assert_eq!(err.map(|e| e.reason), Some("UPSTREAM_FRAME_TOO_LARGE"));
    }

    #[test]
    fn invalid_utf8_is_an_error_not_a_hang() {
        let mut f = Framer::new(Framing::Sse, 1024);
        let mut out = Vec::new();
        assert!(f.push(b"data: \xff\xfe\n", &mut out).is_err());
    }
}
