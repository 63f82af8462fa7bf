//! The stream phase: a response body that meters what passes through it.
//!
//! Each chunk is forwarded as the provider sends it, and also fed to an SSE parser and the
//! adapter's stream tap. The record is appended to the spool exactly once: when the provider
//! ends the stream — before the body's end is passed on, so the client never sees a completed
//! response whose usage is not spooled — when the provider's stream breaks or goes idle, or
//! when the body is dropped early (the client went away, which also drops the upstream
//! connection and so stops the provider's generation). Usage the provider did not report is
//! estimated and marked so.
//!
//! A break, an idle timeout or the server's drain deadline after the 200 went out ends the body with an in-band error
//! event in the client's protocol (recorded first), so SDKs raise an error rather than seeing
//! a cut connection or, worse, a short but apparently complete answer. So does an SSE stream
//! the provider ends before its terminal event without an error event of its own (malformed
//! or truncated by a proxy on the way).
//!
//! Streams are framed as SSE, as one JSON array sent element by element (Gemini's default), or
//! as AWS event-stream binary frames (Bedrock's, [`goodhart_core::event_stream`]) — see [`Framing`];
//! whichever, the tap sees one event per chunk of the response.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use goodhart_core::event_stream::EventStreamParser;
use goodhart_core::json_stream::JsonArrayParser;
use goodhart_core::providers::StreamTap;
use goodhart_core::requests::Protocol;
use goodhart_core::sse::{SseEvent, SseParser};
use goodhart_core::translate::{self, ChatToMessagesStream, MessagesToChatStream};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Sleep;
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::errors::GatewayError;
use crate::proxy::adapter::Framing;
use crate::proxy::plan::Translation;
use crate::proxy::record::{Outcome, Recording};

/// The parser of a [`Framing`].
enum Parser {
    Sse(SseParser),
    JsonArray(JsonArrayParser),
    EventStream(EventStreamParser),
}

impl Parser {
    fn new(framing: Framing) -> Parser {
        match framing {
            Framing::Sse => Parser::Sse(SseParser::new()),
            Framing::JsonArray => Parser::JsonArray(JsonArrayParser::new()),
            Framing::EventStream => Parser::EventStream(EventStreamParser::new()),
        }
    }

    fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        match self {
            Parser::Sse(parser) => parser.push(chunk, out),
            Parser::JsonArray(parser) => parser.push(chunk, out),
            Parser::EventStream(parser) => parser.push(chunk, out),
        }
    }

    fn finish(&mut self, out: &mut Vec<SseEvent>) {
        match self {
            Parser::Sse(parser) => parser.finish(out),
            Parser::JsonArray(parser) => parser.finish(out),
            Parser::EventStream(parser) => parser.finish(out),
        }
    }
}

/// A translated stream's rewriting, either way.
enum Translator {
    /// An Anthropic client of an OpenAI provider.
    ToMessages(ChatToMessagesStream),
    /// An OpenAI client of an Anthropic provider.
    ToChat(MessagesToChatStream),
}

impl Translator {
    fn new(translation: &Translation) -> Translator {
        match translation.client {
            Protocol::OpenAi => {
                Translator::ToChat(MessagesToChatStream::new(&translation.model, translation.include_usage))
            }
            _ => Translator::ToMessages(ChatToMessagesStream::new(&translation.model)),
        }
    }

    /// The client's text for one of the provider's events.
    fn event(&mut self, data: &str) -> String {
        match self {
            Translator::ToMessages(stream) => {
                let mut events = Vec::new();
                stream.chunk(data, &mut events);
                translate::messages_sse(&events)
            }
            Translator::ToChat(stream) => {
                let mut chunks = Vec::new();
                stream.event(data, &mut chunks);
                translate::chat_sse(&chunks, false)
            }
        }
    }

    /// The client's text that ends the stream, when the provider ended it (`ended`).
    fn finish(&mut self, ended: bool) -> String {
        match self {
            Translator::ToMessages(stream) => {
                let mut events = Vec::new();
                stream.finish(ended, &mut events);
                translate::messages_sse(&events)
            }
            Translator::ToChat(stream) => translate::chat_sse(&[], ended && stream.stopped()),
        }
    }
}

pub struct MeteredStream {
    upstream: Incoming,
    parser: Parser,
    /// A translated call's events, rewritten into the client's protocol on the way down.
    translator: Option<Translator>,
    tap: StreamTap,
    events: Vec<SseEvent>,
    idle_timeout: Duration,
    idle: Pin<Box<Sleep>>,
    /// Ready when the server's drain deadline has passed ([`crate::Gateway::end_streams`]).
    ended_by_server: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Until the call is recorded.
    call: Option<Recording>,
    status: u16,
    upstream_request_id: Option<String>,
    first_byte: Option<Instant>,
}

impl MeteredStream {
    pub fn new(
        upstream: Incoming,
        framing: Framing,
        call: Recording,
        status: u16,
        upstream_request_id: Option<String>,
        idle_timeout: Duration,
    ) -> MeteredStream {
        call.services.metrics.open_streams.inc();
        MeteredStream {
            upstream,
            parser: Parser::new(framing),
            translator: call.plan.translation.as_ref().map(Translator::new),
            tap: call.plan.adapter.stream_tap(call.plan.endpoint()),
            events: Vec::new(),
            idle_timeout,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
            ended_by_server: Box::pin(call.services.end_streams.clone().cancelled_owned()),
            call: Some(call),
            status,
            upstream_request_id,
            first_byte: None,
        }
    }

    /// Feeds a chunk to the tap; returns what the client should see of it.
    fn tap_chunk(&mut self, chunk: Bytes) -> Bytes {
        self.parser.push(&chunk, &mut self.events);
        let Some(call) = self.call.as_ref() else { return chunk };
        if let Some(translator) = self.translator.as_mut() {
            let mut out = String::new();
            for event in self.events.drain(..) {
                self.tap.observe(&event);
                out.push_str(&translator.event(&event.data));
            }
            return Bytes::from(out);
        }
        if !call.plan.strip_usage_chunk {
            self.events.drain(..).for_each(|event| self.tap.observe(&event));
            return chunk;
        }
        // Re-emit complete events, minus the ones the gateway asked for and the client did not.
        let adapter = call.plan.adapter;
        let mut out = BytesMut::with_capacity(chunk.len());
        for event in self.events.drain(..) {
            self.tap.observe(&event);
            if adapter.hidden(&event) {
                continue;
            }
            if let Some(name) = &event.event {
                out.extend_from_slice(b"event: ");
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"\n");
            }
            for line in event.data.split('\n') {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(line.as_bytes());
                out.extend_from_slice(b"\n");
            }
            out.extend_from_slice(b"\n");
        }
        out.freeze()
    }

    fn finish(&mut self, client_disconnected: bool) {
        let Some(call) = self.call.take() else { return };
        call.services.metrics.open_streams.dec();
        let mut tap = std::mem::replace(&mut self.tap, StreamTap::new(call.plan.endpoint().wire()));
        let mut rest = Vec::new();
        self.parser.finish(&mut rest);
        rest.iter().for_each(|event| tap.observe(event));
        // The terminal event decides, whatever closed the body: a client that hangs up on
        // `response.completed` (Codex does) before the provider's end of body arrives has had
        // the whole answer, and the usage it was told is the usage to record. Only a stream
        // cut before its terminal event is incomplete or abandoned by the client.
        let ended = tap.ended();
        let output_text = tap.output_text().to_owned();
        let response_id = tap.response_id().map(str::to_owned);
        call.record(Outcome {
            status: self.status,
            reported: tap.finish(),
            response_id,
            output_text,
            first_byte: self.first_byte,
            upstream_request_id: self.upstream_request_id.take(),
            complete: ended,
            client_disconnected: client_disconnected && !ended,
            unanswered: false,
        });
    }

    /// The provider ended its body: the last events still in the parser are observed, and
    /// what ends a translated stream is returned (for a stream the provider ended properly;
    /// one cut before its end is not closed as if it had ended).
    fn upstream_ended(&mut self) -> Bytes {
        let mut rest = Vec::new();
        self.parser.finish(&mut rest);
        rest.iter().for_each(|event| self.tap.observe(event));
        let Some(translator) = self.translator.as_mut() else {
            return Bytes::new();
        };
        let mut out = String::new();
        for event in &rest {
            out.push_str(&translator.event(&event.data));
        }
        out.push_str(&translator.finish(self.tap.ended()));
        Bytes::from(out)
    }

    /// Whether the provider ended an SSE stream before its terminal event, and without an error
    /// event of its own. (Gemini's JSON array and Bedrock's frames are left as they end.)
    fn cut_short(&self) -> bool {
        matches!(self.parser, Parser::Sse(_)) && !self.tap.ended() && !self.tap.failed()
    }

    /// Records the call cut short by `error`, and returns the event that tells the client (none
    /// when the terminal event had arrived: then nothing was cut short).
    fn fail(&mut self, error: &GatewayError) -> Option<Bytes> {
        let call = self.call.as_ref()?;
        if self.tap.ended() {
            // After the terminal event the answer is whole: end the body as the provider meant to.
            self.finish(false);
            return None;
        }
        let event = match self.parser {
            // An event, or an event-stream exception frame (Bedrock's).
            Parser::Sse(_) | Parser::EventStream(_) => call.plan.adapter.error_event(error),
            // The array's last element, closing it (or the whole array if nothing went out).
            Parser::JsonArray(_) => {
                let body = call.plan.adapter.error_body(error);
                let opening = if self.first_byte.is_some() { "\r\n," } else { "[" };
                Bytes::from(format!("{opening}{body}]"))
            }
        };
        call.services.metrics.error(error.kind());
        self.finish(false);
        Some(event)
    }
}

impl Body for MeteredStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if this.call.is_none() {
            return Poll::Ready(None);
        }
        loop {
            if this.ended_by_server.as_mut().poll(cx).is_ready() {
                let error = GatewayError::UpstreamUnavailable(
                    "the gateway shut down before the stream ended (limits.drain_secs)".into(),
                );
                return Poll::Ready(this.fail(&error).map(|event| Ok(Frame::data(event))));
            }
            match Pin::new(&mut this.upstream).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let deadline = tokio::time::Instant::now() + this.idle_timeout;
                    this.idle.as_mut().reset(deadline);
                    let Ok(chunk) = frame.into_data() else { continue };
                    this.first_byte.get_or_insert_with(Instant::now);
                    let out = this.tap_chunk(chunk);
                    if out.is_empty() {
                        continue;
                    }
                    return Poll::Ready(Some(Ok(Frame::data(out))));
                }
                Poll::Ready(Some(Err(e))) => {
                    let error = GatewayError::UpstreamUnavailable(format!("the provider's stream broke: {e}"));
                    return Poll::Ready(this.fail(&error).map(|event| Ok(Frame::data(event))));
                }
                Poll::Ready(None) => {
                    let tail = this.upstream_ended();
                    if this.cut_short() {
                        let error = GatewayError::UpstreamUnavailable(
                            "the provider ended its stream before its final event".into(),
                        );
                        let event = this.fail(&error).unwrap_or_default();
                        return Poll::Ready(Some(Ok(Frame::data([tail, event].concat().into()))));
                    }
                    this.finish(false);
                    return Poll::Ready((!tail.is_empty()).then(|| Ok(Frame::data(tail))));
                }
                Poll::Pending => {
                    if this.idle.as_mut().poll(cx).is_ready() {
                        let error = GatewayError::UpstreamTimeout(this.idle_timeout.as_secs());
                        return Poll::Ready(this.fail(&error).map(|event| Ok(Frame::data(event))));
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.call.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for MeteredStream {
    fn drop(&mut self) {
        // Dropped before the provider ended the body: the client went away (before or after
        // the terminal event — `finish` tells the two apart).
        self.finish(true);
    }
}
