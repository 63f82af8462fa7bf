//! Outcomes in: `POST /hooks/github` (deliveries signed with the webhook secret, checked here
//! over the raw body), `POST /api/v1/outcomes` (self-reported outcomes) and
//! `GET/POST /api/v1/github/logins` (login ↔ user).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use goodhart_core::Micros;
use goodhart_core::outcomes::{Fact, OutcomeInput};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::audit::Caller;
use super::body::{check_timestamp, deserialize_item, error_path, is_ndjson, parse_items, read_body, text};
use super::error::ApiError;
use super::params::JsonBody;
use super::state::ApiState;
use crate::app::outcomes::{DeliveryResponse, LoginMapping, OutcomesResponse};

/// The `X-Hub-Signature-256` value GitHub sends for `body` signed with `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    format!("sha256={}", hex::encode(ring::hmac::sign(&key, body).as_ref()))
}

/// Checks `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>` in constant time.
pub fn verify_signature(secret: &str, body: &[u8], header: Option<&str>) -> Result<(), ApiError> {
    let header = header.ok_or_else(|| ApiError::BadSignature("X-Hub-Signature-256 is missing".into()))?;
    let hex = header
        .strip_prefix("sha256=")
        .ok_or_else(|| ApiError::BadSignature("X-Hub-Signature-256 must start with `sha256=`".into()))?;
    let signature =
        hex::decode(hex).map_err(|_| ApiError::BadSignature("X-Hub-Signature-256 is not hexadecimal".into()))?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::verify(&key, body, &signature)
        .map_err(|_| ApiError::BadSignature("X-Hub-Signature-256 does not match the body and secret".into()))
}

pub async fn post_github(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<DeliveryResponse>, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let app = &state.app;
    let secret = app.settings().outcomes.github_secret.as_deref().ok_or_else(|| {
        ApiError::BadSignature(
            "no GitHub webhook secret is configured (GOODHART_GITHUB_WEBHOOK_SECRET or outcomes.github_webhook_secret)"
                .into(),
        )
    })?;
    let raw = read_body(body, &headers, state.max_body_bytes).await?;
    verify_signature(secret, &raw, header("x-hub-signature-256"))?;
    let event = header("x-github-event")
        .ok_or_else(|| ApiError::BadRequest("X-GitHub-Event is missing".into()))?
        .to_owned();
    let delivery = header("x-github-delivery")
        .filter(|d| !d.is_empty() && d.len() <= 100)
        .ok_or_else(|| ApiError::BadRequest("X-GitHub-Delivery is missing or longer than 100 characters".into()))?
        .to_owned();
    let payload: Value = serde_json::from_slice(&raw).map_err(|e| {
        let at = error_path(&raw).map(|path| format!(" at `{path}`")).unwrap_or_default();
        ApiError::BadRequest(format!("the payload is not JSON{at}: {e}"))
    })?;
    Ok(Json(app.record_delivery(delivery, event, &payload).await?))
}

fn outcome_fact(line: usize, input: OutcomeInput, now: Micros) -> Result<(String, Fact), ApiError> {
    let (id, fact) = input.validate().map_err(|e| ApiError::InvalidEvent {
        line,
        field: Some(e.field.to_owned()),
        message: format!("line {line}: field `{}`: {}", e.field, e.reason),
    })?;
    check_timestamp(line, fact.at(), now)?;
    Ok((id, fact))
}

pub async fn post_outcomes(
    State(state): State<ApiState>,
    Caller(origin): Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<OutcomesResponse>, ApiError> {
    let raw = read_body(body, &headers, state.max_body_bytes).await?;
    let text = text(&raw)?;
    let now = state.app.now();
    let facts = parse_items(text, is_ndjson(&headers, text), "outcomes", |line, item| {
        outcome_fact(line, deserialize_item(line, item)?, now)
    })?;
    if facts.is_empty() {
        return Err(ApiError::BadRequest("the body holds no outcomes".into()));
    }
    Ok(Json(state.app.record_outcomes(&origin, facts).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginInput {
    login: String,
    user: String,
}

pub async fn post_login(
    State(state): State<ApiState>,
    Caller(origin): Caller,
    JsonBody(input): JsonBody<LoginInput>,
) -> Result<Json<LoginMapping>, ApiError> {
    Ok(Json(state.app.map_login(&origin, &input.login, &input.user).await?))
}

#[derive(Debug, Serialize)]
pub struct LoginsDocument {
    pub logins: Vec<LoginMapping>,
}

pub async fn list_logins(State(state): State<ApiState>) -> Result<Json<LoginsDocument>, ApiError> {
    Ok(Json(LoginsDocument {
        logins: state.app.logins().await?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_against_the_raw_body() {
        let body = br#"{"zen":"Design for failure."}"#;
        let good = sign("s3cret", body);
        assert!(verify_signature("s3cret", body, Some(&good)).is_ok());
        assert!(verify_signature("other", body, Some(&good)).is_err());
        assert!(
            verify_signature("s3cret", b"{}", Some(&good)).is_err(),
            "a changed body fails"
        );
        assert!(verify_signature("s3cret", body, None).is_err());
        assert!(verify_signature("s3cret", body, Some("sha1=00")).is_err());
        assert!(verify_signature("s3cret", body, Some("sha256=zz")).is_err());
    }
}
