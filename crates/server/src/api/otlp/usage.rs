//! What OTLP exports say about usage.
//!
//! - Logs: Claude Code's `claude_code.api_request` event (one per API call, with its request id:
//!   the record of truth) and Codex's `codex.sse_event` of kind `response.completed` (one per
//!   response; Codex's input includes its cached input, its output its reasoning).
//! - Spans: OpenTelemetry GenAI model calls — spans with `gen_ai.usage.input_tokens` or
//!   `gen_ai.usage.output_tokens`, whose operation is a model call (not `invoke_agent` or
//!   `execute_tool`, which sum their children).
//! - Metrics: Claude Code's `claude_code.token.usage` and `claude_code.cost.usage` counters,
//!   kept as [`TelemetryPoint`]s to reconcile against the events, never counted as usage.
//!
//! Attribution comes from the record's attributes, then its resource's (where
//! `OTEL_RESOURCE_ATTRIBUTES=user.email=…,team=…,project=…` lands): the user is `user.email`,
//! else `enduser.id`, `user.name`, `user.account_uuid`, `user.account_id`, `user.id`. Other
//! records are ignored; a usage record that cannot be read (a missing model or user, a count
//! that is not a whole number…) is rejected with its reason, and the rest is kept.

use std::borrow::Cow;

use goodhart_core::Micros;
use goodhart_core::money::Nanos;
use goodhart_core::providers::{anthropic_counts, openai_counts};
use goodhart_core::telemetry::{TelemetryKind, TelemetryPoint};
use goodhart_core::usage::{IngestPolicy, Source, TokenCounts, UsageEvent, UsageEventInput, call_id};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point;
use opentelemetry_proto::tonic::metrics::v1::{AggregationTemporality, NumberDataPoint};
use opentelemetry_proto::tonic::trace::v1::Span;
use sha2::{Digest, Sha256};

use crate::app::usage::MAX_FUTURE_SKEW_MICROS;

/// What the receiver adds where a record says nothing.
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    /// The team of the ingest token, for records that name none.
    pub team: Option<String>,
    pub store_content: bool,
}

/// What one export request held.
#[derive(Debug, Default)]
pub struct Extracted {
    pub events: Vec<UsageEvent>,
    pub points: Vec<TelemetryPoint>,
    /// Usage records (or metric points) that could not be read.
    pub rejected: u64,
    /// Why, for the first few.
    pub problems: Vec<String>,
}

/// The most reasons an answer lists; the count says how many there were.
const MAX_PROBLEMS: usize = 5;

impl Extracted {
    fn reject(&mut self, what: &str, reason: String) {
        self.rejected += 1;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(format!("{what}: {reason}"));
        }
    }
}

/// A record's attributes, then its resource's: the first that has a key wins.
struct Attributes<'a> {
    layers: [&'a [KeyValue]; 2],
}

impl<'a> Attributes<'a> {
    fn new(record: &'a [KeyValue], resource: &'a [KeyValue]) -> Self {
        Attributes {
            layers: [record, resource],
        }
    }

    fn value(&self, key: &str) -> Option<&'a Value> {
        self.layers
            .iter()
            .flat_map(|layer| layer.iter())
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    /// A text attribute (numbers and booleans written out); empty text is absent.
    fn text(&self, key: &str) -> Option<Cow<'a, str>> {
        let text = match self.value(key)? {
            Value::StringValue(s) => Cow::Borrowed(s.trim()),
            Value::IntValue(i) => Cow::Owned(i.to_string()),
            Value::DoubleValue(d) => Cow::Owned(d.to_string()),
            Value::BoolValue(b) => Cow::Owned(b.to_string()),
            _ => return None,
        };
        (!text.is_empty()).then_some(text)
    }

    fn first_text(&self, keys: &[&str]) -> Option<Cow<'a, str>> {
        keys.iter().find_map(|key| self.text(key))
    }

    /// A token count: a whole non-negative number, sent as an int, a double or text (Codex
    /// writes its counts as text).
    fn count(&self, key: &str) -> Result<Option<u64>, String> {
        let Some(value) = self.value(key) else {
            return Ok(None);
        };
        let wrong = |shown: String| format!("attribute `{key}` is {shown}, not a whole number of tokens");
        match value {
            Value::IntValue(i) => u64::try_from(*i).map(Some).map_err(|_| wrong(i.to_string())),
            Value::DoubleValue(d) => whole(*d).map(Some).ok_or_else(|| wrong(d.to_string())),
            Value::StringValue(s) => s.trim().parse::<u64>().map(Some).map_err(|_| wrong(format!("{s:?}"))),
            _ => Err(wrong("not a number".into())),
        }
    }

    fn required_count(&self, key: &str) -> Result<u64, String> {
        self.count(key)?.ok_or_else(|| format!("attribute `{key}` is missing"))
    }
}

fn whole(value: f64) -> Option<u64> {
    (value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value < 1.8e19).then_some(value as u64)
}

const USER_KEYS: [&str; 6] = [
    "user.email",
    "enduser.id",
    "user.name",
    "user.account_uuid",
    "user.account_id",
    "user.id",
];

/// The parts of a usage event every kind of record supplies.
struct Call<'a> {
    id: Option<String>,
    at: Micros,
    attributes: &'a Attributes<'a>,
    agent: Cow<'a, str>,
    provider: Option<Cow<'a, str>>,
    model: Cow<'a, str>,
    tokens: TokenCounts,
    finish_reason: Option<String>,
}

impl Call<'_> {
    /// The validated event, attributed from the attributes (the ingest API's checks apply).
    fn event(self, defaults: &Defaults, now: Micros) -> Result<UsageEvent, String> {
        let attributes = self.attributes;
        if self.at.0 <= 0 || self.at.0 > now.0 + MAX_FUTURE_SKEW_MICROS {
            return Err(format!(
                "time {} is unset, before 1970 or more than a day ahead",
                self.at.rfc3339()
            ));
        }
        let user = attributes
            .first_text(&USER_KEYS)
            .ok_or("no user: set `user.email` (OTEL_RESOURCE_ATTRIBUTES=user.email=…)")?;
        let input = UsageEventInput {
            id: self.id,
            timestamp: self.at.rfc3339(),
            user: user.into_owned(),
            team: attributes
                .first_text(&["team", "team.name", "team.id"])
                .map(Cow::into_owned)
                .or_else(|| defaults.team.clone()),
            project: attributes.first_text(&["project", "project.name"]).map(Cow::into_owned),
            agent: Some(self.agent.into_owned()),
            task: attributes.text("task").map(Cow::into_owned),
            session: attributes
                .first_text(&["session.id", "conversation.id", "gen_ai.conversation.id"])
                .map(Cow::into_owned),
            provider: self.provider.map(Cow::into_owned),
            model: self.model.into_owned(),
            input_tokens: self.tokens.input,
            output_tokens: self.tokens.output,
            cache_read_tokens: self.tokens.cache_read,
            cache_write_tokens: self.tokens.cache_write_5m,
            cache_write_1h_tokens: self.tokens.cache_write_1h,
            reasoning_tokens: self.tokens.reasoning,
            finish_reason: self.finish_reason,
            ..Default::default()
        };
        let policy = IngestPolicy {
            store_content: defaults.store_content,
            source: Source::Otlp,
        };
        input.validate(policy).map_err(|e| e.to_string())
    }
}

/// A digest of the parts that identify a record that carries no id of its own.
fn digest(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hex::encode(&hasher.finalize()[..16])
}

fn nanos_to_micros(nanos: u64) -> Micros {
    Micros(i64::try_from(nanos / 1_000).unwrap_or(i64::MAX))
}

fn string_body(body: Option<&AnyValue>) -> Option<&str> {
    match body?.value.as_ref()? {
        Value::StringValue(s) => Some(s),
        _ => None,
    }
}

/// Which usage event a log record is, if any.
#[derive(Debug, PartialEq, Eq)]
enum LogEvent {
    ClaudeApiRequest,
    CodexResponseCompleted,
}

fn log_event(record: &LogRecord, attributes: &Attributes<'_>) -> Option<LogEvent> {
    let attribute_name = attributes.text("event.name");
    let names = [
        Some(record.event_name.as_str()),
        string_body(record.body.as_ref()),
        attribute_name.as_deref(),
    ];
    let named = |name: &str| names.contains(&Some(name));
    let service = attributes.text("service.name");
    if named("claude_code.api_request") || (named("api_request") && service.as_deref() == Some("claude-code")) {
        return Some(LogEvent::ClaudeApiRequest);
    }
    let completed = attributes.text("event.kind").as_deref() == Some("response.completed");
    // A failed completion carries an error and no counts: nothing was used that it could say.
    if named("codex.sse_event") && completed && attributes.value("error.message").is_none() {
        return Some(LogEvent::CodexResponseCompleted);
    }
    None
}

/// The time of a log record: its `event.timestamp`, else its time, else when it was observed.
fn log_time(record: &LogRecord, attributes: &Attributes<'_>) -> Result<Micros, String> {
    if let Some(text) = attributes.text("event.timestamp") {
        return goodhart_core::time::parse_rfc3339(&text).map_err(|e| format!("attribute `event.timestamp`: {e}"));
    }
    let nanos = [record.time_unix_nano, record.observed_time_unix_nano]
        .into_iter()
        .find(|&n| n > 0)
        .ok_or("the record has no time")?;
    Ok(nanos_to_micros(nanos))
}

fn claude_api_request<'a>(record: &LogRecord, attributes: &'a Attributes<'a>) -> Result<Call<'a>, String> {
    let model = attributes.text("model").ok_or("attribute `model` is missing")?;
    let tokens = anthropic_counts(
        attributes.required_count("input_tokens")?,
        attributes.required_count("output_tokens")?,
        attributes.count("cache_read_tokens")?.unwrap_or(0),
        [attributes.count("cache_creation_tokens")?.unwrap_or(0), 0, 0],
    );
    let at = log_time(record, attributes)?;
    let session = attributes.text("session.id");
    let sequence = attributes.text("event.sequence");
    let id = call_id(attributes.text("request_id").as_deref(), None).or_else(|| {
        Some(format!(
            "otlp:claude-code:{}",
            digest(&[
                session.as_deref().unwrap_or("").as_bytes(),
                sequence.as_deref().unwrap_or("").as_bytes(),
                &at.0.to_le_bytes(),
            ])
        ))
    });
    Ok(Call {
        id,
        at,
        attributes,
        agent: Cow::Borrowed("claude-code"),
        provider: Some(Cow::Borrowed("anthropic")),
        model,
        tokens,
        finish_reason: None,
    })
}

fn codex_response<'a>(record: &LogRecord, attributes: &'a Attributes<'a>) -> Result<Call<'a>, String> {
    let model = attributes
        .first_text(&["model", "slug"])
        .ok_or("attribute `model` is missing")?;
    let tokens = openai_counts(
        attributes.required_count("input_token_count")?,
        attributes.count("cached_token_count")?.unwrap_or(0),
        attributes.required_count("output_token_count")?,
        attributes.count("reasoning_token_count")?.unwrap_or(0),
    );
    let at = log_time(record, attributes)?;
    let conversation = attributes.text("conversation.id");
    let id = format!(
        "otlp:codex:{}",
        digest(&[
            conversation.as_deref().unwrap_or("").as_bytes(),
            &at.0.to_le_bytes(),
            &record.time_unix_nano.to_le_bytes(),
            &tokens.total().to_le_bytes(),
        ])
    );
    Ok(Call {
        id: Some(id),
        at,
        attributes,
        agent: Cow::Borrowed("codex"),
        provider: Some(Cow::Borrowed("openai")),
        model,
        tokens,
        finish_reason: None,
    })
}

/// Usage events from an export of logs.
pub fn from_logs(request: &ExportLogsServiceRequest, defaults: &Defaults, now: Micros) -> Extracted {
    let mut extracted = Extracted::default();
    for resource_logs in &request.resource_logs {
        let resource = resource_logs.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        for record in resource_logs.scope_logs.iter().flat_map(|s| &s.log_records) {
            let attributes = Attributes::new(&record.attributes, resource);
            let (what, call) = match log_event(record, &attributes) {
                Some(LogEvent::ClaudeApiRequest) => {
                    ("claude_code.api_request", claude_api_request(record, &attributes))
                }
                Some(LogEvent::CodexResponseCompleted) => ("codex.sse_event", codex_response(record, &attributes)),
                None => continue,
            };
            match call.and_then(|call| call.event(defaults, now)) {
                Ok(event) => extracted.events.push(event),
                Err(reason) => extracted.reject(what, reason),
            }
        }
    }
    extracted
}

/// GenAI operations that are one model call (agent and tool spans sum their children).
fn is_model_call(operation: Option<&str>) -> bool {
    matches!(
        operation,
        None | Some("chat" | "text_completion" | "generate_content" | "embeddings" | "completion" | "responses")
    )
}

fn genai_call<'a>(span: &Span, attributes: &'a Attributes<'a>) -> Result<Call<'a>, String> {
    let model = attributes
        .first_text(&["gen_ai.response.model", "gen_ai.request.model"])
        .ok_or("attribute `gen_ai.request.model` is missing")?;
    // The conventions count cached tokens inside the input tokens.
    let input = attributes.count("gen_ai.usage.input_tokens")?.unwrap_or(0);
    let cache_read = attributes.count("gen_ai.usage.cache_read_input_tokens")?.unwrap_or(0);
    let cache_write = attributes
        .count("gen_ai.usage.cache_creation_input_tokens")?
        .unwrap_or(0);
    let tokens = TokenCounts {
        input: input.saturating_sub(cache_read).saturating_sub(cache_write),
        output: attributes.count("gen_ai.usage.output_tokens")?.unwrap_or(0),
        cache_read,
        cache_write_5m: cache_write,
        ..Default::default()
    };
    let id = call_id(None, attributes.text("gen_ai.response.id").as_deref())
        .unwrap_or_else(|| format!("span:{}{}", hex::encode(&span.trace_id), hex::encode(&span.span_id)));
    let agent = attributes
        .first_text(&["gen_ai.agent.name", "service.name"])
        .unwrap_or(Cow::Borrowed("unknown"));
    let finish_reason = match attributes.value("gen_ai.response.finish_reasons") {
        Some(Value::ArrayValue(reasons)) => reasons.values.first().and_then(|v| match v.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            _ => None,
        }),
        Some(Value::StringValue(reason)) => Some(reason.clone()),
        _ => None,
    };
    Ok(Call {
        id: Some(id),
        at: nanos_to_micros(span.start_time_unix_nano),
        attributes,
        agent,
        provider: attributes.first_text(&["gen_ai.provider.name", "gen_ai.system"]),
        model,
        tokens,
        finish_reason,
    })
}

/// Usage events from an export of spans.
pub fn from_spans(request: &ExportTraceServiceRequest, defaults: &Defaults, now: Micros) -> Extracted {
    let mut extracted = Extracted::default();
    for resource_spans in &request.resource_spans {
        let resource = resource_spans.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
            let attributes = Attributes::new(&span.attributes, resource);
            let has_usage = ["gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"]
                .iter()
                .any(|key| attributes.value(key).is_some());
            if !has_usage || !is_model_call(attributes.text("gen_ai.operation.name").as_deref()) {
                continue;
            }
            match genai_call(span, &attributes).and_then(|call| call.event(defaults, now)) {
                Ok(event) => extracted.events.push(event),
                Err(reason) => extracted.reject(&format!("span {:?}", span.name), reason),
            }
        }
    }
    extracted
}

/// The kind of a `claude_code.token.usage` point (its `type`) or of a cost point.
fn point_kind(metric: &str, attributes: &Attributes<'_>) -> Result<Option<TelemetryKind>, String> {
    match metric {
        "claude_code.cost.usage" => Ok(Some(TelemetryKind::CostNanos)),
        "claude_code.token.usage" => match attributes.text("type").as_deref() {
            Some("input") => Ok(Some(TelemetryKind::InputTokens)),
            Some("output") => Ok(Some(TelemetryKind::OutputTokens)),
            Some("cacheRead") => Ok(Some(TelemetryKind::CacheReadTokens)),
            Some("cacheCreation") => Ok(Some(TelemetryKind::CacheWriteTokens)),
            other => Err(format!(
                "attribute `type` is {other:?}, not input, output, cacheRead or cacheCreation"
            )),
        },
        _ => Ok(None),
    }
}

fn point_amount(kind: TelemetryKind, point: &NumberDataPoint) -> Result<u64, String> {
    let value = match point.value {
        Some(number_data_point::Value::AsDouble(d)) => d,
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        None => return Err("the point has no value".into()),
    };
    if kind == TelemetryKind::CostNanos {
        if !(value.is_finite() && value >= 0.0) {
            return Err(format!("cost {value} is not a non-negative amount"));
        }
        // The shortest decimal of the float, read exactly: no float arithmetic on money.
        let nanos = Nanos::from_usd(&format!("{value:.9}")).map_err(|e| format!("cost {value}: {e}"))?;
        return Ok(nanos.0.unsigned_abs());
    }
    whole(value).ok_or_else(|| format!("{value} is not a whole number of tokens"))
}

/// Counter points from an export of metrics.
pub fn from_metrics(request: &ExportMetricsServiceRequest, _defaults: &Defaults, _now: Micros) -> Extracted {
    let mut extracted = Extracted::default();
    for resource_metrics in &request.resource_metrics {
        let resource = resource_metrics
            .resource
            .as_ref()
            .map_or(&[][..], |r| &r.attributes[..]);
        for metric in resource_metrics.scope_metrics.iter().flat_map(|s| &s.metrics) {
            let Some(Data::Sum(sum)) = &metric.data else {
                continue;
            };
            if !matches!(
                metric.name.as_str(),
                "claude_code.cost.usage" | "claude_code.token.usage"
            ) {
                continue;
            }
            if sum.aggregation_temporality != AggregationTemporality::Delta as i32 {
                for _ in &sum.data_points {
                    extracted.reject(
                        &metric.name,
                        "only delta temporality is read (OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta)"
                            .into(),
                    );
                }
                continue;
            }
            for point in &sum.data_points {
                let attributes = Attributes::new(&point.attributes, resource);
                match telemetry_point(&metric.name, point, &attributes) {
                    Ok(Some(point)) => extracted.points.push(point),
                    Ok(None) => {}
                    Err(reason) => extracted.reject(&metric.name, reason),
                }
            }
        }
    }
    extracted
}

fn telemetry_point(
    metric: &str,
    point: &NumberDataPoint,
    attributes: &Attributes<'_>,
) -> Result<Option<TelemetryPoint>, String> {
    let Some(kind) = point_kind(metric, attributes)? else {
        return Ok(None);
    };
    let amount = point_amount(kind, point)?;
    let user = attributes.first_text(&USER_KEYS).ok_or("no user attribute")?;
    let session = attributes.text("session.id").map(Cow::into_owned);
    let model = attributes.text("model").map(Cow::into_owned);
    // A series is all its attributes; with its interval it names the point.
    let series: Vec<String> = point
        .attributes
        .iter()
        .map(|kv| format!("{}={:?}", kv.key, kv.value))
        .collect();
    let mut parts: Vec<&[u8]> = vec![metric.as_bytes(), user.as_bytes()];
    parts.extend(series.iter().map(|s| s.as_bytes()));
    let interval = [
        point.start_time_unix_nano.to_le_bytes(),
        point.time_unix_nano.to_le_bytes(),
    ];
    parts.extend(interval.iter().map(|b| &b[..]));
    let id = digest(&parts);
    Ok(Some(TelemetryPoint {
        id,
        timestamp: nanos_to_micros(point.time_unix_nano),
        user: user.into_owned(),
        session,
        agent: "claude-code".into(),
        model,
        kind,
        amount,
    }))
}
