//! A mock LLM provider that speaks OpenAI's, Anthropic's, Gemini's and Bedrock's wire protocols.
//!
//! It answers the routes real clients call — chat completions, responses, embeddings, models,
//! messages and count_tokens, Gemini's generateContent, streamGenerateContent (SSE with
//! `alt=sse`, else a JSON array), countTokens and models — with the providers' body shapes
//! and event sequences,
//! including usage blocks, cache tokens and finish/stop reasons (and the Responses API's
//! WebSocket mode on `GET /v1/responses`), so the gateway, the demo and
//! the benchmarks meter exactly what a real provider would report. Faults are chosen by a
//! substring of the model name:
//!
//! | in the model name | behaviour |
//! | --- | --- |
//! | `slow` | 1 s before the first byte, 50 ms between stream events |
//! | `error-before` | an error status and body before anything is streamed (500 / 529 overloaded) |
//! | `rate-limited` | 429 with `retry-after: 1` |
//! | `error-mid` | a stream that starts, then ends with an in-band error event and no usage |
//! | `no-usage` | a response without any usage |
//! | `long` | a 4,000-word reply |
//! | `reason` | OpenAI-style reasoning tokens (64) counted inside the completion tokens |
//! | `linger` | a stream whose body ends 1 s after its last event, as live APIs' may |
//! | `fault-hang` | a stream that stops half-way and never sends another byte |
//! | `fault-reset` | a stream whose connection breaks half-way (no end of body) |
//! | `fault-garbage` | a stream that turns to malformed bytes half-way, then ends without its final event |
//! | `fault-huge` | a stream with a 20 MiB event half-way (then the rest, usage included) |
//!
//! Bedrock's runtime (`/model/{modelId}/…`) is served too: Converse and ConverseStream (usage
//! as Converse counts it, the stream in AWS event-stream frames ending with `metadata`), and
//! InvokeModel and InvokeModelWithResponseStream with Anthropic bodies (`anthropic_version:
//! "bedrock-2023-05-31"`, the model from the path; each stream event in a `chunk` frame, the
//! last with `amazon-bedrock-invocationMetrics`). Its errors are AWS's (`{"message"}` named by
//! `x-amzn-ErrorType`; exception frames mid-stream). Signatures are not checked.
//!
//! Anthropic's `message_delta` repeats the cumulative input and cache counts beside the
//! output, as the live API does (clients such as LangChain read streamed usage only there).
//! Token counts are deterministic: prompt tokens are the request's text characters / 4; the
//! reply is a fixed sentence padded with filler words, one token per word, cut at the
//! request's `max_tokens`. Requests marked with Anthropic `cache_control` read three quarters
//! of their prompt from cache; OpenAI prompts of 1,024 tokens or more have their first
//! multiple of 128 tokens cached, Gemini prompts of that size half of theirs (implicit
//! caching), and Gemini's `reason` and Pro models think 64 tokens (`thoughtsTokenCount`).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use goodhart_core::event_stream;
use serde_json::{Value, json};

const GREETING: &str = "Hello from the mock LLM.";
const DEFAULT_REPLY_WORDS: u64 = 16;
const LONG_REPLY_WORDS: u64 = 4_000;
const REASONING_TOKENS: u64 = 64;

/// The provider's routes (with and without the `/v1` prefix, as some clients omit it), under
/// `/http-only/v1` the same API without the WebSocket mode, as a provider that has not
/// adopted it serves it, Azure OpenAI's: `/openai/v1/…` and a deployment's
/// `/openai/deployments/{deployment}/…` (which answers with the deployment's name as its model),
/// and Vertex AI's publisher models under `/v1/projects/{project}/locations/{location}/…`.
pub fn router() -> Router {
    let http = Router::new()
        .route("/chat/completions", post(chat_completions))
        .route("/responses", post(responses))
        .route("/embeddings", post(embeddings))
        .route("/models", get(models))
        .route("/messages", post(messages))
        .route("/messages/count_tokens", post(count_tokens));
    let api = http.clone().route("/responses", get(responses_socket));
    Router::new()
        .nest("/v1", api.clone())
        .merge(api)
        .nest("/http-only/v1", http.clone())
        .nest("/openai/v1", http)
        .route("/openai/deployments/{deployment}/chat/completions", post(azure_chat))
        .route("/openai/deployments/{deployment}/embeddings", post(azure_embeddings))
        .route("/v1beta/models/{target}", post(gemini))
        .route(
            "/v1/projects/{project}/locations/{location}/publishers/anthropic/models/{target}",
            post(vertex_anthropic),
        )
        .route(
            "/v1/projects/{project}/locations/{location}/publishers/google/models/{target}",
            post(vertex_gemini),
        )
        .route("/v1beta/models", get(gemini_models))
        .route("/model/{model}/{operation}", post(bedrock))
        .route("/health", get(|| async { "ok" }))
}

/// Connections that send each write at once, as a provider's do: with Nagle's algorithm on,
/// a small write waiting for the client's delayed ACK would add 40 ms to every streamed
/// response and WebSocket frame.
fn without_nagle(
    listener: tokio::net::TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = SocketAddr> {
    listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    })
}

/// Serves the mock on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(without_nagle(listener), router()).await
}

/// The mock serving on a loopback port until [`MockProvider::shutdown`]: what `goodhart serve`
/// and the demo run for the protocols no provider key is set for.
pub struct MockProvider {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl MockProvider {
    /// Binds a loopback port and serves the mock on it.
    pub async fn start() -> std::io::Result<MockProvider> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        #[expect(clippy::disallowed_methods, reason = "shutdown awaits it")]
        let task = tokio::spawn(async move {
            axum::serve(without_nagle(listener), router())
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(MockProvider { addr, stop, task })
    }

    /// `http://127.0.0.1:PORT`: the base URL of both protocols (OpenAI's under `/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting and waits for the calls in flight to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        if let Ok(Err(e)) = self.task.await {
            eprintln!("mock provider: {e}");
        }
    }
}

/// Binds a loopback port and serves the mock in the background for as long as the runtime
/// runs (tests that need no shutdown).
pub async fn spawn() -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    #[expect(clippy::disallowed_methods, reason = "a test's mock lives as long as its runtime")]
    tokio::spawn(serve(listener));
    Ok(addr)
}

/// What the model name asks the mock to do.
#[derive(Debug, Clone, Copy, Default)]
struct Faults {
    slow: bool,
    error_before: bool,
    rate_limited: bool,
    error_mid: bool,
    no_usage: bool,
    long: bool,
    reasoning: bool,
    linger: bool,
    /// What becomes of a stream half-way through.
    midway: Option<Midway>,
}

/// A stream fault that strikes half-way through the frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Midway {
    Hang,
    Reset,
    Garbage,
    Huge,
}

/// Malformed stream bytes: invalid UTF-8, a line without a field, a `data` line that is not
/// JSON, an unterminated JSON object.
const GARBAGE: &[u8] =
    b"\xff\xfe\x00garbage\nnot a field line\ndata: {\"half\": \ndata: }{][\n\n:\x80\x81\ndata: {\"type\":\n";

/// The size of a `fault-huge` stream's giant event.
const HUGE_EVENT_BYTES: usize = 20 * 1024 * 1024;

impl Faults {
    fn of(model: &str) -> Faults {
        Faults {
            slow: model.contains("slow"),
            error_before: model.contains("error-before"),
            rate_limited: model.contains("rate-limited"),
            error_mid: model.contains("error-mid"),
            no_usage: model.contains("no-usage"),
            long: model.contains("long"),
            reasoning: model.contains("reason"),
            linger: model.contains("linger"),
            midway: [
                ("fault-hang", Midway::Hang),
                ("fault-reset", Midway::Reset),
                ("fault-garbage", Midway::Garbage),
                ("fault-huge", Midway::Huge),
            ]
            .into_iter()
            .find_map(|(name, fault)| model.contains(name).then_some(fault)),
        }
    }
}

/// The parts of a request the mock looks at.
struct Ask {
    model: String,
    stream: bool,
    include_usage: bool,
    max_tokens: Option<u64>,
    prompt_tokens: u64,
    cache_marked: bool,
    faults: Faults,
}

fn text_chars(value: &Value) -> u64 {
    match value {
        Value::String(s) => s.chars().count() as u64,
        Value::Array(items) => items.iter().map(text_chars).sum(),
        Value::Object(fields) => fields
            .iter()
            .filter(|(k, _)| {
                matches!(
                    k.as_str(),
                    "content"
                        | "text"
                        | "input"
                        | "system"
                        | "messages"
                        | "instructions"
                        | "contents"
                        | "parts"
                        | "systemInstruction"
                )
            })
            .map(|(_, v)| text_chars(v))
            .sum(),
        _ => 0,
    }
}

fn ask(body: &Value) -> Ask {
    let model = body.get("model").and_then(Value::as_str).unwrap_or("mock").to_owned();
    let max_tokens = ["max_tokens", "max_completion_tokens", "max_output_tokens"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_u64))
        .or_else(|| {
            ["/generationConfig/maxOutputTokens", "/inferenceConfig/maxTokens"]
                .iter()
                .find_map(|pointer| body.pointer(pointer).and_then(Value::as_u64))
        });
    Ask {
        faults: Faults::of(&model),
        model,
        stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        include_usage: body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        max_tokens,
        prompt_tokens: text_chars(body).div_ceil(4).max(1),
        cache_marked: {
            let text = body.to_string();
            text.contains("cache_control") || text.contains("cachePoint")
        },
    }
}

/// The reply's words, and whether `max_tokens` cut it.
fn reply(ask: &Ask) -> (Vec<String>, bool) {
    let wanted = if ask.faults.long {
        LONG_REPLY_WORDS
    } else {
        DEFAULT_REPLY_WORDS
    };
    let mut words: Vec<String> = GREETING.split(' ').map(str::to_owned).collect();
    let filler = ["lorem", "ipsum", "dolor", "sit", "amet"];
    while (words.len() as u64) < wanted {
        words.push(filler[words.len() % filler.len()].to_owned());
    }
    let limit = ask.max_tokens.unwrap_or(u64::MAX);
    let truncated = (words.len() as u64) > limit;
    words.truncate(limit.min(words.len() as u64) as usize);
    (words, truncated)
}

fn request_id(prefix: &str) -> String {
    format!("{prefix}{:016x}", rand::random::<u64>())
}

/// A streamed body from SSE frames, paced when the request asked to be slow.
/// The gap a `linger` stream leaves between its last event and the end of its body.
const LINGER: Duration = Duration::from_secs(1);

fn sse(frames: Vec<String>, faults: Faults, request_id_header: (&'static str, String)) -> Response {
    let frames = frames.into_iter().map(Bytes::from).collect();
    streamed(frames, faults, "text/event-stream", request_id_header)
}

/// A streamed body of `content_type` from its frames, paced when the request asked to be slow.
fn streamed(
    frames: Vec<Bytes>,
    faults: Faults,
    content_type: &'static str,
    request_id_header: (&'static str, String),
) -> Response {
    let half = frames.len() / 2;
    // The frames still to send, and how many went out (`None` once a fault ended the body).
    let state = (frames.into_iter(), Some(0));
    let stream = futures_util::stream::unfold(state, move |(mut rest, sent)| async move {
        let sent = sent?;
        if sent == half {
            match faults.midway {
                Some(Midway::Hang) => std::future::pending::<()>().await,
                Some(Midway::Reset) => {
                    // What went before is on the wire first: the break comes after the headers.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let broken = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "fault-reset");
                    return Some((Err(broken), (rest, None)));
                }
                Some(Midway::Garbage) => return Some((Ok(Bytes::from_static(GARBAGE)), (rest, None))),
                Some(Midway::Huge) => {
                    let mut event = Vec::with_capacity(HUGE_EVENT_BYTES + 8);
                    event.extend_from_slice(b"data: ");
                    event.resize(HUGE_EVENT_BYTES + 6, b'x');
                    event.extend_from_slice(b"\n\n");
                    return Some((Ok(Bytes::from(event)), (rest, Some(sent + 1))));
                }
                None => {}
            }
        }
        let Some(frame) = rest.next() else {
            if faults.linger {
                tokio::time::sleep(LINGER).await;
            }
            return None;
        };
        if faults.slow {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some((Ok::<Bytes, std::io::Error>(frame), (rest, Some(sent + 1))))
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static(content_type));
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&request_id_header.1) {
        headers.insert(request_id_header.0, value);
    }
    response
}

fn json_response(status: StatusCode, body: Value, request_id_header: (&'static str, String)) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&request_id_header.1) {
        response.headers_mut().insert(request_id_header.0, value);
    }
    response
}

/// An error answer: `body` with a request id in the provider's `id_header`, and `retry-after`
/// on a 429.
fn error_response(status: StatusCode, body: Value, id_header: &'static str) -> Response {
    let mut response = json_response(status, body, (id_header, request_id("req_")));
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
    }
    response
}

fn openai_error(status: StatusCode, kind: &str, message: &str) -> Response {
    error_response(
        status,
        json!({"error": {"message": message, "type": kind, "param": null, "code": kind}}),
        "x-request-id",
    )
}

fn anthropic_error(status: StatusCode, kind: &str, message: &str) -> Response {
    error_response(
        status,
        json!({"type": "error", "error": {"type": kind, "message": message}}),
        "request-id",
    )
}

/// Reads the request and applies the faults that strike before any byte of a response.
async fn begin(body: &Bytes, anthropic: bool) -> Result<(Value, Ask), Response> {
    let body: Value = serde_json::from_slice(body).map_err(|e| {
        let message = format!("invalid JSON body: {e}");
        if anthropic {
            anthropic_error(StatusCode::BAD_REQUEST, "invalid_request_error", &message)
        } else {
            openai_error(StatusCode::BAD_REQUEST, "invalid_request_error", &message)
        }
    })?;
    let ask = ask(&body);
    match early_fault(&ask, anthropic).await {
        Some(response) => Err(response),
        None => Ok((body, ask)),
    }
}

/// OpenAI usage: prompt tokens include cached ones, completion tokens include reasoning.
fn openai_usage(ask: &Ask, output_words: u64, responses_api: bool) -> Value {
    let cached = if ask.prompt_tokens >= 1024 {
        ask.prompt_tokens / 128 * 128
    } else {
        0
    };
    let reasoning = if ask.faults.reasoning { REASONING_TOKENS } else { 0 };
    let completion = output_words + reasoning;
    if responses_api {
        json!({"input_tokens": ask.prompt_tokens, "input_tokens_details": {"cached_tokens": cached},
               "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": reasoning},
               "total_tokens": ask.prompt_tokens + completion})
    } else {
        json!({"prompt_tokens": ask.prompt_tokens, "completion_tokens": completion,
               "total_tokens": ask.prompt_tokens + completion,
               "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
               "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0,
                                             "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}})
    }
}

/// Whether the request must fail before any byte of a response, and how.
/// A fault that strikes before any byte of an answer, in every protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EarlyFault {
    /// `rate-limited`: a 429.
    RateLimited,
    /// `error-before`: the provider fails (500, or Anthropic's 529 overloaded).
    Failed,
}

/// The fault a request's model asks for before its answer, after the pause a `slow` model takes.
async fn early_fault_of(ask: &Ask) -> Option<EarlyFault> {
    if ask.faults.slow {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    if ask.faults.rate_limited {
        Some(EarlyFault::RateLimited)
    } else if ask.faults.error_before {
        Some(EarlyFault::Failed)
    } else {
        None
    }
}

async fn early_fault(ask: &Ask, anthropic: bool) -> Option<Response> {
    let fault = early_fault_of(ask).await?;
    Some(match (fault, anthropic) {
        (EarlyFault::RateLimited, true) => {
            anthropic_error(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", "mock: rate limited")
        }
        (EarlyFault::RateLimited, false) => {
            openai_error(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", "mock: rate limited")
        }
        (EarlyFault::Failed, true) => anthropic_error(
            StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            "overloaded_error",
            "mock: overloaded",
        ),
        (EarlyFault::Failed, false) => openai_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "mock: upstream failure",
        ),
    })
}

async fn chat_completions(body: Bytes) -> Response {
    let (_, ask) = match begin(&body, false).await {
        Ok(begun) => begun,
        Err(response) => return response,
    };
    let (words, truncated) = reply(&ask);
    let finish = if truncated { "length" } else { "stop" };
    let id = request_id("chatcmpl-");
    let header = ("x-request-id", request_id("req_"));
    let usage = (!ask.faults.no_usage).then(|| openai_usage(&ask, words.len() as u64, false));
    if !ask.stream {
        return json_response(
            StatusCode::OK,
            json!({"id": id, "object": "chat.completion", "created": 1_790_000_000, "model": ask.model,
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": words.join(" "), "refusal": null},
                                "logprobs": null, "finish_reason": finish}],
                   "usage": usage, "system_fingerprint": "fp_mock"}),
            header,
        );
    }
    let chunk = |delta: Value, finish: Value| {
        let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": 1_790_000_000, "model": ask.model,
                           "system_fingerprint": "fp_mock", "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        if ask.include_usage {
            c["usage"] = Value::Null; // as OpenAI does: every chunk but the last has a null usage
        }
        format!("data: {c}\n\n")
    };
    let mut frames = vec![chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        Value::Null,
    )];
    for (i, word) in words.iter().enumerate() {
        if ask.faults.error_mid && i == words.len() / 2 {
            frames.push(format!("data: {}\n\n", json!({"error": {"message": "mock: stream interrupted", "type": "server_error", "code": "server_error"}})));
            return sse(frames, ask.faults, header);
        }
        let text = if i == 0 { word.clone() } else { format!(" {word}") };
        frames.push(chunk(json!({"content": text}), Value::Null));
    }
    frames.push(chunk(json!({}), json!(finish)));
    if ask.include_usage
        && let Some(usage) = usage
    {
        frames.push(format!(
            "data: {}\n\n",
            json!({"id": id, "object": "chat.completion.chunk", "created": 1_790_000_000, "model": ask.model,
                   "system_fingerprint": "fp_mock", "choices": [], "usage": usage})
        ));
    }
    frames.push("data: [DONE]\n\n".to_owned());
    sse(frames, ask.faults, header)
}

/// One Responses API answer: the response object (the non-streamed body) and the events that
/// stream it, each with its `type` (an SSE stream names them, a WebSocket sends them as they
/// are). A `error-mid` answer stops at an in-band error event.
struct ResponsesAnswer {
    response: Value,
    events: Vec<Value>,
}

fn responses_answer(ask: &Ask) -> ResponsesAnswer {
    let (words, truncated) = reply(ask);
    let id = request_id("resp_");
    let text = words.join(" ");
    let usage = (!ask.faults.no_usage).then(|| openai_usage(ask, words.len() as u64, true));
    let (status, incomplete) = if truncated {
        ("incomplete", json!({"reason": "max_output_tokens"}))
    } else {
        ("completed", Value::Null)
    };
    let response = json!({"id": id, "object": "response", "created_at": 1_790_000_000, "status": status,
        "incomplete_details": incomplete, "model": ask.model,
        "output": [{"type": "message", "id": "msg_mock", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": []}]}],
        "usage": usage});
    // Every event carries its position, as OpenAI's do.
    let mut events = Vec::new();
    let mut push = |kind: &str, mut data: Value| {
        data["type"] = kind.into();
        data["sequence_number"] = events.len().into();
        events.push(data);
    };
    let in_progress = json!({"id": id, "object": "response", "status": "in_progress", "model": ask.model, "output": [], "usage": null});
    let item =
        json!({"type": "message", "id": "msg_mock", "status": "in_progress", "role": "assistant", "content": []});
    let part = json!({"type": "output_text", "text": "", "annotations": []});
    push("response.created", json!({"response": in_progress}));
    push("response.in_progress", json!({"response": in_progress}));
    push("response.output_item.added", json!({"output_index": 0, "item": item}));
    push(
        "response.content_part.added",
        json!({"item_id": "msg_mock", "output_index": 0, "content_index": 0, "part": part}),
    );
    for (i, word) in words.iter().enumerate() {
        if ask.faults.error_mid && i == words.len() / 2 {
            push(
                "error",
                json!({"code": "server_error", "message": "mock: stream interrupted"}),
            );
            return ResponsesAnswer { response, events };
        }
        let delta = if i == 0 { word.clone() } else { format!(" {word}") };
        push(
            "response.output_text.delta",
            json!({"item_id": "msg_mock", "output_index": 0, "content_index": 0, "delta": delta}),
        );
    }
    let done_part = json!({"type": "output_text", "text": text, "annotations": []});
    push(
        "response.output_text.done",
        json!({"item_id": "msg_mock", "output_index": 0, "content_index": 0, "text": text}),
    );
    push(
        "response.content_part.done",
        json!({"item_id": "msg_mock", "output_index": 0, "content_index": 0, "part": done_part}),
    );
    push(
        "response.output_item.done",
        json!({"output_index": 0, "item": response["output"][0]}),
    );
    let done = if truncated {
        "response.incomplete"
    } else {
        "response.completed"
    };
    push(done, json!({"response": response}));
    ResponsesAnswer { response, events }
}

async fn responses(body: Bytes) -> Response {
    let (_, ask) = match begin(&body, false).await {
        Ok(begun) => begun,
        Err(response) => return response,
    };
    let answer = responses_answer(&ask);
    let header = ("x-request-id", request_id("req_"));
    if !ask.stream {
        return json_response(StatusCode::OK, answer.response, header);
    }
    let frames = answer
        .events
        .iter()
        .map(|event| {
            format!(
                "event: {}\ndata: {event}\n\n",
                event["type"].as_str().unwrap_or_default()
            )
        })
        .collect();
    sse(frames, ask.faults, header)
}

/// `GET /v1/responses` upgraded to a WebSocket: the Responses API's WebSocket mode. Each
/// `response.create` frame is answered with the events a stream of the same request carries,
/// one text frame each, one response at a time. A `previous_response_id` must name the
/// connection's last response (whose input and output then count as this one's input, as
/// the live API bills a continued conversation); anything else is the API's
/// `previous_response_not_found` error. A `generate: false` warm-up generates nothing and
/// reports no tokens; its input is what a continuation of it is billed for.
async fn responses_socket(upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(serve_socket)
}

async fn serve_socket(mut socket: WebSocket) {
    // The connection's last response: its id and the tokens of its whole conversation so far.
    let mut last: Option<(String, u64)> = None;
    while let Some(Ok(message)) = socket.recv().await {
        let text = match message {
            Message::Text(text) => text,
            Message::Close(_) => break,
            _ => continue,
        };
        let (frames, slow) = socket_turn(text.as_str(), &mut last).await;
        for frame in frames {
            if slow {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if socket.send(Message::text(frame.to_string())).await.is_err() {
                return;
            }
        }
    }
}

/// The frames that answer one client frame, and whether to pace them.
async fn socket_turn(text: &str, last: &mut Option<(String, u64)>) -> (Vec<Value>, bool) {
    let error = |status: u16, kind: &str, code: &str, message: &str| {
        json!({"type": "error", "status": status,
               "error": {"type": kind, "code": code, "message": message, "param": null}})
    };
    let body: Value = match serde_json::from_str(text) {
        Ok(body) => body,
        Err(e) => {
            let message = format!("invalid JSON frame: {e}");
            return (
                vec![error(400, "invalid_request_error", "invalid_json", &message)],
                false,
            );
        }
    };
    if body.get("type").and_then(Value::as_str) != Some("response.create") {
        let message = "mock: only `response.create` frames are understood";
        return (
            vec![error(400, "invalid_request_error", "unknown_event_type", message)],
            false,
        );
    }
    let mut ask = ask(&body);
    match early_fault_of(&ask).await {
        Some(EarlyFault::RateLimited) => {
            let frame = error(429, "rate_limit_error", "rate_limit_exceeded", "mock: rate limited");
            return (vec![frame], false);
        }
        Some(EarlyFault::Failed) => {
            let frame = error(500, "server_error", "server_error", "mock: upstream failure");
            return (vec![frame], false);
        }
        None => {}
    }
    if let Some(previous) = body.get("previous_response_id").and_then(Value::as_str) {
        match last.take() {
            Some((id, context)) if id == previous => ask.prompt_tokens += context,
            _ => {
                let message = format!("Previous response with id '{previous}' not found.");
                let mut frame = error(400, "invalid_request_error", "previous_response_not_found", &message);
                frame["error"]["param"] = "previous_response_id".into();
                return (vec![frame], false);
            }
        }
    }
    if body.get("generate").and_then(Value::as_bool) == Some(false) {
        // A warm-up: the request's state is prepared for a continuation, nothing is generated.
        let id = request_id("resp_");
        let response = json!({"id": id, "object": "response", "status": "completed", "model": ask.model,
            "output": [], "usage": {"input_tokens": 0, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 0, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 0}});
        *last = Some((id, ask.prompt_tokens));
        let events = vec![
            json!({"type": "response.created", "sequence_number": 0, "response": response}),
            json!({"type": "response.completed", "sequence_number": 1, "response": response}),
        ];
        return (events, false);
    }
    let answer = responses_answer(&ask);
    let used = answer.response["usage"]["total_tokens"]
        .as_u64()
        .unwrap_or(ask.prompt_tokens);
    *last = answer.response["id"].as_str().map(|id| (id.to_owned(), used));
    (answer.events, ask.faults.slow)
}

async fn embeddings(body: Bytes) -> Response {
    let (body, ask) = match begin(&body, false).await {
        Ok(begun) => begun,
        Err(response) => return response,
    };
    let inputs = match body.get("input") {
        Some(Value::Array(items)) => items.len(),
        _ => 1,
    };
    let data: Vec<Value> = (0..inputs)
        .map(|i| json!({"object": "embedding", "index": i, "embedding": [0.1, -0.2, 0.3, 0.0, 0.5, -0.6, 0.7, 0.05]}))
        .collect();
    let usage =
        (!ask.faults.no_usage).then(|| json!({"prompt_tokens": ask.prompt_tokens, "total_tokens": ask.prompt_tokens}));
    json_response(
        StatusCode::OK,
        json!({"object": "list", "data": data, "model": ask.model, "usage": usage}),
        ("x-request-id", request_id("req_")),
    )
}

async fn models() -> Response {
    let names = ["mock-gpt", "mock-claude", "gpt-4o-mini", "claude-sonnet-4-5"];
    let data: Vec<Value> = names
        .iter()
        .map(|m| {
            json!({"id": m, "object": "model", "created": 1_790_000_000, "owned_by": "goodhart-mock",
                        "type": "model", "display_name": m, "created_at": "2026-01-01T00:00:00Z"})
        })
        .collect();
    json_response(
        StatusCode::OK,
        json!({"object": "list", "data": data, "has_more": false, "first_id": names[0], "last_id": names[names.len() - 1]}),
        ("x-request-id", request_id("req_")),
    )
}

/// Anthropic usage: input excludes cache reads and writes, which are reported apart.
fn anthropic_usage(ask: &Ask, output: u64) -> Value {
    let cache_read = if ask.cache_marked { ask.prompt_tokens * 3 / 4 } else { 0 };
    json!({"input_tokens": ask.prompt_tokens - cache_read, "cache_creation_input_tokens": 0,
           "cache_read_input_tokens": cache_read,
           "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
           "output_tokens": output, "service_tier": "standard"})
}

async fn messages(body: Bytes) -> Response {
    let (_, ask) = match begin(&body, true).await {
        Ok(begun) => begun,
        Err(response) => return response,
    };
    let header = ("request-id", request_id("req_"));
    match anthropic_answer(&ask) {
        AnthropicAnswer::Message(message) => json_response(StatusCode::OK, message, header),
        AnthropicAnswer::Events(events) => {
            let frames = events
                .iter()
                .map(|event| {
                    format!(
                        "event: {}\ndata: {event}\n\n",
                        event["type"].as_str().unwrap_or_default()
                    )
                })
                .collect();
            sse(frames, ask.faults, header)
        }
    }
}

/// An Anthropic answer: the message, or the events that stream it (Anthropic's API sends them
/// as SSE, Bedrock's InvokeModelWithResponseStream each in an event-stream `chunk`).
enum AnthropicAnswer {
    Message(Value),
    Events(Vec<Value>),
}

fn anthropic_answer(ask: &Ask) -> AnthropicAnswer {
    let (words, truncated) = reply(ask);
    let stop = if truncated { "max_tokens" } else { "end_turn" };
    let id = request_id("msg_");
    let output = words.len() as u64;
    if !ask.stream {
        let mut message = json!({"id": id, "type": "message", "role": "assistant", "model": ask.model,
            "content": [{"type": "text", "text": words.join(" ")}], "stop_reason": stop, "stop_sequence": null,
            "usage": anthropic_usage(ask, output)});
        if ask.faults.no_usage {
            message.as_object_mut().map(|m| m.remove("usage"));
        }
        return AnthropicAnswer::Message(message);
    }
    let mut start_usage = anthropic_usage(ask, 1);
    if ask.faults.no_usage {
        start_usage = Value::Null;
    }
    let mut frames = vec![
        json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant", "model": ask.model,
               "content": [], "stop_reason": null, "stop_sequence": null, "usage": start_usage}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "ping"}),
    ];
    for (i, word) in words.iter().enumerate() {
        if ask.faults.error_mid && i == words.len() / 2 {
            frames.push(
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "mock: stream interrupted"}}),
            );
            return AnthropicAnswer::Events(frames);
        }
        let text = if i == 0 { word.clone() } else { format!(" {word}") };
        frames.push(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}));
    }
    frames.push(json!({"type": "content_block_stop", "index": 0}));
    let mut delta = json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}});
    if !ask.faults.no_usage {
        // Cumulative, as the live API sends it: the input and cache counts again, and the output.
        let usage = anthropic_usage(ask, output);
        delta["usage"] = json!({"input_tokens": usage["input_tokens"],
            "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
            "cache_read_input_tokens": usage["cache_read_input_tokens"], "output_tokens": output});
    }
    frames.push(delta);
    frames.push(json!({"type": "message_stop"}));
    AnthropicAnswer::Events(frames)
}

async fn count_tokens(body: Bytes) -> Response {
    match begin(&body, true).await {
        Ok((_, ask)) => json_response(
            StatusCode::OK,
            json!({"input_tokens": ask.prompt_tokens}),
            ("request-id", request_id("req_")),
        ),
        Err(response) => response,
    }
}

fn gemini_error(status: StatusCode, google_status: &str, message: &str) -> Response {
    error_response(
        status,
        json!({"error": {"code": status.as_u16(), "message": message, "status": google_status}}),
        "x-request-id",
    )
}

/// Azure's deployment routes: the body names no model; the deployment is it.
fn deployment_body(deployment: &str, body: &Bytes) -> Bytes {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut fields)) => {
            fields.insert("model".into(), deployment.into());
            Bytes::from(Value::Object(fields).to_string())
        }
        _ => body.clone(),
    }
}

async fn azure_chat(axum::extract::Path(deployment): axum::extract::Path<String>, body: Bytes) -> Response {
    chat_completions(deployment_body(&deployment, &body)).await
}

async fn azure_embeddings(axum::extract::Path(deployment): axum::extract::Path<String>, body: Bytes) -> Response {
    embeddings(deployment_body(&deployment, &body)).await
}

/// Vertex AI's Anthropic models: `…:rawPredict` and `…:streamRawPredict` with Anthropic's
/// Messages body (no `model`: the path names it, with its `@` version).
async fn vertex_anthropic(
    axum::extract::Path((_, _, target)): axum::extract::Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let (model, stream) = match target.rsplit_once(':') {
        Some((model, "rawPredict")) => (model, false),
        Some((model, "streamRawPredict")) => (model, true),
        _ => return anthropic_error(StatusCode::NOT_FOUND, "not_found_error", "mock: no such method"),
    };
    let mut request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(fields) = request.as_object_mut() {
        fields.insert("model".into(), model.into());
        if stream {
            fields.insert("stream".into(), true.into());
        }
    }
    messages(Bytes::from(request.to_string())).await
}

/// Vertex AI's Google models: Gemini's methods under a project's path.
async fn vertex_gemini(
    axum::extract::Path((_, _, target)): axum::extract::Path<(String, String, String)>,
    query: axum::extract::RawQuery,
    body: Bytes,
) -> Response {
    gemini(axum::extract::Path(target), query, body).await
}

/// `POST /v1beta/models/{model}:{method}`: Gemini's generateContent, streamGenerateContent
/// (`alt=sse` for SSE, else one JSON array sent element by element) and countTokens.
async fn gemini(
    axum::extract::Path(target): axum::extract::Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    body: Bytes,
) -> Response {
    let Some((model, method)) = target.rsplit_once(':') else {
        return gemini_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "mock: expected models/{model}:{method}",
        );
    };
    let mut request: Value = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            let message = format!("Invalid JSON payload received. {e}");
            return gemini_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", &message);
        }
    };
    request["model"] = model.into();
    let ask = ask(&request);
    if method == "countTokens" {
        return json_response(
            StatusCode::OK,
            json!({"totalTokens": ask.prompt_tokens,
                   "promptTokensDetails": [{"modality": "TEXT", "tokenCount": ask.prompt_tokens}]}),
            ("x-request-id", request_id("req_")),
        );
    }
    let stream = match method {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => return gemini_error(StatusCode::NOT_FOUND, "NOT_FOUND", &format!("mock: no method {method}")),
    };
    match early_fault_of(&ask).await {
        Some(EarlyFault::RateLimited) => {
            return gemini_error(
                StatusCode::TOO_MANY_REQUESTS,
                "RESOURCE_EXHAUSTED",
                "mock: rate limited",
            );
        }
        Some(EarlyFault::Failed) => {
            return gemini_error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "mock: upstream failure");
        }
        None => {}
    }
    let (mut words, truncated) = reply(&ask);
    // Structured output: one "word", the JSON the schema asks for (Gemini CLI's model router
    // asks for its verdict so).
    let config = request.get("generationConfig");
    if config.and_then(|c| c.get("responseMimeType")).and_then(Value::as_str) == Some("application/json") {
        let schema = ["responseJsonSchema", "responseSchema"]
            .iter()
            .find_map(|field| config.and_then(|c| c.get(*field)));
        words = vec![schema.map(json_for_schema).unwrap_or_else(|| json!({})).to_string()];
    }
    let cached = if ask.prompt_tokens >= 1024 {
        ask.prompt_tokens / 2
    } else {
        0
    };
    // Gemini's Pro models always think.
    let thinks = ask.faults.reasoning || model.contains("-pro");
    let thoughts = if thinks { REASONING_TOKENS } else { 0 };
    let usage = |candidates: u64| {
        let mut usage = json!({"promptTokenCount": ask.prompt_tokens, "candidatesTokenCount": candidates,
            "totalTokenCount": ask.prompt_tokens + candidates + thoughts,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": ask.prompt_tokens}]});
        if cached > 0 {
            usage["cachedContentTokenCount"] = cached.into();
        }
        if thoughts > 0 {
            usage["thoughtsTokenCount"] = thoughts.into();
        }
        usage
    };
    let id = request_id("mockresp");
    let finish = if truncated { "MAX_TOKENS" } else { "STOP" };
    let chunk = |text: String, finish: Option<&str>, candidates: u64| {
        let mut candidate = json!({"content": {"parts": [{"text": text}], "role": "model"}, "index": 0});
        if let Some(finish) = finish {
            candidate["finishReason"] = finish.into();
        }
        let mut chunk = json!({"candidates": [candidate], "modelVersion": model, "responseId": id});
        if !ask.faults.no_usage {
            chunk["usageMetadata"] = usage(candidates);
        }
        chunk
    };
    let header = ("x-request-id", request_id("req_"));
    if !stream {
        return json_response(
            StatusCode::OK,
            chunk(words.join(" "), Some(finish), words.len() as u64),
            header,
        );
    }
    // Four words a chunk, as Gemini streams a few tokens at a time.
    let mut chunks = Vec::new();
    let pieces: Vec<&[String]> = words.chunks(4).collect();
    for (i, piece) in pieces.iter().enumerate() {
        if ask.faults.error_mid && i == pieces.len() / 2 {
            chunks.push(json!({"error": {"code": 500, "message": "mock: stream interrupted", "status": "INTERNAL"}}));
            break;
        }
        let mut text = piece.join(" ");
        if i > 0 {
            text.insert(0, ' ');
        }
        let last = i + 1 == pieces.len();
        let so_far = ((i + 1) * 4).min(words.len()) as u64;
        chunks.push(chunk(text, last.then_some(finish), so_far));
    }
    let alt_sse = query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|pair| pair == "alt=sse"));
    let frames = if alt_sse {
        chunks.iter().map(|c| format!("data: {c}\r\n\r\n")).collect()
    } else {
        let last = chunks.len().saturating_sub(1);
        chunks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let open = if i == 0 { "[" } else { "," };
                let close = if i == last { "]" } else { "\r\n" };
                format!("{open}{c}{close}")
            })
            .collect()
    };
    let mut response = sse(frames, ask.faults, header);
    if !alt_sse {
        response.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("application/json; charset=UTF-8"),
        );
    }
    response
}

/// A value of the shape a JSON schema (OpenAPI's subset, as Gemini takes it) describes: every
/// property present, strings `"mock"`, numbers 1, the first value of an enum.
fn json_for_schema(schema: &Value) -> Value {
    if let Some(first) = schema.get("enum").and_then(Value::as_array).and_then(|e| e.first()) {
        return first.clone();
    }
    let kind = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("object")
        .to_ascii_lowercase();
    match kind.as_str() {
        "string" => json!("mock"),
        "integer" | "number" => json!(1),
        "boolean" => json!(true),
        "array" => json!([schema.get("items").map(json_for_schema).unwrap_or(Value::Null)]),
        _ => Value::Object(
            schema
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(name, property)| (name.clone(), json_for_schema(property)))
                .collect(),
        ),
    }
}

/// `GET /v1beta/models`.
async fn gemini_models() -> Response {
    let models: Vec<Value> = ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-3.5-flash"]
        .iter()
        .map(|m| {
            json!({"name": format!("models/{m}"), "displayName": m, "inputTokenLimit": 1_048_576,
                   "outputTokenLimit": 65_536,
                   "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"]})
        })
        .collect();
    json_response(
        StatusCode::OK,
        json!({"models": models}),
        ("x-request-id", request_id("req_")),
    )
}

const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

fn bedrock_error(status: StatusCode, code: &'static str, message: &str) -> Response {
    let mut response = json_response(
        status,
        json!({"message": message}),
        ("x-amzn-requestid", request_id("")),
    );
    response
        .headers_mut()
        .insert("x-amzn-errortype", HeaderValue::from_static(code));
    response
}

/// Converse usage: `inputTokens` without the cache reads reported beside it.
fn converse_usage(ask: &Ask, output: u64) -> Value {
    let cache_read = if ask.cache_marked { ask.prompt_tokens * 3 / 4 } else { 0 };
    let input = ask.prompt_tokens - cache_read;
    json!({"inputTokens": input, "outputTokens": output, "totalTokens": input + output + cache_read,
           "cacheReadInputTokens": cache_read, "cacheWriteInputTokens": 0})
}

/// `POST /model/{modelId}/{converse | converse-stream | invoke | invoke-with-response-stream}`.
async fn bedrock(
    axum::extract::Path((model, operation)): axum::extract::Path<(String, String)>,
    body: Bytes,
) -> Response {
    let mut request: Value = match serde_json::from_slice(&body) {
        Ok(Value::Object(request)) => Value::Object(request),
        _ => {
            return bedrock_error(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                "mock: the body is not a JSON object",
            );
        }
    };
    let (converse, stream) = match operation.as_str() {
        "converse" => (true, false),
        "converse-stream" => (true, true),
        "invoke" => (false, false),
        "invoke-with-response-stream" => (false, true),
        _ => {
            return bedrock_error(
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
                "mock: no such operation",
            );
        }
    };
    // Claude's InvokeModel body names its API version; other families' bodies are their own.
    let claude = model.contains("anthropic.");
    if !converse && claude && request.get("anthropic_version").and_then(Value::as_str) != Some("bedrock-2023-05-31") {
        return bedrock_error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "Malformed input request: anthropic_version must be bedrock-2023-05-31",
        );
    }
    request["model"] = model.into();
    request["stream"] = stream.into();
    let ask = ask(&request);
    match early_fault_of(&ask).await {
        Some(EarlyFault::RateLimited) => {
            return bedrock_error(
                StatusCode::TOO_MANY_REQUESTS,
                "ThrottlingException",
                "mock: rate limited",
            );
        }
        Some(EarlyFault::Failed) => {
            let message = "mock: upstream failure";
            return bedrock_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerException", message);
        }
        None => {}
    }
    let header = ("x-amzn-requestid", request_id(""));
    if converse {
        converse_answer(&ask, stream, header)
    } else {
        invoke_answer(&ask, header)
    }
}

/// InvokeModel(WithResponseStream): Anthropic's answer, each stream event in a `chunk` frame.
fn invoke_answer(ask: &Ask, header: (&'static str, String)) -> Response {
    // Bedrock counts an InvokeModel call's tokens in headers, whatever the model's body says.
    let counted = |mut response: Response, output: u64| {
        let headers = response.headers_mut();
        for (name, count) in [
            ("x-amzn-bedrock-input-token-count", ask.prompt_tokens),
            ("x-amzn-bedrock-output-token-count", output),
        ] {
            if let Ok(value) = HeaderValue::from_str(&count.to_string()) {
                headers.insert(name, value);
            }
        }
        response
    };
    if ask.model.starts_with("meta.") && !ask.stream {
        // Llama's own body: its counts are named otherwise, and the gateway reads the headers.
        let (words, truncated) = reply(ask);
        let body = json!({"generation": words.join(" "), "prompt_token_count": ask.prompt_tokens,
                          "generation_token_count": words.len(), "stop_reason": if truncated { "length" } else { "stop" }});
        return counted(json_response(StatusCode::OK, body, header), words.len() as u64);
    }
    let events = match anthropic_answer(ask) {
        AnthropicAnswer::Message(message) => {
            let output = message["usage"]["output_tokens"].as_u64().unwrap_or(0);
            return counted(json_response(StatusCode::OK, message, header), output);
        }
        AnthropicAnswer::Events(events) => events,
    };
    let last = events.len().saturating_sub(1);
    let frames = events
        .into_iter()
        .enumerate()
        .map(|(i, mut event)| {
            if event["type"] == "error" {
                let message = event["error"]["message"].as_str().unwrap_or_default();
                return event_stream::exception_frame("modelStreamErrorException", message);
            }
            if i == last && !ask.faults.no_usage {
                event["amazon-bedrock-invocationMetrics"] = json!({"inputTokenCount": ask.prompt_tokens,
                    "outputTokenCount": reply(ask).0.len(), "invocationLatency": 120, "firstByteLatency": 40});
            }
            event_stream::chunk_frame(&event)
        })
        .collect();
    streamed(frames, ask.faults, EVENT_STREAM, header)
}

/// Converse(Stream): the answer, or its events ending with `metadata` (the usage).
fn converse_answer(ask: &Ask, stream: bool, header: (&'static str, String)) -> Response {
    let (words, truncated) = reply(ask);
    let stop = if truncated { "max_tokens" } else { "end_turn" };
    let usage = converse_usage(ask, words.len() as u64);
    if !stream {
        let mut answer = json!({"output": {"message": {"role": "assistant", "content": [{"text": words.join(" ")}]}},
            "stopReason": stop, "usage": usage, "metrics": {"latencyMs": 120}});
        if ask.faults.no_usage {
            answer.as_object_mut().map(|a| a.remove("usage"));
        }
        return json_response(StatusCode::OK, answer, header);
    }
    let mut frames = vec![event_stream::event_frame("messageStart", &json!({"role": "assistant"}))];
    for (i, word) in words.iter().enumerate() {
        if ask.faults.error_mid && i == words.len() / 2 {
            frames.push(event_stream::exception_frame(
                "modelStreamErrorException",
                "mock: stream interrupted",
            ));
            return streamed(frames, ask.faults, EVENT_STREAM, header);
        }
        let text = if i == 0 { word.clone() } else { format!(" {word}") };
        frames.push(event_stream::event_frame(
            "contentBlockDelta",
            &json!({"contentBlockIndex": 0, "delta": {"text": text}}),
        ));
    }
    frames.push(event_stream::event_frame(
        "contentBlockStop",
        &json!({"contentBlockIndex": 0}),
    ));
    frames.push(event_stream::event_frame("messageStop", &json!({"stopReason": stop})));
    if !ask.faults.no_usage {
        frames.push(event_stream::event_frame(
            "metadata",
            &json!({"usage": usage, "metrics": {"latencyMs": 120}}),
        ));
    }
    streamed(frames, ask.faults, EVENT_STREAM, header)
}
