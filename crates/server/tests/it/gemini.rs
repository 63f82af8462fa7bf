//! The Gemini API through the gateway against the mock provider: generateContent, both stream
//! framings (`alt=sse` and the default JSON array), countTokens and the model list; usage
//! read from `usageMetadata` (cached content inside the prompt, thoughts beside the output);
//! keys in `x-goog-api-key` or `?key=` (never passed up); errors in Gemini's own shape.

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use bytes::Bytes;
use goodhart_core::pricing::PriceTable;
use goodhart_core::providers::gemini_tokens;
use goodhart_gateway::config::ApiKey;
use goodhart_store::testing::TestDatabase;
use serde_json::{Value, json};

use crate::common::{Reply, TestServer, recorded, serve_upstream, start_configured, start_with};

async fn start() -> (TestServer, String) {
    let server = start_with(TestDatabase::sqlite(), "").await;
    let key = server.create_key(r#"{"user": "alice", "team": "payments"}"#).await.1;
    (server, key)
}

fn ask(text: &str, max_output: Option<u64>) -> String {
    let mut body = json!({"contents": [{"role": "user", "parts": [{"text": text}]}],
        "systemInstruction": {"parts": [{"text": "You are terse."}]}});
    if let Some(max) = max_output {
        body["generationConfig"] = json!({"maxOutputTokens": max});
    }
    body.to_string()
}

async fn generate(server: &TestServer, key: &str, model: &str, method: &str, query: &str, body: String) -> Reply {
    let path = format!("/v1beta/models/{model}:{method}{query}");
    let headers = [("x-goog-api-key", key), ("content-type", "application/json")];
    server.send("POST", &path, &headers, body).await
}

/// The tokens and cost a Gemini `usageMetadata` stands for, as the gateway must record them.
fn expected(model: &str, usage: &Value) -> ([i64; 4], Option<i64>) {
    let tokens = gemini_tokens(usage);
    let cost = PriceTable::builtin().cost_of(None, model, &tokens).map(|c| c.total().0);
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

fn sse_chunks(text: &str) -> Vec<Value> {
    text.split("\r\n\r\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap())
        .collect()
}

#[tokio::test]
async fn generate_content_in_every_framing_is_metered_from_usage_metadata() {
    let (server, key) = start().await;
    let long = "Summarise the repository's payment module. ".repeat(120);

    // Not streamed: a long prompt has cached content inside its prompt count, and a thinking
    // model reports its thoughts beside its output.
    let reply = generate(&server, &key, "gemini-2.5-pro", "generateContent", "", ask(&long, None)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let usage = reply.json["usageMetadata"].clone();
    assert!(usage["cachedContentTokenCount"].as_u64().unwrap() > 0, "{usage}");
    assert_eq!(usage["thoughtsTokenCount"], 64);
    assert_eq!(reply.json["candidates"][0]["finishReason"], "STOP");

    // Streamed as SSE (`alt=sse`), with the key in the query instead of a header.
    let path = format!("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key={key}");
    let sse = server
        .send(
            "POST",
            &path,
            &[("content-type", "application/json")],
            ask("hello", None),
        )
        .await;
    assert_eq!(sse.status, 200, "{}", sse.text);
    assert!(
        sse.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let chunks = sse_chunks(&sse.text);
    assert!(chunks.len() > 1, "{}", sse.text);
    let sse_usage = chunks.last().unwrap()["usageMetadata"].clone();

    // Streamed as Gemini's default, one JSON array sent element by element: the client gets
    // the array whole.
    let array = generate(
        &server,
        &key,
        "gemini-2.5-flash",
        "streamGenerateContent",
        "",
        ask("hi there", Some(5)),
    )
    .await;
    assert_eq!(array.status, 200, "{}", array.text);
    let elements = array.json.as_array().unwrap_or_else(|| panic!("{}", array.text));
    assert_eq!(elements.last().unwrap()["candidates"][0]["finishReason"], "MAX_TOKENS");
    let array_usage = elements.last().unwrap()["usageMetadata"].clone();
    assert_eq!(array_usage["candidatesTokenCount"], 5);

    let calls = recorded(&server).await;
    let want: Vec<_> = [
        ("gemini-2.5-pro", false, &usage),
        ("gemini-2.5-flash", true, &sse_usage),
        ("gemini-2.5-flash", true, &array_usage),
    ]
    .into_iter()
    .map(|(model, stream, usage)| {
        let (tokens, cost) = expected(model, usage);
        (model.to_owned(), 200, stream, false, tokens, cost)
    })
    .collect();
    assert_eq!(calls, want);
    assert!(calls[1].5.is_some_and(|cost| cost > 0), "Gemini is priced: {calls:?}");
}

#[tokio::test]
async fn count_tokens_and_the_model_list_pass_through_unmetered() {
    let (server, key) = start().await;
    let counted = generate(
        &server,
        &key,
        "gemini-2.5-flash",
        "countTokens",
        "",
        ask("count me", None),
    )
    .await;
    assert_eq!(counted.status, 200, "{}", counted.text);
    assert!(counted.json["totalTokens"].as_u64().unwrap() > 0);
    let models = server
        .send("GET", &format!("/v1beta/models?key={key}"), &[], Bytes::new())
        .await;
    assert_eq!(models.status, 200, "{}", models.text);
    assert!(
        models.json["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "models/gemini-2.5-flash")
    );
    assert!(recorded(&server).await.is_empty());
}

#[tokio::test]
async fn errors_take_geminis_shape_and_cut_streams_are_estimated() {
    let (server, key) = start().await;
    let unknown = generate(
        &server,
        "gk-not-a-key",
        "gemini-2.5-flash",
        "generateContent",
        "",
        ask("hi", None),
    )
    .await;
    assert_eq!(unknown.status, 401);
    assert_eq!(
        (
            unknown.json["error"]["code"].as_u64(),
            unknown.json["error"]["status"].as_str()
        ),
        (Some(401), Some("UNAUTHENTICATED")),
        "{}",
        unknown.text
    );
    let method = generate(&server, &key, "gemini-2.5-flash", "embedContent", "", ask("hi", None)).await;
    assert_eq!(
        (method.status, method.json["error"]["status"].as_str()),
        (404, Some("NOT_FOUND"))
    );
    let bad = generate(&server, &key, "gemini-2.5-flash", "generateContent", "", "{".into()).await;
    assert_eq!(
        (bad.status, bad.json["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );

    // The provider's refusal passes through in its own words, recorded with no tokens.
    let limited = generate(
        &server,
        &key,
        "gemini-rate-limited",
        "generateContent",
        "",
        ask("hi", None),
    )
    .await;
    assert_eq!(
        (limited.status, limited.json["error"]["status"].as_str()),
        (429, Some("RESOURCE_EXHAUSTED"))
    );

    // A hard cap refuses in Gemini's shape, naming the budget.
    let budget =
        json!({"scope": "user", "name": "alice", "period": "month", "limit_usd": "0.000001", "action": "block"});
    let created = server.admin("POST", "/api/v1/budgets", budget.to_string()).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let capped = generate(
        &server,
        &key,
        "gemini-2.5-flash",
        "generateContent",
        "",
        ask("hi", None),
    )
    .await;
    assert_eq!(capped.status, 429, "{}", capped.text);
    assert_eq!(capped.json["error"]["status"], "RESOURCE_EXHAUSTED");
    assert!(capped.json["error"]["budget"]["id"].is_string(), "{}", capped.text);
    let id = created.json["id"].as_str().unwrap();
    assert_eq!(
        server
            .admin("DELETE", &format!("/api/v1/budgets/{id}"), "")
            .await
            .status,
        204
    );

    // A stream the provider breaks mid-array: the client still gets a whole array, its last
    // element the error, and the call is recorded with an estimate of what was streamed.
    let broken = generate(
        &server,
        &key,
        "gemini-error-mid",
        "streamGenerateContent",
        "",
        ask("hi", None),
    )
    .await;
    assert_eq!(broken.status, 200);
    let elements = broken.json.as_array().unwrap_or_else(|| panic!("{}", broken.text));
    assert_eq!(elements.last().unwrap()["error"]["status"], "INTERNAL");

    let calls = recorded(&server).await;
    let summary: Vec<_> = calls.iter().map(|c| (c.0.as_str(), c.1, c.3, c.4[1] > 0)).collect();
    assert_eq!(
        summary,
        [
            ("gemini-rate-limited", 429, false, false),
            ("gemini-error-mid", 200, true, true)
        ]
    );
}

#[tokio::test]
async fn the_key_in_the_query_never_reaches_google_and_the_providers_key_does() {
    let seen: Arc<Mutex<Vec<(String, HeaderMap)>>> = Arc::default();
    let state = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/v1beta/models/{target}",
        axum::routing::post(move |uri: axum::http::Uri, headers: HeaderMap| {
            let state = Arc::clone(&state);
            async move {
                state.lock().unwrap().push((uri.to_string(), headers));
                axum::Json(
                    json!({"candidates": [{"content": {"parts": [{"text": "ok"}]}, "finishReason": "STOP"}],
                    "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1}, "responseId": "r1"}),
                )
            }
        }),
    );
    let addr = serve_upstream(app).await;
    let config = format!("[[providers]]\nname = \"google\"\nprotocol = \"gemini\"\nbase_url = \"http://{addr}\"\n");
    let server = start_configured(TestDatabase::sqlite(), &config, |config| {
        config.gateway.providers[0].api_key = Some(ApiKey::new("AIza-upstream-secret".into()));
    })
    .await;
    let key = server.create_key(r#"{"user": "alice", "team": "payments"}"#).await.1;
    let path = format!("/v1/models/gemini-2.5-flash:generateContent?key={key}&labels=a");
    let reply = server
        .send("POST", &path, &[("content-type", "application/json")], ask("hi", None))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let (uri, headers) = seen.lock().unwrap()[0].clone();
    assert_eq!(uri, "/v1beta/models/gemini-2.5-flash:generateContent?labels=a");
    assert_eq!(headers["x-goog-api-key"], "AIza-upstream-secret");
    assert!(
        headers.values().all(|v| !v.to_str().unwrap_or("").contains(&key)),
        "the client's key leaked upstream"
    );
}
