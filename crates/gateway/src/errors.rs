//! Errors the gateway itself raises, answered in the shape of the client's own protocol so
//! that SDKs surface them as they would a provider's (OpenAI's `{"error":{…}}`, Anthropic's
//! `{"type":"error","error":{…}}`, Gemini's `{"error":{"code","message","status"}}`, Bedrock's
//! AWS JSON error `{"message"}` named by its `x-amzn-ErrorType` header) — as a response before
//! the first byte, or as an in-band event once a stream's 200 has gone out (for Bedrock, an
//! event-stream exception frame).
//!
//! Errors are plain data: building one logs nothing and raises nothing. Whoever handles the
//! cause logs it once; a store's own error text never reaches a client (an outage of the key
//! store and of the limits store answer alike: 503 with `Retry-After`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use goodhart_core::limits::{BudgetRefusal, Cause, RateRefusal, Resource};
use goodhart_core::requests::Protocol;
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("no provider is configured for model `{0}`")]
    NoRoute(String),
    #[error("`{0}` is not a method the gateway serves")]
    NoMethod(String),
    #[error("request body exceeds the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the request body did not arrive within {0} s")]
    RequestTimeout(u64),
    #[error("the provider could not be reached: {0}")]
    UpstreamUnavailable(String),
    #[error("the provider did not answer within {0} s")]
    UpstreamTimeout(u64),
    #[error("usage cannot be recorded right now (spool failing); refusing calls rather than losing their usage")]
    SpoolUnavailable,
    #[error("virtual keys cannot be checked right now (the key store is unavailable); try again shortly")]
    KeyStoreUnavailable,
    #[error(
        "budgets and rate limits cannot be checked right now (the limits store is unavailable); refusing calls \
         rather than letting them past a limit"
    )]
    LimitsUnavailable,
    #[error("{}", budget_message(.0))]
    BudgetExceeded(Box<BudgetRefusal>),
    #[error("rate limit of this key reached: {} {} per minute", .0.limit, .0.resource.as_str())]
    RateLimited(RateRefusal),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The provider would not open a WebSocket: the client should use HTTP (426 is what
    /// Codex, for one, falls back on at once instead of retrying).
    #[error(
        "the provider `{provider}` does not offer the Responses API over a WebSocket (it answered {status}); \
         use HTTP (POST /v1/responses)"
    )]
    SocketUnavailable { provider: String, status: u16 },
    /// A `response.create` arrived while the connection's response was still streaming.
    #[error("a response is already in progress on this connection; send the next `response.create` after it ends")]
    ResponseInFlight,
}

/// Google's canonical status name for an HTTP status (what Gemini puts in `error.status`).
fn google_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 413 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 | 405 => "NOT_FOUND",
        408 | 504 => "DEADLINE_EXCEEDED",
        409 => "ABORTED",
        426 => "FAILED_PRECONDITION",
        429 => "RESOURCE_EXHAUSTED",
        502 | 503 => "UNAVAILABLE",
        _ => "INTERNAL",
    }
}

fn budget_message(refusal: &BudgetRefusal) -> String {
    let resets = refusal.resets_at.map_or_else(
        || "it does not reset".to_owned(),
        |at| format!("it resets at {}", at.rfc3339()),
    );
    if refusal.cause == Cause::Unpriced {
        return format!(
            "budget {} ({}) is a hard cap and this model has no price, so the call's cost cannot be bounded; \
             add a price for it ([[prices.model]]) to use it under this budget",
            refusal.budget_id, refusal.scope
        );
    }
    let what = match refusal.cause {
        Cause::Limit(Resource::Tokens) => "token limit",
        _ => "limit",
    };
    format!(
        "budget {} ({}) would be exceeded: {what} {}, spent {}, reserved by calls in flight {}; {resets}",
        refusal.budget_id,
        refusal.scope,
        refusal.limit.usd_rounded(2),
        refusal.spent.usd_rounded(4),
        refusal.reserved.usd_rounded(4),
    )
}

impl GatewayError {
    /// The error's stable name: the `kind` label of the gateway's error metric.
    pub fn kind(&self) -> &'static str {
        match self {
            GatewayError::Unauthorized(_) => "unauthorized",
            GatewayError::Forbidden(_) => "forbidden",
            GatewayError::BadRequest(_) => "bad_request",
            GatewayError::NoRoute(_) => "no_route",
            GatewayError::NoMethod(_) => "no_method",
            GatewayError::PayloadTooLarge(_) => "payload_too_large",
            GatewayError::RequestTimeout(_) => "request_timeout",
            GatewayError::UpstreamUnavailable(_) => "upstream_unavailable",
            GatewayError::UpstreamTimeout(_) => "upstream_timeout",
            GatewayError::SpoolUnavailable => "spool",
            GatewayError::KeyStoreUnavailable => "key_lookup",
            GatewayError::LimitsUnavailable => "limits_unavailable",
            GatewayError::BudgetExceeded(_) => "budget_exceeded",
            GatewayError::RateLimited(_) => "rate_limited",
            GatewayError::MethodNotAllowed(_) => "method_not_allowed",
            GatewayError::SocketUnavailable { .. } => "socket_unavailable",
            GatewayError::ResponseInFlight => "response_in_flight",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            GatewayError::Forbidden(_) => StatusCode::FORBIDDEN,
            GatewayError::BadRequest(_) => StatusCode::BAD_REQUEST,
            GatewayError::NoRoute(_) | GatewayError::NoMethod(_) => StatusCode::NOT_FOUND,
            GatewayError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            GatewayError::UpstreamUnavailable(_) => StatusCode::BAD_GATEWAY,
            GatewayError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::SpoolUnavailable | GatewayError::KeyStoreUnavailable | GatewayError::LimitsUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            GatewayError::BudgetExceeded(_) | GatewayError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::SocketUnavailable { .. } => StatusCode::UPGRADE_REQUIRED,
            GatewayError::ResponseInFlight => StatusCode::CONFLICT,
        }
    }

    /// OpenAI's `type` and `code` for this error.
    fn openai_kind(&self) -> (&'static str, &'static str) {
        match self {
            GatewayError::Unauthorized(_) => ("invalid_request_error", "invalid_api_key"),
            GatewayError::Forbidden(_) => ("invalid_request_error", "permission_denied"),
            GatewayError::BadRequest(_) => ("invalid_request_error", "invalid_request"),
            GatewayError::NoRoute(_) => ("invalid_request_error", "model_not_found"),
            GatewayError::NoMethod(_) => ("invalid_request_error", "unknown_url"),
            GatewayError::PayloadTooLarge(_) => ("invalid_request_error", "request_too_large"),
            GatewayError::RequestTimeout(_) => ("invalid_request_error", "request_timeout"),
            GatewayError::UpstreamUnavailable(_) | GatewayError::UpstreamTimeout(_) => ("api_error", "upstream_error"),
            GatewayError::SpoolUnavailable | GatewayError::KeyStoreUnavailable | GatewayError::LimitsUnavailable => {
                ("api_error", "service_unavailable")
            }
            GatewayError::BudgetExceeded(_) => ("insufficient_quota", "budget_exceeded"),
            GatewayError::RateLimited(r) => (r.resource.as_str(), "rate_limit_exceeded"),
            GatewayError::MethodNotAllowed(_) => ("invalid_request_error", "method_not_allowed"),
            GatewayError::SocketUnavailable { .. } => ("invalid_request_error", "websocket_unavailable"),
            GatewayError::ResponseInFlight => ("invalid_request_error", "response_already_in_progress"),
        }
    }

    /// Anthropic's error `type` for this error.
    fn anthropic_kind(&self) -> &'static str {
        match self {
            GatewayError::Unauthorized(_) => "authentication_error",
            GatewayError::Forbidden(_) => "permission_error",
            GatewayError::BadRequest(_) => "invalid_request_error",
            GatewayError::NoRoute(_) | GatewayError::NoMethod(_) => "not_found_error",
            GatewayError::PayloadTooLarge(_) => "request_too_large",
            GatewayError::RequestTimeout(_) => "timeout_error",
            GatewayError::UpstreamUnavailable(_) | GatewayError::UpstreamTimeout(_) => "api_error",
            GatewayError::SpoolUnavailable | GatewayError::KeyStoreUnavailable | GatewayError::LimitsUnavailable => {
                "overloaded_error"
            }
            GatewayError::BudgetExceeded(_) | GatewayError::RateLimited(_) => "rate_limit_error",
            GatewayError::MethodNotAllowed(_)
            | GatewayError::SocketUnavailable { .. }
            | GatewayError::ResponseInFlight => "invalid_request_error",
        }
    }

    /// The AWS error code Bedrock would answer with (botocore raises the exception of that
    /// name, read from the `x-amzn-ErrorType` header).
    pub fn bedrock_code(&self) -> &'static str {
        match self {
            GatewayError::Unauthorized(_) | GatewayError::Forbidden(_) => "AccessDeniedException",
            GatewayError::NoRoute(_) => "ResourceNotFoundException",
            GatewayError::BadRequest(_)
            | GatewayError::NoMethod(_)
            | GatewayError::PayloadTooLarge(_)
            | GatewayError::RequestTimeout(_)
            | GatewayError::MethodNotAllowed(_)
            | GatewayError::SocketUnavailable { .. }
            | GatewayError::ResponseInFlight => "ValidationException",
            GatewayError::UpstreamUnavailable(_) => "InternalServerException",
            GatewayError::UpstreamTimeout(_) => "ModelTimeoutException",
            GatewayError::SpoolUnavailable | GatewayError::KeyStoreUnavailable | GatewayError::LimitsUnavailable => {
                "ServiceUnavailableException"
            }
            GatewayError::BudgetExceeded(_) | GatewayError::RateLimited(_) => "ThrottlingException",
        }
    }

    /// The error body in `protocol`'s shape (the same object serves as a response body and as
    /// the data of an in-band SSE error event).
    pub fn body(&self, protocol: Protocol) -> Value {
        let message = self.to_string();
        let mut body = match protocol {
            Protocol::Anthropic => {
                json!({"type": "error", "error": {"type": self.anthropic_kind(), "message": message}})
            }
            Protocol::OpenAi | Protocol::Azure => {
                let (kind, code) = self.openai_kind();
                json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
            }
            Protocol::Gemini | Protocol::Vertex => {
                let status = self.status();
                json!({"error": {"code": status.as_u16(), "message": message, "status": google_status(status)}})
            }
            Protocol::Bedrock => json!({"message": message}),
        };
        if let GatewayError::BudgetExceeded(refusal) = self {
            let at = match protocol {
                Protocol::Bedrock => &mut body,
                _ => &mut body["error"],
            };
            at["budget"] = json!({
                "id": refusal.budget_id,
                "scope": refusal.scope,
                "limit_usd": refusal.limit.usd_string(),
                "spent_usd": refusal.spent.usd_string(),
                "reserved_usd": refusal.reserved.usd_string(),
                "resets_at": refusal.resets_at.map(goodhart_core::Micros::rfc3339),
            });
        }
        body
    }

    /// The error as a response in the client's protocol, before any byte of an answer went out.
    pub fn respond(&self, protocol: Protocol) -> Response {
        self.respond_with(protocol, self.body(protocol))
    }

    /// The error as a response in `protocol`, with `body` (the error in the client's shape).
    pub fn respond_with(&self, protocol: Protocol, body: Value) -> Response {
        let mut response = (self.status(), axum::Json(body)).into_response();
        if protocol == Protocol::Bedrock {
            response
                .headers_mut()
                .insert("x-amzn-errortype", HeaderValue::from_static(self.bedrock_code()));
        }
        if let Some(seconds) = self
            .retry_after()
            .and_then(|s| HeaderValue::from_str(&s.to_string()).ok())
        {
            response.headers_mut().insert(header::RETRY_AFTER, seconds);
        }
        response
    }

    /// How many seconds a client should wait before trying again, where that is known.
    fn retry_after(&self) -> Option<i64> {
        match self {
            GatewayError::SpoolUnavailable | GatewayError::KeyStoreUnavailable | GatewayError::LimitsUnavailable => {
                Some(1)
            }
            GatewayError::BudgetExceeded(refusal) => refusal
                .resets_at
                .map(|at| (at.0 - goodhart_store::now_micros().0).div_euclid(1_000_000).max(1)),
            GatewayError::RateLimited(refusal) => refusal.retry_after.map(|micros| (micros + 999_999) / 1_000_000),
            _ => None,
        }
    }

    /// The error as a frame of the Responses API's WebSocket mode: OpenAI's error body with the
    /// status an HTTP answer would have had, and its headers (`retry-after`), which clients
    /// such as Codex read as they would an HTTP error's.
    pub fn socket_event(&self) -> Value {
        let mut event = self.body(Protocol::OpenAi);
        event["type"] = "error".into();
        event["status"] = self.status().as_u16().into();
        if let Some(seconds) = self.retry_after() {
            event["headers"] = json!({ "retry-after": seconds.to_string() });
        }
        event
    }

    /// The error as the last event of a stream whose 200 already went out, in the client's
    /// protocol: OpenAI's SDKs raise on a `data:` event holding `{"error":{…}}`, Anthropic's on
    /// an `event: error`.
    pub fn sse_event(&self, protocol: Protocol) -> Bytes {
        let data = self.body(protocol).to_string();
        let text = match protocol {
            Protocol::OpenAi | Protocol::Gemini | Protocol::Azure | Protocol::Vertex => format!("data: {data}\n\n"),
            Protocol::Anthropic => format!("event: error\ndata: {data}\n\n"),
            Protocol::Bedrock => return self.event_stream_exception(),
        };
        Bytes::from(text)
    }

    /// The error as the last frame of a Bedrock event stream: an exception frame whose
    /// `:exception-type` is the error code in the stream's lower camel case
    /// (`throttlingException`), as the AWS SDKs raise it.
    pub fn event_stream_exception(&self) -> Bytes {
        let code = self.bedrock_code();
        let mut kind = code[..1].to_ascii_lowercase();
        kind.push_str(&code[1..]);
        goodhart_core::event_stream::exception_frame(&kind, &self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(response: Response) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn each_protocol_gets_its_own_error_shape() {
        let error = GatewayError::Unauthorized("unknown key".into());
        let openai = error.respond(Protocol::OpenAi);
        assert_eq!(openai.status(), StatusCode::UNAUTHORIZED);
        let body = body_of(openai).await;
        assert_eq!(body["error"]["code"], "invalid_api_key");
        assert_eq!(body["error"]["message"], "unknown key");
        let anthropic = body_of(error.respond(Protocol::Anthropic)).await;
        assert_eq!(anthropic["type"], "error");
        assert_eq!(anthropic["error"]["type"], "authentication_error");
        let gemini = body_of(error.respond(Protocol::Gemini)).await;
        assert_eq!(
            gemini,
            serde_json::json!({"error": {"code": 401, "message": "unknown key", "status": "UNAUTHENTICATED"}})
        );
    }

    #[tokio::test]
    async fn budget_refusals_name_the_budget_in_both_protocols() {
        let refusal = GatewayError::BudgetExceeded(Box::new(BudgetRefusal {
            budget_id: "3f9c0e12a7b4".into(),
            scope: "team payments".into(),
            limit: goodhart_core::Nanos(500_000_000_000),
            spent: goodhart_core::Nanos(499_900_000_000),
            reserved: goodhart_core::Nanos(250_000_000),
            window_start: goodhart_core::Micros(0),
            resets_at: Some(goodhart_core::Micros(4_102_444_800_000_000)),
            cause: Cause::Limit(Resource::Cost),
        }));
        let message = "budget 3f9c0e12a7b4 (team payments) would be exceeded: limit $500.00, spent $499.9000, \
                       reserved by calls in flight $0.2500; it resets at 2100-01-01T00:00:00Z";
        let budget = serde_json::json!({"id": "3f9c0e12a7b4", "scope": "team payments", "limit_usd": "500",
            "spent_usd": "499.9", "reserved_usd": "0.25", "resets_at": "2100-01-01T00:00:00Z"});
        let openai = refusal.respond(Protocol::OpenAi);
        assert_eq!(openai.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(
            openai.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                > 0
        );
        assert_eq!(
            body_of(openai).await,
            serde_json::json!({"error": {"message": message, "type": "insufficient_quota", "param": null,
                "code": "budget_exceeded", "budget": budget}})
        );
        assert_eq!(
            body_of(refusal.respond(Protocol::Anthropic)).await,
            serde_json::json!({"type": "error", "error": {"type": "rate_limit_error", "message": message, "budget": budget}})
        );
    }

    /// A key-store outage and a limits-store outage are the same thing to a client: try again
    /// shortly. Neither says what the database said.
    #[tokio::test]
    async fn store_outages_answer_alike_and_name_no_backend_text() {
        for protocol in Protocol::ALL {
            let (keys, limits) = (
                GatewayError::KeyStoreUnavailable.respond(protocol),
                GatewayError::LimitsUnavailable.respond(protocol),
            );
            for response in [keys, limits] {
                assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
                assert_eq!(response.headers()["retry-after"], "1");
                let aws_code = response.headers().get("x-amzn-errortype").cloned();
                let body = body_of(response).await;
                let (field, code) = match protocol {
                    Protocol::OpenAi | Protocol::Azure => ("code", "service_unavailable"),
                    Protocol::Anthropic => ("type", "overloaded_error"),
                    Protocol::Gemini | Protocol::Vertex => ("status", "UNAVAILABLE"),
                    Protocol::Bedrock => {
                        assert_eq!(aws_code.unwrap(), "ServiceUnavailableException");
                        assert!(!body["message"].as_str().unwrap().contains("database:"), "{body}");
                        continue;
                    }
                };
                assert_eq!(body["error"][field], code, "{body}");
                let message = body["error"]["message"].as_str().unwrap();
                assert!(!message.contains("database:"), "{message}");
            }
        }
        assert_eq!(GatewayError::KeyStoreUnavailable.kind(), "key_lookup");
        assert_eq!(GatewayError::LimitsUnavailable.kind(), "limits_unavailable");
    }

    /// Bedrock's errors: AWS's `{"message"}` with the code botocore raises in
    /// `x-amzn-ErrorType` (the table is part of the API: snapshot it here).
    #[tokio::test]
    async fn bedrock_errors_are_aws_errors_named_in_their_header() {
        let table: Vec<(&str, u16, &str)> = [
            GatewayError::Unauthorized("unknown key".into()),
            GatewayError::Forbidden("outside scope".into()),
            GatewayError::BadRequest("bad".into()),
            GatewayError::NoRoute("m".into()),
            GatewayError::PayloadTooLarge(1),
            GatewayError::UpstreamUnavailable("down".into()),
            GatewayError::UpstreamTimeout(30),
            GatewayError::SpoolUnavailable,
            GatewayError::LimitsUnavailable,
        ]
        .iter()
        .map(|e| (e.kind(), e.status().as_u16(), e.bedrock_code()))
        .collect();
        assert_eq!(
            table,
            [
                ("unauthorized", 401, "AccessDeniedException"),
                ("forbidden", 403, "AccessDeniedException"),
                ("bad_request", 400, "ValidationException"),
                ("no_route", 404, "ResourceNotFoundException"),
                ("payload_too_large", 413, "ValidationException"),
                ("upstream_unavailable", 502, "InternalServerException"),
                ("upstream_timeout", 504, "ModelTimeoutException"),
                ("spool", 503, "ServiceUnavailableException"),
                ("limits_unavailable", 503, "ServiceUnavailableException"),
            ]
        );
        let response = GatewayError::Unauthorized("unknown key".into()).respond(Protocol::Bedrock);
        assert_eq!(response.headers()["x-amzn-errortype"], "AccessDeniedException");
        assert_eq!(body_of(response).await, serde_json::json!({"message": "unknown key"}));
    }

    #[test]
    fn socket_errors_carry_the_status_and_retry_after_an_http_answer_would() {
        let event = GatewayError::LimitsUnavailable.socket_event();
        assert_eq!(event["type"], "error");
        assert_eq!(event["status"], 503);
        assert_eq!(event["error"]["code"], "service_unavailable");
        assert_eq!(event["headers"]["retry-after"], "1");
        let event = GatewayError::ResponseInFlight.socket_event();
        assert_eq!(event["status"], 409);
        assert!(event.get("headers").is_none());
    }

    #[test]
    fn stream_errors_are_events_in_the_clients_protocol() {
        let error = GatewayError::UpstreamTimeout(30);
        let openai = String::from_utf8(error.sse_event(Protocol::OpenAi).to_vec()).unwrap();
        let data: serde_json::Value = serde_json::from_str(openai.strip_prefix("data: ").unwrap().trim_end()).unwrap();
        assert!(openai.ends_with("\n\n"));
        assert_eq!(data["error"]["code"], "upstream_error");
        let anthropic = String::from_utf8(error.sse_event(Protocol::Anthropic).to_vec()).unwrap();
        let data = anthropic.strip_prefix("event: error\ndata: ").unwrap().trim_end();
        let data: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(data["type"], "error");
        assert_eq!(data["error"]["type"], "api_error");
    }
}
