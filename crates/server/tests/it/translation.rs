//! Protocol translation: Anthropic Messages clients routed to an OpenAI-protocol provider when
//! its configuration names their model. The client sees Anthropic's shapes (message, events,
//! errors, count_tokens); the record is the provider's call: its model, its usage, its price.

use goodhart_core::pricing::PriceTable;
use goodhart_core::usage::TokenCounts;
use goodhart_store::testing::TestDatabase;
use serde_json::{Value, json};

use crate::common::{TestServer, start_with};

/// Anthropic's own provider for Claude models in general, and an OpenAI provider that serves
/// `claude-sonnet-4-5` (as `gpt-4o`) to Anthropic clients.
pub fn translating_providers(mock: std::net::SocketAddr) -> String {
    format!(
        "[[providers]]\nname = \"anthropic\"\nprotocol = \"anthropic\"\nbase_url = \"http://{mock}\"\n\
         [[providers]]\nname = \"openai\"\nprotocol = \"openai\"\nbase_url = \"http://{mock}/v1\"\ndefault = true\n\
         clients = [\"anthropic\"]\nmodel_map = {{ \"claude-sonnet-4-5\" = \"gpt-4o\", \"claude-haiku-4-5-20251001\" = \"gpt-4o-mini\" }}\n"
    )
}

async fn start() -> (TestServer, String) {
    let mock = goodhart_sim::mock_provider::spawn().await.unwrap();
    let server = start_with(TestDatabase::sqlite(), &translating_providers(mock)).await;
    let key = server.create_key(r#"{"user": "alice", "team": "payments"}"#).await.1;
    (server, key)
}

async fn messages(server: &TestServer, key: &str, path: &str, body: Value) -> crate::common::Reply {
    let headers = [
        ("x-api-key", key),
        ("anthropic-version", "2023-06-01"),
        ("content-type", "application/json"),
    ];
    server.send("POST", path, &headers, body.to_string()).await
}

/// The recorded rows: (model, provider, tokens, cost in nano-dollars).
async fn recorded(server: &TestServer) -> Vec<(String, String, TokenCounts, i64)> {
    server.flush().await;
    let reply = server
        .summary("from=2020-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&group_by=model,provider")
        .await;
    reply.json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let n = |f: &str| row[f].as_u64().unwrap();
            let tokens = TokenCounts {
                input: n("input_tokens"),
                output: n("output_tokens"),
                cache_read: n("cache_read_tokens"),
                ..Default::default()
            };
            let cost = (row["cost_usd"].as_f64().unwrap() * 1e9).round() as i64;
            (
                row["model"].as_str().unwrap().to_owned(),
                row["provider"].as_str().unwrap().to_owned(),
                tokens,
                cost,
            )
        })
        .collect()
}

#[tokio::test]
async fn an_anthropic_client_of_a_model_served_by_openai_gets_anthropics_shapes_and_openai_is_recorded() {
    let (server, key) = start().await;
    let ask = |stream: bool| {
        json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": stream, "system": "Be brief.",
               "messages": [{"role": "user", "content": "hello ".repeat(300)}]})
    };

    let whole = messages(&server, &key, "/v1/messages", ask(false)).await;
    assert_eq!(whole.status, 200, "{}", whole.text);
    assert_eq!(whole.json["type"], "message");
    assert_eq!(whole.json["model"], "claude-sonnet-4-5", "named as the client asked");
    assert_eq!(whole.json["content"][0]["type"], "text");
    assert_eq!(whole.json["stop_reason"], "end_turn");
    let usage = whole.json["usage"].clone();

    let streamed = messages(&server, &key, "/v1/messages", ask(true)).await;
    assert_eq!(streamed.status, 200, "{}", streamed.text);
    assert!(
        streamed.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events: Vec<&str> = streamed
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(events.first(), Some(&"message_start"));
    assert_eq!(events.last(), Some(&"message_stop"));
    assert!(events.contains(&"content_block_delta"));
    let delta: Value = streamed
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .find(|d| d["type"] == "message_delta")
        .unwrap();
    assert_eq!(delta["usage"], usage, "the stream reports what the whole answer did");

    // count_tokens is answered by the gateway (an OpenAI provider has no such endpoint).
    let counted = messages(&server, &key, "/v1/messages/count_tokens", ask(false)).await;
    assert_eq!(counted.status, 200, "{}", counted.text);
    assert!(counted.json["input_tokens"].as_u64().unwrap() > 250, "{}", counted.text);

    // The record is the provider's call: gpt-4o's tokens at gpt-4o's price, twice.
    let expected = TokenCounts {
        input: usage["input_tokens"].as_u64().unwrap() * 2,
        cache_read: usage["cache_read_input_tokens"].as_u64().unwrap() * 2,
        output: usage["output_tokens"].as_u64().unwrap() * 2,
        ..Default::default()
    };
    let cost = PriceTable::builtin()
        .cost_of(None, "gpt-4o", &expected)
        .unwrap()
        .total()
        .0;
    assert_eq!(
        recorded(&server).await,
        [("gpt-4o".to_owned(), "openai".to_owned(), expected, cost)]
    );

    // Other Claude models still go to Anthropic, untranslated.
    let native = messages(
        &server,
        &key,
        "/v1/messages",
        json!({"model": "claude-opus-4-1", "max_tokens": 8,
        "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(native.status, 200, "{}", native.text);
    assert!(
        recorded(&server)
            .await
            .iter()
            .any(|r| r.0 == "claude-opus-4-1" && r.1 == "anthropic")
    );
}

#[tokio::test]
async fn the_providers_refusal_reaches_the_client_in_anthropics_shape() {
    let mock = goodhart_sim::mock_provider::spawn().await.unwrap();
    let config = translating_providers(mock).replace(
        "\"claude-sonnet-4-5\" = \"gpt-4o\"",
        "\"claude-sonnet-4-5\" = \"gpt-4o-rate-limited\"",
    );
    let server = start_with(TestDatabase::sqlite(), &config).await;
    let key = server.create_key(r#"{"user": "alice"}"#).await.1;
    let refused = messages(
        &server,
        &key,
        "/v1/messages",
        json!({"model": "claude-sonnet-4-5", "max_tokens": 8,
        "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(refused.status, 429);
    assert_eq!(
        refused.json,
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "mock: rate limited"}})
    );
    let bad = messages(
        &server,
        &key,
        "/v1/messages",
        json!({"model": "claude-sonnet-4-5", "messages": 3}),
    )
    .await;
    assert_eq!(
        (bad.status, bad.json["error"]["type"].as_str()),
        (400, Some("invalid_request_error")),
        "{}",
        bad.text
    );
}

/// The other way: OpenAI chat clients of a model an Anthropic provider serves.
#[tokio::test]
async fn an_openai_client_of_a_model_served_by_anthropic_gets_openais_shapes_and_anthropic_is_recorded() {
    let mock = goodhart_sim::mock_provider::spawn().await.unwrap();
    let config = format!(
        "[[providers]]\nname = \"openai\"\nprotocol = \"openai\"\nbase_url = \"http://{mock}/v1\"\n\
         [[providers]]\nname = \"anthropic\"\nprotocol = \"anthropic\"\nbase_url = \"http://{mock}\"\ndefault = true\n\
         clients = [\"openai\"]\nmodel_map = {{ \"gpt-4o\" = \"claude-sonnet-4-5\" }}\n"
    );
    let server = start_with(TestDatabase::sqlite(), &config).await;
    let key = server.create_key(r#"{"user": "alice"}"#).await.1;
    let auth = format!("Bearer {key}");
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let ask = |stream: bool| {
        json!({"model": "gpt-4o", "stream": stream, "stream_options": {"include_usage": stream}, "max_tokens": 8,
               "messages": [{"role": "system", "content": "Be brief."},
                            {"role": "user", "content": "cache_control ".repeat(200)}]})
        .to_string()
    };
    let whole = server.send("POST", "/v1/chat/completions", &headers, ask(false)).await;
    assert_eq!(whole.status, 200, "{}", whole.text);
    assert_eq!(whole.json["object"], "chat.completion");
    assert_eq!(whole.json["model"], "gpt-4o");
    assert!(
        !whole.json["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    let usage = whole.json["usage"].clone();

    let streamed = server.send("POST", "/v1/chat/completions", &headers, ask(true)).await;
    assert_eq!(streamed.status, 200, "{}", streamed.text);
    assert!(streamed.text.ends_with("data: [DONE]\n\n"), "{}", streamed.text);
    let chunks: Vec<Value> = streamed
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(
        chunks.last().unwrap()["usage"],
        usage,
        "the stream's usage chunk is the whole answer's"
    );
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "length"));

    // Recorded: Anthropic's model and its own kinds (cache reads apart), priced as Claude.
    let cached = usage["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap();
    assert!(
        cached > 0,
        "the mock read part of a cache-marked prompt from cache: {usage}"
    );
    let expected = TokenCounts {
        input: (usage["prompt_tokens"].as_u64().unwrap() - cached) * 2,
        cache_read: cached * 2,
        output: usage["completion_tokens"].as_u64().unwrap() * 2,
        ..Default::default()
    };
    let rows = recorded(&server).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (model, provider, tokens, cost) = &rows[0];
    assert_eq!((model.as_str(), provider.as_str()), ("claude-sonnet-4-5", "anthropic"));
    assert_eq!(*tokens, expected);
    assert_eq!(
        *cost,
        PriceTable::builtin()
            .cost_of(None, "claude-sonnet-4-5", &expected)
            .unwrap()
            .total()
            .0
    );
}
