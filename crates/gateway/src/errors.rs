//! Errors the gateway itself raises, answered in the shape of the client's own protocol so
//! that SDKs surface them as they would a provider's (OpenAI's `{"error":{…}}`, Anthropic's
//! `{"type":"error","error":{…}}`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use goodhart_core::limits::{BudgetRefusal, Cause, RateRefusal, Resource};
use serde_json::json;

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
    #[error(
        "budgets and rate limits cannot be checked right now (database: {0}); refusing calls rather than \
         letting them past a limit"
    )]
    LimitsUnavailable(String),
    #[error("{}", budget_message(.0))]
    BudgetExceeded(Box<BudgetRefusal>),
    #[error("rate limit of this key reached: {} {} per minute", .0.limit, .0.resource.as_str())]
    RateLimited(RateRefusal),
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
    fn status(&self) -> StatusCode {
        match self {
            GatewayError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            GatewayError::Forbidden(_) => StatusCode::FORBIDDEN,
            GatewayError::BadRequest(_) => StatusCode::BAD_REQUEST,
            GatewayError::NoRoute(_) => StatusCode::NOT_FOUND,
            GatewayError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            GatewayError::UpstreamUnavailable(_) => StatusCode::BAD_GATEWAY,
            GatewayError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::SpoolUnavailable | GatewayError::LimitsUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::BudgetExceeded(_) | GatewayError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// OpenAI's `type` and `code` for this error.
    fn openai_kind(&self) -> (&'static str, &'static str) {
        match self {
            GatewayError::Unauthorized(_) => ("invalid_request_error", "invalid_api_key"),
            GatewayError::Forbidden(_) => ("invalid_request_error", "permission_denied"),
            GatewayError::BadRequest(_) => ("invalid_request_error", "invalid_request"),
            GatewayError::NoRoute(_) => ("invalid_request_error", "model_not_found"),
            GatewayError::PayloadTooLarge(_) => ("invalid_request_error", "request_too_large"),
            GatewayError::RequestTimeout(_) => ("invalid_request_error", "request_timeout"),
            GatewayError::UpstreamUnavailable(_) | GatewayError::UpstreamTimeout(_) => ("api_error", "upstream_error"),
            GatewayError::SpoolUnavailable | GatewayError::LimitsUnavailable(_) => ("api_error", "service_unavailable"),
            GatewayError::BudgetExceeded(_) => ("insufficient_quota", "budget_exceeded"),
            GatewayError::RateLimited(r) => (r.resource.as_str(), "rate_limit_exceeded"),
        }
    }

    /// Anthropic's error `type` for this error.
    fn anthropic_kind(&self) -> &'static str {
        match self {
            GatewayError::Unauthorized(_) => "authentication_error",
            GatewayError::Forbidden(_) => "permission_error",
            GatewayError::BadRequest(_) => "invalid_request_error",
            GatewayError::NoRoute(_) => "not_found_error",
            GatewayError::PayloadTooLarge(_) => "request_too_large",
            GatewayError::RequestTimeout(_) => "timeout_error",
            GatewayError::UpstreamUnavailable(_) | GatewayError::UpstreamTimeout(_) => "api_error",
            GatewayError::SpoolUnavailable | GatewayError::LimitsUnavailable(_) => "overloaded_error",
            GatewayError::BudgetExceeded(_) | GatewayError::RateLimited(_) => "rate_limit_error",
        }
    }

    /// The error as the client's protocol shapes it.
    pub fn respond(&self, anthropic: bool) -> Response {
        let message = self.to_string();
        let mut body = if anthropic {
            json!({"type": "error", "error": {"type": self.anthropic_kind(), "message": message}})
        } else {
            let (kind, code) = self.openai_kind();
            json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
        };
        if let GatewayError::BudgetExceeded(refusal) = self {
            body["error"]["budget"] = json!({
                "id": refusal.budget_id,
                "scope": refusal.scope,
                "limit_usd": refusal.limit.usd_string(),
                "spent_usd": refusal.spent.usd_string(),
                "reserved_usd": refusal.reserved.usd_string(),
                "resets_at": refusal.resets_at.map(goodhart_core::Micros::rfc3339),
            });
        }
        let mut response = (self.status(), axum::Json(body)).into_response();
        let retry_after = match self {
            GatewayError::SpoolUnavailable | GatewayError::LimitsUnavailable(_) => Some(1),
            GatewayError::BudgetExceeded(refusal) => refusal
                .resets_at
                .map(|at| (at.0 - goodhart_store::now_micros().0).div_euclid(1_000_000).max(1)),
            GatewayError::RateLimited(refusal) => refusal.retry_after.map(|micros| (micros + 999_999) / 1_000_000),
            _ => None,
        };
        if let Some(seconds) = retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            response.headers_mut().insert(header::RETRY_AFTER, seconds);
        }
        response
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
        let openai = error.respond(false);
        assert_eq!(openai.status(), StatusCode::UNAUTHORIZED);
        let body = body_of(openai).await;
        assert_eq!(body["error"]["code"], "invalid_api_key");
        assert_eq!(body["error"]["message"], "unknown key");
        let anthropic = body_of(error.respond(true)).await;
        assert_eq!(anthropic["type"], "error");
        assert_eq!(anthropic["error"]["type"], "authentication_error");
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
        let openai = refusal.respond(false);
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
            body_of(refusal.respond(true)).await,
            serde_json::json!({"type": "error", "error": {"type": "rate_limit_error", "message": message, "budget": budget}})
        );
    }
}
