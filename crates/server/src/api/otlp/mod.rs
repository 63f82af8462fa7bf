//! The OpenTelemetry receiver: OTLP/HTTP at `/otlp/v1/logs`, `/otlp/v1/metrics` and
//! `/otlp/v1/traces`, so an agent exporting with `OTEL_EXPORTER_OTLP_ENDPOINT=http://host/otlp`
//! reports its usage here.
//!
//! Bodies are protobuf (`application/x-protobuf`, the exporters' default) or JSON
//! (`application/json`), gzip-compressed or not, chunked or not. What they hold is read by
//! [`usage`]: model calls from logs and spans become usage events (priced and stored like all
//! usage, under the same call id the gateway and the log importers use, so a call is stored
//! once), metric points are kept for reconciliation. The answer follows OTLP/HTTP: the export
//! response in the request's encoding, with a partial success naming what was rejected and
//! why, and — as a warning, nothing rejected — which records were accepted but not kept
//! because they are not usage; a request that cannot be read at all is a `google.rpc.Status`
//! with 400, 401, 403, 413 or 415 (never retried by exporters), a storage failure a 503
//! (retried).
//!
//! OTLP/gRPC is not served: the server speaks HTTP/1.1 only (no HTTP/2, no tonic), and a gRPC
//! exporter's connection is closed unanswered. Exporters that default to gRPC (Gemini CLI) are
//! set to OTLP/HTTP instead (see the README).

pub mod usage;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use goodhart_core::Micros;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::body::read_body;
use super::error::{ApiError, LoggedError};
use super::state::ApiState;
use crate::app::access::Access;
use usage::{Defaults, Extracted};

/// How an export request's body (and so its response) is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    /// The encoding a `Content-Type` names; anything else is refused with 415.
    pub fn of(headers: &HeaderMap) -> Result<Encoding, ApiError> {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let media_type = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match media_type.as_str() {
            "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
            "application/json" => Ok(Encoding::Json),
            _ => Err(ApiError::UnsupportedMediaType(format!(
                "Content-Type {content_type:?}: OTLP/HTTP takes application/x-protobuf or application/json"
            ))),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }

    /// Decodes an export request; a body that is not one is a 400 saying why.
    pub fn decode<T: Message + Default + DeserializeOwned>(self, body: &[u8]) -> Result<T, ApiError> {
        match self {
            Encoding::Protobuf => {
                T::decode(body).map_err(|e| ApiError::BadRequest(format!("body is not an OTLP protobuf message: {e}")))
            }
            Encoding::Json => {
                // serde reads a message from a JSON array too (field by field, in order): `[]`
                // would be an empty export answered with success.
                if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
                    return Err(ApiError::BadRequest(
                        "body is not an OTLP JSON message: it must be a JSON object".into(),
                    ));
                }
                let mut deserializer = serde_json::Deserializer::from_slice(body);
                let message = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
                    let path = e.path().to_string();
                    let at = if path == "." {
                        String::new()
                    } else {
                        format!(" at `{path}`")
                    };
                    ApiError::BadRequest(format!("body is not an OTLP JSON message{at}: {}", e.into_inner()))
                })?;
                deserializer
                    .end()
                    .map_err(|e| ApiError::BadRequest(format!("body is not an OTLP JSON message: {e}")))?;
                Ok(message)
            }
        }
    }

    fn encode<T: Message + Serialize>(self, message: &T) -> Vec<u8> {
        match self {
            Encoding::Protobuf => message.encode_to_vec(),
            Encoding::Json => {
                // Serializing generated messages cannot fail. Absent fields are left out, as
                // protobuf's JSON mapping writes them, rather than written as null.
                let mut value = serde_json::to_value(message).unwrap_or_default();
                if let Some(object) = value.as_object_mut() {
                    object.retain(|_, v| !v.is_null());
                }
                serde_json::to_vec(&value).unwrap_or_default()
            }
        }
    }

    fn respond<T: Message + Serialize>(self, status: StatusCode, message: &T) -> Response {
        let mut response = (status, self.encode(message)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(self.content_type()));
        response
    }
}

/// `google.rpc.Status`: the body of an OTLP/HTTP error response.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct RpcStatus {
    /// The gRPC status code (3 invalid argument, 16 unauthenticated, 14 unavailable…).
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// An error as OTLP/HTTP wants it: the HTTP status of [`ApiError`] and a `Status` message in
/// the request's encoding (JSON when the encoding itself was the problem).
fn otlp_error(error: ApiError, encoding: Encoding) -> Response {
    let status = error.status();
    let code = match status {
        StatusCode::UNAUTHORIZED => 16,
        StatusCode::FORBIDDEN => 7,
        StatusCode::PAYLOAD_TOO_LARGE => 8,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::INTERNAL_SERVER_ERROR => 14,
        _ => 3,
    };
    let mut response = encoding.respond(
        status,
        &RpcStatus {
            code,
            message: error.public_message(),
        },
    );
    if let ApiError::Store(e) = &error {
        response.extensions_mut().insert(LoggedError(e.to_string()));
    }
    response
}

/// The three OTLP signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalKind {
    Logs,
    Metrics,
    Traces,
}

/// Decodes an export of `kind` and reads what it says about usage: what the receiver stores.
pub fn read_export(
    kind: SignalKind,
    encoding: Encoding,
    body: &[u8],
    defaults: &Defaults,
    now: Micros,
) -> Result<Extracted, ApiError> {
    match kind {
        SignalKind::Logs => ExportLogsServiceRequest::read(encoding, body, defaults, now),
        SignalKind::Metrics => ExportMetricsServiceRequest::read(encoding, body, defaults, now),
        SignalKind::Traces => ExportTraceServiceRequest::read(encoding, body, defaults, now),
    }
}

/// One OTLP signal: its request and response messages, and how its partial success is built.
trait Signal: Message + Default + DeserializeOwned {
    type Response: Message + Serialize;
    /// What its records are called, one and many, and why an ignored one was not kept.
    const IGNORED: [&'static str; 3];
    fn extract(&self, defaults: &Defaults, now: Micros) -> Extracted;
    fn response(rejected: u64, error_message: String) -> Self::Response;

    fn read(encoding: Encoding, body: &[u8], defaults: &Defaults, now: Micros) -> Result<Extracted, ApiError> {
        Ok(encoding.decode::<Self>(body)?.extract(defaults, now))
    }
}

impl Signal for ExportLogsServiceRequest {
    type Response = ExportLogsServiceResponse;
    const IGNORED: [&'static str; 3] = ["log record", "log records", "without model usage"];
    fn extract(&self, defaults: &Defaults, now: Micros) -> Extracted {
        usage::from_logs(self, defaults, now)
    }
    fn response(rejected: u64, error_message: String) -> Self::Response {
        ExportLogsServiceResponse {
            partial_success: (rejected > 0 || !error_message.is_empty()).then_some(ExportLogsPartialSuccess {
                rejected_log_records: rejected as i64,
                error_message,
            }),
        }
    }
}

impl Signal for ExportTraceServiceRequest {
    type Response = ExportTraceServiceResponse;
    const IGNORED: [&'static str; 3] = ["span", "spans", "without model-call usage"];
    fn extract(&self, defaults: &Defaults, now: Micros) -> Extracted {
        usage::from_spans(self, defaults, now)
    }
    fn response(rejected: u64, error_message: String) -> Self::Response {
        ExportTraceServiceResponse {
            partial_success: (rejected > 0 || !error_message.is_empty()).then_some(ExportTracePartialSuccess {
                rejected_spans: rejected as i64,
                error_message,
            }),
        }
    }
}

impl Signal for ExportMetricsServiceRequest {
    type Response = ExportMetricsServiceResponse;
    const IGNORED: [&'static str; 3] = [
        "metric data point",
        "metric data points",
        "of metrics the receiver does not read",
    ];
    fn extract(&self, defaults: &Defaults, now: Micros) -> Extracted {
        usage::from_metrics(self, defaults, now)
    }
    fn response(rejected: u64, error_message: String) -> Self::Response {
        ExportMetricsServiceResponse {
            partial_success: (rejected > 0 || !error_message.is_empty()).then_some(ExportMetricsPartialSuccess {
                rejected_data_points: rejected as i64,
                error_message,
            }),
        }
    }
}

/// `POST /otlp/v1/logs`: Claude Code's `api_request`, Codex's `response.completed` and Gemini
/// CLI's `api_response` events, and GenAI inference details events.
pub async fn post_logs(state: State<ApiState>, access: Extension<Access>, headers: HeaderMap, body: Body) -> Response {
    receive::<ExportLogsServiceRequest>(state, access, headers, body).await
}

/// `POST /otlp/v1/traces`: OpenTelemetry GenAI model-call spans.
pub async fn post_traces(
    state: State<ApiState>,
    access: Extension<Access>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    receive::<ExportTraceServiceRequest>(state, access, headers, body).await
}

/// `POST /otlp/v1/metrics`: Claude Code's token and cost counters, kept for reconciliation.
pub async fn post_metrics(
    state: State<ApiState>,
    access: Extension<Access>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    receive::<ExportMetricsServiceRequest>(state, access, headers, body).await
}

async fn receive<S: Signal>(
    State(state): State<ApiState>,
    Extension(access): Extension<Access>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let encoding = match Encoding::of(&headers) {
        Ok(encoding) => encoding,
        Err(e) => return otlp_error(e, Encoding::Json),
    };
    match store_export::<S>(&state, &access, encoding, &headers, body).await {
        Ok((rejected, message)) => encoding.respond(StatusCode::OK, &S::response(rejected, message)),
        Err(e) => otlp_error(e, encoding),
    }
}

/// Reads, decodes and stores one export request; returns what was rejected and why.
async fn store_export<S: Signal>(
    state: &ApiState,
    access: &Access,
    encoding: Encoding,
    headers: &HeaderMap,
    body: Body,
) -> Result<(u64, String), ApiError> {
    let raw: Bytes = read_body(body, headers, state.max_body_bytes).await?;
    let app = &state.app;
    let defaults = Defaults {
        team: access.team().map(str::to_owned),
        user: access.user().map(str::to_owned),
        store_content: app.settings().store_content,
    };
    let extracted = S::read(encoding, &raw, &defaults, app.now())?;
    let message = answer_message(&extracted, S::IGNORED);
    if !extracted.events.is_empty() {
        app.store_usage(extracted.events).await?;
    }
    if !extracted.points.is_empty() {
        app.store_telemetry(&extracted.points).await?;
    }
    Ok((extracted.rejected, message))
}

/// The answer's `error_message`: why records were rejected, then what was ignored. Ignored
/// records were accepted, so they are not counted in `rejected_*`: OTLP's way to say so is a
/// warning, a non-empty message with nothing rejected.
fn answer_message(extracted: &Extracted, ignored: [&str; 3]) -> String {
    extracted
        .problems
        .iter()
        .cloned()
        .chain(extracted.ignored.warning(ignored))
        .collect::<Vec<_>>()
        .join("; ")
}
