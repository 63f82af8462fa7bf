//! The Responses API over a WebSocket: `GET /v1/responses` upgraded, OpenAI's "WebSocket
//! mode", which Codex prefers to HTTP.
//!
//! The client's socket is relayed to a socket the gateway opens to the provider, frame by
//! frame, so what only the provider's socket holds (the connection-local state that lets a
//! `previous_response_id` continue a `store: false` conversation) keeps working. Each
//! `response.create` frame is one call, planned, admitted, metered and recorded exactly as a
//! streamed `POST /v1/responses` is: the virtual key is checked again, the call is attributed
//! (the handshake's `x-goodhart-*` headers apply to every call of the connection), routed, held
//! against its budgets and rate limits, and the provider's events are tapped for usage until
//! the response's terminal event, which records it. A refused call is answered with an `error`
//! frame carrying the status an HTTP answer would have had, and the connection stays open.
//!
//! - **Chaining.** A call continuing the connection's last response sends only its new input;
//!   its budget hold counts the conversation it continues (that response's input and output),
//!   because the provider bills the whole context.
//! - **One response at a time**, as the protocol has it: a `response.create` sent while one is
//!   streaming is refused (`409`), never forwarded, so each call's events are its own.
//! - **Warm-ups** (`generate: false`) that report no tokens are not calls: nothing is recorded.
//! - **Fallback.** If the provider will not open a WebSocket, the handshake is answered `426`
//!   (Codex then uses HTTP at once, rather than retrying); a call routed to another provider
//!   than the connection's reconnects there between calls.
//! - **Ends.** A client that leaves mid-response is recorded as for HTTP (`client_disconnected`,
//!   usage estimated when none was reported); a provider that closes, breaks or goes quiet for
//!   the upstream timeout mid-response gets the call recorded and the client an `error` frame,
//!   then both sockets are closed. At shutdown an idle connection is closed (`1001`), one with
//!   a response streaming is closed when it ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame as ClientClose, Message as ClientMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use goodhart_core::keys::VirtualKey;
use goodhart_core::providers::StreamTap;
use goodhart_core::requests::Endpoint;
use goodhart_core::sse::SseEvent;
use goodhart_core::usage::request_call_id;
use serde::Deserialize;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message as UpstreamMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as UpstreamClose;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::adapter::{self, Adapter};
use super::context::{Proxy, admit, authenticate, new_request_id};
use super::plan;
use super::record::{Outcome, Recording};
use super::upstream::{self, SocketRefused, UpstreamSocket};
use crate::config::Provider;
use crate::errors::GatewayError;
use crate::metrics::CallLabels;

/// The most of one frame from the provider the gateway reads (as for a non-streamed body).
const MAX_UPSTREAM_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// `GET /v1/responses`: the WebSocket handshake. The key is checked and the provider's socket
/// opened before the client's is accepted, so a refusal is an HTTP answer the client can act on.
pub async fn open(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let adapter = adapter::of(goodhart_core::requests::Protocol::OpenAi);
    let (mut parts, _) = request.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(_) => {
            let error = GatewayError::MethodNotAllowed(
                "GET /v1/responses is the Responses API's WebSocket mode (send `Connection: Upgrade` and \
                 `Upgrade: websocket`); create a response over HTTP with POST /v1/responses"
                    .into(),
            );
            return refuse(&proxy, adapter, &error);
        }
    };
    match connect(&proxy, adapter, &parts.uri, &parts.headers).await {
        Ok((key, provider, socket, provider_headers)) => {
            let session = Session {
                proxy: Arc::clone(&proxy),
                adapter,
                key,
                uri: parts.uri,
                headers: parts.headers,
                provider,
                last: None,
            };
            proxy.services.metrics.sockets.inc();
            proxy.services.metrics.sockets_opened.inc();
            let limit = proxy.config.max_body_bytes;
            let mut response = upgrade
                .max_message_size(limit)
                .max_frame_size(limit)
                .on_upgrade(move |client| session.run(client, socket));
            for (name, value) in &provider_headers {
                response.headers_mut().append(name.clone(), value.clone());
            }
            response
        }
        Err(error) => refuse(&proxy, adapter, &error),
    }
}

fn refuse(proxy: &Proxy, adapter: &dyn Adapter, error: &GatewayError) -> Response {
    proxy.services.metrics.error(error.kind());
    error.respond_with(adapter.protocol(), adapter.error_body(error))
}

async fn connect(
    proxy: &Proxy,
    adapter: &'static dyn Adapter,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(Arc<VirtualKey>, String, UpstreamSocket, HeaderMap), GatewayError> {
    let key = authenticate(proxy, headers, uri.query()).await?;
    if proxy.services.recorder.is_failing() {
        return Err(GatewayError::SpoolUnavailable);
    }
    // The model is named only by each call; the connection starts at the protocol's default
    // provider, and moves when a call is routed elsewhere.
    let provider = proxy
        .config
        .listing_provider(adapter.protocol())
        .ok_or_else(|| GatewayError::NoRoute("(WebSocket connection)".into()))?;
    let (socket, provider_headers) = open_upstream(proxy, adapter, provider, uri, headers).await?;
    Ok((key, provider.name.clone(), socket, provider_headers))
}

async fn open_upstream(
    proxy: &Proxy,
    adapter: &dyn Adapter,
    provider: &Provider,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(UpstreamSocket, HeaderMap), GatewayError> {
    let path = adapter.upstream_path(Endpoint::Responses, None);
    let request = upstream::build(adapter, provider, &path, uri, headers, None)?;
    let timeout = proxy.config.upstream_timeout;
    upstream::connect_socket(&proxy.client, provider, request, timeout, MAX_UPSTREAM_FRAME_BYTES)
        .await
        .map_err(|refused| match refused {
            SocketRefused::Status(status) => GatewayError::SocketUnavailable {
                provider: provider.name.clone(),
                status,
            },
            SocketRefused::Failed(error) => error,
        })
}

/// What a client frame asks for (read without building the rest of the frame).
#[derive(Deserialize)]
struct FrameHead<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    previous_response_id: Option<std::borrow::Cow<'a, str>>,
    generate: Option<bool>,
}

/// One client connection.
struct Session {
    proxy: Arc<Proxy>,
    adapter: &'static dyn Adapter,
    key: Arc<VirtualKey>,
    uri: Uri,
    /// The handshake's headers: attribution labels for every call, and what goes up when the
    /// provider's socket is (re)opened.
    headers: HeaderMap,
    /// The provider the upstream socket is open to.
    provider: String,
    /// The connection's last complete response and the tokens of the conversation it closed
    /// (its input and output), which a call continuing it is billed for again.
    last: Option<(String, u64)>,
}

/// The call whose response is streaming.
struct Turn {
    recording: Recording,
    tap: StreamTap,
    first_byte: Option<Instant>,
    /// A `generate: false` warm-up.
    warmup: bool,
}

impl Turn {
    /// Drops a call that never reached the provider (its budget hold is released unrecorded).
    fn discard(self) {
        self.recording.services.metrics.open_streams.dec();
    }
}

/// How a turn ended.
enum Ending {
    /// Its terminal event (`response.completed`, `.incomplete`, `.failed`) arrived.
    Ended,
    /// The provider answered it with an `error` frame carrying this status.
    Refused(u16),
    /// It was cut short: by the client leaving (`true`) or the provider.
    Cut { client_disconnected: bool },
}

/// What the relay loop does next.
enum Step {
    Continue,
    /// Close both sockets (the client's with this frame, if still open).
    Close(Option<ClientClose>),
}

impl Session {
    async fn run(mut self, mut client: WebSocket, mut upstream: UpstreamSocket) {
        // Held until the connection ends, so the gateway's shutdown waits for its last call.
        let _alive = self.proxy.sessions.token();
        let shutdown = self.proxy.shutdown.clone();
        let idle_timeout = self.proxy.config.upstream_timeout;
        let mut turn: Option<Turn> = None;
        // How long the provider has been quiet while a response streams: reset by the start of
        // a response and by each of the provider's frames, not by the client's (its pings).
        let idle = tokio::time::sleep(idle_timeout);
        tokio::pin!(idle);
        let close = loop {
            let step = tokio::select! {
                message = client.recv() => match message {
                    Some(Ok(ClientMessage::Text(text))) => {
                        let was_streaming = turn.is_some();
                        let step = self.client_frame(text.as_str(), &mut turn, &mut client, &mut upstream).await;
                        if !was_streaming && turn.is_some() {
                            idle.as_mut().reset(tokio::time::Instant::now() + idle_timeout);
                        }
                        step
                    }
                    Some(Ok(ClientMessage::Binary(_))) => {
                        let error = GatewayError::BadRequest("frames must be JSON text".into());
                        self.tell(&mut client, &error).await
                    }
                    Some(Ok(ClientMessage::Ping(_) | ClientMessage::Pong(_))) => Step::Continue,
                    Some(Ok(ClientMessage::Close(_))) | Some(Err(_)) | None => {
                        self.end_turn(&mut turn, Ending::Cut { client_disconnected: true });
                        let _ = upstream.close(None).await;
                        break None;
                    }
                },
                message = upstream.next() => {
                    idle.as_mut().reset(tokio::time::Instant::now() + idle_timeout);
                    match message {
                        Some(Ok(UpstreamMessage::Text(text))) => {
                            self.provider_frame(text.as_str(), &mut turn, &mut client).await
                        }
                        Some(Ok(UpstreamMessage::Binary(data))) => forward(&mut client, ClientMessage::Binary(data)).await,
                        Some(Ok(UpstreamMessage::Ping(_) | UpstreamMessage::Pong(_) | UpstreamMessage::Frame(_))) => {
                            Step::Continue
                        }
                        Some(Ok(UpstreamMessage::Close(frame))) => {
                            self.provider_gone(&mut turn, &mut client, "the provider closed the WebSocket").await;
                            Step::Close(frame.map(|frame| ClientClose {
                                code: frame.code.into(),
                                reason: frame.reason.as_str().into(),
                            }))
                        }
                        Some(Err(e)) => {
                            let what = format!("the provider's WebSocket broke: {e}");
                            self.provider_gone(&mut turn, &mut client, &what).await;
                            Step::Close(Some(going_away(1011, "the provider's connection broke")))
                        }
                        None => {
                            self.provider_gone(&mut turn, &mut client, "the provider closed the WebSocket").await;
                            Step::Close(Some(going_away(1011, "the provider closed the connection")))
                        }
                    }
                }
                () = &mut idle, if turn.is_some() => {
                    let error = GatewayError::UpstreamTimeout(idle_timeout.as_secs());
                    self.fail_turn(&mut turn, &mut client, &error).await;
                    Step::Close(Some(going_away(1011, "the provider went quiet mid-response")))
                }
                () = shutdown.cancelled(), if turn.is_none() => {
                    Step::Close(Some(going_away(1001, "the gateway is shutting down")))
                }
            };
            if let Step::Close(frame) = step {
                break Some(frame);
            }
        };
        if let Some(frame) = close {
            self.end_turn(
                &mut turn,
                Ending::Cut {
                    client_disconnected: false,
                },
            );
            let _ = client.send(ClientMessage::Close(frame)).await;
            let _ = upstream
                .close(Some(UpstreamClose {
                    code: CloseCode::Normal,
                    reason: "".into(),
                }))
                .await;
        }
        self.proxy.services.metrics.sockets.dec();
    }

    /// A frame from the client: a `response.create` starts a call; anything else goes up as it is.
    async fn client_frame(
        &mut self,
        text: &str,
        turn: &mut Option<Turn>,
        client: &mut WebSocket,
        upstream: &mut UpstreamSocket,
    ) -> Step {
        let head: FrameHead<'_> = match serde_json::from_str(text) {
            Ok(head) => head,
            Err(e) => {
                let error = GatewayError::BadRequest(format!("frame is not a JSON object: {e}"));
                return self.tell(client, &error).await;
            }
        };
        if head.kind.as_deref() != Some("response.create") {
            return match upstream.send(UpstreamMessage::text(text)).await {
                Ok(()) => Step::Continue,
                Err(e) => {
                    let what = format!("the provider's WebSocket broke: {e}");
                    self.provider_gone(turn, client, &what).await;
                    Step::Close(Some(going_away(1011, "the provider's connection broke")))
                }
            };
        }
        if turn.is_some() {
            return self.tell(client, &GatewayError::ResponseInFlight).await;
        }
        let continues = head
            .previous_response_id
            .as_deref()
            .and_then(|id| self.last.as_ref().filter(|(last, _)| last == id))
            .map_or(0, |(_, context)| *context);
        let warmup = head.generate == Some(false);
        match self.start(text, continues, warmup, upstream).await {
            Ok((started, frame)) => match upstream.send(UpstreamMessage::text(frame)).await {
                Ok(()) => {
                    *turn = Some(started);
                    Step::Continue
                }
                Err(e) => {
                    // Nothing reached the provider: nothing to record, and the hold is released.
                    started.discard();
                    let error = GatewayError::UpstreamUnavailable(format!("the provider's WebSocket broke: {e}"));
                    self.tell(client, &error).await;
                    Step::Close(Some(going_away(1011, "the provider's connection broke")))
                }
            },
            Err(error) => self.tell(client, &error).await,
        }
    }

    /// Plans and admits the call a `response.create` frame makes (moving the upstream socket if
    /// it is routed to another provider); returns it with the frame to send up.
    async fn start(
        &mut self,
        text: &str,
        continues: u64,
        warmup: bool,
        upstream: &mut UpstreamSocket,
    ) -> Result<(Turn, String), GatewayError> {
        let proxy = Arc::clone(&self.proxy);
        let started = (Instant::now(), goodhart_store::now_micros());
        // Checked per call, so a key revoked while the connection is open stops being served.
        self.key = authenticate(&proxy, &self.headers, self.uri.query()).await?;
        if proxy.services.recorder.is_failing() {
            return Err(GatewayError::SpoolUnavailable);
        }
        let planned = plan::plan(
            self.adapter,
            Endpoint::Responses,
            None,
            &self.headers,
            bytes::Bytes::copy_from_slice(text.as_bytes()),
            &self.key,
            &proxy.config,
            started,
        )?;
        if planned.provider.name != self.provider {
            let (socket, _) = open_upstream(&proxy, self.adapter, planned.provider, &self.uri, &self.headers).await?;
            let _ = upstream.close(None).await;
            *upstream = socket;
            self.provider = planned.provider.name.clone();
            self.last = None;
        }
        let frame = String::from_utf8(planned.body.to_vec())
            .map_err(|e| GatewayError::BadRequest(format!("frame is not UTF-8: {e}")))?;
        let mut plan = planned.plan;
        plan.facts.stream = true;
        plan.input_estimate = plan.input_estimate.saturating_add(continues);
        plan.facts.id = request_call_id(&new_request_id());
        let admission = admit(&proxy.services, &plan, &self.key).await?;
        let tap = plan.adapter.stream_tap(Endpoint::Responses);
        let recording = Recording {
            services: Arc::clone(&proxy.services),
            plan,
            admission,
        };
        proxy.services.metrics.open_streams.inc();
        Ok((
            Turn {
                recording,
                tap,
                first_byte: None,
                warmup,
            },
            frame,
        ))
    }

    /// A frame from the provider: tapped for the call streaming, passed down, and the call
    /// recorded when it was the response's last.
    async fn provider_frame(&mut self, text: &str, turn: &mut Option<Turn>, client: &mut WebSocket) -> Step {
        let mut ending = None;
        if let Some(streaming) = turn.as_mut() {
            streaming.first_byte.get_or_insert_with(Instant::now);
            let event = SseEvent {
                event: None,
                data: text.to_owned(),
            };
            streaming.tap.observe(&event);
            if streaming.tap.ended() {
                ending = Some(Ending::Ended);
            } else if let Some(status) = error_status(text) {
                // An error before the response began cost nothing; one after it cut it short.
                ending = Some(if streaming.tap.response_id().is_some() {
                    Ending::Cut {
                        client_disconnected: false,
                    }
                } else {
                    Ending::Refused(status)
                });
            }
        }
        let sent = deliver(client, ClientMessage::text(text)).await;
        match (ending, sent) {
            (Some(ending), Ok(())) => self.end_turn(turn, ending),
            (Some(Ending::Ended), Err(_)) => {
                // The answer was whole when the client left: record it as complete.
                self.end_turn(turn, Ending::Ended);
                return Step::Close(None);
            }
            (_, Err(_)) => {
                self.end_turn(
                    turn,
                    Ending::Cut {
                        client_disconnected: true,
                    },
                );
                return Step::Close(None);
            }
            (None, Ok(())) => {}
        }
        Step::Continue
    }

    /// Records the streaming call, if any, as `ending` says.
    fn end_turn(&mut self, turn: &mut Option<Turn>, ending: Ending) {
        let Some(Turn {
            recording,
            tap,
            first_byte,
            warmup,
        }) = turn.take()
        else {
            return;
        };
        let services = Arc::clone(&recording.services);
        services.metrics.open_streams.dec();
        let (status, complete, client_disconnected) = match ending {
            Ending::Ended => (200, true, false),
            Ending::Refused(status) => (status, true, false),
            Ending::Cut { client_disconnected } => (200, false, client_disconnected),
        };
        services
            .metrics
            .calls
            .get_or_create(&CallLabels {
                endpoint: Endpoint::Responses.as_str(),
                provider: recording.plan.facts.provider.clone(),
                status,
            })
            .inc();
        let response_id = tap.response_id().map(str::to_owned);
        let output_text = tap.output_text().to_owned();
        let reported = tap.finish();
        let tokens = reported.as_ref().map_or(0, |usage| usage.tokens.total());
        // What a continuation of this response will be billed for again: its input and output,
        // or for a warm-up that reports nothing, the input it prepared (as estimated).
        let context = if tokens > 0 {
            tokens
        } else {
            recording.plan.input_estimate
        };
        self.last = match (&response_id, complete && status == 200) {
            (Some(id), true) => Some((id.clone(), context)),
            _ => None,
        };
        if warmup && tokens == 0 && complete {
            // A warm-up that cost nothing is not a call; dropping the recording releases its hold.
            return;
        }
        recording.record(Outcome {
            status,
            reported,
            response_id,
            output_text,
            first_byte,
            upstream_request_id: None,
            complete,
            client_disconnected,
            unanswered: false,
        });
    }

    /// The provider left mid-response: the call is recorded as cut short and the client told.
    async fn provider_gone(&mut self, turn: &mut Option<Turn>, client: &mut WebSocket, what: &str) {
        if turn.is_some() {
            let error = GatewayError::UpstreamUnavailable(what.to_owned());
            self.fail_turn(turn, client, &error).await;
        }
    }

    async fn fail_turn(&mut self, turn: &mut Option<Turn>, client: &mut WebSocket, error: &GatewayError) {
        self.proxy.services.metrics.error(error.kind());
        self.end_turn(
            turn,
            Ending::Cut {
                client_disconnected: false,
            },
        );
        let _ = deliver(client, ClientMessage::text(error.socket_event().to_string())).await;
    }

    /// Answers the client with an `error` frame; the connection stays open.
    async fn tell(&self, client: &mut WebSocket, error: &GatewayError) -> Step {
        self.proxy.services.metrics.error(error.kind());
        forward(client, ClientMessage::text(error.socket_event().to_string())).await
    }
}

/// How long a frame may wait for a client that does not read.
const CLIENT_SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// Sends `message` to the client; a client that will not take it within
/// [`CLIENT_SEND_TIMEOUT`] has gone.
async fn deliver(client: &mut WebSocket, message: ClientMessage) -> Result<(), ()> {
    match tokio::time::timeout(CLIENT_SEND_TIMEOUT, client.send(message)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

async fn forward(client: &mut WebSocket, message: ClientMessage) -> Step {
    match deliver(client, message).await {
        Ok(()) => Step::Continue,
        Err(()) => Step::Close(None),
    }
}

fn going_away(code: u16, reason: &str) -> ClientClose {
    ClientClose {
        code,
        reason: reason.into(),
    }
}

/// The status of a provider's `error` frame (`status` or `status_code`; 500 if it names none).
fn error_status(text: &str) -> Option<u16> {
    if !text.contains("\"error\"") {
        return None;
    }
    let frame: Value = serde_json::from_str(text).ok()?;
    if frame.get("type").and_then(Value::as_str) != Some("error") {
        return None;
    }
    let status = ["status", "status_code"]
        .iter()
        .find_map(|field| frame.get(*field).and_then(Value::as_u64))
        .and_then(|status| u16::try_from(status).ok())
        .unwrap_or(500);
    Some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_frames_are_told_from_events_that_mention_errors() {
        assert_eq!(
            error_status(r#"{"type":"error","status":429,"error":{"code":"rate_limit_exceeded"}}"#),
            Some(429)
        );
        assert_eq!(
            error_status(r#"{"type":"error","status_code":400,"error":{}}"#),
            Some(400)
        );
        assert_eq!(
            error_status(r#"{"type":"error","code":"server_error","message":"x"}"#),
            Some(500)
        );
        assert_eq!(
            error_status(r#"{"type":"response.output_text.delta","delta":"\"error\""}"#),
            None
        );
        assert_eq!(error_status("not json \"error\""), None);
    }
}
