//! The AWS event-stream binary framing (`application/vnd.amazon.eventstream`,
//! Bedrock's ConverseStream) as frames for the one pump. The bytes are cut into
//! messages, and each message's prelude and message CRCs are checked, by AWS's
//! own decoder (`aws-smithy-eventstream`'s `MessageFrameDecoder`); this module
//! only buffers, caps and names what it gives:
//!
//! - `:message-type` `event` → `Frame { event: <:event-type>, data: <payload> }`
//! - `:message-type` `exception` → `Frame { event: "exception:<:exception-type>", data }`
//! - `:message-type` `error` → `Frame { event: "error:<:error-code>", data: <:error-message> }`
//!
//! A corrupt message (a CRC that does not match, an impossible length) is an
//! error (UPSTREAM_PROTOCOL_ERROR), never skipped: after it nothing can be
//! trusted to start on a message boundary. A message larger than
//! `max_frame_bytes` is refused before it is buffered whole.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::{HeaderValue, Message};
use bytes::BytesMut;

use super::frame::Frame;
use crate::error::{Error, Kind};

/// Cuts event-stream bytes into frames.
#[derive(Debug)]
pub struct EventStreamFramer {
    decoder: MessageFrameDecoder,
    /// Bytes of the message not yet complete (its prelude is held by `decoder`).
    buf: BytesMut,
    max_frame: usize,
    /// Bytes of the current message taken in so far (prelude included).
    current: usize,
}

impl EventStreamFramer {
    pub fn new(max_frame: usize) -> Self {
        Self {
            decoder: MessageFrameDecoder::new(),
            buf: BytesMut::new(),
            max_frame,
            current: 0,
        }
    }

    /// Feeds bytes; complete messages are appended to `out` as frames.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Frame>) -> Result<(), Error> {
        self.buf.extend_from_slice(bytes);
        self.current += bytes.len();
        loop {
            match self.decoder.decode_frame(&mut self.buf) {
                Ok(DecodedFrame::Complete(message)) => {
                    // The message's own bytes; what it did not use starts the next one.
                    let size = self.current - self.buf.len();
                    self.current = self.buf.len();
                    if size > self.max_frame {
                        return Err(too_large(self.max_frame));
                    }
                    out.push(frame(&message)?);
                }
                Ok(DecodedFrame::Incomplete) => break,
                Err(e) => {
                    return Err(Error::protocol(format!(
                        "the upstream sent a corrupt event-stream message: {e}"
                    )))
                }
            }
        }
        if self.current > self.max_frame {
            return Err(too_large(self.max_frame));
        }
        Ok(())
    }

    /// Bytes held for the message not yet complete (what the budget counts).
    pub fn buffered(&self) -> usize {
        self.buf.capacity()
    }

    /// End of input: a message cut short is a truncated stream.
    pub fn finish(&mut self) -> Result<(), Error> {
        if self.current > 0 {
            return Err(Error::truncated(
                "the upstream stream ended in the middle of an event-stream message (truncated answer)",
            ));
        }
        Ok(())
    }
}

fn too_large(max: usize) -> Error {
    Error::new(
        Kind::UpstreamProtocol,
        "UPSTREAM_FRAME_TOO_LARGE",
        format!("the upstream sent an event larger than the {max}-byte cap (max_frame_bytes)"),
    )
}

/// One decoded message as a frame (see the module doc for the naming).
fn frame(message: &Message) -> Result<Frame, Error> {
    let header = |name: &str| -> Option<&str> {
        message
            .headers()
            .iter()
            .find(|h| h.name().as_str() == name)
            .and_then(|h| match h.value() {
                HeaderValue::String(s) => Some(s.as_str()),
                _ => None,
            })
    };
    let payload = || {
        std::str::from_utf8(message.payload())
            .map(str::to_string)
            .map_err(|_| Error::protocol("the upstream sent an event whose payload is not UTF-8"))
    };
    // `:message-type` defaults to an event (AWS's own clients read it so).
    match header(":message-type").unwrap_or("event") {
        "event" => Ok(Frame {
            event: header(":event-type").unwrap_or_default().to_string(),
            data: payload()?,
        }),
        "exception" => Ok(Frame {
            event: format!(
                "exception:{}",
                header(":exception-type").unwrap_or("unknown")
            ),
            data: payload()?,
        }),
        "error" => Ok(Frame {
            event: format!("error:{}", header(":error-code").unwrap_or("unknown")),
            data: header(":error-message").unwrap_or_default().to_string(),
        }),
        other => Err(Error::protocol(format!(
            "the upstream sent an event-stream message of unknown type {:?}",
            crate::error::log_safe(other, 60)
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};

    use super::*;

    fn message(kind: &str, name: &str, payload: &str) -> Vec<u8> {
        let type_header = match kind {
            "event" => ":event-type",
            _ => ":exception-type",
        };
        let m = Message::new(payload.as_bytes().to_vec())
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String(kind.to_string().into()),
            ))
            .add_header(Header::new(
                type_header,
                HeaderValue::String(name.to_string().into()),
            ))
            .add_header(Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ));
        let mut out = Vec::new();
        write_message_to(&m, &mut out).unwrap();
        out
    }

    fn frames(body: &[u8], splits: &[usize], max: usize) -> Result<Vec<Frame>, Error> {
        let mut f = EventStreamFramer::new(max);
        let mut out = Vec::new();
        let mut at = 0;
        for &s in splits {
            f.push(&body[at..s], &mut out)?;
            at = s;
        }
        f.push(&body[at..], &mut out)?;
        f.finish()?;
        Ok(out)
    }

    #[test]
    fn every_two_way_split_gives_the_same_frames() {
        let mut body = message("event", "messageStart", r#"{"role":"assistant"}"#);
        body.extend(message(
            "event",
            "contentBlockDelta",
            "{\"delta\":{\"text\":\"h\u{e9}\"}}",
        ));
        body.extend(message(
            "exception",
            "throttlingException",
            r#"{"message":"slow"}"#,
        ));
        let want = frames(&body, &[], 1 << 20).unwrap();
        assert_eq!(want.len(), 3);
        assert_eq!(want[0].event, "messageStart");
        assert_eq!(want[1].data, "{\"delta\":{\"text\":\"h\u{e9}\"}}");
        assert_eq!(want[2].event, "exception:throttlingException");
        for i in 0..=body.len() {
            for j in (i..=body.len()).step_by(7) {
                assert_eq!(frames(&body, &[i, j], 1 << 20).unwrap(), want, "{i} {j}");
            }
        }
    }

    #[test]
    fn a_bad_crc_anywhere_is_an_error_never_skipped() {
        let good = message("event", "messageStart", r#"{"role":"assistant"}"#);
        // Prelude CRC (bytes 8..12), a header byte, a payload byte, the message CRC.
        for at in [9, 14, good.len() - 6, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x01;
            let mut body = bad;
            body.extend(message("event", "messageStop", "{}"));
            let err = frames(&body, &[], 1 << 20).unwrap_err();
            assert_eq!(err.reason, "UPSTREAM_PROTOCOL_ERROR", "{at}: {err}");
        }
    }

    #[test]
    fn a_cut_message_is_truncation_and_a_large_one_is_refused() {
        let m = message("event", "messageStart", r#"{"role":"assistant"}"#);
        let err = frames(&m[..m.len() - 1], &[], 1 << 20).unwrap_err();
        assert_eq!(err.reason, "UPSTREAM_TRUNCATED");
        let err = frames(&m, &[], 32).unwrap_err();
        assert_eq!(err.reason, "UPSTREAM_FRAME_TOO_LARGE");
        // A length of 4 GiB is refused at the cap, not buffered.
        let mut huge = vec![0xff, 0xff, 0xff, 0xff];
        huge.extend(vec![0u8; 100]);
        assert!(frames(&huge, &[], 64).is_err());
    }
}
