//! Reports: `GET /api/v1/usage/summary`, `GET /api/v1/reports/roi`,
//! `GET /api/v1/reconciliation` and `GET /api/v1/reports/reconciliation`.

use axum::extract::State;
use axum::{Extension, Json};

use super::error::ApiError;
use super::params::{Params, SummaryParams, WindowParams};
use super::state::ApiState;
use crate::app::access::Access;
use crate::app::bills::BillDocument;
use crate::app::reports::{ReconciliationDocument, RoiDocument, SummaryDocument};

pub async fn get_summary(
    State(state): State<ApiState>,
    Extension(access): Extension<Access>,
    Params(params): Params<SummaryParams>,
) -> Result<Json<SummaryDocument>, ApiError> {
    let app = &state.app;
    let query = params.query(app.now())?;
    let view = app.view_for(&access).await?;
    Ok(Json(app.summary(&query, view.as_ref()).await?))
}

pub async fn get_roi(
    State(state): State<ApiState>,
    Extension(access): Extension<Access>,
    Params(params): Params<WindowParams>,
) -> Result<Json<RoiDocument>, ApiError> {
    let app = &state.app;
    let window = params.window(app.now())?;
    let view = app.view_for(&access).await?;
    Ok(Json(app.roi(window, view.as_ref()).await?))
}

/// `GET /api/v1/reconciliation?from&to`: per session whose agent reported counters in the
/// window, what the counters say beside what was recorded (from any source) — the sessions
/// with tokens no recorded call accounts for come first.
pub async fn get_reconciliation(
    State(state): State<ApiState>,
    Params(params): Params<WindowParams>,
) -> Result<Json<ReconciliationDocument>, ApiError> {
    let window = params.window(state.app.now())?;
    Ok(Json(state.app.reconciliation(window).await?))
}

/// `GET /api/v1/reports/reconciliation?from&to`: the providers' imported usage and cost reports
/// beside what was metered, per day, provider and model, the largest cost drift first.
pub async fn get_bill_reconciliation(
    State(state): State<ApiState>,
    Params(params): Params<WindowParams>,
) -> Result<Json<BillDocument>, ApiError> {
    let window = params.window(state.app.now())?;
    Ok(Json(state.app.bill_reconciliation(window).await?))
}
