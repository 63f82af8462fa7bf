//! The one place where errors become HTTP responses.
//!
//! Every error has a stable snake_case `code` (part of the public API: the table is
//! snapshot-tested), an HTTP status and a message; ingestion errors also name the line and the
//! field. Building an error has no side effects; the response middleware logs server errors.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::app::AppError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid token: send `Authorization: Bearer <admin, viewer or ingest token>`")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{message}")]
    InvalidEvent {
        line: usize,
        field: Option<String>,
        message: String,
    },
    #[error("{message}")]
    InvalidQuery { parameter: &'static str, message: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    InvalidField { field: &'static str, message: String },
    #[error("{0}")]
    Conflict(String),
    #[error("unsupported Content-Encoding {0:?}: send identity or gzip")]
    UnsupportedEncoding(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("no {0}")]
    NotFound(String),
    #[error("{0}")]
    BadSignature(String),
    #[error("storage failure: {0}")]
    Store(#[from] goodhart_store::StoreError),
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameter: Option<&'a str>,
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::InvalidEvent { .. } => "invalid_event",
            ApiError::InvalidQuery { .. } => "invalid_query",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::InvalidField { .. } => "invalid_field",
            ApiError::Conflict(_) => "conflict",
            ApiError::UnsupportedEncoding(_) => "unsupported_encoding",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::NotFound(_) => "not_found",
            ApiError::BadSignature(_) => "bad_signature",
            ApiError::Store(_) => "storage_unavailable",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized | ApiError::BadSignature(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::InvalidEvent { .. }
            | ApiError::InvalidQuery { .. }
            | ApiError::BadRequest(_)
            | ApiError::InvalidField { .. } => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::UnsupportedEncoding(_) | ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl ApiError {
    /// The message a client is shown: storage details (paths, SQL) stay in the server log.
    pub fn public_message(&self) -> String {
        match self {
            ApiError::Store(_) => "the database is unavailable; retry later".to_owned(),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (line, field, parameter) = match &self {
            ApiError::InvalidEvent { line, field, .. } => (Some(*line), field.as_deref(), None),
            ApiError::InvalidQuery { parameter, .. } => (None, None, Some(*parameter)),
            ApiError::InvalidField { field, .. } => (None, Some(*field), None),
            _ => (None, None, None),
        };
        let body = Body {
            error: Detail {
                code: self.code(),
                message: self.public_message(),
                line,
                field,
                parameter,
            },
        };
        let mut response = (self.status(), Json(body)).into_response();
        if let ApiError::Store(e) = self {
            response.extensions_mut().insert(LoggedError(e.to_string()));
        }
        response
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> ApiError {
        match error {
            AppError::Unauthorized => ApiError::Unauthorized,
            AppError::NotFound { what } => ApiError::NotFound(what),
            AppError::Conflict(message) => ApiError::Conflict(message),
            AppError::InvalidField { field, message } => ApiError::InvalidField { field, message },
            AppError::InvalidParameter { parameter, message } => ApiError::InvalidQuery { parameter, message },
            AppError::Rejected(message) => ApiError::BadRequest(message),
            AppError::Store(e) => ApiError::Store(e),
        }
    }
}

/// A server-side error's detail, carried to the logging middleware.
#[derive(Clone, Debug)]
pub struct LoggedError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    /// The code table is part of the public API: changing it breaks clients.
    #[test]
    fn error_code_table() {
        let table: Vec<(u16, &str)> = [
            ApiError::Unauthorized,
            ApiError::Forbidden(String::new()),
            ApiError::PayloadTooLarge { limit: 1 },
            ApiError::InvalidEvent {
                line: 1,
                field: None,
                message: String::new(),
            },
            ApiError::InvalidQuery {
                parameter: "from",
                message: String::new(),
            },
            ApiError::BadRequest(String::new()),
            ApiError::InvalidField {
                field: "user",
                message: String::new(),
            },
            ApiError::Conflict(String::new()),
            ApiError::UnsupportedEncoding(String::new()),
            ApiError::UnsupportedMediaType(String::new()),
            ApiError::NotFound(String::new()),
            ApiError::BadSignature(String::new()),
            ApiError::Store(goodhart_store::StoreError::Worker(String::new())),
        ]
        .iter()
        .map(|e| (e.status().as_u16(), e.code()))
        .collect();
        let documented: serde_json::Value = serde_json::from_str(crate::api::OPENAPI_JSON).unwrap();
        let documented_codes =
            &documented["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"];
        let codes: Vec<&str> = table.iter().map(|(_, code)| *code).collect();
        assert_eq!(
            documented_codes,
            &serde_json::json!(codes),
            "the OpenAPI document lists every error code"
        );
        assert_eq!(
            table,
            [
                (401, "unauthorized"),
                (403, "forbidden"),
                (413, "payload_too_large"),
                (400, "invalid_event"),
                (400, "invalid_query"),
                (400, "bad_request"),
                (400, "invalid_field"),
                (409, "conflict"),
                (415, "unsupported_encoding"),
                (415, "unsupported_media_type"),
                (404, "not_found"),
                (401, "bad_signature"),
                (503, "storage_unavailable"),
            ]
        );
    }
}
