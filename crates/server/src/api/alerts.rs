//! `GET /api/v1/alerts?from=&to=`: alerts raised in the window (default the last 30 days),
//! newest first, with their delivery state.

use axum::extract::State;
use axum::{Extension, Json};
use serde::Serialize;

use super::error::ApiError;
use super::params::{Params, WindowParams};
use super::state::ApiState;
use crate::app::access::Access;
use crate::app::alerts::AlertJson;

#[derive(Debug, Serialize)]
pub struct AlertsDocument {
    pub alerts: Vec<AlertJson>,
}

pub async fn list_alerts(
    State(state): State<ApiState>,
    Extension(access): Extension<Access>,
    Params(params): Params<WindowParams>,
) -> Result<Json<AlertsDocument>, ApiError> {
    let app = &state.app;
    let window = params.window(app.now())?;
    let view = app.view_for(&access).await?;
    let alerts = app.alerts(window, view.as_ref()).await?;
    Ok(Json(AlertsDocument {
        alerts: alerts.iter().map(AlertJson::from).collect(),
    }))
}
