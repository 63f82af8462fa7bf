//! Errors the gateway itself raises, answered in the shape of the client's own protocol so
//! that SDKs surface them as they would a provider's (OpenAI's `{"error":{…}}`, Anthropic's
//! `{"type":"error","error":{…}}`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
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
            GatewayError::SpoolUnavailable => StatusCode::SERVICE_UNAVAILABLE,
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
            GatewayError::SpoolUnavailable => ("api_error", "service_unavailable"),
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
            GatewayError::SpoolUnavailable => "overloaded_error",
        }
    }

    /// The error as the client's protocol shapes it.
    pub fn respond(&self, anthropic: bool) -> Response {
        let message = self.to_string();
        let body = if anthropic {
            json!({"type": "error", "error": {"type": self.anthropic_kind(), "message": message}})
        } else {
            let (kind, code) = self.openai_kind();
            json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
        };
        let mut response = (self.status(), axum::Json(body)).into_response();
        if matches!(self, GatewayError::SpoolUnavailable) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
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
}
