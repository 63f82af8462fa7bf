//! What OTLP exports say about usage.
//!
//! - Logs: Claude Code's `claude_code.api_request` event (one per API call, with its request id:
//!   the record of truth); Codex's `codex.sse_event` of kind `response.completed` (one per
//!   response; Codex's input includes its cached input, its output its reasoning); Gemini CLI's
//!   `gemini_cli.api_response` (its input includes its cached content; thoughts and tool-use
//!   prompt tokens come on top); the GenAI conventions' `gen_ai.client.inference.operation.details`
//!   event with `gen_ai.usage.*`, read as a GenAI span is. Gemini CLI emits both of the last two
//!   for each call: they share an id (session, event time, model), so the call is counted once,
//!   from the `api_response`, which alone has the cached and thinking tokens.
//! - Spans: OpenTelemetry GenAI model calls — spans with `gen_ai.usage.input_tokens` or
//!   `gen_ai.usage.output_tokens`, whose operation is a model call (not `invoke_agent` or
//!   `execute_tool`, which sum their children).
//! - Metrics: Claude Code's `claude_code.token.usage` and `claude_code.cost.usage` counters,
//!   kept as [`TelemetryPoint`]s to reconcile against the events, never counted as usage.
//!
//! Attribution comes from the record's attributes, then its resource's (where
//! `OTEL_RESOURCE_ATTRIBUTES=user.email=…,team=…,project=…` lands): the user is `user.email`,
//! else `enduser.id`, `user.name`, `user.account_uuid`, `user.account_id`, `user.id`,
//! `installation.id`. A usage record that cannot be read (a missing model or user, a count that is
//! not a whole number…) is rejected with its reason, and the rest is kept. Every other record,
//! span or metric point is ignored and tallied by name in [`Ignored`], for the answer to say.

use std::borrow::Cow;
use std::collections::HashMap;

use goodhart_core::Micros;
use goodhart_core::money::Nanos;
use goodhart_core::providers::{self, anthropic_counts, openai_counts};
use goodhart_core::telemetry::{TelemetryKind, TelemetryPoint};
use goodhart_core::usage::{
    IngestPolicy, MAX_TOKENS_PER_EVENT, Source, TokenCounts, UsageEvent, UsageEventInput, call_id, message_call_id,
};
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
    /// A personal ingest token's person: the user of every record, whatever it names.
    pub user: Option<String>,
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
    /// Log records, spans and metric points that are not usage: accepted, not kept.
    pub ignored: Ignored,
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

    /// Keeps `event`, unless the export already holds a record of the same call: then the
    /// record of higher `rank` is kept (the first of equal rank), so a call is one event.
    fn keep(&mut self, event: UsageEvent, rank: u8, ranks: &mut HashMap<String, (usize, u8)>) {
        match ranks.get_mut(&event.id) {
            Some((index, kept)) => {
                if rank > *kept {
                    *kept = rank;
                    self.events[*index] = event;
                }
            }
            None => {
                ranks.insert(event.id.clone(), (self.events.len(), rank));
                self.events.push(event);
            }
        }
    }
}

/// The records of an export that carry nothing the receiver keeps, tallied by name for the
/// export's answer: OTLP lets a server that accepted everything warn in `partial_success`
/// (`rejected_*` 0, a non-empty `error_message`), so the sender learns they are dropped.
#[derive(Debug, Default)]
pub struct Ignored {
    pub count: u64,
    /// The first names seen (event name, span name, metric name), with how many records had each.
    pub names: Vec<(String, u64)>,
}

/// The most names a warning lists; `…` says there were more.
const MAX_IGNORED_NAMES: usize = 5;

impl Ignored {
    fn add(&mut self, name: &str, records: u64) {
        if records == 0 {
            return;
        }
        let name = if name.is_empty() { "unnamed" } else { name };
        self.count += records;
        if let Some((_, seen)) = self.names.iter_mut().find(|(n, _)| n == name) {
            *seen += records;
        } else if self.names.len() < MAX_IGNORED_NAMES {
            self.names.push((name.to_owned(), records));
        } else if self.names.len() == MAX_IGNORED_NAMES {
            // A marker that more names were seen than are listed.
            self.names.push((String::new(), 0));
        }
    }

    /// `ignored 12 log records without model usage (gemini_cli.user_prompt ×3, …)`, where `items`
    /// is the singular and plural of what was ignored and why; `None` when nothing was.
    pub fn warning(&self, items: [&str; 3]) -> Option<String> {
        let [one, many, why] = items;
        if self.count == 0 {
            return None;
        }
        let noun = if self.count == 1 { one } else { many };
        let names: Vec<String> = self
            .names
            .iter()
            .map(|(name, seen)| {
                if name.is_empty() {
                    "…".to_owned()
                } else {
                    format!("{name} ×{seen}")
                }
            })
            .collect();
        Some(format!("ignored {} {noun} {why} ({})", self.count, names.join(", ")))
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

const USER_KEYS: [&str; 7] = [
    "user.email",
    "enduser.id",
    "user.name",
    "user.account_uuid",
    "user.account_id",
    "user.id",
    // Gemini CLI's anonymous install id: its records name `user.email` only when signed in
    // with a Google account.
    "installation.id",
];

const SESSION_KEYS: [&str; 3] = ["session.id", "conversation.id", "gen_ai.conversation.id"];

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
        let user = match &defaults.user {
            Some(person) => Cow::Borrowed(person.as_str()),
            None => attributes
                .first_text(&USER_KEYS)
                .ok_or("no user: set `user.email` (OTEL_RESOURCE_ATTRIBUTES=user.email=…)")?,
        };
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
            session: attributes.first_text(&SESSION_KEYS).map(Cow::into_owned),
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogEvent {
    ClaudeApiRequest,
    CodexResponseCompleted,
    GeminiApiResponse,
    /// The GenAI conventions' `gen_ai.client.inference.operation.details` event, with usage.
    InferenceDetails,
}

impl LogEvent {
    fn name(self) -> &'static str {
        match self {
            LogEvent::ClaudeApiRequest => "claude_code.api_request",
            LogEvent::CodexResponseCompleted => "codex.sse_event",
            LogEvent::GeminiApiResponse => GEMINI_API_RESPONSE,
            LogEvent::InferenceDetails => INFERENCE_DETAILS,
        }
    }

    /// Which of two records of one call in an export is kept: Gemini CLI's details event
    /// has no cached or thinking tokens, its `api_response` has both.
    fn rank(self) -> u8 {
        match self {
            LogEvent::InferenceDetails => 0,
            _ => 1,
        }
    }
}

const GEMINI_API_RESPONSE: &str = "gemini_cli.api_response";
const INFERENCE_DETAILS: &str = "gen_ai.client.inference.operation.details";

/// The names a log record goes by: its event name, its body when that is a name (Claude Code
/// writes one there), its `event.name` attribute.
fn log_names<'a>(record: &'a LogRecord, attributes: &Attributes<'a>) -> [Option<Cow<'a, str>>; 3] {
    let body = string_body(record.body.as_ref()).filter(|body| !body.is_empty() && !body.contains(char::is_whitespace));
    [
        Some(Cow::Borrowed(record.event_name.as_str())).filter(|name| !name.is_empty()),
        body.map(Cow::Borrowed),
        attributes.text("event.name"),
    ]
}

fn log_event(record: &LogRecord, attributes: &Attributes<'_>) -> Option<LogEvent> {
    let names = log_names(record, attributes);
    let named = |name: &str| names.iter().flatten().any(|n| n == name);
    let service = attributes.text("service.name");
    if named("claude_code.api_request") || (named("api_request") && service.as_deref() == Some("claude-code")) {
        return Some(LogEvent::ClaudeApiRequest);
    }
    let completed = attributes.text("event.kind").as_deref() == Some("response.completed");
    // A failed completion carries an error and no counts: nothing was used that it could say.
    // Nor does the completion of a WebSocket warm-up (`generate: false`, which Codex 0.171
    // sends before its first turn): all its counts are zero, and it is not a call.
    let counted = ["input_token_count", "output_token_count"]
        .iter()
        .any(|key| attributes.count(key).ok().flatten().is_none_or(|count| count > 0));
    if named("codex.sse_event") && completed && attributes.value("error.message").is_none() && counted {
        return Some(LogEvent::CodexResponseCompleted);
    }
    // Gemini CLI's failed calls are `gemini_cli.api_error` events, which carry no usage.
    if named(GEMINI_API_RESPONSE) {
        return Some(LogEvent::GeminiApiResponse);
    }
    // Its request and error details events carry no usage: only the response's is a call.
    if named(INFERENCE_DETAILS) && has_genai_usage(attributes) {
        return Some(LogEvent::InferenceDetails);
    }
    None
}

/// What an ignored log record is called in the answer: its first name, else its scope's.
fn log_name<'a>(record: &'a LogRecord, attributes: &Attributes<'a>, scope: &'a str) -> Cow<'a, str> {
    let [event_name, body, attribute] = log_names(record, attributes);
    event_name.or(body).or(attribute).unwrap_or(Cow::Borrowed(scope))
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

/// Gemini CLI's token counts: its `input_token_count` (the API's `promptTokenCount`) includes
/// the cached content, its tool-use prompt and its thoughts are counted on top of the prompt and
/// the output (`total = prompt + candidates + tool use + thoughts`). Tool-use prompt tokens are
/// input; thoughts are billed as output, kept apart as reasoning.
fn gemini_counts(input: u64, cached: u64, output: u64, thoughts: u64, tool: u64) -> Result<TokenCounts, String> {
    if cached > input {
        return Err(format!(
            "attribute `cached_content_token_count` is {cached}, more than `input_token_count` ({input}), which includes it"
        ));
    }
    Ok(providers::gemini_counts(input, cached, output, thoughts, tool))
}

/// Whether a record is Gemini CLI's: its resource's service, or the install id it puts on
/// every record.
fn from_gemini_cli(attributes: &Attributes<'_>) -> bool {
    attributes.text("service.name").as_deref() == Some("gemini-cli") || attributes.value("installation.id").is_some()
}

/// The id of a Gemini CLI call. Its `api_response` record carries no response id, and the
/// details event it emits with it for the same call shares only the session, the event's time
/// (one `event.timestamp`, to the millisecond) and the model: both get this id, so whichever
/// arrives first is the call and the other a duplicate, in one export or across exports.
fn gemini_call_id(attributes: &Attributes<'_>, at: Micros, model: &str) -> String {
    let session = attributes.text("session.id");
    format!(
        "otlp:gemini-cli:{}",
        digest(&[
            session.as_deref().unwrap_or("").as_bytes(),
            &at.0.to_le_bytes(),
            model.as_bytes()
        ])
    )
}

fn gemini_api_response<'a>(record: &LogRecord, attributes: &'a Attributes<'a>) -> Result<Call<'a>, String> {
    let model = attributes.text("model").ok_or("attribute `model` is missing")?;
    let tokens = gemini_counts(
        attributes.required_count("input_token_count")?,
        attributes.count("cached_content_token_count")?.unwrap_or(0),
        attributes.required_count("output_token_count")?,
        attributes.count("thoughts_token_count")?.unwrap_or(0),
        attributes.count("tool_token_count")?.unwrap_or(0),
    )?;
    let at = log_time(record, attributes)?;
    Ok(Call {
        id: Some(gemini_call_id(attributes, at, &model)),
        at,
        attributes,
        agent: Cow::Borrowed("gemini-cli"),
        provider: Some(Cow::Borrowed("google")),
        model,
        tokens,
        finish_reason: first_reason(attributes.value("finish_reasons")),
    })
}

/// A `gen_ai.client.inference.operation.details` event: read as a GenAI span is. Gemini CLI's
/// is the same call as its `api_response` and gets that record's id; another program's is
/// known by its response id, else by the span it was emitted in (the id that span gets).
fn inference_details<'a>(record: &LogRecord, attributes: &'a Attributes<'a>) -> Result<Call<'a>, String> {
    let mut call = genai_call(attributes, log_time(record, attributes)?)?;
    if from_gemini_cli(attributes) {
        call.id = Some(gemini_call_id(attributes, call.at, &call.model));
        call.agent = Cow::Borrowed("gemini-cli");
        call.provider = Some(Cow::Borrowed("google"));
    } else if call.id.is_none() {
        call.id = Some(if record.trace_id.is_empty() || record.span_id.is_empty() {
            let session = attributes.first_text(&SESSION_KEYS);
            format!(
                "otlp:genai:{}",
                digest(&[
                    session.as_deref().unwrap_or("").as_bytes(),
                    &call.at.0.to_le_bytes(),
                    call.model.as_bytes(),
                    &call.tokens.total().to_le_bytes(),
                ])
            )
        } else {
            span_call_id(&record.trace_id, &record.span_id)
        });
    }
    Ok(call)
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
    let mut ranks = HashMap::new();
    // Gemini CLI's calls by their paired id: whether the export holds the `api_response`, and
    // the response id its details twin names.
    let mut gemini_pairs: HashMap<String, (bool, Option<String>)> = HashMap::new();
    for resource_logs in &request.resource_logs {
        let resource = resource_logs.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        for scope_logs in &resource_logs.scope_logs {
            let scope = scope_logs.scope.as_ref().map_or("", |s| s.name.as_str());
            for record in &scope_logs.log_records {
                let attributes = Attributes::new(&record.attributes, resource);
                let Some(kind) = log_event(record, &attributes) else {
                    extracted.ignored.add(&log_name(record, &attributes, scope), 1);
                    continue;
                };
                let call = match kind {
                    LogEvent::ClaudeApiRequest => claude_api_request(record, &attributes),
                    LogEvent::CodexResponseCompleted => codex_response(record, &attributes),
                    LogEvent::GeminiApiResponse => gemini_api_response(record, &attributes),
                    LogEvent::InferenceDetails => inference_details(record, &attributes),
                };
                match call.and_then(|call| call.event(defaults, now)) {
                    Ok(event) => {
                        if kind == LogEvent::GeminiApiResponse {
                            gemini_pairs.entry(event.id.clone()).or_default().0 = true;
                        } else if kind == LogEvent::InferenceDetails && from_gemini_cli(&attributes) {
                            gemini_pairs.entry(event.id.clone()).or_default().1 =
                                attributes.text("gen_ai.response.id").map(Cow::into_owned);
                        }
                        extracted.keep(event, kind.rank(), &mut ranks);
                    }
                    Err(reason) => extracted.reject(kind.name(), reason),
                }
            }
        }
    }
    // Both records of a Gemini CLI call in one export name its response: the call is known by
    // it, as the gateway's record of the same call is, so the two count once. (A pair split
    // across exports keeps the shared digest, which pairs the records with each other.)
    for event in &mut extracted.events {
        if let Some((true, Some(response))) = gemini_pairs.get(&event.id) {
            event.id = message_call_id(response);
        }
    }
    extracted
}

/// GenAI operations that are one model call (agent and tool spans sum their children). Not
/// Gemini CLI's `llm_call` spans either: they carry a call's usage when its traces are enabled,
/// and the same call is its `api_response` record, which alone has the cached and thinking tokens.
fn is_model_call(operation: Option<&str>) -> bool {
    matches!(
        operation,
        None | Some("chat" | "text_completion" | "generate_content" | "embeddings" | "completion" | "responses")
    )
}

/// Whether a span's or an event's attributes report a model call's usage.
fn has_genai_usage(attributes: &Attributes<'_>) -> bool {
    ["gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"]
        .iter()
        .any(|key| attributes.value(key).is_some())
        && is_model_call(attributes.text("gen_ai.operation.name").as_deref())
}

/// The first of a list of finish reasons (or the one reason).
fn first_reason(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::ArrayValue(reasons) => reasons.values.first().and_then(|v| match v.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            _ => None,
        }),
        Value::StringValue(reason) => Some(reason.clone()),
        _ => None,
    }
}

/// The id of a call known by the span it was made in.
fn span_call_id(trace_id: &[u8], span_id: &[u8]) -> String {
    format!("span:{}{}", hex::encode(trace_id), hex::encode(span_id))
}

/// A GenAI model call at `at`, from the conventions' attributes (of a span or of an inference
/// details event); its id is its response's, if it names one.
fn genai_call<'a>(attributes: &'a Attributes<'a>, at: Micros) -> Result<Call<'a>, String> {
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
    let agent = attributes
        .first_text(&["gen_ai.agent.name", "service.name"])
        .unwrap_or(Cow::Borrowed("unknown"));
    Ok(Call {
        id: call_id(None, attributes.text("gen_ai.response.id").as_deref()),
        at,
        attributes,
        agent,
        provider: attributes.first_text(&["gen_ai.provider.name", "gen_ai.system"]),
        model,
        tokens,
        finish_reason: first_reason(attributes.value("gen_ai.response.finish_reasons")),
    })
}

fn genai_span<'a>(span: &Span, attributes: &'a Attributes<'a>) -> Result<Call<'a>, String> {
    let mut call = genai_call(attributes, nanos_to_micros(span.start_time_unix_nano))?;
    call.id
        .get_or_insert_with(|| span_call_id(&span.trace_id, &span.span_id));
    Ok(call)
}

/// Usage events from an export of spans.
pub fn from_spans(request: &ExportTraceServiceRequest, defaults: &Defaults, now: Micros) -> Extracted {
    let mut extracted = Extracted::default();
    for resource_spans in &request.resource_spans {
        let resource = resource_spans.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
            let attributes = Attributes::new(&span.attributes, resource);
            if !has_genai_usage(&attributes) {
                extracted.ignored.add(&span.name, 1);
                continue;
            }
            match genai_span(span, &attributes).and_then(|call| call.event(defaults, now)) {
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
            return Err(format!("value: cost {value} is not a non-negative amount"));
        }
        // The shortest decimal of the float, read exactly: no float arithmetic on money.
        let nanos = Nanos::from_usd(&format!("{value:.9}")).map_err(|e| format!("cost {value}: {e}"))?;
        return Ok(nanos.0.unsigned_abs());
    }
    match whole(value) {
        Some(tokens) if tokens <= MAX_TOKENS_PER_EVENT => Ok(tokens),
        Some(_) => Err(format!(
            "value {value} exceeds the limit of {MAX_TOKENS_PER_EVENT} tokens per point"
        )),
        None => Err(format!("value {value} is not a whole number of tokens")),
    }
}

/// Counter points from an export of metrics.
pub fn from_metrics(request: &ExportMetricsServiceRequest, _defaults: &Defaults, now: Micros) -> Extracted {
    let mut extracted = Extracted::default();
    for resource_metrics in &request.resource_metrics {
        let resource = resource_metrics
            .resource
            .as_ref()
            .map_or(&[][..], |r| &r.attributes[..]);
        for metric in resource_metrics.scope_metrics.iter().flat_map(|s| &s.metrics) {
            let read = matches!(
                metric.name.as_str(),
                "claude_code.cost.usage" | "claude_code.token.usage"
            );
            let sum = match &metric.data {
                Some(Data::Sum(sum)) if read => sum,
                // OTLP/JSON decoding reads a `sum` with a malformed point as no data at all:
                // say so rather than answer a silent success.
                None if read => {
                    extracted.reject(
                        &metric.name,
                        "no readable data points (a point whose `timeUnixNano`, `startTimeUnixNano` or value is \
                         not a number reads as none)"
                            .into(),
                    );
                    continue;
                }
                data => {
                    extracted
                        .ignored
                        .add(&metric.name, data.as_ref().map_or(0, point_count));
                    continue;
                }
            };
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
                match telemetry_point(&metric.name, point, &attributes, now) {
                    Ok(Some(point)) => extracted.points.push(point),
                    Ok(None) => extracted.ignored.add(&metric.name, 1),
                    Err(reason) => extracted.reject(&metric.name, reason),
                }
            }
        }
    }
    extracted
}

/// How many data points a metric holds, whatever its kind.
fn point_count(data: &Data) -> u64 {
    let points = match data {
        Data::Gauge(gauge) => gauge.data_points.len(),
        Data::Sum(sum) => sum.data_points.len(),
        Data::Histogram(histogram) => histogram.data_points.len(),
        Data::ExponentialHistogram(histogram) => histogram.data_points.len(),
        Data::Summary(summary) => summary.data_points.len(),
    };
    points as u64
}

fn telemetry_point(
    metric: &str,
    point: &NumberDataPoint,
    attributes: &Attributes<'_>,
    now: Micros,
) -> Result<Option<TelemetryPoint>, String> {
    let Some(kind) = point_kind(metric, attributes)? else {
        return Ok(None);
    };
    // The bounds usage is held to: a point of 2262 or of no time reconciles with nothing.
    let at = nanos_to_micros(point.time_unix_nano);
    if at.0 <= 0 || at.0 > now.0 + MAX_FUTURE_SKEW_MICROS {
        return Err(format!(
            "time {} is unset, before 1970 or more than a day ahead",
            at.rfc3339()
        ));
    }
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
        timestamp: at,
        user: user.into_owned(),
        session,
        agent: "claude-code".into(),
        model,
        kind,
        amount,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
    use proptest::prelude::*;

    #[test]
    fn gemini_input_includes_its_cached_content() {
        let tokens = gemini_counts(12_000, 8_000, 400, 600, 50).unwrap();
        assert_eq!(
            tokens,
            TokenCounts {
                input: 4_050,
                output: 400,
                cache_read: 8_000,
                reasoning: 600,
                ..TokenCounts::default()
            },
            "uncached input is the prompt less its cached part, plus the tool-use prompt"
        );
        let reason = gemini_counts(100, 101, 1, 0, 0).unwrap_err();
        assert_eq!(
            reason,
            "attribute `cached_content_token_count` is 101, more than `input_token_count` (100), which includes it"
        );
    }

    proptest! {
        /// Every token Gemini reports is counted once: its total is ours.
        #[test]
        fn gemini_counts_keep_gemini_total(
            input in 0u64..1 << 40,
            cached_share in 0.0f64..=1.0,
            output in 0u64..1 << 40,
            thoughts in 0u64..1 << 40,
            tool in 0u64..1 << 40,
        ) {
            let cached = (input as f64 * cached_share) as u64;
            let tokens = gemini_counts(input, cached, output, thoughts, tool).unwrap();
            prop_assert_eq!(tokens.input + tokens.cache_read, input + tool);
            prop_assert_eq!(tokens.cache_read, cached);
            prop_assert_eq!(tokens.total(), input + output + thoughts + tool);
        }

        /// More cached than prompt tokens is not a count that can be split: refused, not wrapped.
        #[test]
        fn gemini_counts_refuse_more_cached_than_input(input in 0u64..u64::MAX, extra in 1u64..1 << 20) {
            let cached = input.saturating_add(extra);
            prop_assume!(cached > input);
            let reason = gemini_counts(input, cached, 0, 0, 0).unwrap_err();
            prop_assert!(reason.contains(&cached.to_string()), "{}", reason);
        }
    }

    #[test]
    fn a_warning_names_the_first_ignored_records_and_says_there_were_more() {
        let mut ignored = Ignored::default();
        assert_eq!(ignored.warning(["record", "records", "without usage"]), None);
        ignored.add("a", 1);
        assert_eq!(
            ignored.warning(["record", "records", "without usage"]).unwrap(),
            "ignored 1 record without usage (a ×1)"
        );
        for name in ["b", "a", "c", "d", "", "f", "g", "b"] {
            ignored.add(name, 1);
        }
        ignored.add("h", 0);
        assert_eq!(
            ignored.warning(["record", "records", "without usage"]).unwrap(),
            "ignored 9 records without usage (a ×2, b ×2, c ×1, d ×1, unnamed ×1, …)"
        );
    }

    fn attribute(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..KeyValue::default()
        }
    }

    fn text(key: &str, value: &str) -> KeyValue {
        attribute(key, Value::StringValue(value.into()))
    }

    fn int(key: &str, value: i64) -> KeyValue {
        attribute(key, Value::IntValue(value))
    }

    /// Gemini CLI's two records of one call: its `api_response` and the details event.
    fn gemini_call_records() -> (LogRecord, LogRecord) {
        let common = [
            text("session.id", "s-1"),
            text("installation.id", "i-1"),
            text("event.timestamp", "2026-11-24T10:00:00.123Z"),
        ];
        let mut response = common.to_vec();
        response.extend([
            text("event.name", GEMINI_API_RESPONSE),
            text("model", "gemini-2.5-pro"),
            int("input_token_count", 1_000),
            int("cached_content_token_count", 600),
            int("output_token_count", 50),
            int("thoughts_token_count", 70),
        ]);
        let mut details = common.to_vec();
        details.extend([
            text("event.name", INFERENCE_DETAILS),
            text("gen_ai.operation.name", "generate_content"),
            text("gen_ai.provider.name", "gcp.gen_ai"),
            text("gen_ai.request.model", "gemini-2.5-pro"),
            text("gen_ai.response.model", "gemini-2.5-pro"),
            text("gen_ai.response.id", "resp-1"),
            int("gen_ai.usage.input_tokens", 1_000),
            int("gen_ai.usage.output_tokens", 50),
        ]);
        // As Gemini CLI 0.61 sends them: one `event.timestamp`, each record stamped when it was
        // emitted (the details event a millisecond after, and both after the event's time).
        let record = |attributes: Vec<KeyValue>, time_unix_nano| LogRecord {
            time_unix_nano,
            observed_time_unix_nano: time_unix_nano,
            attributes,
            ..LogRecord::default()
        };
        (
            record(response, 1_795_500_000_126_000_000),
            record(details, 1_795_500_000_127_000_000),
        )
    }

    fn export(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![
                        text("service.name", "gemini-cli"),
                        text("user.email", "dana@example.com"),
                    ],
                    ..Resource::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: records,
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }],
        }
    }

    #[test]
    fn gemini_clis_two_records_of_a_call_are_one_event_with_the_fuller_counts() {
        let now = Micros(1_800_000_000_000_000);
        let (response, details) = gemini_call_records();
        for records in [
            vec![response.clone(), details.clone()],
            vec![details.clone(), response.clone()],
        ] {
            let extracted = from_logs(&export(records), &Defaults::default(), now);
            assert_eq!((extracted.rejected, extracted.ignored.count), (0, 0));
            assert_eq!(extracted.events.len(), 1, "one call");
            let event = &extracted.events[0];
            assert_eq!(
                (event.tokens.input, event.tokens.cache_read, event.tokens.reasoning),
                (400, 600, 70),
                "the api_response's counts, whichever came first"
            );
            assert_eq!(event.attribution.agent.as_deref(), Some("gemini-cli"));
            assert_eq!(event.id, "msg:resp-1", "known by its response, as the gateway knows it");
        }
        // Alone (its api_response in another export), the details event is the same call.
        let alone = from_logs(&export(vec![details]), &Defaults::default(), now);
        let with_response = from_logs(&export(vec![response]), &Defaults::default(), now);
        assert_eq!(alone.events[0].id, with_response.events[0].id);
        assert_eq!(alone.events[0].tokens.input, 1_000, "all of its input, cached or not");
        assert_eq!(
            alone.events[0].timestamp, with_response.events[0].timestamp,
            "the event's time, not the record's"
        );
    }

    #[test]
    fn gemini_clis_llm_call_spans_are_not_calls_of_their_own() {
        // With its traces enabled, Gemini CLI's `llm_call` span of a call carries the usage its
        // api_response record reports: counting it would count the call twice.
        let span = Span {
            name: "llm_call".into(),
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            start_time_unix_nano: 1_795_500_000_100_000_000,
            attributes: vec![
                text("gen_ai.operation.name", "llm_call"),
                text("gen_ai.agent.name", "gemini-cli"),
                text("gen_ai.request.model", "gemini-2.5-pro"),
                text("gen_ai.conversation.id", "s-1"),
                int("gen_ai.usage.input_tokens", 1_000),
                int("gen_ai.usage.output_tokens", 50),
            ],
            ..Span::default()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        text("service.name", "gemini-cli"),
                        text("user.email", "dana@example.com"),
                    ],
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![span],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        let extracted = from_spans(&request, &Defaults::default(), Micros(1_800_000_000_000_000));
        assert_eq!(
            (extracted.events.len(), extracted.rejected, extracted.ignored.count),
            (0, 0, 1),
            "accepted, named in the answer's warning, not kept"
        );
    }
}
