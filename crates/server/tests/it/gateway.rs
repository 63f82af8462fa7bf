//! The gateway over real HTTP against the mock provider: what clients see, what is recorded,
//! every fault of the mock, authentication and attribution, header hygiene, disconnects.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::HeaderMap;
use bytes::Bytes;
use goodhart_gateway::config::ApiKey;
use goodhart_store::testing::TestDatabase;
use serde_json::{Value, json};

use crate::common::{Reply, TestServer, serve_upstream, start_configured, start_peer, start_with};

async fn start() -> TestServer {
    start_with(TestDatabase::sqlite(), "").await
}

async fn key(server: &TestServer) -> String {
    server.create_key(r#"{"user": "alice", "team": "payments"}"#).await.1
}

async fn chat(server: &TestServer, key: &str, body: Value, headers: &[(&str, &str)]) -> Reply {
    let auth = format!("Bearer {key}");
    let mut all = vec![("authorization", auth.as_str()), ("content-type", "application/json")];
    all.extend_from_slice(headers);
    server
        .send("POST", "/v1/chat/completions", &all, body.to_string())
        .await
}

async fn messages(server: &TestServer, key: &str, body: Value) -> Reply {
    let headers = [
        ("x-api-key", key),
        ("anthropic-version", "2023-06-01"),
        ("content-type", "application/json"),
    ];
    server
        .send("POST", "/v1/messages?beta=true", &headers, body.to_string())
        .await
}

/// Every recorded event, summed, per model: (requests, input, output, cache read, reasoning,
/// estimated, cost in nano-dollars).
async fn recorded(server: &TestServer) -> Vec<(String, [u64; 6], i64)> {
    server.flush().await;
    let reply = server
        .summary("from=2020-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&group_by=model")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let n = |f: &str| row[f].as_u64().unwrap_or_else(|| panic!("{f} in {row}"));
            // The exact decimal, read through a float only to compare at nano-dollar precision.
            let cost = (row["cost_usd"].as_f64().unwrap() * 1e9).round() as i64;
            (
                row["model"].as_str().unwrap().to_owned(),
                [
                    n("requests"),
                    n("input_tokens"),
                    n("output_tokens"),
                    n("cache_read_tokens"),
                    n("reasoning_tokens"),
                    n("estimated_requests"),
                ],
                cost,
            )
        })
        .collect()
}

/// Rows of the `gateway_calls` table: (status, stream, client_disconnected, upstream request id).
fn calls(server: &TestServer) -> Vec<(i64, bool, bool, Option<String>)> {
    let path = server.db.url.strip_prefix("sqlite://").unwrap();
    let db = rusqlite::Connection::open(path).unwrap();
    let mut statement = db
        .prepare("SELECT status, stream, client_disconnected, upstream_request_id FROM gateway_calls ORDER BY seq")
        .unwrap();
    statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn sse_data(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

#[tokio::test]
async fn a_plain_chat_call_passes_through_and_is_recorded_exactly() {
    let server = start().await;
    let key = key(&server).await;
    let reply = chat(
        &server,
        &key,
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x".repeat(6000)}]}),
        &[("x-goodhart-project", "checkout"), ("x-goodhart-task", "PAY-1")],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let usage = &reply.json["usage"];
    assert!(
        reply.headers.contains_key("x-request-id"),
        "the provider's request id reaches the client"
    );
    assert_eq!(
        reply.headers["x-goodhart-call-id"].to_str().unwrap(),
        format!("req:{}", reply.headers["x-request-id"].to_str().unwrap()),
        "the call is stored under the provider's request id, as its telemetry and logs name it"
    );
    let (prompt, cached, completion) = (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
    );
    assert!(cached > 0, "a 1,000-token prompt reads from the mock's cache");
    let rows = recorded(&server).await;
    let (model, counts, cost) = &rows[0];
    assert_eq!(model, "gpt-4o-mini");
    assert_eq!(counts, &[1, prompt - cached, completion, cached, 0, 0]);
    let prices = goodhart_core::pricing::PriceTable::builtin();
    let tokens = goodhart_core::usage::TokenCounts {
        input: prompt - cached,
        output: completion,
        cache_read: cached,
        ..Default::default()
    };
    assert_eq!(*cost, prices.cost_of(None, "gpt-4o-mini", &tokens).unwrap().total().0);
    let by_project = server
        .summary("from=2020-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&group_by=user,team,project")
        .await;
    let row = &by_project.json["rows"][0];
    assert_eq!(
        (row["user"].as_str(), row["team"].as_str(), row["project"].as_str()),
        (Some("alice"), Some("payments"), Some("checkout"))
    );
}

#[tokio::test]
async fn streams_hide_the_usage_chunk_the_gateway_asked_for_and_show_the_one_the_client_asked_for() {
    let server = start().await;
    let key = key(&server).await;
    let body = json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hello"}]});
    let plain = chat(&server, &key, body.clone(), &[]).await;
    assert_eq!(plain.status, 200);
    let chunks = sse_data(&plain.text);
    assert!(
        chunks.iter().all(|c| !c["usage"].is_object()),
        "no usage chunk: {}",
        plain.text
    );
    assert!(plain.text.trim_end().ends_with("data: [DONE]"));
    let mut asked = body;
    asked["stream_options"] = json!({"include_usage": true});
    let with_usage = chat(&server, &key, asked, &[]).await;
    let usage_chunks: Vec<_> = sse_data(&with_usage.text)
        .into_iter()
        .filter(|c| c["usage"].is_object())
        .collect();
    assert_eq!(usage_chunks.len(), 1, "{}", with_usage.text);
    let completion = usage_chunks[0]["usage"]["completion_tokens"].as_u64().unwrap();
    let rows = recorded(&server).await;
    assert_eq!(rows[0].1[0], 2, "both streams recorded");
    assert_eq!(
        rows[0].1[2],
        2 * completion,
        "both streams' output recorded, neither estimated"
    );
    assert_eq!(rows[0].1[5], 0);
}

#[tokio::test]
async fn anthropic_streams_record_cache_reads_and_writes() {
    let server = start().await;
    let key = key(&server).await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 200, "stream": true,
        "system": [{"type": "text", "text": "s".repeat(8000), "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "hi"}]});
    let reply = messages(&server, &key, body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.headers.contains_key("request-id"));
    let events = sse_data(&reply.text);
    let start = events.iter().find(|e| e["type"] == "message_start").unwrap();
    let delta = events.iter().find(|e| e["type"] == "message_delta").unwrap();
    let usage = &start["message"]["usage"];
    let rows = recorded(&server).await;
    let (model, counts, _) = &rows[0];
    assert_eq!(model, "claude-sonnet-4-5");
    assert_eq!(counts[1], usage["input_tokens"].as_u64().unwrap());
    assert_eq!(counts[2], delta["usage"]["output_tokens"].as_u64().unwrap());
    assert_eq!(counts[3], usage["cache_read_input_tokens"].as_u64().unwrap());
    assert!(counts[3] > 0);
}

#[tokio::test]
async fn responses_embeddings_and_models_work_with_usage_recorded() {
    let server = start().await;
    let key = key(&server).await;
    let auth = format!("Bearer {key}");
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let plain = server
        .send(
            "POST",
            "/v1/responses",
            &headers,
            json!({"model": "gpt-5-reason", "input": "hi"}).to_string(),
        )
        .await;
    assert_eq!(plain.status, 200, "{}", plain.text);
    let streamed = server
        .send(
            "POST",
            "/v1/responses",
            &headers,
            json!({"model": "gpt-5-reason", "input": "hi", "stream": true}).to_string(),
        )
        .await;
    let completed = sse_data(&streamed.text)
        .into_iter()
        .find(|e| e["type"] == "response.completed")
        .unwrap();
    let embedded = server
        .send(
            "POST",
            "/v1/embeddings",
            &headers,
            json!({"model": "text-embedding-3-small", "input": ["a b c", "d"]}).to_string(),
        )
        .await;
    assert_eq!(embedded.status, 200, "{}", embedded.text);
    let models = server.send("GET", "/v1/models", &headers, Bytes::new()).await;
    assert_eq!(models.status, 200);
    assert!(models.json["data"].is_array());
    let rows = recorded(&server).await;
    let responses = rows.iter().find(|r| r.0.starts_with("gpt-5")).unwrap();
    let reasoning = plain.json["usage"]["output_tokens_details"]["reasoning_tokens"]
        .as_u64()
        .unwrap();
    assert!(reasoning > 0);
    assert_eq!(responses.1[0], 2);
    assert_eq!(
        responses.1[4],
        reasoning
            + completed["response"]["usage"]["output_tokens_details"]["reasoning_tokens"]
                .as_u64()
                .unwrap()
    );
    let embeddings = rows.iter().find(|r| r.0 == "text-embedding-3-small").unwrap();
    assert_eq!(
        embeddings.1[1],
        embedded.json["usage"]["prompt_tokens"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn upstream_errors_pass_through_unchanged_and_are_recorded_with_their_status() {
    let server = start().await;
    let key = key(&server).await;
    let failed = chat(
        &server,
        &key,
        json!({"model": "gpt-error-before", "messages": [{"role": "user", "content": "hi"}]}),
        &[],
    )
    .await;
    assert_eq!(failed.status, 500);
    assert!(failed.json["error"]["message"].is_string(), "{}", failed.text);
    let overloaded = messages(
        &server,
        &key,
        json!({"model": "claude-error-before", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(overloaded.status, 529);
    assert_eq!(overloaded.json["error"]["type"], "overloaded_error");
    let limited = chat(
        &server,
        &key,
        json!({"model": "gpt-rate-limited", "messages": [{"role": "user", "content": "hi"}]}),
        &[],
    )
    .await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.headers["retry-after"], "1");
    let rows = recorded(&server).await;
    assert_eq!(rows.iter().map(|r| r.1[0]).sum::<u64>(), 3);
    assert!(
        rows.iter().all(|r| r.1[1..5] == [0, 0, 0, 0] && r.2 == 0),
        "errors consumed nothing: {rows:?}"
    );
    let statuses: Vec<i64> = calls(&server).iter().map(|c| c.0).collect();
    assert_eq!(statuses, vec![500, 529, 429]);
}

#[tokio::test]
async fn missing_usage_is_estimated_with_a_real_tokenizer_and_marked() {
    let server = start().await;
    let key = key(&server).await;
    let prompt = "Please summarise the following paragraph about distributed systems.";
    for stream in [false, true] {
        let reply = chat(
            &server,
            &key,
            json!({"model": "gpt-4o-no-usage", "stream": stream, "messages": [{"role": "user", "content": prompt}]}),
            &[],
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let broken = messages(&server, &key, json!({"model": "claude-error-mid", "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": prompt}]})).await;
    assert_eq!(broken.status, 200);
    assert!(broken.text.contains("event: error"), "{}", broken.text);
    let rows = recorded(&server).await;
    let no_usage = rows.iter().find(|r| r.0 == "gpt-4o-no-usage").unwrap();
    let prompt_tokens = goodhart_gateway::estimate::count_tokens(prompt);
    let reply_tokens = goodhart_gateway::estimate::count_tokens(
        "Hello from the mock LLM. lorem ipsum dolor sit amet lorem ipsum dolor sit amet lorem",
    );
    assert_eq!(no_usage.1, [2, 2 * prompt_tokens, 2 * reply_tokens, 0, 0, 2]);
    let mid = rows.iter().find(|r| r.0 == "claude-error-mid").unwrap();
    assert_eq!(mid.1[5], 1, "a stream that broke is estimated");
    assert!(mid.1[1] > 0 && mid.1[2] > 0, "{mid:?}");
}

#[tokio::test]
async fn slow_and_long_responses_are_metered() {
    let server = start().await;
    let key = key(&server).await;
    let long = chat(
        &server,
        &key,
        json!({"model": "gpt-4o-long", "stream": true, "messages": [{"role": "user", "content": "go"}]}),
        &[],
    )
    .await;
    assert_eq!(long.status, 200);
    let slow = messages(
        &server,
        &key,
        json!({"model": "claude-slow", "max_tokens": 5, "messages": [{"role": "user", "content": "go"}]}),
    )
    .await;
    assert_eq!(slow.status, 200);
    let rows = recorded(&server).await;
    assert_eq!(rows.iter().find(|r| r.0 == "gpt-4o-long").unwrap().1[2], 4_000);
    assert_eq!(rows.iter().find(|r| r.0 == "claude-slow").unwrap().1[2], 5);
}

#[tokio::test]
async fn bad_keys_get_401_in_the_clients_protocol_and_scope_is_enforced() {
    let server = start().await;
    let body = json!({"model": "gpt-4o-mini", "messages": []});
    let none = server.send("POST", "/v1/chat/completions", &[], body.to_string()).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.json["error"]["code"], "invalid_api_key");
    let unknown = messages(
        &server,
        "gk-000000000000-0000000000000000000000000000000000000000000000000000000000000000",
        json!({}),
    )
    .await;
    assert_eq!(unknown.status, 401);
    assert_eq!(unknown.json["error"]["type"], "authentication_error");
    let (id, secret) = server.create_key(r#"{"user": "bob", "project": "checkout"}"#).await;
    let outside = chat(&server, &secret, body.clone(), &[("x-goodhart-project", "billing")]).await;
    assert_eq!(outside.status, 403, "{}", outside.text);
    assert!(
        outside.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limited to project `checkout`")
    );
    assert_eq!(
        server
            .admin("POST", &format!("/api/v1/keys/{id}/revoke"), Bytes::new())
            .await
            .status,
        200
    );
    let revoked = chat(&server, &secret, body.clone(), &[]).await;
    assert_eq!(revoked.status, 401);
    assert!(revoked.text.contains("revoked"), "{}", revoked.text);
    let (expired_id, expired) = goodhart_core::keys::new_secret([7; 6], [9; 32]);
    let already_expired = goodhart_core::keys::VirtualKey {
        id: expired_id,
        name: None,
        scope: goodhart_core::keys::KeyScope {
            user: "carol".into(),
            ..Default::default()
        },
        created_at: goodhart_core::Micros(0),
        expires_at: Some(goodhart_core::Micros(1)),
        revoked_at: None,
        replaced_by: None,
        limits: Default::default(),
    };
    let store = server.db.open().await.unwrap();
    let hash = goodhart_core::keys::hash_secret(&expired);
    store.create_key(&already_expired, &hash).await.unwrap();
    let reply = chat(&server, &expired, body, &[]).await;
    assert_eq!(reply.status, 401, "{}", reply.text);
    assert!(reply.text.contains("expired"), "{}", reply.text);
    assert!(recorded(&server).await.is_empty(), "refused calls are not usage");
}

/// An upstream that records what it receives and answers like OpenAI (slowly streaming when
/// asked, counting the chunks it managed to send).
#[derive(Clone, Default)]
struct Echo {
    headers: Arc<Mutex<Vec<HeaderMap>>>,
    chunks_sent: Arc<Mutex<u32>>,
}

async fn spawn_echo() -> (std::net::SocketAddr, Echo) {
    let echo = Echo::default();
    let state = echo.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move {
                state.headers.lock().unwrap().push(headers);
                let request: Value = serde_json::from_slice(&body).unwrap();
                if request["stream"] == true {
                    let sent = Arc::clone(&state.chunks_sent);
                    let chunks = futures_util::stream::unfold(0u32, move |i| {
                        let sent = Arc::clone(&sent);
                        async move {
                            if i == 200 {
                                return None;
                            }
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            *sent.lock().unwrap() += 1;
                            let chunk = format!(
                                "data: {{\"id\":\"c\",\"model\":\"gpt-4o\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"word{i} \"}}}}]}}\n\n"
                            );
                            Some((Ok::<_, std::convert::Infallible>(Bytes::from(chunk)), i + 1))
                        }
                    });
                    return axum::response::Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(Body::from_stream(chunks))
                        .unwrap();
                }
                axum::response::Response::builder()
                    .header("content-type", "application/json")
                    .header("x-request-id", "req_echo")
                    .header("openai-processing-ms", "7")
                    .body(Body::from(
                        json!({"id": "chatcmpl-1", "model": "gpt-4o", "choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}],
                            "usage": {"prompt_tokens": 10, "completion_tokens": 2}})
                        .to_string(),
                    ))
                    .unwrap()
            }
        }),
    );
    let addr = serve_upstream(app).await;
    (addr, echo)
}

async fn start_echo() -> (TestServer, Echo) {
    let (addr, echo) = spawn_echo().await;
    let config = format!("[[providers]]\nname = \"openai\"\nprotocol = \"openai\"\nbase_url = \"http://{addr}/v1\"\n");
    let server = start_configured(TestDatabase::sqlite(), &config, |config| {
        config.gateway.providers[0].api_key = Some(ApiKey::new("sk-upstream-secret".into()));
    })
    .await;
    (server, echo)
}

/// Regression: a provider that sent its headers and then nothing made the gateway answer 504
/// and drop the call unrecorded (no usage, nothing settled against budgets), though the
/// provider had the call and may bill it.
#[tokio::test]
async fn a_call_whose_answer_never_comes_is_recorded_and_counts_against_its_key() {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(|| async {
            let nothing = futures_util::stream::pending::<Result<Bytes, std::io::Error>>();
            axum::response::Response::builder()
                .header("content-type", "application/json")
                .body(Body::from_stream(nothing))
                .unwrap()
        }),
    );
    let addr = serve_upstream(app).await;
    let config = format!("[[providers]]\nname = \"openai\"\nprotocol = \"openai\"\nbase_url = \"http://{addr}/v1\"\n");
    let server = start_configured(TestDatabase::sqlite(), &config, |config| {
        config.gateway.upstream_timeout = Duration::from_secs(1);
    })
    .await;
    let (_, limited) = server
        .create_key(r#"{"user": "alice", "requests_per_minute": 1}"#)
        .await;
    let body = json!({"model": "gpt-4o", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let timed_out = chat(&server, &limited, body.clone(), &[]).await;
    assert_eq!(timed_out.status, 504, "{}", timed_out.text);
    let again = chat(&server, &limited, body, &[]).await;
    assert_eq!(again.status, 429, "the first call reached the provider: {}", again.text);
    let rows = recorded(&server).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].1[0], rows[0].1[5]), (1, 1), "one request, estimated: {rows:?}");
}

/// Regression: a client that hung up on a non-streamed call before the provider answered
/// (an SDK's timeout, a cancelled agent, a connection shutdown cut) left nothing recorded and
/// its hold on budgets released, though the provider had the call and bills it: a way to
/// spend under a hard cap without being counted. The same went for a provider whose headers
/// never came within the upstream timeout.
#[tokio::test]
async fn a_call_left_before_the_provider_answered_is_recorded_and_counts_against_its_budget() {
    use tokio::io::AsyncWriteExt;
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(|| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            axum::Json(json!({"id": "c1", "object": "chat.completion", "model": "gpt-4o",
                "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}}))
        }),
    );
    let addr = serve_upstream(app).await;
    let config = format!("[[providers]]\nname = \"openai\"\nprotocol = \"openai\"\nbase_url = \"http://{addr}/v1\"\n");
    let server = start_configured(TestDatabase::sqlite(), &config, |config| {
        config.gateway.upstream_timeout = Duration::from_secs(1);
    })
    .await;
    let key = key(&server).await;
    server
        .create_budget(json!({"scope": "org", "period": "month", "limit_usd": "1000", "action": "block"}))
        .await;
    let body = json!({"model": "gpt-4o", "max_tokens": 10,
        "messages": [{"role": "user", "content": "a question worth a few tokens"}]})
    .to_string();

    // The client leaves 300 ms in, long before the provider's answer.
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: goodhart\r\nauthorization: Bearer {key}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(socket);
    wait_for_calls(&server, 1).await;

    // This one waits, and the gateway gives up on the provider's headers first.
    let timed_out = chat(&server, &key, serde_json::from_str(&body).unwrap(), &[]).await;
    assert_eq!(timed_out.status, 504, "{}", timed_out.text);
    wait_for_calls(&server, 2).await;

    let statuses: Vec<_> = calls(&server).iter().map(|c| (c.0, c.2)).collect();
    assert_eq!(
        statuses,
        [(499, true), (504, false)],
        "left by the client, then timed out"
    );
    let rows = recorded(&server).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let [requests, input, output, _, _, estimated] = rows[0].1;
    assert_eq!((requests, estimated), (2, 2), "both recorded, estimated: {rows:?}");
    assert!(
        input > 0 && output == 0,
        "the prompt it was sent, no output seen: {rows:?}"
    );
    assert!(rows[0].2 > 0, "priced: {rows:?}");
    assert_eq!(
        server.metric("goodhart_gateway_admissions_in_flight"),
        0,
        "holds settled"
    );
    let listed = server.admin("GET", "/api/v1/budgets", Bytes::new()).await;
    let spent = &listed.json["budgets"][0];
    assert_eq!(spent["reserved_usd"].to_string(), "0", "{spent}");
    assert_ne!(
        spent["spent_usd"].to_string(),
        "0",
        "counted against the budget: {spent}"
    );
}

#[tokio::test]
async fn credentials_and_goodhart_headers_never_reach_the_provider_but_client_headers_do() {
    let (server, echo) = start_echo().await;
    let key = key(&server).await;
    let reply = chat(
        &server,
        &key,
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
        &[
            ("x-goodhart-agent", "bot"),
            ("openai-organization", "org-1"),
            ("x-api-key", &key),
        ],
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["x-request-id"], "req_echo");
    assert_eq!(reply.headers["openai-processing-ms"], "7");
    assert!(!reply.text.contains("sk-upstream-secret"));
    let seen = echo.headers.lock().unwrap()[0].clone();
    assert_eq!(seen["authorization"], "Bearer sk-upstream-secret");
    assert_eq!(seen["openai-organization"], "org-1");
    assert!(seen.get("x-api-key").is_none());
    assert!(
        seen.keys().all(|name| !name.as_str().starts_with("x-goodhart-")),
        "{seen:?}"
    );
    assert!(
        seen.values().all(|v| !v.to_str().unwrap_or("").contains(&key)),
        "the client's key leaked upstream"
    );
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_stops_the_upstream_and_is_billed_an_estimate() {
    let (server, echo) = start_echo().await;
    let key = key(&server).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<Bytes>>();
    let request = hyper::Request::post(format!("{}/v1/chat/completions", server.url()))
        .header("authorization", format!("Bearer {key}"))
        .body(http_body_util::Full::new(Bytes::from(
            json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "count"}]}).to_string(),
        )))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let mut body = response.into_body();
    use http_body_util::BodyExt;
    let mut received = 0;
    while received < 5 {
        if let Some(Ok(frame)) = body.frame().await
            && frame.is_data()
        {
            received += 1;
        }
    }
    drop(body);
    drop(client);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent_after_drop = *echo.chunks_sent.lock().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent_later = *echo.chunks_sent.lock().unwrap();
    assert!(
        sent_later < 200,
        "the upstream stream was stopped ({sent_later} of 200 chunks sent)"
    );
    assert!(
        sent_later <= sent_after_drop + 1,
        "the upstream kept generating: {sent_after_drop} -> {sent_later}"
    );
    let rows = recorded(&server).await;
    let (_, counts, _) = &rows[0];
    assert_eq!(counts[5], 1, "estimated");
    assert!(counts[1] > 0 && counts[2] >= 5, "{counts:?}");
    let call = &calls(&server)[0];
    assert!(call.1 && call.2, "recorded as a disconnected stream: {call:?}");
}

#[tokio::test]
async fn metrics_count_calls_errors_and_the_spool() {
    let server = start().await;
    let key = key(&server).await;
    chat(
        &server,
        &key,
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
        &[],
    )
    .await;
    server.send("POST", "/v1/chat/completions", &[], "{}").await;
    let metrics = server.send("GET", "/metrics", &[], Bytes::new()).await;
    assert_eq!(metrics.status, 200);
    let text = metrics.text;
    assert!(
        text.contains(r#"goodhart_gateway_calls_total{endpoint="chat_completions",provider="mock",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"goodhart_gateway_errors_total{kind="unauthorized"} 1"#),
        "{text}"
    );
    assert!(text.contains("goodhart_gateway_spooled_records_total 1"), "{text}");
    assert!(
        text.contains("goodhart_gateway_upstream_latency_seconds_count"),
        "{text}"
    );
    assert!(text.contains("goodhart_gateway_spool_depth_bytes"), "{text}");
}

#[tokio::test]
async fn clients_probing_the_base_url_get_an_answer() {
    let server = start().await;
    assert_eq!(server.send("HEAD", "/", &[], Bytes::new()).await.status, 200);
    assert_eq!(server.send("GET", "/", &[], Bytes::new()).await.status, 200);
}

#[tokio::test]
async fn bad_requests_get_precise_errors_in_the_clients_shape_and_record_nothing() {
    let server = start_with(TestDatabase::sqlite(), "[limits]\nmax_body_bytes = 2048").await;
    let key = key(&server).await;
    let big = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x".repeat(4096)}]});
    let too_large = chat(&server, &key, big, &[]).await;
    assert_eq!(too_large.status, 413, "{}", too_large.text);
    assert!(
        too_large.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2048 bytes")
    );
    let auth = format!("Bearer {key}");
    let headers = [("authorization", auth.as_str())];
    let broken = server
        .send("POST", "/v1/chat/completions", &headers, "{\"model\": ")
        .await;
    assert_eq!(broken.status, 400);
    assert!(
        broken.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{}",
        broken.text
    );
    let no_model = server
        .send(
            "POST",
            "/v1/messages",
            &[("x-api-key", key.as_str())],
            "{\"max_tokens\": 5}",
        )
        .await;
    assert_eq!(no_model.status, 400);
    assert_eq!(no_model.json["error"]["type"], "invalid_request_error");
    assert!(no_model.text.contains("`model` is required"), "{}", no_model.text);
    let bad_label = chat(
        &server,
        &key,
        json!({"model": "gpt-4o-mini", "messages": []}),
        &[("x-goodhart-task", &"t".repeat(300))],
    )
    .await;
    assert_eq!(bad_label.status, 400);
    assert!(bad_label.text.contains("x-goodhart-task"), "{}", bad_label.text);
    assert!(recorded(&server).await.is_empty());
}

pub(crate) const SLOW_PRICED: &str =
    "[[prices.model]]\nprovider = \"mock\"\nmodel = \"slow-mini\"\ninput = \"0.15\"\noutput = \"0.60\"\n";

/// The worst case the gateway reserves for `body` (the same arithmetic, from the public parts).
fn worst_case(body: &str, max_tokens: u64) -> i64 {
    let prices = goodhart_core::pricing::PriceTable::parse(&format!(
        "version = \"t\"\n[[model]]\n{}",
        SLOW_PRICED.trim_start_matches("[[prices.model]]\n")
    ))
    .unwrap();
    let price = prices.resolve(None, "slow-mini").unwrap();
    let input = goodhart_core::budgets::estimate_input_tokens(body.len() as u64);
    goodhart_core::budgets::worst_case_cost(price, input, max_tokens).0
}

/// A hard cap on team payments that fits exactly 50 calls of `body`.
pub(crate) async fn cap_fitting_50(server: &TestServer, body: &str) -> goodhart_core::Nanos {
    let limit = goodhart_core::Nanos(50 * worst_case(body, 100));
    server.create_budget(json!({"scope": "team", "name": "payments", "period": "month", "limit_usd": limit.usd_string(), "action": "block"})).await;
    limit
}

/// Sends `calls` chat calls at once, spread over the instances; returns each one's status,
/// whether it said when to retry, and its body.
async fn burst(servers: &[&TestServer], key: &str, body: &str, calls: usize) -> Vec<(u16, bool, Value)> {
    let tasks: Vec<_> = (0..calls)
        .map(|i| {
            let (url, key, body) = (servers[i % servers.len()].url(), key.to_owned(), body.to_owned());
            tokio::spawn(async move {
                let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http::<http_body_util::Full<Bytes>>();
                let request = hyper::Request::post(format!("{url}/v1/chat/completions"))
                    .header("authorization", format!("Bearer {key}"))
                    .body(http_body_util::Full::new(Bytes::from(body)))
                    .unwrap();
                let response = client.request(request).await.unwrap();
                let status = response.status().as_u16();
                let retry_after = response.headers().get("retry-after").is_some();
                use http_body_util::BodyExt;
                let bytes = response.into_body().collect().await.unwrap().to_bytes();
                (
                    status,
                    retry_after,
                    serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
                )
            })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.unwrap());
    }
    replies
}

pub(crate) fn capped_body() -> String {
    json!({"model": "slow-mini", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}).to_string()
}

#[tokio::test]
async fn a_hard_cap_admits_exactly_the_calls_whose_worst_case_fits_under_200_concurrent_calls() {
    let server = start_with(TestDatabase::sqlite(), SLOW_PRICED).await;
    let key = key(&server).await;
    let body = capped_body();
    let limit = cap_fitting_50(&server, &body).await;
    // The slow mock holds every call for a second, so all 200 are in flight together.
    let replies = burst(&[&server], &key, &body, 200).await;
    let admitted = replies.iter().filter(|r| r.0 == 200).count();
    assert_eq!(admitted, 50, "exactly the calls whose worst case fits");
    let refused: Vec<_> = replies.iter().filter(|r| r.0 == 429).collect();
    assert_eq!(refused.len(), 150);
    let refusal = &refused[0].2["error"];
    assert!(refused.iter().all(|r| r.1), "every refusal says when to retry");
    assert_eq!(refusal["code"], "budget_exceeded");
    assert_eq!(refusal["budget"]["scope"], "team payments");
    assert!(refusal["message"].as_str().unwrap().contains("resets at"), "{refusal}");
    let rows = recorded(&server).await;
    let spent: i64 = rows.iter().map(|r| r.2).sum();
    assert!(spent <= limit.0, "spent {spent} ≤ limit {}", limit.0);
    assert_eq!(rows[0].1[0], 50, "refused calls are not usage");
    // Nothing is left reserved, and the real costs were below the worst cases: room again.
    let listed = server.admin("GET", "/api/v1/budgets", Bytes::new()).await;
    assert_eq!(listed.json["budgets"][0]["reserved_usd"].to_string(), "0");
    let again = chat(&server, &key, serde_json::from_str(&body).unwrap(), &[]).await;
    assert_eq!(again.status, 200, "{}", again.text);
    // 150 refusals, one alert that the cap was hit.
    let mut blocked = Vec::new();
    for _ in 0..50 {
        let alerts = server.admin("GET", "/api/v1/alerts", Bytes::new()).await.json["alerts"].clone();
        blocked = alerts
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["kind"] == "blocked")
            .cloned()
            .collect();
        if !blocked.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(blocked.len(), 1, "{blocked:#?}");
    let message = blocked[0]["message"].as_str().unwrap();
    assert!(message.starts_with("team payments hit its hard cap of $"), "{message}");
}

/// The budget pools' tables taken away from (or given back to) the server's database: as far
/// as borrowing a slice goes, the database is unreachable, while keys and usage still work.
async fn pools_reachable(server: &TestServer, reachable: bool) {
    let [from, to] = if reachable {
        ["budget_leases_away", "budget_leases"]
    } else {
        ["budget_leases", "budget_leases_away"]
    };
    server
        .db
        .execute_batch(&format!("ALTER TABLE {from} RENAME TO {to}"))
        .await
        .unwrap();
}

/// Waits (bounded) for an alert of `kind`.
async fn alert_of_kind(server: &TestServer, kind: &str) -> Option<Value> {
    for _ in 0..100 {
        let alerts = server.admin("GET", "/api/v1/alerts", Bytes::new()).await.json["alerts"].clone();
        if let Some(alert) = alerts.as_array().unwrap().iter().find(|a| a["kind"] == kind) {
            return Some(alert.clone());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test]
async fn a_budget_failing_open_keeps_calls_going_within_its_allowance_while_the_database_is_unreachable() {
    let server = start_with(TestDatabase::sqlite(), SLOW_PRICED).await;
    let key = key(&server).await;
    let body = capped_body();
    let worst = worst_case(&body, 100);
    // 100 worst cases; the instance borrows slices of 5 and may lend itself 10 more.
    let created = server
        .admin(
            "POST",
            "/api/v1/budgets",
            json!({"scope": "team", "name": "payments", "period": "month", "action": "block",
                "limit_usd": goodhart_core::Nanos(100 * worst).usd_string(),
                "when_store_unreachable": "fail_open", "fail_open_percent": 10})
            .to_string(),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.json["when_store_unreachable"], "fail_open");
    assert_eq!(created.json["fail_open_percent"], 10);
    assert_eq!(burst(&[&server], &key, &body, 1).await[0].0, 200, "a slice is borrowed");
    pools_reachable(&server, false).await;
    // 30 calls at once: the slice's room for 4 more, then at most 10 worst cases lent by the
    // instance itself; the rest fail closed, saying when to retry.
    let replies = burst(&[&server], &key, &body, 30).await;
    let admitted = replies.iter().filter(|r| r.0 == 200).count();
    assert!((13..=15).contains(&admitted), "{admitted} admitted: {replies:?}");
    let refused: Vec<_> = replies.iter().filter(|r| r.0 != 200).collect();
    assert!(
        refused
            .iter()
            .all(|r| r.0 == 503 && r.1 && r.2["error"]["code"] == "service_unavailable"),
        "{refused:?}"
    );
    let lent_own = server.metric("goodhart_gateway_fail_open_admissions_total");
    assert!(lent_own >= 9, "{lent_own}");
    pools_reachable(&server, true).await;
    let alert = alert_of_kind(&server, "fail_open").await.expect("a fail_open alert");
    assert!(
        alert["message"]
            .as_str()
            .unwrap()
            .contains("may be passed by up to 10 %"),
        "{alert}"
    );
    // Once reported, the pool counts what was lent: every call is recorded and spend stays
    // within the limit plus the allowance.
    let rows = recorded(&server).await;
    assert_eq!(rows.iter().map(|r| r.1[0]).sum::<u64>(), 1 + admitted as u64);
    let spent: i64 = rows.iter().map(|r| r.2).sum();
    assert!(spent <= 110 * worst, "spent {spent}");
}

#[tokio::test]
async fn two_instances_on_postgres_hold_one_hard_cap_under_200_concurrent_calls() {
    let first = start_with(TestDatabase::postgres().await, SLOW_PRICED).await;
    let second = start_peer(&first, "second", SLOW_PRICED).await;
    let key = key(&first).await;
    let body = capped_body();
    let limit = cap_fitting_50(&first, &body).await;
    // The budget was created through the first instance: the second picks it up by itself.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while second.gateway.standing().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the second instance never saw the budget"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let replies = burst(&[&first, &second], &key, &body, 200).await;
    let admitted = replies.iter().filter(|r| r.0 == 200).count();
    // Never more than one instance would admit alone; a slice's remainder smaller than one
    // call may sit unused with each instance.
    assert!((48..=50).contains(&admitted), "{admitted} admitted");
    assert!(
        replies.iter().all(|r| r.0 == 200 || r.0 == 429),
        "only admissions and refusals"
    );
    second.flush().await;
    let rows = recorded(&first).await;
    assert_eq!(rows[0].1[0], admitted as u64, "both instances' calls are recorded");
    let spent: i64 = rows.iter().map(|r| r.2).sum();
    assert!(spent <= limit.0, "spent {spent} ≤ limit {}", limit.0);
    // Calls that end give their room back to whichever instance asks next.
    second.gateway.shutdown().await;
    let again = chat(&first, &key, serde_json::from_str(&body).unwrap(), &[]).await;
    assert_eq!(again.status, 200, "{}", again.text);
}

#[tokio::test]
async fn rate_limits_are_global_across_instances() {
    let first = start_with(TestDatabase::postgres().await, "").await;
    let second = start_peer(&first, "second", "").await;
    let (_, limited) = first
        .create_key(r#"{"user": "alice", "requests_per_minute": 10}"#)
        .await;
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let mut statuses = Vec::new();
    for i in 0..30 {
        let server = if i % 2 == 0 { &first } else { &second };
        statuses.push(chat(server, &limited, body.clone(), &[]).await.status);
    }
    let admitted = statuses.iter().filter(|&&s| s == 200).count();
    assert_eq!(admitted, 10, "ten a minute in all, not ten per instance: {statuses:?}");
}

#[tokio::test]
async fn a_client_that_goes_away_releases_its_reservation() {
    let server = start_with(TestDatabase::sqlite(), SLOW_PRICED).await;
    let key = key(&server).await;
    let created = server
        .admin(
            "POST",
            "/api/v1/budgets",
            r#"{"scope": "org", "period": "day", "limit_usd": "1", "action": "block"}"#,
        )
        .await;
    assert_eq!(created.status, 201);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<Bytes>>();
    let request = hyper::Request::post(format!("{}/v1/chat/completions", server.url()))
        .header("authorization", format!("Bearer {key}"))
        .body(http_body_util::Full::new(Bytes::from(
            json!({"model": "slow-mini", "stream": true, "max_tokens": 1000, "messages": [{"role": "user", "content": "go"}]}).to_string(),
        )))
        .unwrap();
    let pending = tokio::spawn(async move { client.request(request).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reserved = |listed: &Reply| listed.json["budgets"][0]["reserved_usd"].as_f64().unwrap();
    let during = server.admin("GET", "/api/v1/budgets", Bytes::new()).await;
    assert!(
        reserved(&during) > 0.0,
        "the call in flight holds its worst case: {}",
        during.text
    );
    pending.abort(); // the client goes away before the provider answers
    let _ = pending.await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let after = server.admin("GET", "/api/v1/budgets", Bytes::new()).await;
        if reserved(&after) == 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the reservation was never released: {}",
            after.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn per_key_rate_limits_refuse_in_the_clients_protocol_with_retry_after() {
    let server = start().await;
    let (_, limited) = server
        .create_key(r#"{"user": "alice", "requests_per_minute": 2, "tokens_per_minute": 100000}"#)
        .await;
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    for _ in 0..2 {
        assert_eq!(chat(&server, &limited, body.clone(), &[]).await.status, 200);
    }
    let refused = chat(&server, &limited, body, &[]).await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert_eq!(refused.json["error"]["code"], "rate_limit_exceeded");
    assert_eq!(refused.json["error"]["type"], "requests");
    let wait: u64 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    let anthropic = messages(
        &server,
        &limited,
        json!({"model": "claude-haiku-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(anthropic.status, 429);
    assert_eq!(anthropic.json["error"]["type"], "rate_limit_error");
    assert!(
        anthropic.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2 requests per minute")
    );
    let (_, tokens) = server.create_key(r#"{"user": "bob", "tokens_per_minute": 5000}"#).await;
    let big = json!({"model": "gpt-4o-mini", "max_tokens": 4000, "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(
        chat(&server, &tokens, big.clone(), &[]).await.status,
        200,
        "4,000 worst-case tokens fit, 16 are used"
    );
    assert_eq!(
        chat(&server, &tokens, big, &[]).await.status,
        200,
        "the unused tokens came back"
    );
    let listed = server.admin("GET", "/api/v1/keys", Bytes::new()).await;
    assert!(listed.text.contains(r#""requests_per_minute":2"#), "{}", listed.text);
}

#[tokio::test]
async fn threshold_alerts_reach_webhooks_once_despite_failures_and_are_listed() {
    // A receiver that fails its first two deliveries, then accepts.
    let received: Arc<Mutex<Vec<(u16, Value)>>> = Arc::default();
    let seen = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: Bytes| {
            let seen = Arc::clone(&seen);
            async move {
                let mut seen = seen.lock().unwrap();
                let status = if seen.len() < 2 { 500 } else { 200 };
                seen.push((status, serde_json::from_slice(&body).unwrap()));
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let hook = serve_upstream(app).await;
    let config = format!("[[alerts.webhooks]]\nurl = \"http://{hook}/hook\"\n");
    let server = start_with(TestDatabase::sqlite(), &config).await;
    let key = key(&server).await;
    // A budget a single small call takes past 50 %: one threshold alert.
    let created = server
        .admin(
            "POST",
            "/api/v1/budgets",
            r#"{"scope": "user", "name": "alice", "period": "month", "limit_usd": "0.00001", "thresholds": [50]}"#,
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    for _ in 0..3 {
        let reply = chat(
            &server,
            &key,
            json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
            &[],
        )
        .await;
        assert_eq!(reply.status, 200, "an alert-only budget never refuses");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listed = server.admin("GET", "/api/v1/alerts", Bytes::new()).await;
        let alerts = listed.json["alerts"].as_array().unwrap().clone();
        if alerts.len() == 1 && alerts[0]["delivered_at"].is_string() {
            assert_eq!(alerts[0]["kind"], "threshold");
            assert_eq!(alerts[0]["delivery_attempts"], 3, "two failures, then delivered");
            assert!(
                alerts[0]["message"]
                    .as_str()
                    .unwrap()
                    .contains("user alice reached 50 %"),
                "{}",
                listed.text
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not delivered: {}", listed.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 3);
    assert!(
        received.iter().all(|(_, body)| body["id"] == received[0].1["id"]),
        "one alert, retried: {received:?}"
    );
    assert_eq!(
        received.iter().filter(|(status, _)| *status == 200).count(),
        1,
        "delivered once"
    );
}

#[tokio::test]
async fn a_provider_without_request_ids_gets_ours_returned_where_its_sdk_looks() {
    let (server, _echo) = start_echo().await;
    let key = key(&server).await;
    // The echo's streamed answers carry no x-request-id.
    let reply = chat(
        &server,
        &key,
        json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        &[],
    )
    .await;
    assert_eq!(reply.status, 200);
    let request_id = reply.headers["x-request-id"].to_str().unwrap().to_owned();
    assert!(request_id.starts_with("req_gh"), "{request_id}");
    assert_eq!(
        reply.headers["x-goodhart-call-id"].to_str().unwrap(),
        format!("req:{request_id}"),
        "the call is stored under the id the client was given"
    );
}

/// A provider on loopback that answers one streamed 200 with `first` as its only event, then
/// resets the connection without ending the chunked body.
async fn spawn_resetting_provider(first: &'static str) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        // Read the request's head and body (small; one read past the blank line is enough).
        let mut seen = Vec::new();
        let mut buf = [0u8; 8192];
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        let event = first.as_bytes();
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
        socket.write_all(head.as_bytes()).await.unwrap();
        socket
            .write_all(format!("{:x}\r\n", event.len()).as_bytes())
            .await
            .unwrap();
        socket.write_all(event).await.unwrap();
        socket.write_all(b"\r\n").await.unwrap();
        socket.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Dropped mid-body: the gateway's upstream read fails.
        drop(socket);
    });
    addr
}

#[tokio::test]
async fn an_upstream_reset_mid_stream_ends_with_an_in_band_error_in_each_protocol_and_is_recorded_once() {
    let openai_event = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello there friend\"},\"finish_reason\":null}]}\n\n";
    let anthropic_event = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-x\",\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n";
    let (openai, anthropic) = (
        spawn_resetting_provider(openai_event).await,
        spawn_resetting_provider(anthropic_event).await,
    );
    let config = format!(
        "[[providers]]\nname = \"openai\"\nprotocol = \"openai\"\nbase_url = \"http://{openai}/v1\"\n\
         [[providers]]\nname = \"anthropic\"\nprotocol = \"anthropic\"\nbase_url = \"http://{anthropic}\"\n"
    );
    let server = start_with(TestDatabase::sqlite(), &config).await;
    let key = key(&server).await;

    let reply = chat(
        &server,
        &key,
        json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        &[],
    )
    .await;
    assert_eq!(reply.status, 200);
    assert!(reply.text.starts_with(openai_event), "{}", reply.text);
    let last = reply.text.trim_end().rsplit("\n\n").next().unwrap();
    let data: Value = serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(data["error"]["code"], "upstream_error", "{last}");

    let reply = messages(
        &server,
        &key,
        json!({"model": "claude-x", "max_tokens": 50, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert!(reply.text.starts_with(anthropic_event), "{}", reply.text);
    let last = reply.text.trim_end().rsplit("\n\n").next().unwrap();
    let data: Value = serde_json::from_str(last.strip_prefix("event: error\ndata: ").unwrap()).unwrap();
    assert_eq!(data["type"], "error", "{last}");
    assert_eq!(data["error"]["type"], "api_error", "{last}");

    let rows = recorded(&server).await;
    for model in ["gpt-4o", "claude-x"] {
        let row = rows
            .iter()
            .find(|r| r.0 == model)
            .unwrap_or_else(|| panic!("{model}: {rows:?}"));
        assert_eq!(row.1[0], 1, "recorded once: {row:?}");
        assert_eq!(row.1[5], 1, "a broken stream is estimated: {row:?}");
        assert!(row.1[2] > 0, "what was streamed is billed: {row:?}");
    }
    let claude = rows.iter().find(|r| r.0 == "claude-x").unwrap();
    assert_eq!(claude.1[1], 12, "the reported input is kept: {claude:?}");
    assert_eq!(calls(&server).len(), 2);
}

/// A provider on loopback that answers every streamed call with `stream` (ending in the
/// protocol's terminal event) and then, as live APIs may, waits before ending the body.
async fn spawn_lingering_provider(stream: &'static str, calls: usize) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..calls {
            let (mut socket, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 8192];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
                let chunk = format!("{:x}\r\n{stream}\r\n", stream.len());
                if socket.write_all(format!("{head}{chunk}").as_bytes()).await.is_err() {
                    return;
                }
                // The end of the body comes late; the gateway's client is gone by then.
                tokio::time::sleep(Duration::from_secs(2)).await;
                let _ = socket.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    addr
}

/// Sends `body` to `path` on a raw connection, reads until `terminal` has arrived, then closes
/// the connection — with a FIN, or with a RST when `reset`.
async fn hang_up_at(server: &TestServer, key: &str, path: &str, body: &str, terminal: &str, reset: bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: goodhart\r\nauthorization: Bearer {key}\r\nx-api-key: {key}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&seen).contains(terminal) {
        let n = tokio::time::timeout_at(deadline, socket.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {terminal} in {}", String::from_utf8_lossy(&seen)))
            .unwrap();
        assert!(n > 0, "closed before {terminal}: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    if reset {
        socket.set_zero_linger().unwrap();
    }
    drop(socket);
}

/// Chat Completions, Responses and Messages calls with these `bodies`, each hung up at its
/// terminal event (with a RST where `resets` says so).
async fn hang_up_on_each_protocol(server: &TestServer, key: &str, bodies: [&str; 3], resets: [bool; 3]) {
    let routes = [
        ("/v1/chat/completions", "[DONE]"),
        ("/v1/responses", "response.completed"),
        ("/v1/messages", "message_stop"),
    ];
    for (((path, terminal), body), reset) in routes.into_iter().zip(bodies).zip(resets) {
        hang_up_at(server, key, path, body, terminal, reset).await;
    }
}

/// Waits until `n` calls are recorded: the gateway notices each hang-up on its next write or
/// poll, a moment after the client left.
async fn wait_for_calls(server: &TestServer, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while calls(server).len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "calls recorded: {:?}",
            calls(server)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Regression (issue 24, D1): Codex closes its connection as soon as `response.completed`
/// arrives; a provider that has not ended its body yet made the gateway record the call as
/// abandoned by the client, estimated, with its output counted again by the tokenizer.
#[tokio::test]
async fn a_client_that_hangs_up_at_the_terminal_event_is_recorded_as_complete_with_the_reported_usage() {
    let chat_stream = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello there, friend of mine\"},\"finish_reason\":null}]}\n\n\
        data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
        data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":5,\"total_tokens\":16}}\n\n\
        data: [DONE]\n\n";
    let responses_stream = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hello there, friend of mine\"}\n\n\
        event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"model\":\"gpt-4o-mini\",\"status\":\"completed\",\"usage\":{\"input_tokens\":11,\"output_tokens\":5,\"total_tokens\":16}}}\n\n";
    let messages_stream = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-x\",\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n\
        event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello there, friend of mine\"}}\n\n\
        event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":5}}\n\n\
        event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    let (chat_provider, responses_provider, messages_provider) = (
        spawn_lingering_provider(chat_stream, 2).await,
        spawn_lingering_provider(responses_stream, 2).await,
        spawn_lingering_provider(messages_stream, 2).await,
    );
    let config = format!(
        "[[providers]]\nname = \"chat\"\nprotocol = \"openai\"\nbase_url = \"http://{chat_provider}/v1\"\nmodels = [\"gpt-4o\"]\n\
         [[providers]]\nname = \"responses\"\nprotocol = \"openai\"\nbase_url = \"http://{responses_provider}/v1\"\nmodels = [\"gpt-4o-mini\"]\n\
         [[providers]]\nname = \"anthropic\"\nprotocol = \"anthropic\"\nbase_url = \"http://{messages_provider}\"\n\
         [[prices.model]]\nprovider = \"anthropic\"\nmodel = \"claude-x\"\ninput = \"3\"\noutput = \"15\"\n"
    );
    let server = start_with(TestDatabase::sqlite(), &config).await;
    let key = key(&server).await;
    // A hard cap, so that every call holds a reservation until it is settled.
    server
        .create_budget(json!({"scope": "org", "period": "month", "limit_usd": "1000", "action": "block"}))
        .await;
    let chat_body = json!({"model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hi"}]})
    .to_string();
    let responses_body = json!({"model": "gpt-4o-mini", "stream": true, "input": "hi"}).to_string();
    let messages_body =
        json!({"model": "claude-x", "max_tokens": 50, "stream": true, "messages": [{"role": "user", "content": "hi"}]})
            .to_string();
    let bodies = [chat_body.as_str(), &responses_body, &messages_body];
    for reset in [false, true] {
        hang_up_on_each_protocol(&server, &key, bodies, [reset; 3]).await;
    }
    wait_for_calls(&server, 6).await;
    let rows = recorded(&server).await;
    for (model, input) in [("gpt-4o", 11), ("gpt-4o-mini", 11), ("claude-x", 12)] {
        let row = rows
            .iter()
            .find(|r| r.0 == model)
            .unwrap_or_else(|| panic!("{model}: {rows:?}"));
        assert_eq!(row.1[0], 2, "{model}: recorded once per call: {row:?}");
        assert_eq!(row.1[5], 0, "{model}: the reported usage, not an estimate: {row:?}");
        assert_eq!(
            (row.1[1], row.1[2]),
            (2 * input, 2 * 5),
            "{model}: the tokens the client was told: {row:?}"
        );
    }
    assert!(
        calls(&server).iter().all(|call| !call.2),
        "a client that had the whole answer did not abandon the call: {:?}",
        calls(&server)
    );
    assert_eq!(
        server.metric("goodhart_gateway_admissions_in_flight"),
        0,
        "reservations settled"
    );
    let listed = server.admin("GET", "/api/v1/budgets", Bytes::new()).await;
    assert_eq!(
        listed.json["budgets"][0]["reserved_usd"].to_string(),
        "0",
        "{}",
        listed.text
    );
}

/// The built-in mock's `linger` fault is the live APIs' late end of body: a client that hangs
/// up at the terminal event is still a complete call (issue 24, D1, through the mock).
#[tokio::test]
async fn hanging_up_at_the_terminal_event_of_a_lingering_mock_stream_is_a_complete_call() {
    let server = start().await;
    let key = key(&server).await;
    let chat_body = json!({"model": "gpt-4o-linger", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hi"}]})
    .to_string();
    let responses_body = json!({"model": "gpt-4o-linger", "stream": true, "input": "hi"}).to_string();
    let messages_body = json!({"model": "claude-linger", "max_tokens": 50, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]})
    .to_string();
    let bodies = [chat_body.as_str(), &responses_body, &messages_body];
    hang_up_on_each_protocol(&server, &key, bodies, [false, true, false]).await;
    wait_for_calls(&server, 3).await;
    let rows = recorded(&server).await;
    assert_eq!(rows.iter().map(|r| r.1[0]).sum::<u64>(), 3, "{rows:?}");
    assert!(rows.iter().all(|r| r.1[5] == 0), "none estimated: {rows:?}");
    assert!(
        calls(&server).iter().all(|call| !call.2),
        "none abandoned: {:?}",
        calls(&server)
    );
}
