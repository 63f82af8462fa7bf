//! Viewer tokens: read-only access for managers and teams, created by the admin (the secret is
//! returned once), listed and revoked; `GET /api/v1/me` tells a signed-in page who it is. The
//! admin API and the CLI (`goodhart tokens …`) both call these functions.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use goodhart_core::Micros;
use goodhart_store::Store;
use goodhart_store::viewers::{TokenRole, ViewerToken};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::auth::{Access, hash_token};
use crate::error::ApiError;
use crate::keys::label;
use crate::state::AppState;

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewViewer {
    /// Who it is for, e.g. `payments managers`.
    pub name: Option<String>,
    /// The one team it may see; every team when absent. For an ingest token: the team of the
    /// usage it sends that names none.
    pub team: Option<String>,
    /// `viewer` (the default: reads) or `ingest` (sends usage: OTLP and the ingest API).
    pub role: Option<String>,
}

/// A viewer token as the API shows it; `token` (the secret) only in the response that creates it.
#[derive(Debug, Serialize)]
pub struct ViewerView {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub name: Option<String>,
    pub team: Option<String>,
    pub role: &'static str,
    pub status: &'static str,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl ViewerView {
    pub fn of(token: &ViewerToken, secret: Option<String>) -> ViewerView {
        ViewerView {
            id: token.id.clone(),
            token: secret,
            name: token.name.clone(),
            team: token.team.clone(),
            role: token.role.as_str(),
            status: if token.revoked_at.is_some() {
                "revoked"
            } else {
                "active"
            },
            created_at: token.created_at.rfc3339(),
            revoked_at: token.revoked_at.map(Micros::rfc3339),
        }
    }
}

/// Validates a request and stores a new token; returns it with its secret (shown once).
pub async fn create_token(
    store: &dyn Store,
    request: NewViewer,
    now: Micros,
) -> Result<(ViewerToken, String), ApiError> {
    let (secret_bytes, id_bytes): ([u8; 32], [u8; 6]) = {
        let mut rng = rand::rng();
        (rng.random(), rng.random())
    };
    let role = match request.role.as_deref() {
        None => TokenRole::Viewer,
        Some(text) => TokenRole::parse(text).ok_or_else(|| ApiError::InvalidField {
            field: "role",
            message: format!("field `role`: {text:?} is not `viewer` or `ingest`"),
        })?,
    };
    let prefix = match role {
        TokenRole::Viewer => "gh_view_",
        TokenRole::Ingest => "gh_ingest_",
    };
    let secret = format!("{prefix}{}", hex::encode(secret_bytes));
    let token = ViewerToken {
        id: format!("vt_{}", hex::encode(id_bytes)),
        name: label("name", request.name, false)?,
        team: label("team", request.team, false)?,
        role,
        created_at: now,
        revoked_at: None,
    };
    store.create_viewer(&token, &hex::encode(hash_token(&secret))).await?;
    Ok((token, secret))
}

/// Revokes a token; revoking a revoked token is a conflict, an unknown one is not found.
pub async fn revoke_token(store: &dyn Store, id: &str, now: Micros) -> Result<ViewerToken, ApiError> {
    let find = async || {
        store
            .viewers()
            .await?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or_else(|| ApiError::NotFound(format!("viewer token {id}")))
    };
    find().await?;
    if !store.revoke_viewer(id, now).await? {
        return Err(ApiError::Conflict(format!("viewer token {id} is already revoked")));
    }
    find().await
}

pub async fn create(
    State(state): State<AppState>,
    request: Result<Json<NewViewer>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<ViewerView>), ApiError> {
    let Json(request) = request.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let (token, secret) = create_token(state.store.as_ref(), request, goodhart_store::now_micros()).await?;
    Ok((StatusCode::CREATED, Json(ViewerView::of(&token, Some(secret)))))
}

pub async fn list(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let tokens: Vec<ViewerView> = state
        .store
        .viewers()
        .await?
        .iter()
        .map(|t| ViewerView::of(t, None))
        .collect();
    Ok(Json(serde_json::json!({ "tokens": tokens })))
}

pub async fn revoke(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<ViewerView>, ApiError> {
    let token = revoke_token(state.store.as_ref(), &id, goodhart_store::now_micros()).await?;
    Ok(Json(ViewerView::of(&token, None)))
}

/// `GET /api/v1/me`: `{"role": "admin"}` or `{"role": "viewer", "id", "name", "team"}`.
pub async fn me(Extension(access): Extension<Access>) -> Json<serde_json::Value> {
    Json(match access {
        Access::Admin => serde_json::json!({ "role": "admin" }),
        Access::Viewer { id, name, team } => {
            serde_json::json!({ "role": "viewer", "id": id, "name": name, "team": team })
        }
        Access::Ingest { id, team } => serde_json::json!({ "role": "ingest", "id": id, "team": team }),
    })
}
