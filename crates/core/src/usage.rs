//! Usage events: the wire shape accepted from clients, and its validated domain form.
//!
//! Token kinds never overlap. `input` is uncached input only; cache reads and the two kinds of
//! cache writes (Anthropic's 5-minute and 1-hour) are separate; `reasoning` is not part of
//! `output`. Converters from provider conventions (OpenAI's input includes cached input and its
//! output includes reasoning) live next to the code that reads those providers.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fingerprint::Fingerprints;
use crate::time::{self, Micros};

/// The largest token count one event may carry; anything above is a client bug, not usage.
pub const MAX_TOKENS_PER_EVENT: u64 = 10_000_000_000;
/// The longest id, name or label accepted.
pub const MAX_LABEL_CHARS: usize = 256;

/// Token counts of one model call, by kind (kinds never overlap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TokenCounts {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub reasoning: u64,
}

impl TokenCounts {
    /// Every token of the prompt, cached or not: what long-context price tiers look at.
    pub fn prompt_total(&self) -> u64 {
        self.input
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_write_5m)
            .saturating_add(self.cache_write_1h)
    }

    /// Every token of every kind.
    pub fn total(&self) -> u64 {
        self.prompt_total()
            .saturating_add(self.output)
            .saturating_add(self.reasoning)
    }

    /// The counts in the order of the public fields: input, output, cache read, 5-minute cache
    /// write, 1-hour cache write, reasoning.
    pub fn as_array(&self) -> [u64; 6] {
        [
            self.input,
            self.output,
            self.cache_read,
            self.cache_write_5m,
            self.cache_write_1h,
            self.reasoning,
        ]
    }

    /// The counts of [`TokenCounts::as_array`]'s order.
    pub fn from_array([input, output, cache_read, cache_write_5m, cache_write_1h, reasoning]: [u64; 6]) -> TokenCounts {
        TokenCounts {
            input,
            output,
            cache_read,
            cache_write_5m,
            cache_write_1h,
            reasoning,
        }
    }

    pub fn add(&mut self, other: &TokenCounts) {
        self.input = self.input.saturating_add(other.input);
        self.output = self.output.saturating_add(other.output);
        self.cache_read = self.cache_read.saturating_add(other.cache_read);
        self.cache_write_5m = self.cache_write_5m.saturating_add(other.cache_write_5m);
        self.cache_write_1h = self.cache_write_1h.saturating_add(other.cache_write_1h);
        self.reasoning = self.reasoning.saturating_add(other.reasoning);
    }
}

/// Who and what a call is attributed to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Attribution {
    pub user: String,
    pub team: Option<String>,
    pub project: Option<String>,
    pub agent: Option<String>,
    pub task: Option<String>,
    pub session: Option<String>,
}

crate::named_enum! {
    /// Where an event came from.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Source {
        /// `POST /api/v1/usage`.
        Api = "api",
        /// Metered by the gateway.
        Gateway = "gateway",
        /// Read from an agent's local logs.
        Import = "import",
        /// Received over OpenTelemetry.
        Otlp = "otlp",
    }
}

/// Prompt and completion text, kept only when content storage is switched on.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Content {
    pub prompt: Option<String>,
    pub completion: Option<String>,
}

/// A validated usage event, ready to be priced and stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEvent {
    /// The idempotency key: the client's id, or one derived from the event's content.
    pub id: String,
    pub timestamp: Micros,
    pub attribution: Attribution,
    pub provider: Option<String>,
    pub model: String,
    pub tokens: TokenCounts,
    pub finish_reason: Option<String>,
    pub fingerprints: Fingerprints,
    pub content: Option<Content>,
    pub source: Source,
    /// Token counts are an estimate (e.g. a stream cut off before the provider reported usage).
    pub estimated: bool,
    /// How the gateway saw the call (absent for usage that did not pass the gateway).
    #[serde(default)]
    pub call: Option<CallMeta>,
}

/// What the gateway observed about one proxied call, besides its usage.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CallMeta {
    /// The virtual key the client authenticated with.
    pub key_id: String,
    /// `chat_completions`, `responses`, `embeddings` or `messages`.
    pub endpoint: String,
    /// The HTTP status the provider answered with.
    pub status: u16,
    pub stream: bool,
    /// From the request arriving to the response's last byte.
    pub latency_micros: u64,
    /// From the request arriving to the first byte of the provider's response body.
    pub ttft_micros: Option<u64>,
    /// The `max_tokens` (or `max_output_tokens`, `max_completion_tokens`) the request asked for.
    pub max_tokens: Option<u64>,
    /// The provider's request id (`request-id` / `x-request-id`), returned to the client too.
    pub upstream_request_id: Option<String>,
    /// The provider's id of the response (`chatcmpl-…`, `resp_…`, `msg_…`).
    pub response_id: Option<String>,
    /// The client went away before the response ended.
    pub client_disconnected: bool,
}

/// One usage event as clients send it to `POST /api/v1/usage` (the public contract).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageEventInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub timestamp: String,
    pub user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    pub model: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_read_tokens: u64,
    /// 5-minute cache writes (or the only kind, for providers with one).
    #[serde(default)]
    pub cache_write_tokens: u64,
    /// Anthropic's 1-hour cache writes, billed at a higher rate.
    #[serde(default)]
    pub cache_write_1h_tokens: u64,
    #[serde(default)]
    pub reasoning_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
}

/// A field that failed validation, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: &'static str,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        FieldError {
            field,
            reason: reason.into(),
        }
    }
}

/// What validation needs besides the event itself.
#[derive(Debug, Clone, Copy)]
pub struct IngestPolicy {
    /// Keep prompt and completion text (off by default: only fingerprints are kept).
    pub store_content: bool,
    pub source: Source,
}

impl UsageEventInput {
    /// Checks every field and builds the domain event. Text is fingerprinted, then dropped unless
    /// the policy keeps content.
    pub fn validate(self, policy: IngestPolicy) -> Result<UsageEvent, FieldError> {
        let timestamp = time::parse_rfc3339(&self.timestamp).map_err(|reason| FieldError::new("timestamp", reason))?;
        let attribution = Attribution {
            user: required_label("user", self.user)?,
            team: optional_label("team", self.team)?,
            project: optional_label("project", self.project)?,
            agent: optional_label("agent", self.agent)?,
            task: optional_label("task", self.task)?,
            session: optional_label("session", self.session)?,
        };
        let provider = optional_label("provider", self.provider)?.map(|p| p.to_ascii_lowercase());
        let model = required_label("model", self.model)?;
        let finish_reason = optional_label("finish_reason", self.finish_reason)?;
        let tokens = TokenCounts {
            input: token_count("input_tokens", self.input_tokens)?,
            output: token_count("output_tokens", self.output_tokens)?,
            cache_read: token_count("cache_read_tokens", self.cache_read_tokens)?,
            cache_write_5m: token_count("cache_write_tokens", self.cache_write_tokens)?,
            cache_write_1h: token_count("cache_write_1h_tokens", self.cache_write_1h_tokens)?,
            reasoning: token_count("reasoning_tokens", self.reasoning_tokens)?,
        };
        let fingerprints = Fingerprints::of(self.prompt.as_deref(), self.completion.as_deref());
        let content =
            (policy.store_content && (self.prompt.is_some() || self.completion.is_some())).then_some(Content {
                prompt: self.prompt,
                completion: self.completion,
            });
        let id = match self.id {
            Some(id) => required_label("id", id)?,
            None => derived_id(timestamp, &attribution, provider.as_deref(), &model, &tokens),
        };
        Ok(UsageEvent {
            id,
            timestamp,
            attribution,
            provider,
            model,
            tokens,
            finish_reason,
            fingerprints,
            content,
            source: policy.source,
            estimated: false,
            call: None,
        })
    }
}

/// The id every source gives the same API call, so that the gateway, an agent's telemetry and
/// its logs store it once: `req:` and the provider's request id (`request-id` /
/// `x-request-id`), or `msg:` and the message/response id when the request id is unknown.
pub fn call_id(request_id: Option<&str>, message_id: Option<&str>) -> Option<String> {
    fn nonempty(id: Option<&str>) -> Option<&str> {
        id.map(str::trim).filter(|id| !id.is_empty())
    }
    match (nonempty(request_id), nonempty(message_id)) {
        (Some(request), _) => Some(request_call_id(request)),
        (None, Some(message)) => Some(message_call_id(message)),
        (None, None) => None,
    }
}

/// [`call_id`] of a call whose request id is known.
pub fn request_call_id(request_id: &str) -> String {
    format!("req:{request_id}")
}

/// [`call_id`] of a call known only by its message/response id.
pub fn message_call_id(message_id: &str) -> String {
    format!("msg:{message_id}")
}

/// The message/response id a [`message_call_id`] names.
pub fn message_of_call_id(call_id: &str) -> Option<&str> {
    call_id.strip_prefix("msg:")
}

/// The idempotency key of an event sent without an `id`: a digest of everything that
/// identifies the call, so a retried request without ids is still counted once.
pub fn derived_id(
    timestamp: Micros,
    attribution: &Attribution,
    provider: Option<&str>,
    model: &str,
    tokens: &TokenCounts,
) -> String {
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    field(&timestamp.0.to_le_bytes());
    for label in [
        Some(attribution.user.as_str()),
        attribution.team.as_deref(),
        attribution.project.as_deref(),
        attribution.agent.as_deref(),
        attribution.task.as_deref(),
        attribution.session.as_deref(),
        provider,
        Some(model),
    ] {
        field(label.unwrap_or("\u{0}").as_bytes());
    }
    for count in tokens.as_array() {
        field(&count.to_le_bytes());
    }
    format!("auto:{}", hex::encode(&hasher.finalize()[..16]))
}

pub fn required_label(field: &'static str, value: String) -> Result<String, FieldError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if trimmed.chars().count() > MAX_LABEL_CHARS {
        return Err(FieldError::new(
            field,
            format!("is longer than {MAX_LABEL_CHARS} characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(FieldError::new(field, "contains control characters"));
    }
    Ok(if trimmed.len() == value.len() {
        value
    } else {
        trimmed.to_owned()
    })
}

pub fn optional_label(field: &'static str, value: Option<String>) -> Result<Option<String>, FieldError> {
    match value {
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => required_label(field, v).map(Some),
        None => Ok(None),
    }
}

fn token_count(field: &'static str, value: u64) -> Result<u64, FieldError> {
    if value > MAX_TOKENS_PER_EVENT {
        return Err(FieldError::new(
            field,
            format!("{value} exceeds the limit of {MAX_TOKENS_PER_EVENT} tokens per event"),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: IngestPolicy = IngestPolicy {
        store_content: false,
        source: Source::Api,
    };

    fn parse(json: &str) -> Result<UsageEvent, String> {
        let input: UsageEventInput = serde_json::from_str(json).map_err(|e| e.to_string())?;
        input.validate(POLICY).map_err(|e| e.to_string())
    }

    #[test]
    fn contract_example_is_accepted() {
        let event = parse(
            r#"{"id": "e1", "timestamp": "2026-11-02T09:14:03Z", "user": "alice", "team": "payments",
                "project": "checkout", "agent": "refactor-bot", "task": "PAY-123", "session": "s-42",
                "provider": "anthropic", "model": "claude-sonnet-4-5", "input_tokens": 1200,
                "output_tokens": 350, "cache_read_tokens": 8000, "cache_write_tokens": 0,
                "reasoning_tokens": 0, "prompt": "fix the flaky test", "completion": "done",
                "finish_reason": "stop"}"#,
        )
        .unwrap();
        assert_eq!(event.id, "e1");
        assert_eq!(event.tokens.cache_read, 8000);
        assert_eq!(event.attribution.task.as_deref(), Some("PAY-123"));
        assert!(event.fingerprints.prompt_simhash.is_some());
        assert_eq!(event.content, None, "text is discarded unless content storage is on");
    }

    #[test]
    fn unknown_fields_and_bad_values_are_named() {
        let base =
            r#""timestamp": "2026-11-02T09:14:03Z", "user": "a", "model": "m", "input_tokens": 1, "output_tokens": 1"#;
        let unknown = parse(&format!("{{{base}, \"tokens\": 3}}")).unwrap_err();
        assert!(unknown.contains("unknown field `tokens`"), "{unknown}");
        let negative = parse(&format!("{{{base}, \"cache_read_tokens\": -3}}")).unwrap_err();
        assert!(negative.contains("invalid value"), "{negative}");
        let bad_time =
            parse(r#"{"timestamp": "yesterday", "user": "a", "model": "m", "input_tokens": 1, "output_tokens": 1}"#)
                .unwrap_err();
        assert!(bad_time.starts_with("timestamp:"), "{bad_time}");
        let empty_user = parse(r#"{"timestamp": "2026-11-02T09:14:03Z", "user": " ", "model": "m", "input_tokens": 1, "output_tokens": 1}"#).unwrap_err();
        assert_eq!(empty_user, "user: must not be empty");
        let huge = parse(&format!("{{{base}, \"reasoning_tokens\": 20000000000}}")).unwrap_err();
        assert!(huge.starts_with("reasoning_tokens:"), "{huge}");
        let missing = parse(r#"{"timestamp": "2026-11-02T09:14:03Z", "user": "a", "model": "m", "input_tokens": 1}"#)
            .unwrap_err();
        assert!(missing.contains("missing field `output_tokens`"), "{missing}");
    }

    #[test]
    fn events_without_id_get_a_stable_content_id() {
        let json = r#"{"timestamp": "2026-11-02T09:14:03Z", "user": "a", "model": "m", "input_tokens": 1, "output_tokens": 2}"#;
        let first = parse(json).unwrap();
        assert!(first.id.starts_with("auto:"));
        assert_eq!(first.id, parse(json).unwrap().id);
        let other = parse(&json.replace("\"output_tokens\": 2", "\"output_tokens\": 3")).unwrap();
        assert_ne!(first.id, other.id);
    }

    #[test]
    fn content_is_kept_only_when_asked() {
        let json = r#"{"timestamp": "2026-11-02T09:14:03Z", "user": "a", "model": "m", "input_tokens": 1, "output_tokens": 2, "prompt": "hi"}"#;
        let input: UsageEventInput = serde_json::from_str(json).unwrap();
        let kept = input
            .validate(IngestPolicy {
                store_content: true,
                source: Source::Api,
            })
            .unwrap();
        assert_eq!(kept.content.unwrap().prompt.as_deref(), Some("hi"));
    }
}
