//! Azure OpenAI through the gateway: a deployment's routes (`/openai/deployments/{deployment}/…`
//! with `api-version`) and the `v1` API (`/openai/v1/…`, the deployment in the body's `model`),
//! the key in `api-key`; what goes up is the provider's key, never the client's.

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use goodhart_gateway::config::ApiKey;
use goodhart_store::testing::TestDatabase;
use serde_json::{Value, json};

use crate::common::{serve_upstream, start_configured, start_with};

fn chat(model: Option<&str>) -> String {
    let mut body = json!({"messages": [{"role": "user", "content": "hi"}]});
    if let Some(model) = model {
        body["model"] = model.into();
    }
    body.to_string()
}

#[tokio::test]
async fn the_v1_api_names_the_deployment_in_the_body_and_errors_take_openais_shape() {
    let server = start_with(TestDatabase::sqlite(), "").await;
    let key = server.create_key(r#"{"user": "alice", "team": "payments"}"#).await.1;
    let headers = [("api-key", key.as_str()), ("content-type", "application/json")];
    let reply = server
        .send("POST", "/openai/v1/chat/completions", &headers, chat(Some("prod-4o")))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let plain = server
        .send(
            "POST",
            "/openai/v1/chat/completions",
            &headers,
            chat(Some("gpt-4o-mini")),
        )
        .await;
    assert_eq!(plain.status, 200, "{}", plain.text);
    server.flush().await;
    let summary = server
        .summary("from=2020-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&group_by=model,provider")
        .await;
    let models: Vec<(&str, &str, u64)> = summary.json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["model"].as_str().unwrap(),
                r["provider"].as_str().unwrap(),
                r["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        models,
        [("gpt-4o", "mock", 1), ("gpt-4o-mini", "mock", 1)],
        "{}",
        summary.text
    );

    let bad = [("api-key", "gk-not-a-key"), ("content-type", "application/json")];
    let refused = server
        .send(
            "POST",
            "/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21",
            &bad,
            chat(None),
        )
        .await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.json["error"]["code"], "invalid_api_key", "{}", refused.text);
}

#[tokio::test]
async fn a_deployment_call_goes_up_to_its_deployment_with_the_providers_key_only() {
    let seen: Arc<Mutex<Vec<(String, HeaderMap, Value)>>> = Arc::default();
    let state = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/openai/deployments/{deployment}/chat/completions",
        axum::routing::post(
            move |uri: axum::http::Uri, headers: HeaderMap, body: axum::body::Bytes| {
                let state = Arc::clone(&state);
                async move {
                    let body: Value = serde_json::from_slice(&body).unwrap();
                    state.lock().unwrap().push((uri.to_string(), headers, body));
                    axum::Json(json!({"id": "chatcmpl-az", "model": "gpt-4o-2024-11-20",
                    "choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 9, "completion_tokens": 1}}))
                }
            },
        ),
    );
    let addr = serve_upstream(app).await;
    let config = format!(
        "[[providers]]\nname = \"azure-eu\"\nprotocol = \"azure\"\nbase_url = \"http://{addr}\"\n\
         deployments = {{ \"prod-4o\" = \"gpt-4o\" }}\nmodel_map = {{ \"fast\" = \"prod-4o\" }}\n"
    );
    let server = start_configured(TestDatabase::sqlite(), &config, |config| {
        config.gateway.providers[0].api_key = Some(ApiKey::new("azure-upstream-secret".into()));
    })
    .await;
    let key = server.create_key(r#"{"user": "alice", "team": "payments"}"#).await.1;
    let headers = [("api-key", key.as_str()), ("content-type", "application/json")];
    // An alias of the deployment: the path that goes up names the deployment.
    let reply = server
        .send(
            "POST",
            "/openai/deployments/fast/chat/completions?api-version=2024-10-21",
            &headers,
            chat(None),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let (uri, headers, body) = seen.lock().unwrap()[0].clone();
    assert_eq!(
        uri,
        "/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(headers["api-key"], "azure-upstream-secret");
    assert!(
        headers.values().all(|v| !v.to_str().unwrap_or("").contains(&key)),
        "the client's key leaked upstream"
    );
    assert!(
        body.get("model").is_none(),
        "a deployment call's body goes up as sent: {body}"
    );
    server.flush().await;
    let summary = server
        .summary("from=2020-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&group_by=model")
        .await;
    let row = &summary.json["rows"][0];
    assert_eq!(
        row["model"], "gpt-4o",
        "recorded as the deployment's configured model, not the echoed snapshot"
    );
    assert!(row["cost_usd"].as_f64().unwrap() > 0.0, "{row}");
}
