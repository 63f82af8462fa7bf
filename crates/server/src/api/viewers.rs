//! Viewer and ingest tokens: `GET/POST /api/v1/tokens`, `POST /api/v1/tokens/{id}/revoke`; and
//! `GET /api/v1/me`, which tells a signed-in page who it is.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Serialize;

use super::error::ApiError;
use super::oidc::SessionCsrf;
use super::params::JsonBody;
use super::state::ApiState;
use crate::app::access::Access;
use crate::app::sessions::Identity;
use crate::app::viewers::{NewViewer, ViewerView};

#[derive(Debug, Serialize)]
pub struct TokensDocument {
    pub tokens: Vec<ViewerView>,
}

pub async fn create(
    State(state): State<ApiState>,
    JsonBody(request): JsonBody<NewViewer>,
) -> Result<(StatusCode, Json<ViewerView>), ApiError> {
    let (token, secret) = state.app.create_token(request).await?;
    Ok((StatusCode::CREATED, Json(ViewerView::of(&token, Some(secret)))))
}

pub async fn list(State(state): State<ApiState>) -> Result<Json<TokensDocument>, ApiError> {
    let tokens = state.app.tokens().await?;
    Ok(Json(TokensDocument {
        tokens: tokens.iter().map(|t| ViewerView::of(t, None)).collect(),
    }))
}

pub async fn revoke(State(state): State<ApiState>, Path(id): Path<String>) -> Result<Json<ViewerView>, ApiError> {
    let token = state.app.revoke_token(&id).await?;
    Ok(Json(ViewerView::of(&token, None)))
}

/// `GET /api/v1/me`: `{"role": "admin"}` or `{"role": "viewer", "id", "name", "team"}`; with
/// a single sign-on session, also `identity` (issuer, subject, email, name, groups, session)
/// and the `csrf_token` to send in `X-CSRF-Token` with requests that change something.
pub async fn me(
    Extension(access): Extension<Access>,
    identity: Option<Extension<Identity>>,
    csrf: Option<Extension<SessionCsrf>>,
) -> Json<serde_json::Value> {
    let mut document = match access {
        Access::Admin => serde_json::json!({ "role": "admin" }),
        Access::Viewer { id, name, team } => {
            serde_json::json!({ "role": "viewer", "id": id, "name": name, "team": team })
        }
        Access::Ingest { id, team } => serde_json::json!({ "role": "ingest", "id": id, "team": team }),
    };
    if let (Some(Extension(identity)), Some(Extension(SessionCsrf(token)))) = (identity, csrf) {
        document["identity"] = serde_json::json!(identity);
        document["csrf_token"] = token.into();
    }
    Json(document)
}
