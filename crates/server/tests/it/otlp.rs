//! The OTLP receiver end to end: what Claude Code, Codex, Gemini CLI and GenAI-instrumented
//! programs export (JSON and protobuf, gzip or not) becomes usage once, attributed from resource
//! attributes; Claude Code's counters reconcile against it; what is not usage is named in the
//! answer's warning; bad exports get OTLP's answers.

use std::io::Write;

use crate::common::{TestServer, start_with};
use bytes::Bytes;
use goodhart_server::api::otlp::RpcStatus;
use goodhart_store::testing::TestDatabase;
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use prost::Message;
use serde_json::{Value, json};

/// The exporter's warning about the Claude Code fixture's records that are not usage: its
/// prompt, response and other events are accepted, not kept, and OTLP lets the answer say so.
fn ignored_claude_records(message: &str) {
    assert_eq!(
        message,
        "ignored 2 log records without model usage (claude_code.user_prompt ×1, claude_code.assistant_response ×1)"
    );
}

/// The bodies Claude Code 2.1.197 posted (`http/json`), by path.
fn fixture(path: &str) -> Value {
    include_str!("../fixtures/otlp/claude_code.otlp.jsonl")
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|record| record["path"] == path)
        .unwrap()["body"]
        .clone()
}

async fn ingest_token(server: &TestServer, team: Option<&str>) -> String {
    let body = json!({ "role": "ingest", "name": "collector", "team": team });
    let reply = server.admin("POST", "/api/v1/tokens", body.to_string()).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let token = reply.json["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("gh_ingest_"));
    assert_eq!(reply.json["role"], "ingest");
    token
}

async fn export(
    server: &TestServer,
    token: &str,
    signal: &str,
    content_type: &str,
    body: impl Into<Bytes>,
) -> crate::common::Reply {
    export_with(server, token, signal, &[("content-type", content_type)], body).await
}

async fn export_with(
    server: &TestServer,
    token: &str,
    signal: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> crate::common::Reply {
    let auth = format!("Bearer {token}");
    let mut all = vec![("authorization", auth.as_str())];
    all.extend_from_slice(headers);
    server.send("POST", &format!("/otlp/v1/{signal}"), &all, body).await
}

async fn totals(server: &TestServer, group_by: &str) -> Value {
    let reply = server
        .summary(&format!("from=2026-01-01&to=2100-01-01&group_by={group_by}"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn attribute(key: &str, value: Value) -> Value {
    json!({ "key": key, "value": value })
}

/// An export of one Claude Code `api_request` event with the given attributes.
fn api_request(resource: Vec<Value>, attributes: Vec<Value>) -> Value {
    json!({ "resourceLogs": [{
        "resource": { "attributes": resource },
        "scopeLogs": [{ "scope": { "name": "com.anthropic.claude_code.events" }, "logRecords": [{
            "timeUnixNano": "1795460122245000000",
            "body": { "stringValue": "claude_code.api_request" },
            "attributes": attributes,
        }]}]
    }]})
}

fn claude_attributes(request_id: &str, input: Value) -> Vec<Value> {
    vec![
        attribute("event.name", json!({ "stringValue": "api_request" })),
        attribute("event.timestamp", json!({ "stringValue": "2026-11-23T18:55:22.244Z" })),
        attribute("session.id", json!({ "stringValue": "s-1" })),
        attribute("model", json!({ "stringValue": "claude-sonnet-4-5" })),
        attribute("input_tokens", input),
        attribute("output_tokens", json!({ "intValue": "20" })),
        attribute("request_id", json!({ "stringValue": request_id })),
    ]
}

#[tokio::test]
async fn claude_code_exports_count_each_call_once_in_either_encoding() {
    let server = start_with(TestDatabase::sqlite(), "").await;
    let token = ingest_token(&server, None).await;
    let logs = fixture("/v1/logs");

    let reply = export(&server, &token, "logs", "application/json", logs.to_string()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let partial = &reply.json["partialSuccess"];
    assert_eq!(
        partial["rejectedLogRecords"], 0,
        "everything accepted, nothing rejected: {}",
        reply.text
    );
    ignored_claude_records(partial["errorMessage"].as_str().unwrap());
    let totals_once = totals(&server, "user,agent").await;
    let row = &totals_once["rows"][0];
    assert_eq!(totals_once["rows"].as_array().unwrap().len(), 1);
    assert_eq!(row["agent"], "claude-code");
    assert_eq!(
        row["user"], "908fd2cb082f298a3f9bcd5bd07118cf90899df206680d73d43407e9da7bdcd5",
        "without user.email, Claude Code's user.id"
    );
    assert_eq!(
        (&row["requests"], &row["input_tokens"], &row["output_tokens"]),
        (&json!(1), &json!(19448), &json!(5)),
        "one api_request; the prompt and response events are not usage"
    );
    assert_eq!(
        (&row["cache_read_tokens"], &row["cache_write_tokens"]),
        (&json!(7), &json!(3))
    );
    assert_eq!(
        row["cost_usd"],
        json!(0.09738725),
        "priced exactly as Claude Code priced it"
    );

    // The exporter retries, then the same call arrives as protobuf, gzipped: still one call.
    let reply = export(&server, &token, "logs", "application/json", logs.to_string()).await;
    assert_eq!(reply.status, 200);
    let decoded: ExportLogsServiceRequest = serde_json::from_value(logs).unwrap();
    let protobuf = gzip(&decoded.encode_to_vec());
    let reply = export_with(
        &server,
        &token,
        "logs",
        &[("content-type", "application/x-protobuf"), ("content-encoding", "gzip")],
        protobuf,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.headers["content-type"], "application/x-protobuf");
    let answer = ExportLogsServiceResponse::decode(reply.bytes).unwrap();
    let partial = answer.partial_success.unwrap();
    assert_eq!(partial.rejected_log_records, 0, "a warning rejects nothing");
    ignored_claude_records(&partial.error_message);
    assert_eq!(totals(&server, "user,agent").await, totals_once);

    // The counters: kept for reconciliation, never added to the usage.
    let metrics = fixture("/v1/metrics");
    let reply = export(&server, &token, "metrics", "application/json", metrics.to_string()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["partialSuccess"]["rejectedDataPoints"], 0);
    assert_eq!(
        reply.json["partialSuccess"]["errorMessage"],
        "ignored 2 metric data points of metrics the receiver does not read \
         (claude_code.session.count ×1, claude_code.active_time.total ×1)"
    );
    let decoded: ExportMetricsServiceRequest = serde_json::from_value(metrics).unwrap();
    let reply = export(
        &server,
        &token,
        "metrics",
        "application/x-protobuf",
        decoded.encode_to_vec(),
    )
    .await;
    assert_eq!(reply.status, 200, "a retried export of the same points");
    assert_eq!(totals(&server, "user,agent").await, totals_once);
    let reconciliation = server
        .admin(
            "GET",
            "/api/v1/reconciliation?from=2026-11-01&to=2026-12-01",
            Bytes::new(),
        )
        .await;
    assert_eq!(reconciliation.status, 200, "{}", reconciliation.text);
    let session = &reconciliation.json["sessions"][0];
    assert_eq!(session["session"], "74709db3-270f-4dc5-bea8-073b12c9393a");
    assert_eq!(session["counted"]["input_tokens"], 19448, "points stored once");
    assert_eq!(session["counted"]["cost_nanos"], 97_387_250);
    assert_eq!(session["recorded"]["input_tokens"], 19448);
    assert_eq!(session["recorded"]["cost_nanos"], 97_387_250);
    assert_eq!(
        (&session["recorded_calls"], &session["missing_tokens"]),
        (&json!(1), &json!(0)),
        "the call is recorded under its session"
    );
    assert_eq!(reconciliation.json["missing_tokens"], 0);
}

#[tokio::test]
async fn attribution_comes_from_resource_attributes_and_the_tokens_team() {
    let server = start_with(TestDatabase::sqlite(), "").await;
    let payments = ingest_token(&server, Some("payments")).await;
    let resource = vec![
        attribute("service.name", json!({ "stringValue": "claude-code" })),
        attribute("user.email", json!({ "stringValue": "ana@example.com" })),
        attribute("project", json!({ "stringValue": "checkout" })),
    ];
    let body = api_request(resource.clone(), claude_attributes("req_a", json!({ "intValue": 100 })));
    let reply = export(&server, &payments, "logs", "application/json", body.to_string()).await;
    assert_eq!((reply.status, &reply.json), (200, &json!({})), "{}", reply.text);
    let mut named_team = resource;
    named_team.push(attribute("team", json!({ "stringValue": "platform" })));
    let body = api_request(named_team, claude_attributes("req_b", json!({ "intValue": 100 })));
    export(&server, &payments, "logs", "application/json", body.to_string()).await;

    let rows = totals(&server, "user,team,project").await["rows"].clone();
    let keys: Vec<(String, String, String)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap_or("").to_owned();
            (text("user"), text("team"), text("project"))
        })
        .collect();
    assert_eq!(
        keys.len(),
        2,
        "{rows}: the token's team where none is named, the named team otherwise"
    );
    assert!(keys.contains(&("ana@example.com".into(), "payments".into(), "checkout".into())));
    assert!(keys.contains(&("ana@example.com".into(), "platform".into(), "checkout".into())));
}

/// A personal ingest token's records are its person's, whoever they name — or if they name
/// nobody.
#[tokio::test]
async fn a_personal_ingest_tokens_records_are_its_persons() {
    let server = start_with(TestDatabase::sqlite(), "").await;
    let reply = server
        .admin(
            "POST",
            "/api/v1/tokens",
            json!({"role": "ingest", "user": "ana"}).to_string(),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let personal = reply.json["token"].as_str().unwrap().to_owned();
    let someone_else = vec![attribute("user.email", json!({ "stringValue": "bob@example.com" }))];
    let body = api_request(someone_else, claude_attributes("req_p1", json!({ "intValue": 100 })));
    let reply = export(&server, &personal, "logs", "application/json", body.to_string()).await;
    assert_eq!((reply.status, &reply.json), (200, &json!({})), "{}", reply.text);
    let nobody = api_request(Vec::new(), claude_attributes("req_p2", json!({ "intValue": 100 })));
    let reply = export(&server, &personal, "logs", "application/json", nobody.to_string()).await;
    assert_eq!((reply.status, &reply.json), (200, &json!({})), "{}", reply.text);

    let rows = totals(&server, "user").await["rows"].clone();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!((&rows[0]["user"], &rows[0]["requests"]), (&json!("ana"), &json!(2)));
}

#[tokio::test]
async fn unreadable_records_are_rejected_by_name_and_the_rest_is_kept() {
    let server = start_with(TestDatabase::sqlite(), "").await;
    let token = ingest_token(&server, None).await;
    let user = vec![attribute("user.email", json!({ "stringValue": "ana@example.com" }))];
    let mut body = api_request(user, claude_attributes("req_good", json!({ "intValue": 100 })));
    let records = body["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
        .as_array_mut()
        .unwrap();
    let good = records[0].clone();
    let mut fractional = good.clone();
    fractional["attributes"] = json!(claude_attributes("req_bad", json!({ "doubleValue": 1.5 })));
    let mut no_model = good.clone();
    no_model["attributes"]
        .as_array_mut()
        .unwrap()
        .retain(|a| a["key"] != "model");
    let mut prompt = good.clone();
    prompt["body"] = json!({ "stringValue": "claude_code.user_prompt" });
    records.extend([fractional, no_model, prompt]);

    let reply = export(&server, &token, "logs", "application/json", body.to_string()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let partial = &reply.json["partialSuccess"];
    assert_eq!(partial["rejectedLogRecords"], json!(2), "{}", reply.text);
    let message = partial["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("`input_tokens` is 1.5, not a whole number"),
        "{message}"
    );
    assert!(message.contains("attribute `model` is missing"), "{message}");
    let totals = totals(&server, "user").await;
    assert_eq!(
        totals["totals"]["requests"], 1,
        "the good call is kept, the prompt ignored"
    );
}

#[tokio::test]
async fn bad_exports_get_otlp_answers() {
    let server = start_with(TestDatabase::sqlite(), "[limits]\nmax_body_bytes = 4096").await;
    let token = ingest_token(&server, None).await;

    let reply = export(&server, &token, "logs", "text/plain", "{}").await;
    assert_eq!(reply.status, 415);
    assert!(
        reply.json["message"]
            .as_str()
            .unwrap()
            .contains("application/x-protobuf")
    );

    let reply = export(
        &server,
        &token,
        "traces",
        "application/x-protobuf",
        &b"\xff\xff\xff"[..],
    )
    .await;
    assert_eq!(reply.status, 400);
    let status = RpcStatus::decode(reply.bytes).unwrap_or_default();
    assert_eq!(status.code, 3, "invalid argument, in the request's encoding");
    assert!(
        status.message.contains("not an OTLP protobuf message"),
        "{}",
        status.message
    );

    let reply = export(
        &server,
        &token,
        "metrics",
        "application/json",
        "{\"resourceMetrics\": 7}",
    )
    .await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.json["message"]
            .as_str()
            .unwrap()
            .contains("not an OTLP JSON message")
    );

    let reply = export(&server, &token, "logs", "application/json", vec![b' '; 5000]).await;
    assert_eq!(reply.status, 413, "{}", reply.text);

    let empty = export(&server, &token, "logs", "application/json", "{}").await;
    assert_eq!(
        (empty.status, &empty.json),
        (200, &json!({})),
        "an empty export is a success"
    );

    let reply = server
        .send("POST", "/otlp/v1/logs", &[("content-type", "application/json")], "{}")
        .await;
    assert_eq!(reply.status, 401, "no token");
    let viewer = server.admin("POST", "/api/v1/tokens", "{}").await.json["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = export(&server, &viewer, "logs", "application/json", "{}").await;
    assert_eq!(reply.status, 403, "a viewer token cannot send");
    let reply = server
        .with_token(&token, "GET", "/api/v1/usage/summary", Bytes::new())
        .await;
    assert_eq!(reply.status, 403, "an ingest token cannot read");
    let reply = server
        .with_token(&token, "POST", "/api/v1/usage", json!([{"timestamp": "2026-11-20T10:00:00Z", "user": "ana", "model": "gpt-4o", "input_tokens": 1, "output_tokens": 1}]).to_string())
        .await;
    assert_eq!(
        reply.status, 200,
        "an ingest token may use the ingest API: {}",
        reply.text
    );
}

fn span(name: &str, span_id: &str, attributes: Vec<Value>) -> Value {
    json!({
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": span_id, "name": name, "kind": 3,
        "startTimeUnixNano": "1795460122000000000", "endTimeUnixNano": "1795460123000000000",
        "attributes": attributes,
    })
}

/// A GenAI span's attributes: an OpenAI call of `gpt-4o-mini` answered by `response_id`.
fn genai_usage(operation: &str, response_id: &str) -> Vec<Value> {
    vec![
        attribute("gen_ai.operation.name", json!({ "stringValue": operation })),
        attribute("gen_ai.provider.name", json!({ "stringValue": "openai" })),
        attribute("gen_ai.request.model", json!({ "stringValue": "gpt-4o-mini" })),
        attribute("gen_ai.response.id", json!({ "stringValue": response_id })),
        attribute("gen_ai.usage.input_tokens", json!({ "intValue": "1200" })),
        attribute("gen_ai.usage.cache_read_input_tokens", json!({ "intValue": "200" })),
        attribute("gen_ai.usage.output_tokens", json!({ "intValue": 300 })),
        attribute(
            "gen_ai.response.finish_reasons",
            json!({ "arrayValue": { "values": [{ "stringValue": "stop" }] } }),
        ),
    ]
}

/// A trace export of `spans` from the `support-bot` service of `bo@example.com`.
fn genai_traces(spans: Vec<Value>) -> Value {
    json!({ "resourceSpans": [{
        "resource": { "attributes": [
            attribute("service.name", json!({ "stringValue": "support-bot" })),
            attribute("user.email", json!({ "stringValue": "bo@example.com" })),
        ]},
        "scopeSpans": [{ "spans": spans }]
    }]})
}

/// A server, an ingest token, and alice's chat call through its gateway (stored): the
/// response id its telemetry would name.
async fn a_call_through_the_gateway() -> (TestServer, String, String) {
    let server = start_with(TestDatabase::sqlite(), "").await;
    let token = ingest_token(&server, None).await;
    let (_, key) = server.create_key(r#"{"user": "alice"}"#).await;
    let auth = format!("Bearer {key}");
    let body = json!({ "model": "gpt-4o-mini", "messages": [{ "role": "user", "content": "hi" }] });
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let reply = server
        .send("POST", "/v1/chat/completions", &headers, body.to_string())
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let response_id = reply.json["id"].as_str().unwrap().to_owned();
    server.flush().await;
    (server, token, response_id)
}

#[tokio::test]
async fn a_genai_span_of_a_call_the_gateway_metered_is_not_counted_again() {
    let (server, token, response_id) = a_call_through_the_gateway().await;
    let response_id = response_id.as_str();

    // The program's instrumentation knows the call by its response id only.
    let traces = genai_traces(vec![span(
        "chat gpt-4o-mini",
        "eee19b7ec3c1b174",
        genai_usage("chat", response_id),
    )]);
    let reply = export(&server, &token, "traces", "application/json", traces.to_string()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = server.summary("from=2000-01-01&to=2100-01-01&group_by=user").await;
    let rows = reply.json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((&rows[0]["user"], &rows[0]["requests"]), (&json!("alice"), &json!(1)));
}

#[tokio::test]
async fn genai_spans_and_codex_events_become_usage() {
    let server = start_with(TestDatabase::sqlite(), "").await;
    let token = ingest_token(&server, None).await;
    let traces = genai_traces(vec![
        span(
            "chat gpt-4o-mini",
            "eee19b7ec3c1b174",
            genai_usage("chat", "chatcmpl-1"),
        ),
        span(
            "invoke_agent support",
            "eee19b7ec3c1b175",
            genai_usage("invoke_agent", "chatcmpl-1"),
        ),
        span("GET /", "eee19b7ec3c1b176", vec![]),
    ]);
    let reply = export(&server, &token, "traces", "application/json", traces.to_string()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json,
        json!({ "partialSuccess": {
            "rejectedSpans": 0,
            "errorMessage": "ignored 2 spans without model-call usage (invoke_agent support ×1, GET / ×1)"
        }}),
        "accepted, and the sender told what was not kept"
    );
    export(&server, &token, "traces", "application/json", traces.to_string()).await;

    // As Codex 0.171 exports a turn over its WebSocket: the warm-up's completion (every count
    // zero: not a call), then the turn's.
    let completed = |at: &str, counts: [&str; 4]| {
        json!({
            "timeUnixNano": at,
            "attributes": [
                attribute("event.name", json!({ "stringValue": "codex.sse_event" })),
                attribute("event.kind", json!({ "stringValue": "response.completed" })),
                attribute("conversation.id", json!({ "stringValue": "c-1" })),
                attribute("user.email", json!({ "stringValue": "cy@example.com" })),
                attribute("model", json!({ "stringValue": "gpt-5-codex" })),
                attribute("input_token_count", json!({ "stringValue": counts[0] })),
                attribute("cached_token_count", json!({ "stringValue": counts[1] })),
                attribute("output_token_count", json!({ "stringValue": counts[2] })),
                attribute("reasoning_token_count", json!({ "stringValue": counts[3] })),
                attribute("tool_token_count", json!({ "stringValue": "0" })),
            ],
        })
    };
    let codex = json!({ "resourceLogs": [{
        "resource": { "attributes": [attribute("service.name", json!({ "stringValue": "codex_cli_rs" }))] },
        "scopeLogs": [{ "logRecords": [
            completed("1795460121900000000", ["0", "0", "0", "0"]),
            completed("1795460122000000000", ["5000", "4000", "700", "500"]),
        ]}]
    }]});
    let reply = export(&server, &token, "logs", "application/json", codex.to_string()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json["partialSuccess"]["errorMessage"], "ignored 1 log record without model usage (codex.sse_event ×1)",
        "the warm-up is named, not stored: {}",
        reply.text
    );

    let rows = totals(&server, "user,agent").await["rows"].clone();
    let row = |user: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["user"] == user)
            .unwrap()
            .clone()
    };
    let bot = row("bo@example.com");
    assert_eq!(bot["agent"], "support-bot");
    assert_eq!(
        (
            &bot["requests"],
            &bot["input_tokens"],
            &bot["cache_read_tokens"],
            &bot["output_tokens"]
        ),
        (&json!(1), &json!(1000), &json!(200), &json!(300)),
        "the model call once (not the agent span summing it), cached tokens out of the input"
    );
    let codex = row("cy@example.com");
    assert_eq!(codex["agent"], "codex");
    assert_eq!(
        (
            &codex["input_tokens"],
            &codex["cache_read_tokens"],
            &codex["output_tokens"],
            &codex["reasoning_tokens"]
        ),
        (&json!(1000), &json!(4000), &json!(200), &json!(500)),
        "Codex's input includes its cached input, its output its reasoning"
    );
    assert_eq!(codex["requests"], 1, "its warm-up is not a call");
}

/// The exports of the Gemini CLI fixture, captured from Gemini CLI 0.61.0 (see its first line),
/// in the order it posted them: path and body.
fn gemini_exports() -> Vec<(String, Value)> {
    include_str!("../fixtures/otlp/gemini_cli.otlp.jsonl")
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|export| export["path"].is_string())
        .map(|export| (export["path"].as_str().unwrap().to_owned(), export["body"].clone()))
        .collect()
}

/// The Gemini CLI fixture's exports to one path, in order.
fn gemini_fixture(path: &str) -> Vec<Value> {
    gemini_exports()
        .into_iter()
        .filter(|(p, _)| p == path)
        .map(|(_, body)| body)
        .collect()
}

const GEMINI_SESSION: &str = "dd2edd17-dc1d-4692-a592-6a22ce318e78";

/// What each of the Gemini CLI fixture's exports is told, in order: every record that is not a
/// call's usage is named (the api_response and details records of its three calls are read).
const GEMINI_ANSWERS: [(&str, &str); 5] = [
    (
        "/otlp/v1/logs",
        "ignored 11 log records without model usage (gemini_cli.config ×1, gemini_cli.ripgrep_fallback ×1, \
         gemini_cli.startup_stats ×1, gemini_cli.user_prompt ×1, gemini_cli.api_request ×2, …)",
    ),
    (
        "/otlp/v1/traces",
        "ignored 2 spans without model-call usage (llm_call ×2)",
    ),
    (
        "/otlp/v1/metrics",
        "ignored 37 metric data points of metrics the receiver does not read (gemini_cli.tool.call.count ×1, \
         gemini_cli.api.request.count ×4, gemini_cli.token.usage ×10, gemini_cli.session.count ×1, \
         gemini_cli.file.operation.count ×1, …)",
    ),
    (
        "/otlp/v1/traces",
        "ignored 4 spans without model-call usage (llm_call ×2, tool_call ×1, schedule_tool_calls ×1)",
    ),
    (
        "/otlp/v1/logs",
        "ignored 7 log records without model usage (gemini_cli.api_request ×2, \
         gen_ai.client.inference.operation.details ×2, gemini_cli.file_operation ×1, gemini_cli.tool_call ×1, \
         gemini_cli.plan.approval_mode_duration ×1)",
    ),
];

/// The partial success's message of an OTLP/JSON answer, whatever the signal.
fn warning(answer: &Value) -> &str {
    answer["partialSuccess"]["errorMessage"].as_str().unwrap_or_default()
}

fn stored_sessions(server: &TestServer) -> Vec<(String, String, Option<String>)> {
    let path = server.db.url.strip_prefix("sqlite://").unwrap();
    rusqlite::Connection::open(path)
        .unwrap()
        .prepare("SELECT model, COALESCE(session, ''), finish_reason FROM usage_events ORDER BY ts")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Whether any of an export's spans reports `gen_ai.usage.*`.
fn spans_with_usage(traces: &Value) -> usize {
    traces["resourceSpans"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["scopeSpans"].as_array().unwrap())
        .flat_map(|s| s["spans"].as_array().unwrap())
        .filter(|span| {
            span["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["key"] == "gen_ai.usage.input_tokens")
        })
        .count()
}

#[tokio::test]
async fn gemini_cli_exports_count_each_call_once_and_name_what_is_ignored() {
    let server = start_with(TestDatabase::sqlite(), "").await;
    let token = ingest_token(&server, Some("platform")).await;

    // As Gemini CLI posts them: OTLP/JSON, one export at a time, in its order.
    let exports = gemini_exports();
    assert_eq!(
        exports.iter().map(|(path, _)| path.as_str()).collect::<Vec<_>>(),
        GEMINI_ANSWERS.iter().map(|(path, _)| *path).collect::<Vec<_>>()
    );
    for ((path, body), (_, expected)) in exports.iter().zip(GEMINI_ANSWERS) {
        let signal = path.strip_prefix("/otlp/v1/").unwrap();
        let reply = export(&server, &token, signal, "application/json", body.to_string()).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(
            warning(&reply.json),
            expected,
            "{path}: accepted, the records that are not usage named"
        );
        let rejected = ["rejectedLogRecords", "rejectedSpans", "rejectedDataPoints"]
            .iter()
            .filter_map(|key| reply.json["partialSuccess"][key].as_i64())
            .sum::<i64>();
        assert_eq!(rejected, 0, "{path}: {}", reply.text);
    }
    // Its `llm_call` spans carry the calls' usage when its traces are enabled (the capture's
    // were): the same calls as its api_response records, not counted twice.
    let traces = gemini_fixture("/otlp/v1/traces");
    assert_eq!(traces.iter().map(spans_with_usage).sum::<usize>(), 3);

    let once = totals(&server, "user,team,project,agent,provider,model").await;
    let rows = once["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{once}");
    let row = |model: &str| rows.iter().find(|r| r["model"] == model).unwrap();
    let flash = row("gemini-3.8-flash");
    assert_eq!(
        (
            &flash["user"],
            &flash["team"],
            &flash["project"],
            &flash["agent"],
            &flash["provider"]
        ),
        (
            &json!("ana@example.com"),
            &json!("payments"),
            &json!("checkout"),
            &json!("gemini-cli"),
            &json!("google")
        ),
        "user, team and project from OTEL_RESOURCE_ATTRIBUTES (over the token's team)"
    );
    assert_eq!(
        (
            &flash["requests"],
            &flash["input_tokens"],
            &flash["cache_read_tokens"],
            &flash["output_tokens"],
            &flash["reasoning_tokens"]
        ),
        (&json!(2), &json!(600 + 1500), &json!(800), &json!(32 + 33), &json!(150)),
        "two calls, not four (api_response and details event each) nor six (and the llm_call span); \
         the 800 cached tokens out of the first call's 1400 prompt tokens"
    );
    assert_eq!(
        flash["cost_usd"],
        json!(0.00244125),
        "2100 × $0.75 + 800 × $0.075 + (65 + 150) × $3.75 per million: thoughts are billed as output"
    );
    let router = row("gemini-3.5-flash-lite");
    assert_eq!(
        (
            &router["requests"],
            &router["input_tokens"],
            &router["output_tokens"],
            &router["unpriced_requests"]
        ),
        (&json!(1), &json!(1300), &json!(31), &json!(1)),
        "its routing call is a call too"
    );
    assert_eq!(
        stored_sessions(&server),
        vec![
            (
                "gemini-3.5-flash-lite".into(),
                GEMINI_SESSION.into(),
                Some("stop".into())
            ),
            ("gemini-3.8-flash".into(), GEMINI_SESSION.into(), Some("stop".into())),
            ("gemini-3.8-flash".into(), GEMINI_SESSION.into(), Some("stop".into())),
        ],
        "the session Gemini CLI reported; the call refused with 429 (api_error) is not usage"
    );

    // The same exports again, as protobuf and gzipped this time: duplicates, nothing added.
    for ((path, body), (_, expected)) in exports.iter().zip(GEMINI_ANSWERS) {
        let (signal, protobuf) = match path.as_str() {
            "/otlp/v1/logs" => (
                "logs",
                serde_json::from_value::<ExportLogsServiceRequest>(body.clone())
                    .unwrap()
                    .encode_to_vec(),
            ),
            "/otlp/v1/metrics" => (
                "metrics",
                serde_json::from_value::<ExportMetricsServiceRequest>(body.clone())
                    .unwrap()
                    .encode_to_vec(),
            ),
            _ => continue,
        };
        let reply = export_with(
            &server,
            &token,
            signal,
            &[("content-type", "application/x-protobuf"), ("content-encoding", "gzip")],
            gzip(&protobuf),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let message = if signal == "logs" {
            ExportLogsServiceResponse::decode(reply.bytes)
                .unwrap()
                .partial_success
                .unwrap()
                .error_message
        } else {
            ExportMetricsServiceResponse::decode(reply.bytes)
                .unwrap()
                .partial_success
                .unwrap()
                .error_message
        };
        assert_eq!(message, expected);
    }
    assert_eq!(totals(&server, "user,team,project,agent,provider,model").await, once);
}

/// A logs export split in two after its `split` first records.
fn split_after(logs: &Value, split: usize) -> (Value, Value) {
    let records = logs["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
        .as_array()
        .unwrap();
    let with = |part: &[Value]| {
        let mut body = logs.clone();
        body["resourceLogs"][0]["scopeLogs"][0]["logRecords"] = json!(part);
        body
    };
    (with(&records[..split]), with(&records[split..]))
}

#[tokio::test]
async fn a_gemini_call_whose_two_records_arrive_in_two_exports_counts_once() {
    let server = start_with(TestDatabase::sqlite(), "").await;
    let token = ingest_token(&server, None).await;
    // The export after the retry: the call with cached and thoughts tokens, its tool call, the
    // next call.
    let logs = gemini_fixture("/otlp/v1/logs")[1].clone();
    let records = logs["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
        .as_array()
        .unwrap();
    let response = records
        .iter()
        .position(|r| {
            r["body"]["stringValue"]
                .as_str()
                .unwrap()
                .starts_with("API response from gemini-3.8-flash")
        })
        .unwrap();
    // The batch ends between the api_response and its details event, which Gemini CLI stamps a
    // millisecond later (`timeUnixNano`) with the same `event.timestamp`.
    let (first, second) = split_after(&logs, response + 1);
    for body in [first, second] {
        let reply = export(&server, &token, "logs", "application/json", body.to_string()).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json["partialSuccess"]["rejectedLogRecords"], 0, "{}", reply.text);
    }
    let rows = totals(&server, "model").await["rows"].clone();
    assert_eq!(
        rows,
        json!([{
            "model": "gemini-3.8-flash",
            "requests": 2,
            "input_tokens": 600 + 1500,
            "output_tokens": 32 + 33,
            "cache_read_tokens": 800,
            "cache_write_tokens": 0,
            "cache_write_1h_tokens": 0,
            "reasoning_tokens": 150,
            "total_tokens": 2100 + 65 + 800 + 150,
            "cost_usd": 0.00244125,
            "unpriced_requests": 0,
            "estimated_requests": 0,
        }]),
        "the details event in the next export is the same call: a duplicate, not a second call \
         (whose 1400 input tokens would count the cached ones again)"
    );
}

#[tokio::test]
async fn an_inference_details_event_of_a_call_the_gateway_metered_is_not_counted_again() {
    let (server, token, response_id) = a_call_through_the_gateway().await;
    let response_id = response_id.as_str();

    // A program instrumented with the GenAI conventions' events, not spans.
    let mut attributes = genai_usage("chat", response_id);
    attributes.push(attribute(
        "event.name",
        json!({ "stringValue": "gen_ai.client.inference.operation.details" }),
    ));
    let logs = json!({ "resourceLogs": [{
        "resource": { "attributes": [
            attribute("service.name", json!({ "stringValue": "support-bot" })),
            attribute("user.email", json!({ "stringValue": "bo@example.com" })),
        ]},
        "scopeLogs": [{ "logRecords": [{
            "timeUnixNano": "1795460122000000000",
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "attributes": attributes,
        }]}]
    }]});
    let reply = export(&server, &token, "logs", "application/json", logs.to_string()).await;
    assert_eq!((reply.status, &reply.json), (200, &json!({})), "{}", reply.text);
    let reply = server.summary("from=2000-01-01&to=2100-01-01&group_by=user").await;
    let rows = reply.json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((&rows[0]["user"], &rows[0]["requests"]), (&json!("alice"), &json!(1)));

    // Without a response id, the event is the call of the span it was emitted in.
    let mut attributes = genai_usage("chat", "");
    attributes.retain(|a| a["key"] != "gen_ai.response.id");
    let traces = genai_traces(vec![span("chat gpt-4o-mini", "eee19b7ec3c1b199", attributes.clone())]);
    let reply = export(&server, &token, "traces", "application/json", traces.to_string()).await;
    assert_eq!((reply.status, &reply.json), (200, &json!({})), "{}", reply.text);
    attributes.push(attribute(
        "event.name",
        json!({ "stringValue": "gen_ai.client.inference.operation.details" }),
    ));
    let mut event = logs.clone();
    let record = &mut event["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
    record["spanId"] = json!("eee19b7ec3c1b199");
    record["attributes"] = json!(attributes);
    let reply = export(&server, &token, "logs", "application/json", event.to_string()).await;
    assert_eq!((reply.status, &reply.json), (200, &json!({})), "{}", reply.text);
    let rows = totals(&server, "user").await["rows"].clone();
    let bot = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["user"] == "bo@example.com")
        .unwrap()
        .clone();
    assert_eq!(
        bot["requests"], 1,
        "the span and its details event are one call: {rows}"
    );
}
