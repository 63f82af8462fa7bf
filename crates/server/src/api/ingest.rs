//! `POST /api/v1/usage`: usage that did not pass through the gateway.
//!
//! The body is a JSON array or NDJSON (by `Content-Type`, or by its first character), optionally
//! gzip-compressed. Every event is parsed and validated before anything is stored: one bad event
//! rejects the request with its line and field, and nothing of it is kept. Events are idempotent
//! by `id`; the response says how many were new and how many were duplicates. A personal
//! ingest token's usage is all its person's ([`crate::app::usage::attribute_to_sender`]).

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::{Extension, Json};
use goodhart_core::Micros;
use goodhart_core::usage::{IngestPolicy, Source, UsageEvent, UsageEventInput};

use super::body::{check_timestamp, deserialize_item, is_ndjson, parse_items, read_body, text};
use super::error::ApiError;
use super::state::ApiState;
use crate::app::access::Access;
use crate::app::usage::IngestResponse;

pub async fn post_usage(
    State(state): State<ApiState>,
    Extension(access): Extension<Access>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestResponse>, ApiError> {
    let raw = read_body(body, &headers, state.max_body_bytes).await?;
    let text = text(&raw)?;
    let app = &state.app;
    let events = parse_events(
        text,
        is_ndjson(&headers, text),
        app.ingest_policy(Source::Api),
        app.now(),
    )?;
    if events.is_empty() {
        return Err(ApiError::BadRequest("the body holds no events".into()));
    }
    Ok(Json(app.ingest_usage(&access, events).await?))
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
}
