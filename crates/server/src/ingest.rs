//! `POST /api/v1/usage`: usage that did not pass through the gateway.
//!
//! The body is a JSON array or NDJSON (by `Content-Type`, or by its first character), optionally
//! gzip-compressed. Every event is parsed and validated before anything is stored: one bad event
//! rejects the request with its line and field, and nothing of it is kept. Events are idempotent
//! by `id`; the response says how many were new and how many were duplicates.

use std::io::Read;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use goodhart_core::Micros;
use goodhart_core::time::MICROS_PER_DAY;
use goodhart_core::usage::{IngestPolicy, Source, UsageEvent, UsageEventInput};
use goodhart_store::{InsertOutcome, PricedEvent};
use http_body_util::BodyExt;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::ApiError;
use crate::state::AppState;

/// Events may be stamped at most this far in the future (clock skew), never more.
pub const MAX_FUTURE_SKEW_MICROS: i64 = MICROS_PER_DAY;

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct IngestResponse {
    pub accepted: u64,
    pub duplicates: u64,
    /// Accepted events whose model has no price yet (stored, flagged, priced on `goodhart prices reprice`).
    pub unpriced: u64,
    pub price_version: String,
}

pub async fn post_usage(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestResponse>, ApiError> {
    let raw = read_body(body, &headers, state.max_body_bytes).await?;
    let text = std::str::from_utf8(&raw).map_err(|e| ApiError::BadRequest(format!("body is not UTF-8: {e}")))?;
    let policy = IngestPolicy {
        store_content: state.store_content,
        source: Source::Api,
    };
    let now = Micros::from_timestamp(jiff::Timestamp::now());
    let events = parse_events(text, is_ndjson(&headers, text), policy, now)?;
    if events.is_empty() {
        return Err(ApiError::BadRequest("the body holds no events".into()));
    }
    let outcome = store_events(&state, events).await?;
    Ok(Json(IngestResponse {
        accepted: outcome.inserted,
        duplicates: outcome.duplicates,
        unpriced: outcome.unpriced,
        price_version: state.prices.version().to_owned(),
    }))
}

/// Prices events with the current table and stores them (duplicates by id are skipped).
pub async fn store_events(state: &AppState, events: Vec<UsageEvent>) -> Result<InsertOutcome, ApiError> {
    let priced: Vec<PricedEvent> = events
        .into_iter()
        .map(|event| {
            let cost = state
                .prices
                .cost_of(event.provider.as_deref(), &event.model, &event.tokens);
            PricedEvent { event, cost }
        })
        .collect();
    Ok(state.store.insert_usage(priced, state.prices.version()).await?)
}

pub fn is_ndjson(headers: &HeaderMap, text: &str) -> bool {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.contains("ndjson") || content_type.contains("jsonl") || content_type.contains("json-seq") {
        return true;
    }
    if content_type.starts_with("application/json") {
        return false;
    }
    !text.trim_start().starts_with('[')
}

/// Reads the whole body, gunzipping it if asked, never holding more than `limit` bytes.
pub async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::PayloadTooLarge { limit };
    if headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|n| n > limit)
    {
        return Err(too_large());
    }
    let collected = http_body_util::Limited::new(body, limit).collect().await.map_err(|e| {
        if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
            too_large()
        } else {
            ApiError::BadRequest(format!("could not read the request body: {e}"))
        }
    })?;
    let raw = collected.to_bytes();
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity");
    match encoding.trim().to_ascii_lowercase().as_str() {
        "" | "identity" => Ok(raw),
        "gzip" | "x-gzip" => {
            let mut decoded = Vec::with_capacity(raw.len().saturating_mul(4).min(limit));
            // Read one byte past the limit to tell "exactly at the limit" from "over it".
            flate2::read::MultiGzDecoder::new(&raw[..])
                .take(limit as u64 + 1)
                .read_to_end(&mut decoded)
                .map_err(|e| ApiError::BadRequest(format!("body is not valid gzip: {e}")))?;
            if decoded.len() > limit {
                return Err(too_large());
            }
            Ok(Bytes::from(decoded))
        }
        other => Err(ApiError::UnsupportedEncoding(other.to_owned())),
    }
}

/// Parses and validates every event; the first failure names its line and field.
pub fn parse_events(text: &str, ndjson: bool, policy: IngestPolicy, now: Micros) -> Result<Vec<UsageEvent>, ApiError> {
    parse_items(text, ndjson, "events", |line, item| {
        let input: UsageEventInput = deserialize_item(line, item)?;
        let event = input.validate(policy).map_err(|e| ApiError::InvalidEvent {
            line,
            field: Some(e.field.to_owned()),
            message: format!("line {line}: field `{}`: {}", e.field, e.reason),
        })?;
        check_timestamp(line, event.timestamp, now)?;
        Ok(event)
    })
}

/// Parses each item of a JSON array or NDJSON body with `parse`, which gets the item's line.
pub fn parse_items<T>(
    text: &str,
    ndjson: bool,
    what: &str,
    parse: impl FnMut(usize, &str) -> Result<T, ApiError>,
) -> Result<Vec<T>, ApiError> {
    let items: Vec<(usize, &str)> = if ndjson {
        text.split('\n')
            .enumerate()
            .map(|(i, line)| (i + 1, line.trim()))
            .filter(|(_, line)| !line.is_empty())
            .collect()
    } else {
        let values: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| ApiError::InvalidEvent {
            line: e.line(),
            field: None,
            message: format!("line {}: the body is not a JSON array of {what}: {e}", e.line()),
        })?;
        values.into_iter().map(|v| (line_of(text, v.get()), v.get())).collect()
    };
    let mut parse = parse;
    items.into_iter().map(|(line, item)| parse(line, item)).collect()
}

/// Deserialises one item strictly, naming the field (and line) of any error.
pub fn deserialize_item<T: serde::de::DeserializeOwned>(line: usize, item: &str) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_str(item);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let field = (path != ".").then_some(path);
        let inner = e.into_inner();
        // serde names unknown and missing fields in its message; lift them into `field` too.
        let field = field.or_else(|| quoted_field(&inner.to_string()));
        let message = match &field {
            Some(f) => format!("line {line}: field `{f}`: {inner}"),
            None => format!("line {line}: {inner}"),
        };
        ApiError::InvalidEvent { line, field, message }
    })
}

/// Refuses timestamps before 1970 or more than a day ahead.
pub fn check_timestamp(line: usize, at: Micros, now: Micros) -> Result<(), ApiError> {
    if at.0 < 0 || at.0 > now.0 + MAX_FUTURE_SKEW_MICROS {
        return Err(ApiError::InvalidEvent {
            line,
            field: Some("timestamp".into()),
            message: format!(
                "line {line}: field `timestamp`: {} is before 1970 or more than a day in the future",
                at.rfc3339()
            ),
        });
    }
    Ok(())
}

/// The 1-based line of `text` on which `slice` (a sub-slice of it) starts.
fn line_of(text: &str, slice: &str) -> usize {
    let offset = (slice.as_ptr() as usize)
        .saturating_sub(text.as_ptr() as usize)
        .min(text.len());
    text.as_bytes()[..offset].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The first backquoted name in a serde message such as "unknown field `tokens`, expected …".
fn quoted_field(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: IngestPolicy = IngestPolicy {
        store_content: false,
        source: Source::Api,
    };
    const NOW: Micros = Micros(1_800_000_000_000_000);

    fn line(n: u32) -> String {
        format!(
            r#"{{"id": "e{n}", "timestamp": "2026-11-02T09:14:03Z", "user": "u", "model": "m", "input_tokens": {n}, "output_tokens": 1}}"#
        )
    }

    fn error_of(result: Result<Vec<UsageEvent>, ApiError>) -> (usize, Option<String>, String) {
        match result {
            Err(ApiError::InvalidEvent { line, field, message }) => (line, field, message),
            other => panic!("expected an invalid event, got {other:?}"),
        }
    }

    #[test]
    fn ndjson_errors_name_line_and_field() {
        let body = format!(
            "{}\n\n{}\n{}\n",
            line(1),
            line(2),
            line(3).replace("\"input_tokens\": 3", "\"input_tokens\": \"3\"")
        );
        let (line_no, field, message) = error_of(parse_events(&body, true, POLICY, NOW));
        assert_eq!((line_no, field.as_deref()), (4, Some("input_tokens")));
        assert!(message.contains("invalid type: string"), "{message}");
    }

    #[test]
    fn array_errors_name_the_line_the_element_starts_on() {
        let body = format!("[\n{},\n{}\n]", line(1), line(2).replace("\"user\"", "\"usr\""));
        let (line_no, field, _) = error_of(parse_events(&body, false, POLICY, NOW));
        assert_eq!((line_no, field.as_deref()), (3, Some("usr")));
    }

    #[test]
    fn missing_and_semantic_errors_name_the_field() {
        let missing = line(1).replace(", \"output_tokens\": 1", "");
        assert_eq!(
            error_of(parse_events(&missing, true, POLICY, NOW)).1.as_deref(),
            Some("output_tokens")
        );
        let empty_model = line(1).replace("\"model\": \"m\"", "\"model\": \"\"");
        assert_eq!(
            error_of(parse_events(&empty_model, true, POLICY, NOW)).1.as_deref(),
            Some("model")
        );
        let future = line(1).replace("2026-11-02", "2099-01-01");
        assert_eq!(
            error_of(parse_events(&future, true, POLICY, NOW)).1.as_deref(),
            Some("timestamp")
        );
        let garbage = "{not json";
        assert_eq!(error_of(parse_events(garbage, true, POLICY, NOW)).0, 1);
    }

    #[test]
    fn both_formats_parse_the_same_events() {
        let ndjson = format!("{}\n{}", line(1), line(2));
        let array = format!("[{}, {}]", line(1), line(2));
        assert_eq!(
            parse_events(&ndjson, true, POLICY, NOW).unwrap(),
            parse_events(&array, false, POLICY, NOW).unwrap()
        );
    }

    #[test]
    fn format_is_sniffed_without_a_content_type() {
        let headers = HeaderMap::new();
        assert!(!is_ndjson(&headers, "  [ {} ]"));
        assert!(is_ndjson(&headers, "{}\n{}"));
    }
}
