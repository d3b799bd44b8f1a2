//! The protobuf codec of the chat service: prost's, except that a request the
//! server cannot decode is the caller's fault (INVALID_ARGUMENT, saying why),
//! not INTERNAL. The commonest cause is nesting: prost refuses messages nested
//! deeper than 100 levels, and each level of a JSON object or array inside a
//! `google.protobuf.Struct` (tool schemas, tool-call arguments) takes two or
//! three of them, so JSON nested deeper than about 30 levels cannot be decoded.

use std::marker::PhantomData;

use tonic::{
    codec::{BufferSettings, Codec, DecodeBuf, Decoder},
    Status,
};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// How deep JSON (a Struct) may nest in a request, as the README states it.
pub const MAX_JSON_DEPTH: usize = crate::chat::MAX_JSON_DEPTH;

/// A response stream's encode buffer: tonic's default allocates 8 KiB per open
/// stream and keeps it for the stream's life, for messages that are mostly
/// token-sized (tens of bytes). 512 bytes holds a burst of token chunks; a
/// larger message reserves what it needs (nothing is capped), and ready
/// messages are still gathered into one write up to tonic's 32 KiB threshold.
fn encode_buffer() -> BufferSettings {
    BufferSettings::new(512, 32 * 1024)
}

/// prost's codec with caller-facing decode errors.
#[derive(Debug, Clone)]
pub struct ChatCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for ChatCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for ChatCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = RequestDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(encode_buffer())
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder(ProstCodec::<T, U>::raw_decoder(BufferSettings::default()))
    }
}

/// Decodes as prost does; a failure is INVALID_ARGUMENT.
#[derive(Debug)]
pub struct RequestDecoder<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for RequestDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|s| {
            let why = s.message();
            let hint = if why.contains("recursion limit") {
                format!(
                    " (JSON objects in a request, such as tool schemas and arguments, may nest at most {MAX_JSON_DEPTH} levels)"
                )
            } else {
                String::new()
            };
            super::status::invalid_message(&format!(
                "the request could not be decoded as a chatwire.v1 message: {why}{hint}"
            ))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
