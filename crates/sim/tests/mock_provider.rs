//! The mock provider over real HTTP: its bodies and streams have the providers' shapes, a
//! stream reports the same usage as the same request without streaming (read through core's
//! SSE parser and usage tap), and every fault does what its model name says.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "a test stops at the first broken step, and spawns what it drives freely"
)]

use axum::body::Bytes;
use goodhart_core::providers::{ReportedUsage, StreamTap, WireProtocol, usage_from_body};
use goodhart_core::sse::SseParser;
use goodhart_sim::mock_provider;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

struct Reply {
    status: u16,
    headers: hyper::HeaderMap,
    body: Bytes,
}

async fn post(addr: std::net::SocketAddr, path: &str, body: Value) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = hyper::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    Reply {
        status,
        headers,
        body: response.into_body().collect().await.unwrap().to_bytes(),
    }
}

fn tap_stream(protocol: WireProtocol, body: &[u8]) -> (Option<ReportedUsage>, Vec<String>) {
    let (mut parser, mut tap, mut events) = (SseParser::new(), StreamTap::new(protocol), Vec::new());
    parser.push(body, &mut events);
    parser.finish(&mut events);
    events.iter().for_each(|e| tap.observe(e));
    (
        tap.finish(),
        events.into_iter().map(|e| e.event.unwrap_or_default()).collect(),
    )
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
           "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "say hi ".repeat(30)}]})
}

fn message(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "max_tokens": 1024,
           "system": [{"type": "text", "text": "You are terse. ".repeat(40), "cache_control": {"type": "ephemeral"}}],
           "messages": [{"role": "user", "content": "say hi"}]})
}

#[tokio::test]
async fn streams_report_the_same_usage_as_plain_responses() {
    let addr = mock_provider::spawn().await.unwrap();
    for (path, protocol, body) in [
        (
            "/v1/chat/completions",
            WireProtocol::OpenAiChat,
            chat as fn(&str, bool) -> Value,
        ),
        ("/v1/messages", WireProtocol::Anthropic, message),
        (
            "/v1/responses",
            WireProtocol::OpenAiResponses,
            |m: &str, s: bool| json!({"model": m, "stream": s, "input": "say hi ".repeat(30)}),
        ),
    ] {
        let plain = post(addr, path, body("mock-model", false)).await;
        assert_eq!(plain.status, 200);
        let plain_json: Value = serde_json::from_slice(&plain.body).unwrap();
        let from_body = usage_from_body(protocol, &plain_json).expect("usage in the body");
        let streamed = post(addr, path, body("mock-model", true)).await;
        assert_eq!(streamed.headers["content-type"], "text/event-stream");
        let (from_stream, _) = tap_stream(protocol, &streamed.body);
        assert_eq!(from_stream.as_ref().map(|u| u.tokens), Some(from_body.tokens), "{path}");
        assert!(
            from_body.tokens.output > 0 && from_body.tokens.prompt_total() > 0,
            "{path}: {from_body:?}"
        );
    }
}

#[tokio::test]
async fn anthropic_streams_follow_the_real_event_sequence_and_cache_marks_read_from_cache() {
    let addr = mock_provider::spawn().await.unwrap();
    let reply = post(addr, "/v1/messages", message("claude-mock", true)).await;
    assert!(reply.headers.contains_key("request-id"));
    let (usage, names) = tap_stream(WireProtocol::Anthropic, &reply.body);
    assert_eq!(&names[..3], ["message_start", "content_block_start", "ping"]);
    assert_eq!(
        &names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    let usage = usage.unwrap();
    assert!(
        usage.tokens.cache_read > usage.tokens.input,
        "cache_control marks most of the prompt as cached"
    );
    assert_eq!(usage.finish_reason.as_deref(), Some("end_turn"));
}

#[tokio::test]
async fn max_tokens_truncates_with_the_protocols_reason() {
    let addr = mock_provider::spawn().await.unwrap();
    let mut body = chat("mock", false);
    body["max_tokens"] = json!(3);
    let reply: Value = serde_json::from_slice(&post(addr, "/v1/chat/completions", body).await.body).unwrap();
    assert_eq!(reply["choices"][0]["finish_reason"], "length");
    assert_eq!(reply["usage"]["completion_tokens"], 3);
    let mut body = message("mock", false);
    body["max_tokens"] = json!(2);
    let reply: Value = serde_json::from_slice(&post(addr, "/v1/messages", body).await.body).unwrap();
    assert_eq!(reply["stop_reason"], "max_tokens");
}

#[tokio::test]
async fn faults_are_chosen_by_model_name() {
    let addr = mock_provider::spawn().await.unwrap();
    let before = post(addr, "/v1/messages", message("mock-error-before", true)).await;
    assert_eq!(before.status, 529);
    let error: Value = serde_json::from_slice(&before.body).unwrap();
    assert_eq!(error["error"]["type"], "overloaded_error");
    assert_eq!(
        post(addr, "/v1/chat/completions", chat("mock-error-before", false))
            .await
            .status,
        500
    );

    let limited = post(addr, "/v1/chat/completions", chat("mock-rate-limited", false)).await;
    assert_eq!(
        (limited.status, limited.headers["retry-after"].to_str().unwrap()),
        (429, "1")
    );

    let mid = post(addr, "/v1/messages", message("mock-error-mid", true)).await;
    let (usage, names) = tap_stream(WireProtocol::Anthropic, &mid.body);
    assert_eq!(names.last().map(String::as_str), Some("error"));
    assert!(!names.contains(&"message_delta".to_owned()));
    assert_eq!(
        usage.map(|u| u.tokens.output),
        Some(1),
        "only message_start's provisional usage arrived"
    );
    let (usage, _) = tap_stream(
        WireProtocol::OpenAiChat,
        &post(addr, "/v1/chat/completions", chat("mock-error-mid", true))
            .await
            .body,
    );
    assert_eq!(usage, None, "an interrupted OpenAI stream never reports usage");

    for (path, protocol, body) in [
        (
            "/v1/chat/completions",
            WireProtocol::OpenAiChat,
            chat("mock-no-usage", true),
        ),
        ("/v1/messages", WireProtocol::Anthropic, message("mock-no-usage", true)),
    ] {
        assert_eq!(
            tap_stream(protocol, &post(addr, path, body).await.body).0,
            None,
            "{path}"
        );
    }

    let long: Value =
        serde_json::from_slice(&post(addr, "/v1/messages", message("mock-long", false)).await.body).unwrap();
    assert_eq!(
        long["stop_reason"], "max_tokens",
        "a 4,000-word reply is cut at max_tokens 1024"
    );
    assert_eq!(long["usage"]["output_tokens"], 1024);

    let reasoning: Value = serde_json::from_slice(
        &post(addr, "/v1/chat/completions", chat("mock-reason", false))
            .await
            .body,
    )
    .unwrap();
    assert_eq!(reasoning["usage"]["completion_tokens_details"]["reasoning_tokens"], 64);
    let tokens = usage_from_body(WireProtocol::OpenAiChat, &reasoning).unwrap().tokens;
    assert_eq!(
        (tokens.output, tokens.reasoning),
        (16, 64),
        "reasoning is taken out of completion tokens"
    );
}

#[tokio::test(start_paused = true)]
async fn slow_models_wait_before_answering() {
    let addr = mock_provider::spawn().await.unwrap();
    let started = tokio::time::Instant::now();
    let reply = post(addr, "/v1/chat/completions", chat("mock-slow", false)).await;
    assert_eq!(reply.status, 200);
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
}

#[tokio::test]
async fn embeddings_models_and_count_tokens() {
    let addr = mock_provider::spawn().await.unwrap();
    let embeddings: Value = serde_json::from_slice(
        &post(
            addr,
            "/v1/embeddings",
            json!({"model": "text-embedding-3-small", "input": ["a b c d", "e"]}),
        )
        .await
        .body,
    )
    .unwrap();
    assert_eq!(embeddings["data"].as_array().unwrap().len(), 2);
    assert!(embeddings["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let count: Value =
        serde_json::from_slice(&post(addr, "/v1/messages/count_tokens", message("m", false)).await.body).unwrap();
    assert!(count["input_tokens"].as_u64().unwrap() > 100);
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = hyper::Request::post(format!("http://{addr}/v1/messages"))
        .body(Full::new(Bytes::from("{nope")))
        .unwrap();
    let bad = client.request(request).await.unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = serde_json::from_slice(&bad.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
}

/// What a collecting tap makes of a stream fed in the given pieces.
fn tap_in_pieces(protocol: WireProtocol, pieces: &[&[u8]]) -> (Option<ReportedUsage>, String, Option<String>, bool) {
    let (mut parser, mut tap, mut events) = (SseParser::new(), StreamTap::collecting_text(protocol), Vec::new());
    for piece in pieces {
        parser.push(piece, &mut events);
        events.drain(..).for_each(|e| tap.observe(&e));
    }
    parser.finish(&mut events);
    events.drain(..).for_each(|e| tap.observe(&e));
    let (text, id, ended) = (
        tap.output_text().to_owned(),
        tap.response_id().map(str::to_owned),
        tap.ended(),
    );
    (tap.finish(), text, id, ended)
}

#[tokio::test]
async fn every_stream_split_at_every_byte_boundary_taps_the_same() {
    let addr = mock_provider::spawn().await.unwrap();
    let mut streams = Vec::new();
    for model in ["gpt-4o-mini", "gpt-5-reason", "gpt-4o-no-usage", "gpt-4o-error-mid"] {
        streams.push((
            WireProtocol::OpenAiChat,
            post(addr, "/v1/chat/completions", chat(model, true)).await,
        ));
        let responses = json!({"model": model, "stream": true, "input": "say hi", "max_output_tokens": 12});
        streams.push((
            WireProtocol::OpenAiResponses,
            post(addr, "/v1/responses", responses).await,
        ));
    }
    for model in ["claude-sonnet-4-5", "claude-no-usage", "claude-error-mid"] {
        streams.push((
            WireProtocol::Anthropic,
            post(addr, "/v1/messages", message(model, true)).await,
        ));
    }
    for (protocol, reply) in &streams {
        assert_eq!(reply.status, 200);
        let body = reply.body.as_ref();
        let whole = tap_in_pieces(*protocol, &[body]);
        assert!(!whole.1.is_empty(), "{protocol:?}: the output text is collected");
        for cut in 0..=body.len() {
            let split = tap_in_pieces(*protocol, &[&body[..cut], &body[cut..]]);
            assert_eq!(split, whole, "{protocol:?} split at byte {cut}");
        }
        let bytewise: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(
            tap_in_pieces(*protocol, &bytewise),
            whole,
            "{protocol:?} one byte at a time"
        );
    }
}

/// As the live API: `message_delta` repeats the cumulative input and cache counts, so a client
/// that reads streamed usage only there (LangChain does) sees the input too.
#[tokio::test]
async fn anthropic_message_delta_carries_the_cumulative_input_and_cache_counts() {
    let addr = mock_provider::spawn().await.unwrap();
    let reply = post(addr, "/v1/messages", message("claude-mock", true)).await;
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    let delta: Value = text
        .split("\n\n")
        .find_map(|event| event.strip_prefix("event: message_delta\ndata: "))
        .map(|data| serde_json::from_str(data).unwrap())
        .unwrap();
    let (usage, _) = tap_stream(WireProtocol::Anthropic, &reply.body);
    let tokens = usage.unwrap().tokens;
    assert_eq!(delta["usage"]["input_tokens"], tokens.input, "{delta}");
    assert_eq!(delta["usage"]["cache_read_input_tokens"], tokens.cache_read, "{delta}");
    assert_eq!(delta["usage"]["output_tokens"], tokens.output, "{delta}");
}

/// `linger` leaves a gap between a stream's last event and the end of its body.
#[tokio::test]
async fn lingering_streams_end_their_body_late() {
    let addr = mock_provider::spawn().await.unwrap();
    let started = std::time::Instant::now();
    let reply = post(addr, "/v1/messages", message("claude-linger", true)).await;
    assert!(String::from_utf8_lossy(&reply.body).contains("message_stop"));
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}
