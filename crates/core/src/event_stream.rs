//! AWS event-stream framing (`application/vnd.amazon.eventstream`), as Bedrock streams
//! ConverseStream and InvokeModelWithResponseStream: binary frames, each a prelude (total and
//! header lengths, CRC), typed headers (`:message-type`, `:event-type`…), a payload and a CRC.
//!
//! [`EventStreamParser`] cuts the bytes of a stream into the events the stream tap reads,
//! whatever the chunking: a frame arrives in as many pieces as the network makes of it, and
//! "need more bytes" is not an error. The frame codec itself (headers, checksums) is
//! `aws-smithy-eventstream`'s, the AWS SDKs' own; what is Bedrock's is here:
//!
//! - a ConverseStream event is named by its `:event-type` (`contentBlockDelta`, `metadata`…)
//!   and its payload is the event's JSON;
//! - an InvokeModelWithResponseStream `chunk` wraps one event of the model's own stream —
//!   Anthropic's, for Claude — as `{"bytes": "<base64>"}`: the event yielded is the unwrapped
//!   JSON, unnamed (the Anthropic tap reads its `type`);
//! - exceptions (`:message-type: exception`) are yielded named by their `:exception-type`.
//!
//! A frame that cannot be read (bad checksum, impossible length) ends the parsing: the bytes
//! still pass through to the client, whose SDK will say what is wrong with them, and the call
//! is recorded from what was read before it.
//!
//! The writers ([`event_frame`], [`chunk_frame`], [`exception_frame`]) are what the gateway
//! ends a broken stream with and what the mock provider streams.

use crate::sse::SseEvent;
use aws_smithy_eventstream::frame::{read_message_from, write_message_to};
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::{Buf, Bytes, BytesMut};
use serde_json::Value;

/// The prelude: total length, headers length, prelude CRC (4 bytes each).
const PRELUDE_BYTES: usize = 12;
/// The smallest frame: a prelude and the message CRC.
const MIN_FRAME_BYTES: usize = PRELUDE_BYTES + 4;
/// The largest frame the parser buffers (AWS caps a frame's payload at 16 MiB; its headers at
/// 128 KiB).
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024 + 128 * 1024 + MIN_FRAME_BYTES;

/// Incremental event-stream decoder: push chunks as they arrive, get complete events out.
#[derive(Debug, Default)]
pub struct EventStreamParser {
    buffer: BytesMut,
    /// A frame could not be read: nothing after it is parsed.
    broken: bool,
}

impl EventStreamParser {
    pub fn new() -> EventStreamParser {
        EventStreamParser::default()
    }

    /// Whether the stream held a frame that could not be read.
    pub fn broken(&self) -> bool {
        self.broken
    }

    /// Feeds a chunk; appends every event it completes to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        if self.broken {
            return;
        }
        self.buffer.extend_from_slice(chunk);
        while self.buffer.len() >= 4 {
            let total = (&self.buffer[..4]).get_u32() as usize;
            if !(MIN_FRAME_BYTES..=MAX_FRAME_BYTES).contains(&total) {
                self.fail();
                return;
            }
            if self.buffer.len() < total {
                return;
            }
            let frame = self.buffer.split_to(total).freeze();
            match read_message_from(frame) {
                Ok(message) => out.extend(event_of(&message)),
                Err(_) => {
                    self.fail();
                    return;
                }
            }
        }
    }

    /// The stream ended: a partial frame left over is not an event.
    pub fn finish(&mut self, _out: &mut Vec<SseEvent>) {
        self.buffer.clear();
    }

    fn fail(&mut self) {
        self.broken = true;
        self.buffer = BytesMut::new();
    }
}

fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|value| value.as_str())
}

/// The event a frame is: named by its event or exception type, its payload the data (a
/// `chunk`'s unwrapped from its base64 `bytes`).
fn event_of(message: &Message) -> Option<SseEvent> {
    let payload = std::str::from_utf8(message.payload()).ok()?;
    let name = match header(message, ":message-type") {
        Some("exception") => header(message, ":exception-type"),
        Some("error") => header(message, ":error-code"),
        _ => header(message, ":event-type"),
    };
    if name == Some("chunk") {
        let wrapped: Value = serde_json::from_str(payload).ok()?;
        let bytes = aws_smithy_types::base64::decode(wrapped.get("bytes")?.as_str()?).ok()?;
        return Some(SseEvent {
            event: None,
            data: String::from_utf8(bytes).ok()?,
        });
    }
    Some(SseEvent {
        event: name.map(str::to_owned),
        data: payload.to_owned(),
    })
}

fn string(name: &'static str, value: &str) -> Header {
    Header::new(name, HeaderValue::String(value.to_owned().into()))
}

fn encode(message: &Message) -> Bytes {
    let mut out = Vec::with_capacity(message.payload().len() + 128);
    // Writing fails only for headers or payloads past the format's limits, which the few
    // short frames the gateway writes never reach; an empty frame is then the safe answer.
    match write_message_to(message, &mut out) {
        Ok(()) => Bytes::from(out),
        Err(_) => Bytes::new(),
    }
}

/// An event frame: `:message-type: event`, its `:event-type`, a JSON payload.
pub fn event_frame(event_type: &str, payload: &Value) -> Bytes {
    let message = Message::new(payload.to_string())
        .add_header(string(":event-type", event_type))
        .add_header(string(":content-type", "application/json"))
        .add_header(string(":message-type", "event"));
    encode(&message)
}

/// An exception frame, as Bedrock ends a stream it cannot finish: `:message-type:
/// exception`, its `:exception-type` (`throttlingException`, `internalServerException`…) and
/// `{"message": …}`. The AWS SDKs raise it as that exception.
pub fn exception_frame(exception_type: &str, message: &str) -> Bytes {
    let payload = serde_json::json!({ "message": message }).to_string();
    let message = Message::new(payload)
        .add_header(string(":exception-type", exception_type))
        .add_header(string(":content-type", "application/json"))
        .add_header(string(":message-type", "exception"));
    encode(&message)
}

/// An InvokeModelWithResponseStream `chunk` frame carrying one event of the model's stream.
pub fn chunk_frame(event: &Value) -> Bytes {
    let bytes = aws_smithy_types::base64::encode(event.to_string());
    event_frame("chunk", &serde_json::json!({ "bytes": bytes }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// A ConverseStream and an InvokeModelWithResponseStream, as Bedrock frames them.
    fn converse_stream() -> Vec<u8> {
        [
            event_frame("messageStart", &json!({"role": "assistant", "p": "abcd"})),
            event_frame(
                "contentBlockDelta",
                &json!({"contentBlockIndex": 0, "delta": {"text": "Hello"}, "p": "abcdefgh"}),
            ),
            event_frame("contentBlockStop", &json!({"contentBlockIndex": 0})),
            event_frame("messageStop", &json!({"stopReason": "end_turn"})),
            event_frame(
                "metadata",
                &json!({"usage": {"inputTokens": 12, "outputTokens": 3, "totalTokens": 15}, "metrics": {"latencyMs": 9}}),
            ),
        ]
        .concat()
    }

    fn invoke_stream() -> Vec<u8> {
        [
            chunk_frame(&json!({"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 7, "output_tokens": 1}}})),
            chunk_frame(&json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}})),
            chunk_frame(&json!({"type": "message_stop", "amazon-bedrock-invocationMetrics": {"inputTokenCount": 7, "outputTokenCount": 2}})),
        ]
        .concat()
    }

    fn parse(chunks: &[&[u8]]) -> (Vec<SseEvent>, bool) {
        let (mut parser, mut events) = (EventStreamParser::new(), Vec::new());
        for chunk in chunks {
            parser.push(chunk, &mut events);
        }
        parser.finish(&mut events);
        (events, parser.broken())
    }

    #[test]
    fn frames_are_events_named_by_their_type_and_chunks_are_unwrapped() {
        let (events, broken) = parse(&[&converse_stream()]);
        assert!(!broken);
        let names: Vec<_> = events.iter().map(|e| e.event.as_deref().unwrap()).collect();
        assert_eq!(
            names,
            [
                "messageStart",
                "contentBlockDelta",
                "contentBlockStop",
                "messageStop",
                "metadata"
            ]
        );
        let metadata: Value = serde_json::from_str(&events[4].data).unwrap();
        assert_eq!(metadata["usage"]["totalTokens"], 15);

        let (events, _) = parse(&[&invoke_stream()]);
        assert_eq!(events.len(), 3);
        assert!(events.iter().all(|e| e.event.is_none()));
        let start: Value = serde_json::from_str(&events[0].data).unwrap();
        assert_eq!(start["type"], "message_start");

        let (events, _) = parse(&[&exception_frame("throttlingException", "slow down")]);
        assert_eq!(events[0].event.as_deref(), Some("throttlingException"));
        assert_eq!(events[0].data, r#"{"message":"slow down"}"#);
    }

    /// Every stream, split at every byte boundary (and byte by byte), decodes to the same events.
    #[test]
    fn streams_split_at_every_byte_decode_the_same() {
        for stream in [converse_stream(), invoke_stream()] {
            let whole = parse(&[&stream]);
            for cut in 0..=stream.len() {
                assert_eq!(parse(&[&stream[..cut], &stream[cut..]]), whole, "cut at {cut}");
            }
            let bytes: Vec<&[u8]> = stream.chunks(1).collect();
            assert_eq!(parse(&bytes), whole, "byte by byte");
        }
    }

    #[test]
    fn a_corrupt_frame_ends_the_parsing_and_a_cut_one_is_no_event() {
        let mut stream = converse_stream();
        let cut = parse(&[&stream[..stream.len() - 1]]);
        assert_eq!(cut.0.len(), 4, "the last frame is incomplete");
        assert!(!cut.1);
        let second = event_frame("messageStart", &json!({"role": "assistant", "p": "abcd"})).len();
        stream[second + 20] ^= 0xff;
        let (events, broken) = parse(&[&stream]);
        assert_eq!(events.len(), 1);
        assert!(broken);
        let (events, broken) = parse(&[&[0xff, 0xff, 0xff, 0xff, 0, 0]]);
        assert!(events.is_empty() && broken, "an impossible length is not waited for");
    }

    proptest! {
        /// Any chunking of any sequence of frames decodes to the frames' events, in order.
        #[test]
        fn any_chunking_of_any_frames_decodes_the_same(
            payloads in prop::collection::vec(("[a-zA-Z]{1,12}", "[ -~]{0,40}"), 0..8),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let frames: Vec<u8> = payloads
                .iter()
                .flat_map(|(name, text)| event_frame(name, &json!({"text": text})).to_vec())
                .collect();
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(frames.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for point in points {
                chunks.push(&frames[start..point]);
                start = point;
            }
            chunks.push(&frames[start..]);
            let (events, broken) = parse(&chunks);
            prop_assert!(!broken);
            prop_assert_eq!(events.len(), payloads.len());
            for (event, (name, text)) in events.iter().zip(&payloads) {
                prop_assert_eq!(event.event.as_deref(), Some(name.as_str()));
                prop_assert_eq!(event.data.clone(), json!({"text": text}).to_string());
            }
        }

        /// Arbitrary bytes never panic the parser, however they are cut.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256), cut in any::<prop::sample::Index>()) {
            let at = cut.index(bytes.len() + 1);
            let _ = parse(&[&bytes[..at], &bytes[at..]]);
        }
    }
}
