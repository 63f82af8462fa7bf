//! Bedrock's runtime API through the gateway against the mock provider: Converse and
//! ConverseStream (usage from Converse's `usage` and the stream's `metadata` event, read out
//! of AWS event-stream frames), InvokeModel and InvokeModelWithResponseStream with Anthropic
//! bodies (usage from Anthropic's events inside the `chunk` frames); keys as a Bedrock API
//! key or a signature's access key id; errors in AWS's shape (an exception frame mid-stream);
//! upstream requests signed with the provider's credentials, never carrying the client's.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::http::HeaderMap;
use goodhart_core::event_stream::{EventStreamParser, exception_frame};
use goodhart_core::pricing::PriceTable;
use goodhart_core::providers::{anthropic_tokens, converse_tokens};
use goodhart_core::sse::SseEvent;
use goodhart_core::usage::TokenCounts;
use goodhart_gateway::config::{ApiKey, AwsSigning};
use goodhart_store::testing::TestDatabase;
use serde_json::{Value, json};

use crate::common::{Reply, TestServer, recorded, serve_upstream, start_configured, start_with};

const SONNET: &str = "anthropic.claude-sonnet-4-5-20250929-v1:0";
const HAIKU_US: &str = "us.anthropic.claude-haiku-4-5-20251001-v1:0";

async fn start() -> (TestServer, String) {
    let server = start_with(TestDatabase::sqlite(), "").await;
    let key = server.create_key(r#"{"user": "alice", "team": "payments"}"#).await.1;
    (server, key)
}

/// A call to `/model/{model}/{operation}` with the key as a Bedrock API key, the model id
/// encoded as the AWS SDKs encode it.
async fn call(server: &TestServer, key: &str, model: &str, operation: &str, body: &Value) -> Reply {
    let path = format!("/model/{}/{operation}", model.replace(':', "%3A"));
    let bearer = format!("Bearer {key}");
    let headers = [("authorization", bearer.as_str()), ("content-type", "application/json")];
    server.send("POST", &path, &headers, body.to_string()).await
}

fn converse(text: &str, max_tokens: Option<u64>) -> Value {
    let mut body = json!({"system": [{"text": "You are terse."}],
        "messages": [{"role": "user", "content": [{"text": text}]}]});
    if let Some(max) = max_tokens {
        body["inferenceConfig"] = json!({"maxTokens": max});
    }
    body
}

fn invoke(text: &str) -> Value {
    json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 300,
        "messages": [{"role": "user", "content": text}]})
}

/// The events of an event-stream body, as the gateway's tap reads them.
fn events(reply: &Reply) -> Vec<SseEvent> {
    let (mut parser, mut events) = (EventStreamParser::new(), Vec::new());
    parser.push(&reply.bytes, &mut events);
    assert!(!parser.broken(), "{:?}", reply.bytes);
    events
}

/// What the gateway must record for `tokens` of `model`: input, output, cache reads,
/// reasoning, and the cost.
fn expected(model: &str, tokens: &TokenCounts) -> ([i64; 4], Option<i64>) {
    let cost = PriceTable::builtin().cost_of(None, model, tokens).map(|c| c.total().0);
    let n = |v: u64| i64::try_from(v).unwrap();
    (
        [
            n(tokens.input),
            n(tokens.output),
            n(tokens.cache_read),
            n(tokens.reasoning),
        ],
        cost,
    )
}

#[tokio::test]
async fn converse_and_its_stream_are_metered_from_converses_usage() {
    let (server, key) = start().await;
    // A cache point: the mock reads three quarters of the prompt from cache.
    let mut cached = converse(&"Summarise the payment module. ".repeat(40), None);
    cached["messages"][0]["content"]
        .as_array_mut()
        .unwrap()
        .push(json!({"cachePoint": {"type": "default"}}));
    let reply = call(&server, &key, SONNET, "converse", &cached).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["stopReason"], "end_turn");
    let usage = reply.json["usage"].clone();
    assert!(usage["cacheReadInputTokens"].as_u64().unwrap() > 0, "{usage}");
    assert!(reply.headers.contains_key("x-amzn-requestid"));

    let stream = call(&server, &key, HAIKU_US, "converse-stream", &converse("hi", Some(5))).await;
    assert_eq!(stream.status, 200, "{}", stream.text);
    assert_eq!(stream.headers["content-type"], "application/vnd.amazon.eventstream");
    let events = events(&stream);
    let names: Vec<_> = events.iter().filter_map(|e| e.event.as_deref()).collect();
    assert_eq!(names.first(), Some(&"messageStart"));
    assert_eq!(names.last(), Some(&"metadata"));
    let metadata: Value = serde_json::from_str(&events.last().unwrap().data).unwrap();
    let stream_usage = metadata["usage"].clone();
    assert_eq!(stream_usage["outputTokens"], 5, "maxTokens caps the reply");

    let calls = recorded(&server).await;
    let want: Vec<_> = [(SONNET, false, &usage), (HAIKU_US, true, &stream_usage)]
        .into_iter()
        .map(|(model, stream, usage)| {
            let (tokens, cost) = expected(model, &converse_tokens(usage));
            (model.to_owned(), 200, stream, false, tokens, cost)
        })
        .collect();
    assert_eq!(calls, want);
    assert!(
        calls.iter().all(|c| c.5.is_some_and(|cost| cost > 0)),
        "Bedrock ids and inference profiles are priced: {calls:?}"
    );
}

#[tokio::test]
async fn invoke_model_and_its_stream_are_metered_from_anthropics_usage() {
    let (server, key) = start().await;
    let profile = "global.anthropic.claude-sonnet-4-5-20250929-v1:0";
    let reply = call(&server, &key, profile, "invoke", &invoke("hello")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["type"], "message");
    let usage = reply.json["usage"].clone();

    let stream = call(
        &server,
        &key,
        HAIKU_US,
        "invoke-with-response-stream",
        &invoke("stream please"),
    )
    .await;
    assert_eq!(stream.status, 200, "{}", stream.text);
    let events: Vec<Value> = events(&stream)
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    assert_eq!(events[0]["type"], "message_start");
    let last = events.last().unwrap();
    assert_eq!(last["type"], "message_stop");
    let metrics = &last["amazon-bedrock-invocationMetrics"];
    let delta = events.iter().find(|e| e["type"] == "message_delta").unwrap();
    let mut stream_usage = events[0]["message"]["usage"].clone();
    stream_usage["output_tokens"] = delta["usage"]["output_tokens"].clone();
    assert_eq!(metrics["outputTokenCount"], stream_usage["output_tokens"]);

    let calls = recorded(&server).await;
    let want: Vec<_> = [(profile, false, &usage), (HAIKU_US, true, &stream_usage)]
        .into_iter()
        .map(|(model, stream, usage)| {
            let (tokens, cost) = expected(model, &anthropic_tokens(usage));
            (model.to_owned(), 200, stream, false, tokens, cost)
        })
        .collect();
    assert_eq!(calls, want);
    assert!(calls.iter().all(|c| c.5.is_some_and(|cost| cost > 0)), "{calls:?}");
}

/// A model whose body the gateway does not read (Llama's): its counts come from the headers
/// Bedrock adds to every InvokeModel answer, not from an estimate.
#[tokio::test]
async fn invoke_model_of_another_family_is_metered_from_bedrocks_token_count_headers() {
    let (server, key) = start().await;
    let llama = "meta.llama3-3-70b-instruct-v1:0";
    let body = json!({"prompt": "Summarise the retry logic.", "max_gen_len": 64});
    let reply = call(&server, &key, llama, "invoke", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.json["generation"].is_string(), "{}", reply.text);
    let count = |name: &str| reply.headers[name].to_str().unwrap().parse::<i64>().unwrap();
    let (input, output) = (
        count("x-amzn-bedrock-input-token-count"),
        count("x-amzn-bedrock-output-token-count"),
    );
    let calls = recorded(&server).await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    let (model, status, stream, estimated, tokens, _) = &calls[0];
    assert_eq!(
        (model.as_str(), *status, *stream, *estimated),
        (llama, 200, false, false)
    );
    assert_eq!(tokens[..2], [input, output]);
}

#[tokio::test]
async fn errors_take_aws_shape_and_a_broken_stream_ends_with_an_exception_frame() {
    let (server, key) = start().await;
    let unknown = call(&server, "gk-not-a-key", SONNET, "converse", &converse("hi", None)).await;
    assert_eq!(unknown.status, 401);
    assert_eq!(unknown.headers["x-amzn-errortype"], "AccessDeniedException");
    assert_eq!(unknown.json, json!({"message": "unknown key"}));
    let bad = call(&server, &key, SONNET, "converse", &json!([1])).await;
    assert_eq!(
        (bad.status, bad.headers["x-amzn-errortype"].to_str().unwrap()),
        (400, "ValidationException")
    );

    // The key as a signature's access key id is a key too.
    let signed = format!(
        "AWS4-HMAC-SHA256 Credential={key}/20260101/us-east-1/bedrock/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature=0000"
    );
    let path = format!("/model/{}/converse", SONNET.replace(':', "%3A"));
    let reply = server
        .send(
            "POST",
            &path,
            &[("authorization", signed.as_str()), ("x-amz-date", "20260101T000000Z")],
            converse("hi", None).to_string(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    // The provider's refusal passes through in its own words, recorded with no tokens.
    let limited = call(
        &server,
        &key,
        "anthropic.claude-rate-limited-v1:0",
        "converse",
        &converse("hi", None),
    )
    .await;
    assert_eq!(
        (limited.status, limited.headers["x-amzn-errortype"].to_str().unwrap()),
        (429, "ThrottlingException")
    );

    // A hard cap refuses as a throttling exception naming the budget.
    let budget =
        json!({"scope": "user", "name": "alice", "period": "month", "limit_usd": "0.000001", "action": "block"});
    let created = server.admin("POST", "/api/v1/budgets", budget.to_string()).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let capped = call(&server, &key, SONNET, "converse", &converse("hi", None)).await;
    assert_eq!(capped.status, 429, "{}", capped.text);
    assert_eq!(capped.headers["x-amzn-errortype"], "ThrottlingException");
    assert!(capped.json["budget"]["id"].is_string(), "{}", capped.text);
    let id = created.json["id"].as_str().unwrap();
    let deleted = server.admin("DELETE", &format!("/api/v1/budgets/{id}"), "").await;
    assert_eq!(deleted.status, 204);

    // A stream the provider breaks: its exception frame reaches the client, and the call is
    // recorded with an estimate of what was streamed.
    for (model, operation) in [
        ("anthropic.claude-error-mid-v1:0", "converse-stream"),
        ("anthropic.claude-error-mid-v1:0", "invoke-with-response-stream"),
    ] {
        let body = if operation == "converse-stream" {
            converse("hi", None)
        } else {
            invoke("hi")
        };
        let broken = call(&server, &key, model, operation, &body).await;
        assert_eq!(broken.status, 200);
        let last = events(&broken).pop().unwrap();
        assert_eq!(last.event.as_deref(), Some("modelStreamErrorException"), "{operation}");
    }

    let calls = recorded(&server).await;
    let summary: Vec<_> = calls.iter().map(|c| (c.0.as_str(), c.1, c.3, c.4[1] > 0)).collect();
    assert_eq!(
        summary,
        [
            (SONNET, 200, false, true),
            ("anthropic.claude-rate-limited-v1:0", 429, false, false),
            ("anthropic.claude-error-mid-v1:0", 200, true, true),
            ("anthropic.claude-error-mid-v1:0", 200, true, true),
        ]
    );
}

/// The gateway's own in-band error, after the 200 went out: an exception frame the AWS SDKs
/// raise, named in the stream's lower camel case.
#[test]
fn the_gateways_stream_errors_are_exception_frames() {
    let frame = goodhart_gateway::errors::GatewayError::UpstreamTimeout(30).event_stream_exception();
    let (mut parser, mut events) = (EventStreamParser::new(), Vec::new());
    parser.push(&frame, &mut events);
    assert_eq!(events[0].event.as_deref(), Some("modelTimeoutException"));
    assert_eq!(
        frame,
        exception_frame("modelTimeoutException", "the provider did not answer within 30 s")
    );
}

#[tokio::test]
async fn upstream_requests_are_signed_with_the_providers_credentials_and_never_carry_the_clients() {
    let seen: Arc<Mutex<Vec<(String, HeaderMap, bytes::Bytes)>>> = Arc::default();
    let state = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/model/{model}/converse",
        axum::routing::post(move |uri: axum::http::Uri, headers: HeaderMap, body: bytes::Bytes| {
            let state = Arc::clone(&state);
            async move {
                state.lock().unwrap().push((uri.to_string(), headers, body));
                axum::Json(
                    json!({"output": {"message": {"role": "assistant", "content": [{"text": "ok"}]}},
                    "stopReason": "end_turn", "usage": {"inputTokens": 3, "outputTokens": 1, "totalTokens": 4}}),
                )
            }
        }),
    );
    let addr = serve_upstream(app).await;
    let config = format!(
        "[[providers]]\nname = \"bedrock\"\nprotocol = \"bedrock\"\nbase_url = \"http://{addr}\"\nregion = \"eu-west-1\"\n"
    );
    let aws = AwsSigning {
        access_key_id: "AKIDPROVIDER".into(),
        secret_access_key: ApiKey::new("provider-secret".into()),
        session_token: Some(ApiKey::new("provider-session".into())),
        region: "eu-west-1".into(),
    };
    let signing = aws.clone();
    let server = start_configured(TestDatabase::sqlite(), &config, move |config| {
        config.gateway.providers[0].aws = Some(signing);
    })
    .await;
    let key = server.create_key(r#"{"user": "alice", "team": "payments"}"#).await.1;
    let reply = server
        .send(
            "POST",
            &format!("/model/{}/converse", SONNET.replace(':', "%3A")),
            &[
                ("authorization", &format!("Bearer {key}")),
                ("x-amz-security-token", "client-token"),
                ("x-amz-date", "20200101T000000Z"),
                ("content-type", "application/json"),
            ],
            converse("hi", None).to_string(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let (uri, headers, body) = seen.lock().unwrap()[0].clone();
    assert_eq!(uri, "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse");
    assert_eq!(headers["x-amz-security-token"], "provider-session");
    let authorization = headers["authorization"].to_str().unwrap();
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDPROVIDER/"),
        "{authorization}"
    );
    assert!(
        authorization.contains("/eu-west-1/bedrock/aws4_request"),
        "{authorization}"
    );
    assert!(
        headers.values().all(|v| !v.to_str().unwrap_or("").contains(&key)),
        "the client's key leaked upstream"
    );

    // The signature is the one these credentials make over exactly what arrived.
    let date = headers["x-amz-date"].to_str().unwrap();
    let time = jiff::fmt::strtime::parse("%Y%m%dT%H%M%SZ", date)
        .unwrap()
        .to_datetime()
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp();
    let mut again = hyper::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{uri}"));
    for name in ["content-type", "accept-encoding"] {
        if let Some(value) = headers.get(name) {
            again = again.header(name, value);
        }
    }
    let mut again = again.body(http_body_util::Full::new(body.clone())).unwrap();
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(time.as_second()).unwrap());
    goodhart_gateway::sigv4::sign_request(&mut again, &body, &aws, at).unwrap();
    let signed = |auth: &str| auth.rsplit_once("Signature=").unwrap().1.to_owned();
    let headers_signed = authorization
        .split("SignedHeaders=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    assert_eq!(
        headers_signed, "accept-encoding;content-type;host;x-amz-date;x-amz-security-token",
        "{authorization}"
    );
    assert_eq!(
        signed(again.headers()["authorization"].to_str().unwrap()),
        signed(authorization)
    );
}
