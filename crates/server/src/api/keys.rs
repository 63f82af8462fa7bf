//! Virtual key administration: `GET/POST /api/v1/keys`, `POST /api/v1/keys/{id}/revoke|rotate`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;

use super::audit::Caller;
use super::error::ApiError;
use super::params::JsonBody;
use super::state::ApiState;
use crate::app::keys::{KeyView, NewKey};

#[derive(Debug, Serialize)]
pub struct KeysDocument {
    pub keys: Vec<KeyView>,
}

pub async fn post_key(
    State(state): State<ApiState>,
    Caller(origin): Caller,
    JsonBody(request): JsonBody<NewKey>,
) -> Result<(StatusCode, Json<KeyView>), ApiError> {
    let (key, secret) = state.app.create_key(&origin, request).await?;
    Ok((
        StatusCode::CREATED,
        Json(KeyView::of(&key, Some(secret), state.app.now())),
    ))
}

pub async fn list_keys(State(state): State<ApiState>) -> Result<Json<KeysDocument>, ApiError> {
    let now = state.app.now();
    let keys = state.app.keys().await?;
    Ok(Json(KeysDocument {
        keys: keys.iter().map(|k| KeyView::of(k, None, now)).collect(),
    }))
}

pub async fn revoke_key(
    State(state): State<ApiState>,
    Caller(origin): Caller,
    Path(id): Path<String>,
) -> Result<Json<KeyView>, ApiError> {
    let key = state.app.revoke_key(&origin, &id).await?;
    Ok(Json(KeyView::of(&key, None, state.app.now())))
}

pub async fn rotate_key(
    State(state): State<ApiState>,
    Caller(origin): Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<KeyView>), ApiError> {
    let (key, secret) = state.app.rotate_key(&origin, &id).await?;
    Ok((
        StatusCode::CREATED,
        Json(KeyView::of(&key, Some(secret), state.app.now())),
    ))
}
