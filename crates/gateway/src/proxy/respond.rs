//! The respond phase of a call that is not streamed: the provider's body is read whole
//! (bounded, within the timeout), its usage recorded, then passed on unchanged (or, for a
//! translated call, in the client's protocol).

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use goodhart_core::requests::Protocol;
use goodhart_core::translate;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::Value;

use crate::errors::GatewayError;
use crate::proxy::record::{Outcome, Recording};

/// The most of a non-streamed response body the gateway reads (to find its usage).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

pub async fn respond(
    call: Recording,
    status: StatusCode,
    headers: HeaderMap,
    upstream: Incoming,
    upstream_request_id: Option<String>,
    timeout: Duration,
) -> Result<Response, GatewayError> {
    let body = match tokio::time::timeout(timeout, Limited::new(upstream, MAX_RESPONSE_BYTES).collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        failed => {
            // The provider had the call (it answered with headers) and may bill it: record it,
            // estimated, so that it counts against budgets and rate limits like any other.
            call.record(Outcome {
                status: status.as_u16(),
                upstream_request_id,
                ..Default::default()
            });
            return Err(match failed {
                Ok(Err(e)) => GatewayError::UpstreamUnavailable(e.to_string()),
                _ => GatewayError::UpstreamTimeout(timeout.as_secs()),
            });
        }
    };
    let first_byte = Instant::now();
    let (adapter, endpoint) = (call.plan.adapter, call.plan.endpoint());
    let translation = call.plan.translation.clone();
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    call.record(Outcome {
        status: status.as_u16(),
        reported: parsed
            .as_ref()
            .and_then(|b| adapter.usage(endpoint, b))
            .or_else(|| adapter.usage_from_headers(&headers)),
        response_id: parsed.as_ref().and_then(|b| adapter.response_id(b)),
        output_text: parsed
            .as_ref()
            .map(|b| adapter.output_text(endpoint, b))
            .unwrap_or_default(),
        first_byte: Some(first_byte),
        upstream_request_id,
        complete: true,
        client_disconnected: false,
        unanswered: false,
    });
    // A translated call's answer goes down in the client's protocol.
    let body = match (translation, &parsed) {
        (None, _) => body,
        (Some(translation), answer) => {
            let answer = answer.clone().unwrap_or_default();
            let translated = match (translation.client, status.is_success()) {
                (Protocol::OpenAi, true) => translate::message_to_chat(&answer, &translation.model),
                (Protocol::OpenAi, false) => translate::message_error_to_chat_error(&answer),
                (_, true) => translate::chat_to_message(&answer, &translation.model),
                (_, false) => translate::chat_error_to_message_error(&answer, status.as_u16()),
            };
            translated.to_string().into()
        }
    };
    Ok(with_headers(status, headers, Body::from(body)))
}

pub fn with_headers(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}
