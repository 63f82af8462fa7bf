//! `GET /api/v1/subjects/{by}/{name}?from&to`: one person's, team's or agent's page of data.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use goodhart_core::value::By;

use super::error::ApiError;
use super::params::{Params, WindowParams};
use super::state::ApiState;
use crate::app::access::Access;
use crate::app::subjects::SubjectDocument;

pub async fn get_subject(
    State(state): State<ApiState>,
    Extension(access): Extension<Access>,
    Path((by_text, name)): Path<(String, String)>,
    Params(params): Params<WindowParams>,
) -> Result<Json<SubjectDocument>, ApiError> {
    let by = By::parse(&by_text).ok_or_else(|| ApiError::NotFound(format!("{by_text} {name}")))?;
    let app = &state.app;
    let window = params.window(app.now())?;
    let view = app.view_for(&access).await?;
    Ok(Json(app.subject(by, &name, window, view.as_ref()).await?))
}
