//! Viewer and ingest tokens: `GET/POST /api/v1/tokens`, `POST /api/v1/tokens/{id}/revoke`; a
//! person's own ingest tokens: `GET/POST /api/v1/me/ingest-tokens`,
//! `POST /api/v1/me/ingest-tokens/{id}/revoke`; the people directory and the roles given to people (`GET /api/v1/people`,
//! `PUT/DELETE /api/v1/people/{user}/role`); and
//! `GET /api/v1/me`, which tells a signed-in page who it is.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Serialize;

use super::audit::Caller;
use super::error::ApiError;
use super::keys::{OwnCredential, person};
use super::oidc::SessionCsrf;
use super::params::JsonBody;
use super::state::ApiState;
use crate::app::access::Access;
use crate::app::directory::{GrantView, MemberView, NewGrant};
use crate::app::own_keys::NewOwnIngestToken;
use crate::app::sessions::Identity;
use crate::app::viewers::{NewViewer, ViewerView};

#[derive(Debug, Serialize)]
pub struct TokensDocument {
    pub tokens: Vec<ViewerView>,
}

pub async fn create(
    State(state): State<ApiState>,
    Caller(origin): Caller,
    JsonBody(request): JsonBody<NewViewer>,
) -> Result<(StatusCode, Json<ViewerView>), ApiError> {
    let (token, secret) = state.app.create_token(&origin, request).await?;
    Ok((StatusCode::CREATED, Json(ViewerView::of(&token, Some(secret)))))
}

pub async fn list(State(state): State<ApiState>) -> Result<Json<TokensDocument>, ApiError> {
    let tokens = state.app.tokens().await?;
    Ok(Json(TokensDocument {
        tokens: tokens.iter().map(|t| ViewerView::of(t, None)).collect(),
    }))
}

pub async fn revoke(
    State(state): State<ApiState>,
    Caller(origin): Caller,
    Path(id): Path<String>,
) -> Result<Json<ViewerView>, ApiError> {
    let token = state.app.revoke_token(&origin, &id).await?;
    Ok(Json(ViewerView::of(&token, None)))
}

/// `GET /api/v1/me/ingest-tokens`: the person's ingest tokens, and how many they may hold.
#[derive(Debug, Serialize)]
pub struct OwnTokensDocument {
    pub tokens: Vec<ViewerView>,
    pub limits: OwnTokenLimits,
}

#[derive(Debug, Serialize)]
pub struct OwnTokenLimits {
    pub max_ingest_tokens: u32,
}

pub async fn list_own(
    State(state): State<ApiState>,
    Extension(access): Extension<Access>,
) -> Result<Json<OwnTokensDocument>, ApiError> {
    let user = person(&state, &access, OwnCredential::IngestTokens)?;
    let tokens = state.app.own_ingest_tokens(user).await?;
    Ok(Json(OwnTokensDocument {
        tokens: tokens.iter().map(|t| ViewerView::of(t, None)).collect(),
        limits: OwnTokenLimits {
            max_ingest_tokens: state.app.settings().self_service.max_ingest_tokens,
        },
    }))
}

pub async fn create_own(
    State(state): State<ApiState>,
    Extension(access): Extension<Access>,
    Caller(origin): Caller,
    JsonBody(request): JsonBody<NewOwnIngestToken>,
) -> Result<(StatusCode, Json<ViewerView>), ApiError> {
    let user = person(&state, &access, OwnCredential::IngestTokens)?;
    let (token, secret) = state.app.create_own_ingest_token(&origin, user, request).await?;
    Ok((StatusCode::CREATED, Json(ViewerView::of(&token, Some(secret)))))
}

pub async fn revoke_own(
    State(state): State<ApiState>,
    Extension(access): Extension<Access>,
    Caller(origin): Caller,
    Path(id): Path<String>,
) -> Result<Json<ViewerView>, ApiError> {
    let user = person(&state, &access, OwnCredential::IngestTokens)?;
    let token = state.app.revoke_own_ingest_token(&origin, user, &id).await?;
    Ok(Json(ViewerView::of(&token, None)))
}

/// `GET /api/v1/me`: the caller's role, what it may do, and (for a token) its id, name and
/// team; with a single sign-on session, also `identity` (issuer, subject, email, name, groups,
/// session) and the `csrf_token` to send in `X-CSRF-Token` with requests that change something.
pub async fn me(
    Extension(access): Extension<Access>,
    identity: Option<Extension<Identity>>,
    csrf: Option<Extension<SessionCsrf>>,
) -> Json<serde_json::Value> {
    let mut me = serde_json::json!({ "role": access.role(), "may": access.duties() });
    let (id, name) = match &access {
        Access::Admin => (None, None),
        Access::Ingest { id, .. } => (Some(id), None),
        Access::Viewer { id, name, .. }
        | Access::Finops { id, name }
        | Access::Manager { id, name, .. }
        | Access::Engineer { id, name, .. }
        | Access::Scim { id, name } => (Some(id), name.as_ref()),
    };
    if let Some(id) = id {
        me["id"] = id.as_str().into();
        me["name"] = name.map(String::as_str).into();
        me["team"] = access.team().into();
    }
    if let Some(user) = access.user() {
        me["user"] = user.into();
    }
    if let (Some(Extension(identity)), Some(Extension(SessionCsrf(token)))) = (identity, csrf) {
        me["identity"] = serde_json::json!(identity);
        me["csrf_token"] = token.into();
    }
    Json(me)
}

#[derive(Debug, Serialize)]
pub struct PeopleDocument {
    pub people: Vec<MemberView>,
    pub grants: Vec<GrantView>,
}

/// `GET /api/v1/people`: the people directory, as sign-ins recorded it, and the roles the admin
/// gave people.
pub async fn list_people(State(state): State<ApiState>) -> Result<Json<PeopleDocument>, ApiError> {
    let (people, grants) = (state.app.directory().await?, state.app.role_grants().await?);
    Ok(Json(PeopleDocument {
        people: people.iter().map(MemberView::of).collect(),
        grants: grants.iter().map(GrantView::of).collect(),
    }))
}

/// `PUT /api/v1/people/{user}/role`: gives a person a role in place of their groups'.
pub async fn put_role(
    State(state): State<ApiState>,
    Caller(origin): Caller,
    Path(user): Path<String>,
    JsonBody(request): JsonBody<NewGrant>,
) -> Result<Json<GrantView>, ApiError> {
    let grant = state.app.grant_role(&origin, &user, request).await?;
    Ok(Json(GrantView::of(&grant)))
}

/// `DELETE /api/v1/people/{user}/role`: their groups decide again.
pub async fn delete_role(
    State(state): State<ApiState>,
    Caller(origin): Caller,
    Path(user): Path<String>,
) -> Result<Json<GrantView>, ApiError> {
    let grant = state.app.revoke_role_grant(&origin, &user).await?;
    Ok(Json(GrantView::of(&grant)))
}
