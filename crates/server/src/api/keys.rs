//! Virtual key administration: `GET/POST /api/v1/keys`, `POST /api/v1/keys/{id}/revoke|rotate`;
//! and a person's own: `GET/POST /api/v1/me/keys`, `POST /api/v1/me/keys/{id}/revoke`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Serialize;

use super::audit::Caller;
use super::error::ApiError;
use super::params::JsonBody;
use super::state::ApiState;
use crate::app::access::Access;
use crate::app::keys::{KeyView, NewKey};
use crate::app::own_keys::NewOwnKey;

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

/// What a person may make for themselves (each turned on or off in `[self_service]`).
#[derive(Debug, Clone, Copy)]
pub(super) enum OwnCredential {
    Keys,
    IngestTokens,
}

/// The person a request for one's own credentials speaks for, if self-service allows them.
pub(super) fn person<'a>(state: &ApiState, access: &'a Access, what: OwnCredential) -> Result<&'a str, ApiError> {
    let (path, allowed, setting) = match what {
        OwnCredential::Keys => ("keys", state.app.settings().self_service.keys, "keys"),
        OwnCredential::IngestTokens => (
            "ingest-tokens",
            state.app.settings().self_service.ingest_tokens,
            "ingest_tokens",
        ),
    };
    let user = access.user().ok_or_else(|| {
        ApiError::Forbidden(format!(
            "a {} token is no one person's: /api/v1/me/{path} serves an engineer's own token",
            access.role()
        ))
    })?;
    if !allowed {
        return Err(ApiError::Forbidden(format!(
            "people may not make their own {} here ([self_service] {setting} = false); ask an admin",
            path.replace('-', " ")
        )));
    }
    Ok(user)
}

/// `GET /api/v1/me/keys`: the person's keys, and the bounds `[self_service]` sets on those they
/// make (so a page can state them before anyone runs into one).
#[derive(Debug, Serialize)]
pub struct OwnKeysDocument {
    pub keys: Vec<KeyView>,
    pub limits: OwnKeyLimits,
}

#[derive(Debug, Serialize)]
pub struct OwnKeyLimits {
    pub max_keys: u32,
    pub max_key_days: u32,
    pub max_requests_per_minute: Option<u64>,
    pub max_tokens_per_minute: Option<u64>,
}

pub async fn list_own_keys(
    State(state): State<ApiState>,
    Extension(access): Extension<Access>,
) -> Result<Json<OwnKeysDocument>, ApiError> {
    let user = person(&state, &access, OwnCredential::Keys)?;
    let now = state.app.now();
    let keys = state.app.own_keys(user).await?;
    let rules = &state.app.settings().self_service;
    Ok(Json(OwnKeysDocument {
        keys: keys.iter().map(|k| KeyView::of(k, None, now)).collect(),
        limits: OwnKeyLimits {
            max_keys: rules.max_keys,
            max_key_days: rules.max_key_days,
            max_requests_per_minute: rules.max_requests_per_minute,
            max_tokens_per_minute: rules.max_tokens_per_minute,
        },
    }))
}

pub async fn post_own_key(
    State(state): State<ApiState>,
    Extension(access): Extension<Access>,
    Caller(origin): Caller,
    JsonBody(request): JsonBody<NewOwnKey>,
) -> Result<(StatusCode, Json<KeyView>), ApiError> {
    let user = person(&state, &access, OwnCredential::Keys)?;
    let (key, secret) = state.app.create_own_key(&origin, user, request).await?;
    Ok((
        StatusCode::CREATED,
        Json(KeyView::of(&key, Some(secret), state.app.now())),
    ))
}

pub async fn revoke_own_key(
    State(state): State<ApiState>,
    Extension(access): Extension<Access>,
    Caller(origin): Caller,
    Path(id): Path<String>,
) -> Result<Json<KeyView>, ApiError> {
    let user = person(&state, &access, OwnCredential::Keys)?;
    let key = state.app.revoke_own_key(&origin, user, &id).await?;
    Ok(Json(KeyView::of(&key, None, state.app.now())))
}
