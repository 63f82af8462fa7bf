//! The Responses API's WebSocket mode through the gateway, against the mock provider's own
//! WebSocket: each `response.create` is one metered call (chained continuations billed for
//! the conversation they continue), refusals are `error` frames on a connection that stays
//! open, handshakes are refused as HTTP answers a client can act on, and a response cut short
//! by either side is recorded as such.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use goodhart_store::testing::TestDatabase;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::common::{TestServer, serve_upstream, start_with};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

async fn key(server: &TestServer) -> String {
    server.create_key(r#"{"user": "alice", "team": "payments"}"#).await.1
}

/// Opens `GET /v1/responses` as a WebSocket with `headers`; the HTTP answer if it is refused.
async fn open(server: &TestServer, headers: &[(&str, &str)]) -> Result<Socket, (u16, Value)> {
    let mut request = format!("ws://{}/v1/responses", server.addr)
        .into_client_request()
        .unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response.body().as_deref().unwrap_or_default();
            Err((
                response.status().as_u16(),
                serde_json::from_slice(body).unwrap_or(Value::Null),
            ))
        }
        Err(e) => panic!("handshake failed: {e}"),
    }
}

async fn open_with_key(server: &TestServer, key: &str) -> Socket {
    let auth = format!("Bearer {key}");
    open(server, &[("authorization", &auth), ("x-goodhart-project", "checkout")])
        .await
        .unwrap()
}

fn create(model: &str, input: &str, previous: Option<&str>) -> String {
    let mut frame = json!({"type": "response.create", "model": model, "store": false,
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": input}]}]});
    if let Some(previous) = previous {
        frame["previous_response_id"] = previous.into();
    }
    frame.to_string()
}

/// The frames that answer one `response.create`, up to its terminal event or `error`.
async fn exchange(socket: &mut Socket, frame: String) -> Vec<Value> {
    socket.send(Message::text(frame)).await.unwrap();
    read_response(socket).await
}

async fn read_response(socket: &mut Socket) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s")
            .expect("the socket stays open")
            .unwrap();
        let Message::Text(text) = message else { continue };
        let frame: Value = serde_json::from_str(text.as_str()).unwrap();
        let kind = frame["type"].as_str().unwrap().to_owned();
        frames.push(frame);
        if matches!(
            kind.as_str(),
            "response.completed" | "response.incomplete" | "response.failed" | "error"
        ) {
            return frames;
        }
    }
}

fn usage(frames: &[Value]) -> &Value {
    &frames.last().unwrap()["response"]["usage"]
}

/// (status, stream, client_disconnected, estimated, input, output, project) of each recorded call.
async fn recorded(server: &TestServer) -> Vec<(i64, bool, bool, bool, i64, i64, Option<String>)> {
    server.flush().await;
    let path = server.db.url.strip_prefix("sqlite://").unwrap();
    let db = rusqlite::Connection::open(path).unwrap();
    let mut statement = db
        .prepare(
            "SELECT c.status, c.stream, c.client_disconnected, e.estimated, e.input_tokens, e.output_tokens, p.name \
             FROM gateway_calls c JOIN usage_events e ON e.seq = c.seq JOIN projects p ON p.id = e.project_id \
             ORDER BY c.seq",
        )
        .unwrap();
    statement
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

async fn wait_for_calls(server: &TestServer, n: usize) -> Vec<(i64, bool, bool, bool, i64, i64, Option<String>)> {
    for _ in 0..100 {
        let calls = recorded(server).await;
        if calls.len() >= n {
            return calls;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{n} calls were not recorded within 5 s");
}

#[tokio::test]
async fn each_response_on_a_socket_is_one_call_and_a_continuation_is_billed_for_its_conversation() {
    let server = start_with(TestDatabase::sqlite(), "").await;
    let key = key(&server).await;
    let mut socket = open_with_key(&server, &key).await;

    let first = exchange(
        &mut socket,
        create("gpt-4o-mini", "Find fizz_buzz() in this repository", None),
    )
    .await;
    let kinds: Vec<&str> = first.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"response.created"));
    assert_eq!(kinds.last(), Some(&"response.completed"));
    assert!(kinds.contains(&"response.output_text.delta"), "{kinds:?}");
    let first_id = first.last().unwrap()["response"]["id"].as_str().unwrap().to_owned();

    // Only the new input goes up; the provider bills the whole conversation.
    let second = exchange(&mut socket, create("gpt-4o-mini", "now run the tests", Some(&first_id))).await;
    assert_eq!(second.last().unwrap()["type"], "response.completed", "{second:?}");
    let (one, two) = (usage(&first), usage(&second));
    assert!(
        two["input_tokens"].as_i64().unwrap() > one["total_tokens"].as_i64().unwrap(),
        "{two}"
    );

    // A continuation of a response this connection does not have: the provider's error,
    // recorded as a call that cost nothing; the connection stays usable.
    let lost = exchange(&mut socket, create("gpt-4o-mini", "again", Some("resp_unknown"))).await;
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0]["error"]["code"], "previous_response_not_found");
    let third = exchange(&mut socket, create("gpt-4o-mini", "start over", None)).await;
    assert_eq!(third.last().unwrap()["type"], "response.completed");

    let calls = wait_for_calls(&server, 4).await;
    let expected: Vec<_> = [&first, &second]
        .iter()
        .map(|frames| {
            let usage = usage(frames);
            (
                200,
                true,
                false,
                false,
                usage["input_tokens"].as_i64().unwrap(),
                usage["output_tokens"].as_i64().unwrap(),
                Some("checkout".to_owned()),
            )
        })
        .chain([(400, true, false, false, 0, 0, Some("checkout".to_owned()))])
        .collect();
    assert_eq!(&calls[..3], &expected[..]);
    assert_eq!(calls[3].4, usage(&third)["input_tokens"].as_i64().unwrap());
    socket.close(None).await.unwrap();
}

#[tokio::test]
async fn a_warm_up_is_not_a_call_but_the_continuation_it_prepares_is_billed_for_its_input() {
    let server = start_with(TestDatabase::sqlite(), "").await;
    let key = key(&server).await;
    let mut socket = open_with_key(&server, &key).await;
    let mut warm = json!({"type": "response.create", "model": "gpt-4o-mini", "generate": false,
        "instructions": "You are a careful coding agent. ".repeat(40), "input": []});
    let warmed = exchange(&mut socket, warm.to_string()).await;
    assert_eq!(warmed.last().unwrap()["type"], "response.completed");
    let id = warmed.last().unwrap()["response"]["id"].as_str().unwrap().to_owned();
    warm["generate"] = Value::Null;
    let answer = exchange(&mut socket, create("gpt-4o-mini", "hello", Some(&id))).await;
    assert_eq!(answer.last().unwrap()["type"], "response.completed", "{answer:?}");
    let calls = wait_for_calls(&server, 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let calls_later = recorded(&server).await;
    assert_eq!(calls, calls_later, "the warm-up was not recorded");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].4, usage(&answer)["input_tokens"].as_i64().unwrap());
    assert!(calls[0].4 > 300, "the warm-up's instructions are billed: {calls:?}");
}

#[tokio::test]
async fn refusals_are_error_frames_with_the_http_status_and_the_connection_stays_open() {
    let server = start_with(TestDatabase::sqlite(), "").await;
    let key = key(&server).await;
    let mut socket = open_with_key(&server, &key).await;

    // A hard cap too small for any call.
    let budget =
        json!({"scope": "team", "name": "payments", "period": "month", "limit_usd": "0.000001", "action": "block"});
    let created = server.admin("POST", "/api/v1/budgets", budget.to_string()).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let refused = exchange(&mut socket, create("gpt-4o-mini", "hello", None)).await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["type"], "error");
    assert_eq!(refused[0]["status"], 429);
    assert_eq!(refused[0]["error"]["code"], "budget_exceeded");
    assert!(refused[0]["headers"]["retry-after"].is_string(), "{}", refused[0]);
    let id = created.json["id"].as_str().unwrap();
    let deleted = server.admin("DELETE", &format!("/api/v1/budgets/{id}"), "").await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);

    // A frame that is not JSON, and one that names no model.
    socket.send(Message::text("not json")).await.unwrap();
    let bad = read_response(&mut socket).await;
    assert_eq!(
        (bad[0]["status"].as_u64(), bad[0]["error"]["code"].as_str()),
        (Some(400), Some("invalid_request"))
    );
    let nameless = exchange(
        &mut socket,
        json!({"type": "response.create", "input": "hi"}).to_string(),
    )
    .await;
    assert_eq!(nameless[0]["status"], 400, "{nameless:?}");
    assert!(
        nameless[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`model` is required")
    );

    // A second response while one streams is refused, not interleaved with the first.
    socket
        .send(Message::text(create("gpt-4o-mini-slow", "first", None)))
        .await
        .unwrap();
    socket
        .send(Message::text(create("gpt-4o-mini", "second", None)))
        .await
        .unwrap();
    let mut frames = read_response(&mut socket).await;
    let in_flight = frames
        .iter()
        .position(|f| f["type"] == "error")
        .unwrap_or_else(|| panic!("{frames:?}"));
    assert_eq!(frames[in_flight]["status"], 409);
    assert_eq!(frames[in_flight]["error"]["code"], "response_already_in_progress");
    frames.remove(in_flight);
    if frames.last().is_none_or(|f| f["type"] != "response.completed") {
        frames.extend(read_response(&mut socket).await);
    }
    assert_eq!(frames.last().unwrap()["type"], "response.completed");

    // A key revoked while its connection is open stops being served on it.
    let (id, secret) = server.create_key(r#"{"user": "bob", "team": "payments"}"#).await;
    let mut bobs = open_with_key(&server, &secret).await;
    let revoked = server.admin("POST", &format!("/api/v1/keys/{id}/revoke"), "").await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    let refused = exchange(&mut bobs, create("gpt-4o-mini", "hello", None)).await;
    assert_eq!(
        (refused[0]["status"].as_u64(), refused[0]["error"]["code"].as_str()),
        (Some(401), Some("invalid_api_key"))
    );

    // Nothing refused by the gateway was recorded; the slow call was.
    let calls = wait_for_calls(&server, 1).await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].0, 200);
}

#[tokio::test]
async fn handshakes_are_refused_with_answers_a_client_can_act_on() {
    // A provider that does not speak WebSocket: the client is told to use HTTP (426).
    let plain = axum::Router::new().route("/v1/responses", axum::routing::post(|| async { "{}" }));
    let addr = serve_upstream(plain).await;
    let config = format!("[[providers]]\nname = \"plain\"\nprotocol = \"openai\"\nbase_url = \"http://{addr}/v1\"\n");
    let server = start_with(TestDatabase::sqlite(), &config).await;
    let key = key(&server).await;
    let auth = format!("Bearer {key}");
    let (status, body) = open(&server, &[("authorization", &auth)]).await.err().unwrap();
    assert_eq!(status, 426, "{body}");
    assert_eq!(body["error"]["code"], "websocket_unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("POST /v1/responses")
    );

    let server = start_with(TestDatabase::sqlite(), "").await;
    let (status, body) = open(&server, &[("authorization", "Bearer gh_vk_not_a_key")])
        .await
        .err()
        .unwrap();
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_api_key")));
    let (status, _) = open(&server, &[]).await.err().unwrap();
    assert_eq!(status, 401);
    let plain_get = server.send("GET", "/v1/responses", &[], "").await;
    assert_eq!(plain_get.status, 405, "{}", plain_get.text);
    assert!(
        plain_get.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("WebSocket")
    );
}

#[tokio::test]
async fn responses_cut_short_by_either_side_are_recorded_as_such() {
    let server = start_with(TestDatabase::sqlite(), "").await;
    let key = key(&server).await;

    // The provider's stream breaks mid-response: its error reaches the client, and the call
    // is recorded with its input and the output streamed so far, estimated.
    let mut socket = open_with_key(&server, &key).await;
    let broken = exchange(&mut socket, create("gpt-4o-mini-error-mid", "hello", None)).await;
    assert_eq!(broken.last().unwrap()["type"], "error");
    assert!(broken.iter().any(|f| f["type"] == "response.output_text.delta"));

    // The client hangs up mid-response.
    let mut leaving = open_with_key(&server, &key).await;
    leaving
        .send(Message::text(create("gpt-4o-mini-slow", "hello", None)))
        .await
        .unwrap();
    let mut seen = 0;
    while seen < 3 {
        if let Some(Ok(Message::Text(_))) = leaving.next().await {
            seen += 1;
        }
    }
    drop(leaving);

    let calls = wait_for_calls(&server, 2).await;
    let summary: Vec<_> = calls.iter().map(|c| (c.0, c.2, c.3, c.4 > 0)).collect();
    assert_eq!(
        summary,
        [(200, false, true, true), (200, true, true, true)],
        "{calls:?}"
    );
    assert!(
        calls[0].5 > 0,
        "the output streamed before the break is billed: {calls:?}"
    );
}

/// A provider that starts a response and goes quiet: after the upstream timeout (counted from
/// the provider's last frame, not the client's pings) the client gets an `error` frame, the
/// call is recorded as cut short, and both sockets close.
#[tokio::test]
async fn a_provider_that_goes_quiet_mid_response_is_cut_at_the_timeout() {
    use axum::extract::ws::{Message as Frame, WebSocketUpgrade};
    let app = axum::Router::new().route(
        "/v1/responses",
        axum::routing::get(|upgrade: WebSocketUpgrade| async move {
            upgrade.on_upgrade(|mut socket| async move {
                while let Some(Ok(Frame::Text(_))) = socket.recv().await {
                    let created = json!({"type": "response.created",
                        "response": {"id": "resp_quiet", "model": "gpt-4o-mini", "status": "in_progress"}});
                    let _ = socket.send(Frame::text(created.to_string())).await;
                    // And nothing more, for longer than the gateway waits.
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
            })
        }),
    );
    let addr = serve_upstream(app).await;
    let config = format!("[[providers]]\nname = \"quiet\"\nprotocol = \"openai\"\nbase_url = \"http://{addr}/v1\"\n");
    let server = crate::common::start_configured(TestDatabase::sqlite(), &config, |config| {
        config.gateway.upstream_timeout = Duration::from_secs(1);
    })
    .await;
    let key = key(&server).await;
    let mut socket = open_with_key(&server, &key).await;
    socket
        .send(Message::text(create("gpt-4o-mini", "hello", None)))
        .await
        .unwrap();
    let mut frames = Vec::new();
    let mut pinged = false;
    while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
        match message {
            Message::Text(text) => {
                frames.push(serde_json::from_str::<Value>(text.as_str()).unwrap());
                if !pinged {
                    // A client's ping does not hold a quiet provider's response open.
                    socket.send(Message::Ping(Default::default())).await.unwrap();
                    pinged = true;
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    let kinds: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["response.created", "error"], "{frames:?}");
    assert_eq!(frames[1]["status"], 504);
    let calls = wait_for_calls(&server, 1).await;
    assert_eq!(
        (calls[0].0, calls[0].2, calls[0].3),
        (200, false, true),
        "cut short, estimated: {calls:?}"
    );
}
