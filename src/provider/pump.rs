//! The one pump: framer → decoder → relay, synchronous. The http shell feeds it
//! whatever reads the socket gives; the tests, the fixture checks and the
//! benches feed it a whole body cut at chosen points. Either way the same code
//! decides what a client gets, including the one truncation rule: an answer is
//! complete only when the relay has sent its `last` chunk (the provider's
//! terminal event, or a decoder that accepts EOF as the end); otherwise the
//! stream ends with UNAVAILABLE (`UPSTREAM_TRUNCATED`), never quietly.

use std::collections::VecDeque;

use super::{
    frame::{Frame, Framer, Framing},
    Decoder, Relay,
};
use crate::{
    chat::{
        budget::{Budget, Reservation},
        types::{Chunk, Part},
    },
    config::DEFAULT_MAX_FRAME_BYTES,
    error::Error,
};

/// One response's framer, decoder and relay (the decoder owned, or borrowed
/// for `'d` by a test that inspects it afterwards).
pub struct Pump<'d> {
    framer: Framer,
    decoder: Box<dyn Decoder + 'd>,
    relay: Relay,
    frames: Vec<Frame>,
    /// The decoder's output for one frame, reused.
    parts: Vec<Part>,
    failed: bool,
    /// The framer's buffer, counted against the replica's budget.
    reserved: Reservation,
}

impl<'d> Pump<'d> {
    /// `max_frame` caps one SSE event or NDJSON line; `fallback_id` is the
    /// message id when the provider gives none.
    pub fn new(
        framing: Framing,
        max_frame: usize,
        decoder: Box<dyn Decoder + 'd>,
        fallback_id: impl Into<String>,
    ) -> Self {
        Self {
            framer: Framer::new(framing, max_frame),
            decoder,
            relay: Relay::new(fallback_id),
            frames: Vec::new(),
            parts: Vec::new(),
            failed: false,
            reserved: Budget::default().reserve(),
        }
    }

    /// The model chunks name until the provider names its own.
    pub fn with_model(mut self, model: &str) -> Self {
        self.relay = std::mem::replace(&mut self.relay, Relay::new("")).with_model(model);
        self
    }

    /// Counts the framer's buffer against `budget`.
    pub fn with_budget(mut self, budget: &Budget) -> Self {
        self.reserved = budget.reserve();
        self
    }

    /// A response metadata entry from outside the body (the upstream's request
    /// id from its headers); it rides on the last chunk.
    pub fn note(&mut self, key: &'static str, value: String) {
        self.relay.note(key, value);
    }

    /// True once the `last` chunk was produced: nothing more may follow.
    pub fn is_done(&self) -> bool {
        self.relay.is_done()
    }

    /// Feeds upstream bytes; the chunks they complete are appended to `out`.
    /// Frames completed before a framing error are still decoded and relayed,
    /// then the error is returned; after an error or the end, input is ignored.
    pub fn feed(&mut self, bytes: &[u8], out: &mut VecDeque<Chunk>) -> Result<(), Error> {
        if self.failed || self.is_done() {
            return Ok(());
        }
        let framed = self.framer.push(bytes, &mut self.frames);
        self.decode(out)?;
        if self.is_done() {
            // The answer is whole: what follows its terminal event (even bytes
            // the framer refuses) is ignored, whatever the read split.
            return Ok(());
        }
        framed.inspect_err(|_| self.failed = true)?;
        self.reserved
            .set(self.framer.buffered())
            .inspect_err(|_| self.failed = true)
    }

    /// The upstream ended: the last frame is flushed, then the truncation rule.
    pub fn finish(&mut self, out: &mut VecDeque<Chunk>) -> Result<(), Error> {
        if self.failed || self.is_done() {
            return Ok(());
        }
        let framed = self.framer.finish(&mut self.frames);
        self.decode(out)?;
        if self.is_done() {
            return Ok(());
        }
        framed.inspect_err(|_| self.failed = true)?;
        if !self.is_done() {
            let parts = self.decoder.finish().inspect_err(|_| self.failed = true)?;
            self.relay.push(parts, out);
        }
        if !self.is_done() {
            self.failed = true;
            return Err(Error::truncated(
                "the upstream stream ended before its terminal event (truncated answer)",
            ));
        }
        Ok(())
    }

    fn decode(&mut self, out: &mut VecDeque<Chunk>) -> Result<(), Error> {
        let mut frames = std::mem::take(&mut self.frames);
        let mut result = Ok(());
        for frame in frames.drain(..) {
            // Nothing is decoded after the end or an error.
            if !self.is_done() && result.is_ok() {
                match self.decoder.decode(&frame, &mut self.parts) {
                    Ok(()) => {
                        self.relay.push(self.parts.drain(..), out);
                        // Room for the usual one or two parts a frame gives,
                        // not more: the buffer lives as long as the stream.
                        if self.parts.capacity() > 2 {
                            self.parts.shrink_to(2);
                        }
                    }
                    Err(e) => {
                        self.parts.clear();
                        self.failed = true;
                        result = Err(upstream_said(e));
                    }
                }
            }
            // Its strings go back to the framer for a later frame.
            self.framer.recycle(frame);
        }
        // The buffers go back for the next read (no new Vec per read or frame).
        self.frames = frames;
        result
    }
}

/// A decoder's error quotes the upstream (its error event, a bad frame): the
/// text is redacted here, where it enters the pipeline.
fn upstream_said(mut e: Error) -> Error {
    e.message = crate::error::redact(&e.message);
    e
}

/// Decodes a whole body delivered in pieces cut at `splits` (as reads would
/// cut it): the chunks a client would get, and the error that would end the
/// stream (truncation included).
pub fn decode_body(
    framing: Framing,
    decoder: &mut dyn Decoder,
    body: &[u8],
    splits: &[usize],
    fallback_id: &str,
) -> (Vec<Chunk>, Option<Error>) {
    let mut pump = Pump::new(
        framing,
        DEFAULT_MAX_FRAME_BYTES,
        Box::new(decoder),
        fallback_id,
    );
    let mut out = VecDeque::new();
    let mut at = 0;
    let mut result = Ok(());
    for &s in splits.iter().filter(|&&s| s <= body.len()) {
        if s >= at && result.is_ok() {
            result = pump.feed(&body[at..s], &mut out);
            at = s;
        }
    }
    let result = result
        .and_then(|()| pump.feed(&body[at..], &mut out))
        .and_then(|()| pump.finish(&mut out));
    (out.into(), result.err())
}

/// A borrowed decoder decodes as the decoder does.
impl<D: Decoder + ?Sized> Decoder for &mut D {
    fn decode(&mut self, frame: &Frame, out: &mut Vec<Part>) -> Result<(), Error> {
        (**self).decode(frame, out)
    }

    fn finish(&mut self) -> Result<Vec<Part>, Error> {
        (**self).finish()
    }
}
