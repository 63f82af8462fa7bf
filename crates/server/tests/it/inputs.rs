//! The input hardening sweep: every endpoint that takes a body, fed what hostile or broken
//! clients send — malformed JSON, NDJSON and protobuf, wrong types, token counts and money past
//! `u64::MAX` and `i64::MAX`, negative, NaN and Infinity (as literals and as strings), deep
//! nesting, huge strings, invalid UTF-8, gzip bombs, timestamps out of range, duplicated keys —
//! must answer 4xx naming the field (never 5xx, never a dropped connection) and store nothing
//! of a rejected batch.
//!
//! The sweep is two tables: [`endpoints`] (one row per endpoint: a body it accepts and where
//! its numbers, timestamps and labels are) and the attacks built from them ([`attacks`]). A new
//! endpoint is one row. Query strings of the read API get the same treatment in
//! [`query_parameters_out_of_range_are_named_never_a_server_error`].

use std::collections::BTreeMap;
use std::io::Write;

use bytes::Bytes;
use goodhart_store::testing::TestDatabase;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::common::{ADMIN, TestServer, start_with};

const SECRET: &str = "inputs-webhook-secret";
/// Small enough that a bomb or a huge body is cheap to send, large enough for every valid body.
const LIMIT: usize = 1 << 20;
const CONFIG: &str =
    "[outcomes]\ngithub_webhook_secret = \"inputs-webhook-secret\"\n[limits]\nmax_body_bytes = 1048576\n";

/// Who may call an endpoint, and so how a request to it is authenticated.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Caller {
    /// The admin token (it may call every API route).
    Admin,
    /// A virtual key (the gateway's routes).
    Key,
    /// A GitHub delivery signed with the webhook secret.
    GitHub,
}

/// What an endpoint's answer to a bad field looks like.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Answer {
    /// A 4xx naming the field; nothing stored.
    Refused,
    /// OTLP: per record by design — a 4xx, or a 200 whose partial success names the field;
    /// either way nothing stored.
    PerRecord,
    /// The gateway: the body goes to the provider, who judges it; the gateway itself must not
    /// fail (no 5xx of its own) and must answer in the client's protocol when it refuses.
    Forwarded,
}

/// How an endpoint's body is written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Format {
    Json,
    /// The array template, one element a line.
    Ndjson,
    /// The JSON template turned into the OTLP protobuf message of the signal.
    Protobuf(Signal),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Signal {
    Logs,
    Traces,
    Metrics,
}

/// A field to attack: its JSON pointer in the template and the name an error must mention
/// (the last step of the pointer will do where the error is the decoder's).
#[derive(Clone, Copy, Debug)]
struct Field {
    pointer: &'static str,
    name: &'static str,
    /// Values of the attacks that are valid here (a fraction for money, `u64::MAX` for
    /// GitHub's own ids): the answer to them is not judged.
    valid: &'static [&'static str],
}

/// A [`Field`] as a constant expression, so that a row's `&[…]` of them is `'static`.
macro_rules! field {
    ($pointer:expr, $name:expr $(,)?) => {
        field!($pointer, $name, valid: [])
    };
    ($pointer:expr, $name:expr, valid: [$($valid:expr),*] $(,)?) => {
        Field {
            pointer: $pointer,
            name: $name,
            valid: &[$($valid),*],
        }
    };
}

/// A decimal amount's [`Field`]: a fraction is no attack.
macro_rules! amount {
    ($pointer:expr, $name:expr $(,)?) => {
        field!($pointer, $name, valid: ["0.5"])
    };
}

/// One endpoint that takes a body: one row of the sweep.
struct Endpoint {
    name: &'static str,
    path: &'static str,
    caller: Caller,
    format: Format,
    answer: Answer,
    /// A body it accepts (batches: two items, so a bad second item tests all-or-nothing).
    valid: fn() -> Value,
    /// Token counts, money and other numbers.
    numbers: &'static [Field],
    timestamps: &'static [Field],
    /// Names and labels (strings with a length limit).
    labels: &'static [Field],
    /// Raw values particular to this endpoint, each with the field it must be named by.
    specials: &'static [(Field, &'static str)],
    /// A key given twice is refused (bodies read into types) rather than the last one taken
    /// (payloads read as JSON values).
    strict_keys: bool,
}

impl Endpoint {
    /// Whole-body attacks that are valid inputs here: OTLP ignores unknown fields (so a deep
    /// object of them is an empty export), and an empty protobuf message is an export of nothing.
    fn takes(&self, attack: &str) -> bool {
        match (self.answer, self.format) {
            (Answer::PerRecord, Format::Json) => attack == "100,000 nested objects",
            (Answer::PerRecord, Format::Protobuf(_)) => attack == "an empty body",
            _ => false,
        }
    }
}

fn usage_event(id: &str) -> Value {
    json!({"id": id, "timestamp": "2026-11-02T09:14:03Z", "user": "alice", "team": "payments",
           "model": "claude-sonnet-4-5", "input_tokens": 1200, "output_tokens": 350,
           "cache_read_tokens": 0, "cache_write_tokens": 0, "cache_write_1h_tokens": 0, "reasoning_tokens": 0})
}

fn outcome(id: &str) -> Value {
    json!({"id": id, "timestamp": "2026-11-02T09:14:03Z", "kind": "deployment", "user": "alice", "weight": 1.0})
}

/// A Claude Code `api_request` log record, as Claude Code exports it.
fn otlp_logs() -> Value {
    let attribute = |key: &str, value: Value| json!({"key": key, "value": value});
    json!({"resourceLogs": [{
    "resource": {"attributes": [attribute("service.name", json!({"stringValue": "claude-code"})),
                                attribute("user.email", json!({"stringValue": "alice@example.com"}))]},
    "scopeLogs": [{"logRecords": [{
        "timeUnixNano": "1795460122245000000",
        "body": {"stringValue": "claude_code.api_request"},
        "attributes": [
            attribute("event.name", json!({"stringValue": "api_request"})),
            attribute("model", json!({"stringValue": "claude-sonnet-4-5"})),
            attribute("input_tokens", json!({"intValue": "19448"})),
            attribute("output_tokens", json!({"intValue": "5"})),
            attribute("cache_read_tokens", json!({"intValue": "7"})),
            attribute("request_id", json!({"stringValue": "req_inputs_sweep"})),
        ]}]}]}]})
}

/// An OpenTelemetry GenAI model-call span.
fn otlp_traces() -> Value {
    let attribute = |key: &str, value: Value| json!({"key": key, "value": value});
    json!({"resourceSpans": [{
    "resource": {"attributes": [attribute("service.name", json!({"stringValue": "agent"})),
                                attribute("enduser.id", json!({"stringValue": "alice"}))]},
    "scopeSpans": [{"spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
        "name": "chat claude-sonnet-4-5", "kind": 3,
        "startTimeUnixNano": "1795460122245000000", "endTimeUnixNano": "1795460123245000000",
        "attributes": [
            attribute("gen_ai.operation.name", json!({"stringValue": "chat"})),
            attribute("gen_ai.system", json!({"stringValue": "anthropic"})),
            attribute("gen_ai.request.model", json!({"stringValue": "claude-sonnet-4-5"})),
            attribute("gen_ai.usage.input_tokens", json!({"intValue": "100"})),
            attribute("gen_ai.usage.output_tokens", json!({"intValue": "20"})),
        ]}]}]}]})
}

/// Claude Code's token counter.
fn otlp_metrics() -> Value {
    let attribute = |key: &str, value: Value| json!({"key": key, "value": value});
    json!({"resourceMetrics": [{
        "resource": {"attributes": [attribute("service.name", json!({"stringValue": "claude-code"}))]},
        "scopeMetrics": [{"metrics": [{
            "name": "claude_code.token.usage", "unit": "tokens",
            "sum": {"aggregationTemporality": 1, "isMonotonic": true, "dataPoints": [{
                "startTimeUnixNano": "1795460100000000000", "timeUnixNano": "1795460122245000000",
                "asDouble": 19448.0,
                "attributes": [attribute("type", json!({"stringValue": "input"})),
                               attribute("model", json!({"stringValue": "claude-sonnet-4-5"})),
                               attribute("user.email", json!({"stringValue": "alice@example.com"}))]}]}}]}]}]})
}

fn github_merge() -> Value {
    let path = format!(
        "{}/tests/fixtures/github/pull_request.closed.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

const USAGE_NUMBERS: &[Field] = &[
    field!("/1/input_tokens", "input_tokens"),
    field!("/1/output_tokens", "output_tokens"),
    field!("/1/cache_read_tokens", "cache_read_tokens"),
    field!("/1/cache_write_tokens", "cache_write_tokens"),
    field!("/1/cache_write_1h_tokens", "cache_write_1h_tokens"),
    field!("/1/reasoning_tokens", "reasoning_tokens"),
];
const USAGE_LABELS: &[Field] = &[
    field!("/1/id", "id"),
    field!("/1/user", "user"),
    field!("/1/team", "team"),
    field!("/1/model", "model"),
];
const OUTCOME_LABELS: &[Field] = &[
    field!("/1/id", "id"),
    field!("/1/user", "user"),
    field!("/1/kind", "kind"),
];

/// The sweep's rows: every endpoint that takes a body.
fn endpoints() -> Vec<Endpoint> {
    let usage = || json!([usage_event("inputs-ok-1"), usage_event("inputs-ok-2")]);
    let outcomes = || json!([outcome("inputs-ok-1"), outcome("inputs-ok-2")]);
    let chat = || json!({"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]});
    let messages =
        || json!({"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]});
    let responses = || json!({"model": "gpt-4o-mini", "max_output_tokens": 16, "input": "hi"});
    let otlp = |name, path, signal, format, valid: fn() -> Value, numbers, timestamps| Endpoint {
        name,
        path,
        caller: Caller::Admin,
        format: if format { Format::Protobuf(signal) } else { Format::Json },
        answer: Answer::PerRecord,
        valid,
        numbers,
        timestamps,
        labels: &[],
        specials: &[],
        strict_keys: false,
    };
    const LOG_NUMBERS: &[Field] = &[
        field!(
            "/resourceLogs/0/scopeLogs/0/logRecords/0/attributes/2/value/intValue",
            "input_tokens"
        ),
        field!(
            "/resourceLogs/0/scopeLogs/0/logRecords/0/attributes/3/value",
            "output_tokens"
        ),
    ];
    const LOG_TIMES: &[Field] = &[field!("/resourceLogs/0/scopeLogs/0/logRecords/0/timeUnixNano", "time")];
    const SPAN_NUMBERS: &[Field] = &[
        field!(
            "/resourceSpans/0/scopeSpans/0/spans/0/attributes/3/value/intValue",
            "gen_ai.usage.input_tokens"
        ),
        // An attribute without a value is unset, and a span's output count is optional.
        field!("/resourceSpans/0/scopeSpans/0/spans/0/attributes/4/value", "gen_ai.usage.output_tokens", valid: ["{}"]),
    ];
    const SPAN_TIMES: &[Field] = &[field!(
        "/resourceSpans/0/scopeSpans/0/spans/0/startTimeUnixNano",
        "time"
    )];
    const POINT_NUMBERS: &[Field] = &[amount!(
        "/resourceMetrics/0/scopeMetrics/0/metrics/0/sum/dataPoints/0/asDouble",
        "value",
    )];
    const POINT_TIMES: &[Field] = &[field!(
        "/resourceMetrics/0/scopeMetrics/0/metrics/0/sum/dataPoints/0/timeUnixNano",
        "time",
    )];
    let gateway = |name, path, valid: fn() -> Value, numbers, labels| Endpoint {
        name,
        path,
        caller: Caller::Key,
        format: Format::Json,
        answer: Answer::Forwarded,
        valid,
        numbers,
        timestamps: &[],
        labels,
        specials: &[],
        strict_keys: false,
    };
    const MODEL: &[Field] = &[field!("/model", "model")];
    vec![
        Endpoint {
            name: "usage as a JSON array",
            path: "/api/v1/usage",
            caller: Caller::Admin,
            format: Format::Json,
            answer: Answer::Refused,
            valid: usage,
            numbers: USAGE_NUMBERS,
            timestamps: &[field!("/1/timestamp", "timestamp")],
            labels: USAGE_LABELS,
            specials: &[],
            strict_keys: true,
        },
        Endpoint {
            name: "usage as NDJSON",
            path: "/api/v1/usage",
            caller: Caller::Admin,
            format: Format::Ndjson,
            answer: Answer::Refused,
            valid: usage,
            numbers: USAGE_NUMBERS,
            timestamps: &[field!("/1/timestamp", "timestamp")],
            labels: USAGE_LABELS,
            specials: &[],
            strict_keys: true,
        },
        Endpoint {
            name: "outcomes as a JSON array",
            path: "/api/v1/outcomes",
            caller: Caller::Admin,
            format: Format::Json,
            answer: Answer::Refused,
            valid: outcomes,
            numbers: &[amount!("/1/weight", "weight")],
            timestamps: &[field!("/1/timestamp", "timestamp")],
            labels: OUTCOME_LABELS,
            // Weights are kept in thousandths: less was stored as a weight of nothing.
            specials: &[
                (amount!("/1/weight", "weight"), "5e-324"),
                (amount!("/1/weight", "weight"), "0.0004"),
            ],
            strict_keys: true,
        },
        Endpoint {
            name: "outcomes as NDJSON",
            path: "/api/v1/outcomes",
            caller: Caller::Admin,
            format: Format::Ndjson,
            answer: Answer::Refused,
            valid: outcomes,
            numbers: &[amount!("/1/weight", "weight")],
            timestamps: &[field!("/1/timestamp", "timestamp")],
            labels: OUTCOME_LABELS,
            // Weights are kept in thousandths: less was stored as a weight of nothing.
            specials: &[
                (amount!("/1/weight", "weight"), "5e-324"),
                (amount!("/1/weight", "weight"), "0.0004"),
            ],
            strict_keys: true,
        },
        otlp(
            "OTLP logs (JSON)",
            "/otlp/v1/logs",
            Signal::Logs,
            false,
            otlp_logs,
            LOG_NUMBERS,
            LOG_TIMES,
        ),
        otlp(
            "OTLP logs (protobuf)",
            "/otlp/v1/logs",
            Signal::Logs,
            true,
            otlp_logs,
            LOG_NUMBERS,
            LOG_TIMES,
        ),
        otlp(
            "OTLP traces (JSON)",
            "/otlp/v1/traces",
            Signal::Traces,
            false,
            otlp_traces,
            SPAN_NUMBERS,
            SPAN_TIMES,
        ),
        otlp(
            "OTLP traces (protobuf)",
            "/otlp/v1/traces",
            Signal::Traces,
            true,
            otlp_traces,
            SPAN_NUMBERS,
            SPAN_TIMES,
        ),
        otlp(
            "OTLP metrics (JSON)",
            "/otlp/v1/metrics",
            Signal::Metrics,
            false,
            otlp_metrics,
            POINT_NUMBERS,
            POINT_TIMES,
        ),
        otlp(
            "OTLP metrics (protobuf)",
            "/otlp/v1/metrics",
            Signal::Metrics,
            true,
            otlp_metrics,
            POINT_NUMBERS,
            POINT_TIMES,
        ),
        Endpoint {
            name: "GitHub pull request merged (signed)",
            path: "/hooks/github",
            caller: Caller::GitHub,
            format: Format::Json,
            answer: Answer::Refused,
            valid: github_merge,
            numbers: &[
                // GitHub's counts and ids are unsigned 64-bit: their maximum is valid.
                field!("/pull_request/additions", "additions", valid: ["18446744073709551615", "9223372036854775808"]),
                field!("/pull_request/number", "number", valid: ["18446744073709551615", "9223372036854775808"]),
            ],
            timestamps: &[field!("/pull_request/merged_at", "merged_at")],
            labels: &[field!("/pull_request/user/login", "login")],
            specials: &[],
            strict_keys: false,
        },
        Endpoint {
            name: "new key",
            path: "/api/v1/keys",
            caller: Caller::Admin,
            format: Format::Json,
            answer: Answer::Refused,
            valid: || json!({"user": "alice", "team": "payments", "requests_per_minute": 60, "tokens_per_minute": 1000, "expires_in": "30d"}),
            numbers: &[
                field!("/requests_per_minute", "requests_per_minute"),
                field!("/tokens_per_minute", "tokens_per_minute"),
            ],
            timestamps: &[],
            labels: &[field!("/user", "user"), field!("/team", "team")],
            specials: &[
                (field!("/expires_in", "expires_in"), r#""99999999999999999999d""#),
                (field!("/expires_in", "expires_in"), r#""9223372036854775807s""#),
                (field!("/expires_in", "expires_in"), r#""-1d""#),
                (field!("/expires_in", "expires_in"), r#""1e400d""#),
                (field!("/expires_in", "expires_in"), r#""NaNd""#),
            ],
            strict_keys: true,
        },
        Endpoint {
            name: "new budget",
            path: "/api/v1/budgets",
            caller: Caller::Admin,
            format: Format::Json,
            answer: Answer::Refused,
            valid: || json!({"scope": "team", "name": "payments", "period": "month", "limit_usd": "500", "limit_tokens": 1000000, "action": "block", "thresholds": [50, 80, 100], "timezone": "UTC"}),
            numbers: &[
                amount!("/limit_usd", "limit_usd"),
                field!("/limit_tokens", "limit_tokens"),
                field!("/thresholds/0", "thresholds"),
            ],
            timestamps: &[],
            labels: &[field!("/name", "name"), field!("/timezone", "timezone")],
            specials: &[
                (field!("/limit_usd", "limit_usd"), r#""18446744073709551616""#),
                (field!("/limit_usd", "limit_usd"), r#""9223372036.854775808""#),
                (field!("/limit_usd", "limit_usd"), r#""0.0000000001""#),
                (field!("/limit_usd", "limit_usd"), "1e-400"),
                (field!("/limit_usd", "limit_usd"), r#""1e3""#),
                (field!("/limit_usd", "limit_usd"), r#""-0""#),
            ],
            strict_keys: true,
        },
        Endpoint {
            name: "new viewer token",
            path: "/api/v1/tokens",
            caller: Caller::Admin,
            format: Format::Json,
            answer: Answer::Refused,
            valid: || json!({"name": "dashboard", "team": "payments", "role": "viewer"}),
            numbers: &[],
            timestamps: &[],
            labels: &[field!("/name", "name"), field!("/team", "team")],
            specials: &[(field!("/role", "role"), r#""root""#)],
            strict_keys: true,
        },
        Endpoint {
            name: "GitHub login",
            path: "/api/v1/github/logins",
            caller: Caller::Admin,
            format: Format::Json,
            answer: Answer::Refused,
            valid: || json!({"login": "octocat", "user": "alice"}),
            numbers: &[],
            timestamps: &[],
            labels: &[field!("/login", "login"), field!("/user", "user")],
            specials: &[],
            strict_keys: true,
        },
        gateway(
            "Chat Completions",
            "/v1/chat/completions",
            chat,
            &[field!("/max_tokens", "max_tokens")],
            MODEL,
        ),
        gateway(
            "Responses",
            "/v1/responses",
            responses,
            &[field!("/max_output_tokens", "max_output_tokens")],
            MODEL,
        ),
        gateway(
            "Messages",
            "/v1/messages",
            messages,
            &[field!("/max_tokens", "max_tokens")],
            MODEL,
        ),
        gateway("count_tokens", "/v1/messages/count_tokens", messages, &[], MODEL),
        gateway(
            "Embeddings",
            "/v1/embeddings",
            || json!({"model": "text-embedding-3-small", "input": "hi"}),
            &[],
            MODEL,
        ),
        gateway(
            "Azure OpenAI deployment",
            "/openai/v1/chat/completions",
            || json!({"model": "prod-4o", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}),
            &[field!("/max_tokens", "max_tokens")],
            MODEL,
        ),
        gateway(
            "Gemini generateContent",
            "/v1beta/models/gemini-2.5-flash:generateContent",
            || json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": 16}}),
            &[field!("/generationConfig/maxOutputTokens", "maxOutputTokens")],
            &[field!("/contents/0/role", "role")],
        ),
        gateway(
            "Bedrock Converse",
            "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse",
            || json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}], "inferenceConfig": {"maxTokens": 16}}),
            &[field!("/inferenceConfig/maxTokens", "maxTokens")],
            &[field!("/messages/0/role", "role")],
        ),
    ]
}

/// Numbers no count or amount may be: past `u64::MAX` and `i64::MAX`, negative, fractional,
/// NaN and Infinity as JSON literals (which JSON has not) and as strings, and other types.
const BAD_NUMBERS: &[&str] = &[
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775808",
    "-9223372036854775809",
    "-1",
    "0.5",
    "1e400",
    "-1e400",
    "NaN",
    "Infinity",
    "-Infinity",
    r#""NaN""#,
    r#""Infinity""#,
    r#""-Infinity""#,
    r#""18446744073709551616""#,
    "true",
    "[]",
    "{}",
];

/// Instants no timestamp may be: year 0, year 10000, `i64::MAX` nanoseconds (2262), `u64::MAX`
/// nanoseconds, negative, nonsense dates, and other types. (A leap second, `23:59:60`, is valid
/// RFC 3339.)
const BAD_TIMESTAMPS: &[&str] = &[
    r#""0000-01-01T00:00:00Z""#,
    r#""-0001-01-01T00:00:00Z""#,
    r#""10000-01-01T00:00:00Z""#,
    r#""9999-12-31T23:59:59Z""#,
    r#""2026-02-30T00:00:00Z""#,
    r#""2026-11-02T25:00:00Z""#,
    r#""9223372036854775807""#,
    r#""18446744073709551615""#,
    r#""-1""#,
    r#""""#,
    "9223372036854775807",
    "18446744073709551615",
    "-1",
    "1e400",
    "NaN",
];

/// What no label may be.
fn bad_labels() -> Vec<(String, &'static str)> {
    vec![
        (format!("{:?}", "x".repeat(LIMIT / 2)), "half a MiB"),
        (r#""\u0000nul""#.into(), "a NUL"),
        (r#""\ud800""#.into(), "a lone surrogate"),
        (r#""\udc00\ud800""#.into(), "reversed surrogates"),
        ("1".into(), "a number"),
        ("[]".into(), "an array"),
        ("{}".into(), "an object"),
    ]
}

/// One request of the sweep and what its answer must be.
struct Attack {
    endpoint: usize,
    what: String,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    /// The field the answer must name, if the attack is on a field.
    field: Option<Field>,
    /// A 413 is the only right answer (bombs, bodies past the limit).
    too_large: bool,
    /// The same key twice in one object.
    last_key_wins: bool,
    /// A value the field takes: the answer is not judged.
    valid: bool,
}

const HOLE: &str = "\u{1}hole\u{1}";

/// `template` written in `format`, with the value at `pointer` (if any) replaced by `raw`,
/// the JSON text as sent (which may be no JSON at all).
fn write(template: &Value, format: Format, pointer: Option<&str>, raw: &str) -> Option<Vec<u8>> {
    let mut body = template.clone();
    if let Some(pointer) = pointer {
        *body
            .pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{pointer} in {template}")) = Value::String(HOLE.into());
    }
    let hole = Value::String(HOLE.into()).to_string();
    let text = match format {
        Format::Ndjson => body
            .as_array()
            .unwrap()
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Json | Format::Protobuf(_) => body.to_string(),
    };
    let text = text.replace(&hole, raw);
    match format {
        Format::Protobuf(signal) => protobuf(signal, text.as_bytes()),
        _ => Some(text.into_bytes()),
    }
}

/// The JSON export as protobuf: `None` when the JSON cannot be one (what JSON can say and
/// protobuf cannot is the JSON row's to test).
fn protobuf(signal: Signal, json: &[u8]) -> Option<Vec<u8>> {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    match signal {
        Signal::Logs => serde_json::from_slice::<ExportLogsServiceRequest>(json)
            .ok()
            .map(|m| m.encode_to_vec()),
        Signal::Traces => serde_json::from_slice::<ExportTraceServiceRequest>(json)
            .ok()
            .map(|m| m.encode_to_vec()),
        Signal::Metrics => serde_json::from_slice::<ExportMetricsServiceRequest>(json)
            .ok()
            .map(|m| m.encode_to_vec()),
    }
}

/// An OTLP logs export whose one record's body is an `AnyValue` array holding an array holding
/// … `depth` deep, written field by field (building it as messages would recurse as deep).
fn deep_log_body(depth: usize) -> Vec<u8> {
    fn field(tag: u8, inner: &[u8]) -> Vec<u8> {
        let mut out = vec![tag << 3 | 2];
        let mut len = inner.len();
        while len >= 0x80 {
            out.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(inner);
        out
    }
    let mut value = Vec::new();
    for _ in 0..depth {
        // AnyValue.array_value (5) = ArrayValue { values (1): [value] }
        value = field(5, &field(1, &value));
    }
    // LogRecord.body (5) in ScopeLogs.log_records (2) in ResourceLogs.scope_logs (2) in the
    // request's resource_logs (1).
    field(1, &field(2, &field(2, &field(5, &value))))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Every attack on every endpoint.
fn attacks(endpoints: &[Endpoint]) -> Vec<Attack> {
    let mut attacks = Vec::new();
    for (index, endpoint) in endpoints.iter().enumerate() {
        let template = (endpoint.valid)();
        let mut add = |what: String, body: Option<Vec<u8>>, field: Option<Field>| {
            if let Some(body) = body {
                attacks.push(Attack {
                    endpoint: index,
                    last_key_wins: what.ends_with(" twice"),
                    valid: field.is_some_and(|f| f.valid.iter().any(|v| what.ends_with(&format!(" = {v}")))),
                    what,
                    body,
                    headers: Vec::new(),
                    field,
                    too_large: false,
                });
            }
        };
        for f in endpoint.numbers {
            for raw in BAD_NUMBERS {
                add(
                    format!("{} = {raw}", f.pointer),
                    write(&template, endpoint.format, Some(f.pointer), raw),
                    Some(*f),
                );
            }
        }
        for f in endpoint.timestamps {
            for raw in BAD_TIMESTAMPS {
                add(
                    format!("{} = {raw}", f.pointer),
                    write(&template, endpoint.format, Some(f.pointer), raw),
                    Some(*f),
                );
            }
        }
        for f in endpoint.labels {
            for (raw, what) in bad_labels() {
                add(
                    format!("{} = {what}", f.pointer),
                    write(&template, endpoint.format, Some(f.pointer), &raw),
                    Some(*f),
                );
            }
            // The same key twice in one object: which one counts must not be a guess.
            let key = f.pointer.rsplit('/').next().unwrap_or_default();
            let duplicated = format!(r#""first", "{key}": "second""#);
            add(
                format!("{} twice", f.pointer),
                write(&template, endpoint.format, Some(f.pointer), &duplicated),
                Some(*f),
            );
        }
        for (f, raw) in endpoint.specials {
            add(
                format!("{} = {raw}", f.pointer),
                write(&template, endpoint.format, Some(f.pointer), raw),
                Some(*f),
            );
        }
        let valid = write(&template, endpoint.format, None, "").unwrap();
        let whole: Vec<(&str, Vec<u8>)> = vec![
            ("an empty body", Vec::new()),
            ("a cut-off body", valid[..valid.len() * 3 / 4].to_vec()),
            ("not JSON", b"{not json".to_vec()),
            ("a bare string", br#""usage""#.to_vec()),
            ("null", b"null".to_vec()),
            ("an empty array", b"[]".to_vec()),
            (
                "an array of the body",
                format!("[{}]", String::from_utf8_lossy(&valid)).into_bytes(),
            ),
            ("100,000 unclosed [", vec![b'['; 100_000]),
            (
                "100,000 nested arrays",
                [vec![b'['; 100_000], vec![b']'; 100_000]].concat(),
            ),
            ("100,000 nested objects", {
                let mut text = r#"{"a":"#.repeat(100_000);
                text.push('1');
                text.push_str(&"}".repeat(100_000));
                text.into_bytes()
            }),
            ("a byte that is not UTF-8", {
                let mut body = valid.clone();
                let at = body.iter().position(|&b| b == b'"').map_or(0, |i| i + 1);
                body.insert(at, 0xff);
                body
            }),
            (
                "a protobuf message with a length past its end",
                vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x0a],
            ),
            (
                "a varint of eleven bytes",
                [vec![0x08], vec![0xff; 10], vec![0x01]].concat(),
            ),
        ];
        let mut whole = whole;
        if endpoint.format == Format::Protobuf(Signal::Logs) {
            whole.push(("a log body of AnyValue arrays 50,000 deep", deep_log_body(50_000)));
        }
        for (what, body) in whole.into_iter().filter(|(what, _)| !endpoint.takes(what)) {
            add(what.into(), Some(body), None);
        }
        // A gzip bomb: a few KiB that inflate past the limit.
        attacks.push(Attack {
            endpoint: index,
            what: "a gzip bomb".into(),
            body: gzip(&vec![b' '; 8 * LIMIT]),
            headers: vec![("content-encoding", "gzip".into())],
            field: None,
            too_large: endpoint.answer != Answer::Forwarded,
            last_key_wins: false,
            valid: false,
        });
        attacks.push(Attack {
            endpoint: index,
            what: "gzip that is not gzip".into(),
            body: valid.clone(),
            headers: vec![("content-encoding", "gzip".into())],
            field: None,
            too_large: false,
            last_key_wins: false,
            valid: false,
        });
        attacks.push(Attack {
            endpoint: index,
            what: "a body past the limit".into(),
            body: vec![b' '; LIMIT + 1],
            headers: Vec::new(),
            field: None,
            too_large: true,
            last_key_wins: false,
            valid: false,
        });
    }
    attacks
}

/// A request that may fail at the connection (a panicking handler drops it): the failure is a
/// finding of the sweep, not a reason to stop it.
async fn send(
    server: &TestServer,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<(u16, String), String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = hyper::Request::builder()
        .method("POST")
        .uri(format!("http://{}{path}", server.addr));
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    let request = request.body(Full::new(Bytes::from(body))).map_err(|e| e.to_string())?;
    let exchange = async {
        let response = client.request(request).await.map_err(|e| format!("no answer: {e}"))?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("answer cut off: {e}"))?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), exchange)
        .await
        .map_err(|_| "no answer within 30 s".to_owned())?
}

/// Rows in every table of the server's SQLite database (after the gateway's spool is flushed).
async fn row_counts(server: &TestServer) -> BTreeMap<String, i64> {
    server.flush().await;
    let path = server.db.url.strip_prefix("sqlite://").unwrap();
    let db = rusqlite::Connection::open(path).unwrap();
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables
        .into_iter()
        .map(|table| {
            let count = db
                .query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| r.get(0))
                .unwrap();
            (table, count)
        })
        .collect()
}

/// Whether an attack's input is one its endpoint may take and keep: a valid value, a key
/// given twice where the last one counts, or anything the gateway forwards.
fn may_keep(endpoint: &Endpoint, attack: &Attack) -> bool {
    endpoint.answer == Answer::Forwarded || attack.valid || (attack.last_key_wins && !endpoint.strict_keys)
}

/// A JSON pointer as serde names a path: `/a/0/b` is `a[0].b`.
fn dotted(pointer: &str) -> String {
    pointer
        .split('/')
        .skip(1)
        .fold(String::new(), |path, step| match step.parse::<usize>() {
            Ok(index) => format!("{path}[{index}]"),
            Err(_) if path.is_empty() => step.to_owned(),
            Err(_) => format!("{path}.{step}"),
        })
}

/// What an answer breaks of its endpoint's contract, if anything.
fn judge(endpoint: &Endpoint, attack: &Attack, status: u16, text: &str) -> Option<String> {
    if status >= 500 {
        return Some(format!("a server error {status}"));
    }
    if attack.valid {
        return None;
    }
    if attack.too_large {
        return (status != 413).then(|| format!("{status} instead of 413"));
    }
    // The field's name, the pointer's last step, or (a decoder's error) the path to it.
    let names_field = attack.field.is_none_or(|f| {
        let (parent, last) = f.pointer.rsplit_once('/').unwrap_or_default();
        text.contains(f.name) || text.contains(last) || text.contains(&dotted(parent))
    });
    let field = attack.field.map_or("", |f| f.name);
    match endpoint.answer {
        // A payload read as a JSON value keeps the last of a key given twice, as GitHub's own
        // and the providers' parsers do: no attack there.
        Answer::Refused if attack.last_key_wins && !endpoint.strict_keys => None,
        Answer::Refused if !(400..500).contains(&status) => Some(format!("accepted with {status}")),
        Answer::Refused if !names_field => Some(format!("{status} does not name `{field}`")),
        Answer::Refused => None,
        // OTLP/HTTP: a body that is no export is a 4xx; a rejected record is a 200 whose
        // partial success says why.
        Answer::PerRecord if attack.field.is_none() && !(400..500).contains(&status) => {
            Some(format!("accepted with {status}"))
        }
        Answer::PerRecord if !(200..500).contains(&status) || (200..300).contains(&status) && status != 200 => {
            Some(format!("{status}"))
        }
        Answer::PerRecord if !names_field => Some(format!("{status} does not name `{field}`")),
        Answer::PerRecord => None,
        // The provider judges the body; when the gateway refuses it, it says so in the
        // client's protocol: `{"error": {...}}` (OpenAI, Anthropic, Gemini) or Bedrock's
        // `{"message": "..."}`.
        Answer::Forwarded => {
            let json: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            let shaped = json["error"].is_object() || json["message"].is_string();
            ((400..500).contains(&status) && !shaped).then(|| format!("a {status} not in the client's protocol"))
        }
    }
}

#[tokio::test]
async fn every_endpoint_refuses_hostile_bodies_with_a_4xx_naming_the_field() {
    let server = start_with(TestDatabase::sqlite(), CONFIG).await;
    let (_, key) = server.create_key(r#"{"user": "alice", "team": "payments"}"#).await;
    let endpoints = endpoints();
    let attacks = attacks(&endpoints);
    // The valid bodies are accepted: the sweep attacks endpoints that work.
    for endpoint in &endpoints {
        let body = write(&(endpoint.valid)(), endpoint.format, None, "").unwrap();
        let (status, text) = send(&server, endpoint.path, &headers(endpoint, &key, &body, &[]), body)
            .await
            .unwrap();
        assert!(
            (200..300).contains(&status),
            "{}: the valid body got {status}: {text}",
            endpoint.name
        );
    }
    let mut before = row_counts(&server).await;
    let mut failures = Vec::new();
    for attack in &attacks {
        let endpoint = &endpoints[attack.endpoint];
        let headers = headers(endpoint, &key, &attack.body, &attack.headers);
        let verdict = match send(&server, endpoint.path, &headers, attack.body.clone()).await {
            Err(e) => Some(e),
            Ok((status, text)) => judge(endpoint, attack, status, &text).map(|p| format!("{p}: {}", shorten(&text))),
        };
        if let Some(problem) = verdict {
            failures.push(format!("{} — {}: {problem}", endpoint.name, attack.what));
        }
        // What is refused leaves no trace; what is forwarded or valid may be recorded.
        let refused = !may_keep(endpoint, attack);
        if refused {
            let after = row_counts(&server).await;
            if after != before {
                let changed: Vec<_> = after.iter().filter(|(t, n)| before.get(*t) != Some(n)).collect();
                failures.push(format!("{} — {}: stored {changed:?}", endpoint.name, attack.what));
            }
            before = after;
        } else {
            before = row_counts(&server).await;
        }
    }
    let healthz = server.send("GET", "/healthz", &[], Bytes::new()).await;
    assert_eq!(healthz.status, 200, "the server still answers after the sweep");
    println!(
        "{} attacks on {} endpoints, {} failures",
        attacks.len(),
        endpoints.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} attacks broke the contract:\n{}",
        failures.len(),
        attacks.len(),
        failures.join("\n")
    );
}

/// The headers of a request to `endpoint`: its content type, its caller's credentials (a
/// GitHub delivery signed over exactly `body`) and the attack's own.
fn headers(
    endpoint: &Endpoint,
    key: &str,
    body: &[u8],
    extra: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let content_type = match endpoint.format {
        Format::Json => "application/json",
        Format::Ndjson => "application/x-ndjson",
        Format::Protobuf(_) => "application/x-protobuf",
    };
    let mut headers = vec![("content-type", content_type.to_owned())];
    match endpoint.caller {
        Caller::Admin => headers.push(("authorization", format!("Bearer {ADMIN}"))),
        Caller::Key => headers.push(("authorization", format!("Bearer {key}"))),
        Caller::GitHub => {
            headers.push(("x-hub-signature-256", goodhart_server::api::hooks::sign(SECRET, body)));
            headers.push(("x-github-event", "pull_request".into()));
            let delivery = format!("inputs-{:x}", fnv(body));
            headers.push(("x-github-delivery", delivery));
        }
    }
    headers.extend(extra.iter().cloned());
    headers
}

/// A delivery id per body, so that no attack is refused as a replay of another.
fn fnv(body: &[u8]) -> u64 {
    body.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(400) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// The read API's query strings and path segments, one row per route: instants and spans out
/// of range (year 0, year 10000, spans past `i64::MAX` micro-seconds), NaN, invalid UTF-8
/// (percent-encoded), huge and repeated parameters. Never a 5xx; a 400 names the parameter.
#[tokio::test]
async fn query_parameters_out_of_range_are_named_never_a_server_error() {
    let server = start_with(TestDatabase::sqlite(), CONFIG).await;
    let routes: &[(&str, &str, &[&str])] = &[
        ("GET", "/api/v1/usage/summary", &["from", "to", "group_by"]),
        ("GET", "/api/v1/leaderboard", &["from", "to", "by", "metric"]),
        ("GET", "/api/v1/findings", &["from", "to", "status", "user"]),
        ("POST", "/api/v1/findings/detect", &["from", "to"]),
        ("GET", "/api/v1/reports/roi", &["from", "to"]),
        ("GET", "/api/v1/reports/reconciliation", &["from", "to"]),
        ("GET", "/api/v1/reconciliation", &["from", "to"]),
        ("GET", "/api/v1/alerts", &["from", "to"]),
        ("GET", "/api/v1/subjects/user/alice", &["from", "to"]),
    ];
    let huge = "x".repeat(8_000);
    let values = [
        "0000-01-01",
        "-0001-01-01",
        "10000-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "2026-02-30",
        "99999999999999999999d",
        "9223372036854775807d",
        "106751991d",
        "-1d",
        "1e400d",
        "NaN",
        "Infinity",
        "%FF%FE",
        "%00",
        huge.as_str(),
        "",
    ];
    let mut failures = Vec::new();
    let mut tried = 0;
    for (method, path, parameters) in routes {
        for parameter in *parameters {
            for value in values {
                for query in [
                    format!("{parameter}={value}"),
                    format!("{parameter}=7d&{parameter}={value}"),
                ] {
                    tried += 1;
                    let started = std::time::Instant::now();
                    let reply = server.admin(method, &format!("{path}?{query}"), Bytes::new()).await;
                    // A generous bound that only work proportional to the window breaks.
                    if started.elapsed() > std::time::Duration::from_secs(5) {
                        failures.push(format!(
                            "{method} {path}?{}: took {:?}",
                            shorten(&query),
                            started.elapsed()
                        ));
                    }
                    let what = format!("{method} {path}?{}", shorten(&query));
                    if reply.status >= 500 {
                        failures.push(format!("{what}: {} {}", reply.status, shorten(&reply.text)));
                    } else if reply.status == 400 && !reply.text.contains(parameter) {
                        failures.push(format!("{what}: 400 without `{parameter}`: {}", shorten(&reply.text)));
                    }
                }
            }
        }
    }
    for path in [
        "/api/v1/subjects/user/%FF",
        "/api/v1/subjects/galaxy/alice",
        "/api/v1/budgets/%00",
    ] {
        tried += 1;
        let reply = server.admin("GET", path, Bytes::new()).await;
        if reply.status >= 500 || reply.status < 400 {
            failures.push(format!("GET {path}: {} {}", reply.status, shorten(&reply.text)));
        }
    }
    println!("{tried} queries, {} failures", failures.len());
    assert!(
        failures.is_empty(),
        "{} of {tried} queries broke the contract:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A `max_tokens` past `u64::MAX`'s worth of dollars must not wrap a reservation into a small
/// one: under a hard cap the call is refused before it reaches the provider.
#[tokio::test]
async fn huge_max_tokens_never_lift_a_hard_cap() {
    let server = start_with(TestDatabase::sqlite(), CONFIG).await;
    let budget = json!({"scope": "user", "name": "alice", "period": "month", "limit_usd": "1", "action": "block"});
    let reply = server.admin("POST", "/api/v1/budgets", budget.to_string()).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let (_, key) = server.create_key(r#"{"user": "alice"}"#).await;
    let auth = format!("Bearer {key}");
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    for max_tokens in [
        "18446744073709551615",
        "9223372036854775808",
        "9223372036854775807",
        "4294967296000",
    ] {
        for (path, model, field) in [
            ("/v1/chat/completions", "gpt-4o-mini", "max_tokens"),
            ("/v1/chat/completions", "gpt-4o-mini", "max_completion_tokens"),
            ("/v1/responses", "gpt-4o-mini", "max_output_tokens"),
            ("/v1/messages", "claude-sonnet-4-5", "max_tokens"),
        ] {
            let body = format!(
                r#"{{"model": "{model}", "{field}": {max_tokens}, "messages": [{{"role": "user", "content": "hi"}}], "input": "hi"}}"#
            );
            let reply = server.send("POST", path, &headers, body).await;
            assert_eq!(reply.status, 429, "{path} {field}={max_tokens}: {}", reply.text);
        }
    }
    assert!(crate::common::recorded(&server).await.is_empty(), "no call went up");
}

/// A model the gateway cannot name a call by — empty, blank, past 256 characters, with a control
/// character — is refused in the client's protocol; an empty one went to the default provider
/// and was recorded as "" (found by schemathesis).
#[tokio::test]
async fn regression_the_gateway_refuses_a_model_it_cannot_record() {
    let server = start_with(TestDatabase::sqlite(), CONFIG).await;
    let (_, key) = server.create_key(r#"{"user": "alice"}"#).await;
    let auth = format!("Bearer {key}");
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    for model in [String::new(), "   ".into(), "m".repeat(300), r"gpt-4o\u0000mini".into()] {
        for path in [
            "/v1/chat/completions",
            "/v1/messages",
            "/v1/responses",
            "/v1/embeddings",
        ] {
            let body = format!(
                r#"{{"model": "{model}", "max_tokens": 16, "messages": [{{"role": "user", "content": "hi"}}]}}"#
            );
            let reply = server.send("POST", path, &headers, body).await;
            assert_eq!(reply.status, 400, "{path} {model:?}: {}", reply.text);
            assert!(
                reply.json["error"]["message"].as_str().unwrap().contains("model"),
                "{}",
                reply.text
            );
        }
    }
    assert!(crate::common::recorded(&server).await.is_empty(), "nothing recorded");
}
