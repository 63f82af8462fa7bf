//! Turning one proxied call into a priced usage record, and the response body that meters a
//! stream as it passes through.
//!
//! A streamed response is forwarded chunk by chunk as the provider sends it; each chunk is
//! also fed to an SSE parser and a [`StreamTap`]. The record is appended to the spool when the
//! provider ends the stream — before the body's end is passed on, so the client never sees a
//! completed response whose usage is not spooled — or when the body is dropped early (the
//! client went away), which also drops the upstream connection and so stops the provider's
//! generation. Usage the provider did not report is estimated and marked so.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use goodhart_core::Micros;
use goodhart_core::fingerprint::Fingerprints;
use goodhart_core::limits::Spent;
use goodhart_core::money::Nanos;
use goodhart_core::pricing::PriceTable;
use goodhart_core::providers::{ReportedUsage, StreamTap};
use goodhart_core::requests::{self, Endpoint};
use goodhart_core::sse::{SseEvent, SseParser};
use goodhart_core::usage::{Attribution, CallMeta, Content, Source, UsageEvent};
use goodhart_store::spool::SpooledEvent;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use serde_json::Value;
use tokio::time::Sleep;

use crate::alerts::Alerter;
use crate::estimate::count_tokens;
use crate::limits::Admission;
use crate::metrics::Metrics;
use crate::recorder::Recorder;

/// Everything known about a call before its response arrives.
pub struct CallContext {
    pub event_id: String,
    pub key_id: String,
    pub attribution: Attribution,
    pub provider: String,
    pub endpoint: Endpoint,
    /// The model name sent upstream (used when the provider does not echo one).
    pub model: String,
    pub started: Instant,
    pub started_at: Micros,
    pub max_tokens: Option<u64>,
    pub stream: bool,
    /// The request body, for prompt fingerprints and estimates.
    pub request: Arc<Value>,
    pub store_content: bool,
    pub prices: Arc<PriceTable>,
    pub recorder: Arc<Recorder>,
    pub metrics: Arc<Metrics>,
    /// The call's hold on its budgets and its key's rate limits, settled with the real usage
    /// when it is recorded (and released if the call ends without a record).
    pub admission: Option<Admission>,
    pub alerter: Alerter,
}

/// What the response told us.
#[derive(Default)]
pub struct CallOutcome {
    pub status: u16,
    pub reported: Option<ReportedUsage>,
    pub response_id: Option<String>,
    pub output_text: String,
    pub first_byte: Option<Instant>,
    pub upstream_request_id: Option<String>,
    /// The response ended as the protocol says a response ends.
    pub complete: bool,
    pub client_disconnected: bool,
}

impl CallContext {
    /// Prices the call, appends its record to the spool and settles its budget reservation.
    pub fn record(mut self, outcome: CallOutcome) {
        let prompt = requests::prompt_text(self.endpoint, &self.request);
        let success = (200..300).contains(&outcome.status);
        let (tokens, estimated) = match &outcome.reported {
            // A stream cut short reports its input but only part of its output.
            Some(reported) if !outcome.complete && success => {
                let mut tokens = reported.tokens;
                tokens.output = tokens.output.max(count_tokens(&outcome.output_text));
                (tokens, true)
            }
            Some(reported) => (reported.tokens, false),
            None if success => {
                let mut tokens = goodhart_core::usage::TokenCounts {
                    input: count_tokens(&prompt.full),
                    ..Default::default()
                };
                if self.endpoint != Endpoint::Embeddings {
                    tokens.output = count_tokens(&outcome.output_text);
                }
                (tokens, true)
            }
            // An error the provider answered before doing any work: nothing was consumed.
            None => (Default::default(), false),
        };
        if estimated {
            self.metrics.estimated.inc();
        }
        let reported_model = outcome.reported.as_ref().and_then(|r| r.model.clone());
        let model = reported_model.unwrap_or_else(|| self.model.clone());
        let finish_reason = outcome.reported.as_ref().and_then(|r| r.finish_reason.clone());
        let prompt_fingerprint = (!prompt.last_turn.is_empty()).then_some(prompt.last_turn.as_str());
        let output = (!outcome.output_text.is_empty()).then_some(outcome.output_text.as_str());
        let fingerprints = Fingerprints::of(prompt_fingerprint, output);
        let content = (self.store_content && (prompt_fingerprint.is_some() || output.is_some())).then(|| Content {
            prompt: Some(prompt.full.clone()),
            completion: output.map(str::to_owned),
        });
        let cost = self.prices.cost_of(Some(&self.provider), &model, &tokens);
        let now = Instant::now();
        let event = UsageEvent {
            id: self.event_id.clone(),
            timestamp: self.started_at,
            attribution: self.attribution.clone(),
            provider: Some(self.provider.clone()),
            model,
            tokens,
            finish_reason,
            fingerprints,
            content,
            source: Source::Gateway,
            estimated,
            call: Some(CallMeta {
                key_id: self.key_id.clone(),
                endpoint: self.endpoint.as_str().to_owned(),
                status: outcome.status,
                stream: self.stream,
                latency_micros: micros(now - self.started),
                ttft_micros: outcome.first_byte.map(|t| micros(t - self.started)),
                max_tokens: self.max_tokens,
                upstream_request_id: outcome.upstream_request_id,
                response_id: outcome.response_id,
                client_disconnected: outcome.client_disconnected,
            }),
        };
        if let Some(admission) = self.admission.take() {
            let crossed = admission.settle(&Spent {
                key_id: &self.key_id,
                who: &event.attribution,
                at: event.timestamp,
                cost: cost.map_or(Nanos::ZERO, |c| c.total()),
                tokens: event.tokens.total(),
            });
            crossed.into_iter().for_each(|alert| self.alerter.raise(alert));
        }
        self.recorder.append(SpooledEvent {
            event,
            cost,
            price_version: self.prices.version().to_owned(),
        });
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A streamed response body that meters what passes through it.
pub struct MeteredStream {
    upstream: Incoming,
    parser: SseParser,
    tap: Option<StreamTap>,
    events: Vec<SseEvent>,
    /// The gateway asked for OpenAI's usage chunk on the client's behalf: drop it again.
    strip_usage_chunk: bool,
    idle_timeout: Duration,
    idle: Pin<Box<Sleep>>,
    call: Option<CallContext>,
    status: u16,
    upstream_request_id: Option<String>,
    first_byte: Option<Instant>,
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("upstream stream failed: {0}")]
    Upstream(#[from] hyper::Error),
    #[error("upstream sent nothing for {0:?}")]
    Idle(Duration),
}

impl MeteredStream {
    pub fn new(
        upstream: Incoming,
        call: CallContext,
        status: u16,
        upstream_request_id: Option<String>,
        strip_usage_chunk: bool,
        idle_timeout: Duration,
    ) -> MeteredStream {
        call.metrics.open_streams.inc();
        MeteredStream {
            upstream,
            parser: SseParser::new(),
            tap: Some(StreamTap::collecting_text(call.endpoint.wire())),
            events: Vec::new(),
            strip_usage_chunk,
            idle_timeout,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
            call: Some(call),
            status,
            upstream_request_id,
            first_byte: None,
        }
    }

    /// Feeds a chunk to the tap; returns what the client should see of it.
    fn tap_chunk(&mut self, chunk: Bytes) -> Bytes {
        self.parser.push(&chunk, &mut self.events);
        let Some(tap) = self.tap.as_mut() else { return chunk };
        if !self.strip_usage_chunk {
            self.events.drain(..).for_each(|event| tap.observe(&event));
            return chunk;
        }
        // Re-emit complete events, minus the usage-only chunk the client did not ask for.
        let mut out = BytesMut::with_capacity(chunk.len());
        for event in self.events.drain(..) {
            tap.observe(&event);
            if is_usage_only_chunk(&event.data) {
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

    #[expect(clippy::expect_used, reason = "the tap is taken only here, together with the call")]
    fn finish(&mut self, complete: bool, client_disconnected: bool) {
        let Some(call) = self.call.take() else { return };
        call.metrics.open_streams.dec();
        let mut tap = self.tap.take().expect("the tap lives as long as the call");
        let mut rest = Vec::new();
        self.parser.finish(&mut rest);
        rest.iter().for_each(|event| tap.observe(event));
        let complete = complete && tap.ended();
        let output_text = tap.output_text().to_owned();
        let response_id = tap.response_id().map(str::to_owned);
        call.record(CallOutcome {
            status: self.status,
            reported: tap.finish(),
            response_id,
            output_text,
            first_byte: self.first_byte,
            upstream_request_id: self.upstream_request_id.take(),
            complete,
            client_disconnected,
        });
    }
}

/// OpenAI's final usage chunk: no choices, only usage.
fn is_usage_only_chunk(data: &str) -> bool {
    data.contains("\"usage\"")
        && serde_json::from_str::<Value>(data).is_ok_and(|chunk| {
            chunk
                .get("choices")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
                && chunk.get("usage").is_some_and(Value::is_object)
        })
}

impl Body for MeteredStream {
    type Data = Bytes;
    type Error = StreamError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        let this = &mut *self;
        if this.call.is_none() {
            return Poll::Ready(None);
        }
        loop {
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
                    this.finish(false, false);
                    return Poll::Ready(Some(Err(StreamError::Upstream(e))));
                }
                Poll::Ready(None) => {
                    this.finish(true, false);
                    return Poll::Ready(None);
                }
                Poll::Pending => {
                    if this.idle.as_mut().poll(cx).is_ready() {
                        this.finish(false, false);
                        return Poll::Ready(Some(Err(StreamError::Idle(this.idle_timeout))));
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
        // Dropped before the provider ended the stream: the client went away.
        self.finish(false, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_usage_chunk_is_stripped() {
        assert!(is_usage_only_chunk(
            r#"{"id":"c","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#
        ));
        assert!(!is_usage_only_chunk(
            r#"{"id":"c","choices":[{"delta":{"content":"usage"}}],"usage":null}"#
        ));
        assert!(!is_usage_only_chunk("[DONE]"));
    }
}
