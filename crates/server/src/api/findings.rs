//! Waste findings: `GET /api/v1/findings`, `POST /api/v1/findings/detect` and people's
//! decisions (the admin's, or a manager's for the team), `POST /api/v1/findings/{id}/confirm|dismiss` with an optional `{"note": "…"}`.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use goodhart_core::waste::FindingStatus;
use serde::Deserialize;

use super::audit::Caller;
use super::body::{deserialize_body, read_body};
use super::error::ApiError;
use super::params::{FindingsParams, Params, WindowParams};
use super::state::ApiState;
use crate::app::access::Access;
use crate::app::audit::Origin;
use crate::app::findings::{FindingJson, FindingsDocument, PassReport};

/// `GET /api/v1/findings?from=&to=&status=&user=`.
pub async fn get_findings(
    State(state): State<ApiState>,
    Extension(access): Extension<Access>,
    Params(params): Params<FindingsParams>,
) -> Result<Json<FindingsDocument>, ApiError> {
    let app = &state.app;
    let query = params.query(app.now())?;
    let view = app.view_for(&access).await?;
    Ok(Json(app.findings(&query, view.as_ref()).await?))
}

/// `POST /api/v1/findings/detect?from=&to=`: a pass over the window now (default the last 30
/// days); new high-confidence findings raise alerts as a scheduled pass's would.
pub async fn post_detect(
    State(state): State<ApiState>,
    Caller(origin): Caller,
    Params(params): Params<WindowParams>,
) -> Result<Json<PassReport>, ApiError> {
    let window = params.window(state.app.now())?;
    Ok(Json(state.app.detect(&origin, window).await?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Decision {
    note: Option<String>,
}

async fn decide(
    state: &ApiState,
    access: &Access,
    origin: &Origin,
    id: &str,
    status: FindingStatus,
    body: &Bytes,
) -> Result<Json<FindingJson>, ApiError> {
    let decision: Decision = if body.iter().all(u8::is_ascii_whitespace) {
        Decision::default()
    } else {
        deserialize_body(body)?
    };
    Ok(Json(
        state
            .app
            .decide(origin, access, id, status, decision.note.as_deref())
            .await?,
    ))
}

/// `POST /api/v1/findings/{id}/confirm`.
pub async fn post_confirm(
    State(state): State<ApiState>,
    Extension(access): Extension<Access>,
    Caller(origin): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<FindingJson>, ApiError> {
    let body = read_body(body, &headers, state.max_body_bytes).await?;
    decide(&state, &access, &origin, &id, FindingStatus::Confirmed, &body).await
}

/// `POST /api/v1/findings/{id}/dismiss`: the finding stops counting as waste.
pub async fn post_dismiss(
    State(state): State<ApiState>,
    Extension(access): Extension<Access>,
    Caller(origin): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<FindingJson>, ApiError> {
    let body = read_body(body, &headers, state.max_body_bytes).await?;
    decide(&state, &access, &origin, &id, FindingStatus::Dismissed, &body).await
}
