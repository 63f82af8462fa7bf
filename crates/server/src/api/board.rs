//! `GET /api/v1/leaderboard?from=&to=&by=user|team|agent&metric=value|efficiency|volume`.

use axum::extract::State;
use axum::{Extension, Json};

use super::error::ApiError;
use super::params::{BoardParams, Params};
use super::state::ApiState;
use crate::app::access::Access;
use crate::app::board::BoardDocument;

pub async fn get_leaderboard(
    State(state): State<ApiState>,
    Extension(access): Extension<Access>,
    Params(params): Params<BoardParams>,
) -> Result<Json<BoardDocument>, ApiError> {
    let app = &state.app;
    let query = params.query(app)?;
    let view = app.view_for(&access).await?;
    Ok(Json(app.leaderboard(&query, view.as_ref()).await?))
}
