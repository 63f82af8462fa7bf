//! Budget administration: `GET/POST /api/v1/budgets`, `GET/DELETE /api/v1/budgets/{id}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Serialize;

use super::audit::Caller;
use super::error::ApiError;
use super::params::JsonBody;
use super::state::ApiState;
use crate::app::access::Access;
use crate::app::budgets::{BudgetView, NewBudget};

#[derive(Debug, Serialize)]
pub struct BudgetsDocument {
    pub budgets: Vec<BudgetView>,
}

pub async fn post_budget(
    State(state): State<ApiState>,
    Caller(origin): Caller,
    JsonBody(request): JsonBody<NewBudget>,
) -> Result<(StatusCode, Json<BudgetView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.app.create_budget(&origin, request).await?),
    ))
}

pub async fn list_budgets(
    State(state): State<ApiState>,
    Extension(access): Extension<Access>,
) -> Result<Json<BudgetsDocument>, ApiError> {
    let view = state.app.view_for(&access).await?;
    Ok(Json(BudgetsDocument {
        budgets: state.app.budgets(view.as_ref()).await?,
    }))
}

pub async fn get_budget(
    State(state): State<ApiState>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
) -> Result<Json<BudgetView>, ApiError> {
    let view = state.app.view_for(&access).await?;
    Ok(Json(state.app.budget(&id, view.as_ref()).await?))
}

pub async fn delete_budget(
    State(state): State<ApiState>,
    Caller(origin): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.app.delete_budget(&origin, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
