//! Vertex AI through the gateway: Anthropic's models (`rawPredict`, `streamRawPredict`) and
//! Gemini's under a project's publisher paths; the project and location that go up are the
//! provider's (its base URL), the token that goes up is the provider's; errors in the shape
//! each publisher's clients read.

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use goodhart_core::pricing::PriceTable;
use goodhart_core::providers::{anthropic_tokens, gemini_tokens};
use goodhart_gateway::config::ApiKey;
use goodhart_store::testing::TestDatabase;
use serde_json::{Value, json};

use crate::common::{TestServer, serve_upstream, start_configured, start_with};

const ANTHROPIC: &str = "/v1/projects/client-proj/locations/us-east5/publishers/anthropic/models";
const GOOGLE: &str = "/v1/projects/client-proj/locations/us-east5/publishers/google/models";

async fn post(server: &TestServer, key: &str, path: &str, body: Value) -> crate::common::Reply {
    let headers = [("x-api-key", key), ("content-type", "application/json")];
    server.send("POST", path, &headers, body.to_string()).await
}

fn claude_body() -> Value {
    json!({"anthropic_version": "vertex-2023-10-16", "max_tokens": 64,
           "messages": [{"role": "user", "content": "hello"}]})
}

/// (model, tokens, cost) per recorded model.
async fn recorded(server: &TestServer) -> Vec<(String, goodhart_core::usage::TokenCounts, i64)> {
    server.flush().await;
    let reply = server
        .summary("from=2020-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&group_by=model")
        .await;
    reply.json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let n = |f: &str| row[f].as_u64().unwrap();
            let tokens = goodhart_core::usage::TokenCounts {
                input: n("input_tokens"),
                output: n("output_tokens"),
                cache_read: n("cache_read_tokens"),
                cache_write_5m: n("cache_write_tokens"),
                reasoning: n("reasoning_tokens"),
                ..Default::default()
            };
            let cost = (row["cost_usd"].as_f64().unwrap() * 1e9).round() as i64;
            (row["model"].as_str().unwrap().to_owned(), tokens, cost)
        })
        .collect()
}

#[tokio::test]
async fn claude_and_gemini_on_vertex_are_metered_and_priced() {
    let server = start_with(TestDatabase::sqlite(), "").await;
    let key = server.create_key(r#"{"user": "alice", "team": "payments"}"#).await.1;
    let model = "claude-sonnet-4-5@20250929";
    let whole = post(&server, &key, &format!("{ANTHROPIC}/{model}:rawPredict"), claude_body()).await;
    assert_eq!(whole.status, 200, "{}", whole.text);
    assert_eq!(whole.json["type"], "message");
    let mut tokens = anthropic_tokens(&whole.json["usage"]);

    let streamed = post(
        &server,
        &key,
        &format!("{ANTHROPIC}/{model}:streamRawPredict"),
        claude_body(),
    )
    .await;
    assert_eq!(streamed.status, 200, "{}", streamed.text);
    assert!(streamed.text.contains("event: message_stop"), "{}", streamed.text);
    let streamed_tokens = anthropic_tokens(&whole.json["usage"]);
    tokens.input += streamed_tokens.input;
    tokens.output += streamed_tokens.output;

    let gemini = post(
        &server,
        &key,
        &format!("{GOOGLE}/gemini-2.5-flash:generateContent"),
        json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
    )
    .await;
    assert_eq!(gemini.status, 200, "{}", gemini.text);
    let gemini_tokens = gemini_tokens(&gemini.json["usageMetadata"]);

    let rows = recorded(&server).await;
    let prices = PriceTable::builtin();
    let claude_cost = prices
        .cost_of(None, model, &tokens)
        .expect("Vertex's Claude names are priced")
        .total()
        .0;
    let gemini_cost = prices
        .cost_of(None, "gemini-2.5-flash", &gemini_tokens)
        .unwrap()
        .total()
        .0;
    assert_eq!(
        rows,
        [
            ("claude-sonnet-4-5@20250929".to_owned(), tokens, claude_cost),
            ("gemini-2.5-flash".to_owned(), gemini_tokens, gemini_cost)
        ]
    );
}

#[tokio::test]
async fn the_providers_project_and_token_go_up_and_errors_take_each_publishers_shape() {
    let seen: Arc<Mutex<Vec<(String, HeaderMap)>>> = Arc::default();
    let state = Arc::clone(&seen);
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, headers: HeaderMap| {
        let state = Arc::clone(&state);
        async move {
            state.lock().unwrap().push((uri.to_string(), headers));
            axum::Json(
                json!({"id": "msg_v", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                "usage": {"input_tokens": 5, "output_tokens": 1}}),
            )
        }
    });
    let addr = serve_upstream(app).await;
    let config = format!(
        "[[providers]]\nname = \"vertex\"\nprotocol = \"vertex\"\n\
         base_url = \"http://{addr}/v1/projects/our-proj/locations/europe-west1\"\n"
    );
    let server = start_configured(TestDatabase::sqlite(), &config, |config| {
        config.gateway.providers[0].api_key = Some(ApiKey::new("ya29.upstream-token".into()));
    })
    .await;
    let key = server.create_key(r#"{"user": "alice"}"#).await.1;
    let reply = post(
        &server,
        &key,
        &format!("{ANTHROPIC}/claude-sonnet-4-5@20250929:rawPredict"),
        claude_body(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let (uri, headers) = seen.lock().unwrap()[0].clone();
    assert_eq!(
        uri,
        "/v1/projects/our-proj/locations/europe-west1/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict"
    );
    assert_eq!(headers["authorization"], "Bearer ya29.upstream-token");
    assert!(
        headers.values().all(|v| !v.to_str().unwrap_or("").contains(&key)),
        "the client's key leaked upstream"
    );

    let anthropic = post(
        &server,
        "gk-not-a-key",
        &format!("{ANTHROPIC}/claude-sonnet-4-5:rawPredict"),
        claude_body(),
    )
    .await;
    assert_eq!(
        (anthropic.status, anthropic.json["error"]["type"].as_str()),
        (401, Some("authentication_error"))
    );
    let google = post(
        &server,
        "gk-not-a-key",
        &format!("{GOOGLE}/gemini-2.5-flash:generateContent"),
        json!({}),
    )
    .await;
    assert_eq!(
        (google.status, google.json["error"]["status"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
    let method = post(
        &server,
        &key,
        &format!("{ANTHROPIC}/claude-sonnet-4-5:predict"),
        claude_body(),
    )
    .await;
    assert_eq!(
        (method.status, method.json["error"]["type"].as_str()),
        (404, Some("not_found_error"))
    );
}

/// A service account's key (issue 18: the OAuth 2.0 JWT bearer flow): the gateway signs an
/// assertion with the account's key, exchanges it at the key's token endpoint, sends the token
/// up, and keeps it for the next call.
#[tokio::test]
async fn a_service_accounts_tokens_are_earned_with_a_signed_assertion_and_reused() {
    let exchanges = Arc::new(Mutex::new(Vec::<Value>::new()));
    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let (tokens, calls) = (Arc::clone(&exchanges), Arc::clone(&seen));
    let public = hex::decode(include_str!("../fixtures/google/service_account.public.hex").trim()).unwrap();
    let app = axum::Router::new()
        .route(
            "/token",
            axum::routing::post(move |form: String| {
                let tokens = Arc::clone(&tokens);
                let public = public.clone();
                async move {
                    let assertion = form
                        .split('&')
                        .find_map(|p| p.strip_prefix("assertion="))
                        .unwrap()
                        .to_owned();
                    assert!(
                        form.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"),
                        "{form}"
                    );
                    let (signed, signature) = assertion.rsplit_once('.').unwrap();
                    let decode = |part: &str| {
                        use base64::Engine;
                        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()
                    };
                    let key =
                        ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, &public);
                    key.verify(signed.as_bytes(), &decode(signature))
                        .expect("the assertion is signed with the account's key");
                    let claims: Value = serde_json::from_slice(&decode(signed.split('.').nth(1).unwrap())).unwrap();
                    tokens.lock().unwrap().push(claims);
                    axum::Json(json!({"access_token": "ya29.from-jwt", "expires_in": 3600, "token_type": "Bearer"}))
                }
            }),
        )
        .fallback(move |headers: HeaderMap| {
            let calls = Arc::clone(&calls);
            async move {
                calls.lock().unwrap().push(headers);
                axum::Json(
                    json!({"id": "msg_v", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                    "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                    "usage": {"input_tokens": 5, "output_tokens": 1}}),
                )
            }
        });
    let addr = serve_upstream(app).await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key.json");
    let key_json =
        include_str!("../fixtures/google/service_account.json").replace("TOKEN_URI", &format!("http://{addr}/token"));
    std::fs::write(&key_file, key_json).unwrap();
    let config = format!(
        "[[providers]]\nname = \"vertex\"\nprotocol = \"vertex\"\n\
         base_url = \"http://{addr}/v1/projects/goodhart-test/locations/us-east5\"\ngoogle_credentials_file = {:?}\n",
        key_file.display().to_string()
    );
    let server = start_with(TestDatabase::sqlite(), &config).await;
    let key = server.create_key(r#"{"user": "alice"}"#).await.1;
    for _ in 0..2 {
        let reply = post(
            &server,
            &key,
            &format!("{ANTHROPIC}/claude-sonnet-4-5@20250929:rawPredict"),
            claude_body(),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let calls = seen.lock().unwrap().clone();
    assert_eq!(calls.len(), 2);
    assert!(
        calls.iter().all(|h| h["authorization"] == "Bearer ya29.from-jwt"),
        "{calls:?}"
    );
    let exchanges = exchanges.lock().unwrap().clone();
    assert_eq!(exchanges.len(), 1, "one exchange, the token kept for the second call");
    let claims = &exchanges[0];
    assert_eq!(claims["iss"], "gateway@goodhart-test.iam.gserviceaccount.com");
    assert_eq!(claims["aud"], format!("http://{addr}/token"));
    assert_eq!(claims["scope"], "https://www.googleapis.com/auth/cloud-platform");
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 3600);
}
