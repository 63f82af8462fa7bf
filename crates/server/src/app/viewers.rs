//! Viewer and ingest tokens: read-only access for managers and teams, or send-only access for
//! exporters, created by the admin (the secret is returned once), listed and revoked.

use goodhart_core::Micros;
use goodhart_store::Store;
use goodhart_store::viewers::{TokenRole, ViewerToken};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::audit::{Event, Origin};
use super::keys::label;
use super::tokens::hash_token;
use super::{App, AppError};

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewViewer {
    /// Who it is for, e.g. `payments managers`.
    pub name: Option<String>,
    /// The one team it may see; every team when absent. For an ingest token: the team of the
    /// usage it sends that names none.
    pub team: Option<String>,
    /// `viewer` (the default: reads), `ingest` (sends usage: OTLP and the ingest API),
    /// `finops` (reads everything; manages budgets and keys), `manager` (reads `team`;
    /// confirms and dismisses its people's findings) or `engineer` (reads `user`'s own).
    pub role: Option<String>,
    /// The person an engineer's token speaks for; for an ingest token, the person all the
    /// usage it sends is attributed to (a personal ingest token).
    pub user: Option<String>,
}

/// A viewer token as the API shows it; `token` (the secret) only in the response that creates it.
#[derive(Debug, Serialize)]
pub struct ViewerView {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub name: Option<String>,
    pub team: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
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
            user: token.user.clone(),
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

async fn create_token(store: &dyn Store, request: NewViewer, now: Micros) -> Result<(ViewerToken, String), AppError> {
    let (secret_bytes, id_bytes): ([u8; 32], [u8; 6]) = {
        let mut rng = rand::rng();
        (rng.random(), rng.random())
    };
    let role = match request.role.as_deref() {
        None => TokenRole::Viewer,
        Some(text) => TokenRole::parse(text).ok_or_else(|| {
            AppError::field(
                "role",
                format!("field `role`: {text:?} is not `viewer`, `ingest`, `finops`, `manager`, `engineer` or `scim`"),
            )
        })?,
    };
    let team = label("team", request.team, false)?;
    let user = label("user", request.user, false)?;
    match (role, &team, &user) {
        (TokenRole::Manager, None, _) => {
            return Err(AppError::field(
                "team",
                "field `team`: a manager token needs the team it manages",
            ));
        }
        (TokenRole::Scim, Some(_), _) => {
            return Err(AppError::field(
                "team",
                "field `team`: a SCIM token provisions every team's people",
            ));
        }
        (TokenRole::Finops, Some(_), _) => {
            return Err(AppError::field(
                "team",
                "field `team`: a finops token sees every team (use a viewer or manager token for one)",
            ));
        }
        (TokenRole::Engineer, _, None) => {
            return Err(AppError::field(
                "user",
                "field `user`: an engineer's token needs the person it is for",
            ));
        }
        (TokenRole::Engineer, Some(_), _) => {
            return Err(AppError::field(
                "team",
                "field `team`: an engineer's token sees its person only",
            ));
        }
        (TokenRole::Engineer | TokenRole::Ingest, _, _) | (_, _, None) => {}
        (_, _, Some(_)) => {
            return Err(AppError::field(
                "user",
                "field `user`: only an engineer's token or a personal ingest token is for one person",
            ));
        }
    }
    let prefix = match role {
        TokenRole::Viewer => "gh_view_",
        TokenRole::Ingest => "gh_ingest_",
        TokenRole::Finops => "gh_finops_",
        TokenRole::Manager => "gh_manager_",
        TokenRole::Engineer => "gh_engineer_",
        TokenRole::Scim => "gh_scim_",
    };
    let secret = format!("{prefix}{}", hex::encode(secret_bytes));
    let token = ViewerToken {
        id: format!("vt_{}", hex::encode(id_bytes)),
        name: label("name", request.name, false)?,
        team,
        user,
        role,
        created_at: now,
        revoked_at: None,
    };
    store.create_viewer(&token, &hex::encode(hash_token(&secret))).await?;
    Ok((token, secret))
}

async fn revoke_token(store: &dyn Store, id: &str, now: Micros) -> Result<ViewerToken, AppError> {
    let find = async || {
        store
            .viewers()
            .await?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or_else(|| AppError::not_found(format!("viewer token {id}")))
    };
    find().await?;
    if !store.revoke_viewer(id, now).await? {
        return Err(AppError::Conflict(format!("viewer token {id} is already revoked")));
    }
    find().await
}

/// A token action's audit event (`viewer_token.*`, `finops_token.*`, `manager_token.*`,
/// `engineer_token.*`, `ingest_token.*` or `scim_token.*`; never its secret).
fn token_event(verb: &'static str, token: &ViewerToken) -> Event {
    let (kind, created, revoked) = match token.role {
        TokenRole::Viewer => ("viewer_token", "viewer_token.create", "viewer_token.revoke"),
        TokenRole::Ingest => ("ingest_token", "ingest_token.create", "ingest_token.revoke"),
        TokenRole::Finops => ("finops_token", "finops_token.create", "finops_token.revoke"),
        TokenRole::Manager => ("manager_token", "manager_token.create", "manager_token.revoke"),
        TokenRole::Engineer => ("engineer_token", "engineer_token.create", "engineer_token.revoke"),
        TokenRole::Scim => ("scim_token", "scim_token.create", "scim_token.revoke"),
    };
    let action = if verb == "create" { created } else { revoked };
    Event::new(action).on(kind, token.id.clone()).with(serde_json::json!({
        "name": token.name,
        "team": token.team,
        "user": token.user,
        "role": token.role.as_str(),
    }))
}

impl App {
    /// Validates and stores a new token; returns it with its secret (shown once).
    pub async fn create_token(&self, origin: &Origin, request: NewViewer) -> Result<(ViewerToken, String), AppError> {
        let (token, secret) = create_token(self.store(), request, self.now()).await?;
        self.audit(origin, token_event("create", &token)).await?;
        Ok((token, secret))
    }

    pub async fn tokens(&self) -> Result<Vec<ViewerToken>, AppError> {
        Ok(self.store().viewers().await?)
    }

    /// Revokes a token; revoking a revoked token is a conflict, an unknown one is not found.
    pub async fn revoke_token(&self, origin: &Origin, id: &str) -> Result<ViewerToken, AppError> {
        let token = revoke_token(self.store(), id, self.now()).await?;
        self.audit(origin, token_event("revoke", &token)).await?;
        Ok(token)
    }
}
