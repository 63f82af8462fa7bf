//! Virtual keys: create (the secret is returned once), list, revoke, rotate. A revoked or
//! rotated key stops working on this process's gateway at once (other instances within their
//! key cache's lifetime).

use goodhart_core::Micros;
use goodhart_core::keys::{KeyScope, RateLimits, VirtualKey, hash_secret, new_secret};
use goodhart_core::time::parse_span;
use goodhart_core::usage::MAX_LABEL_CHARS;
use goodhart_store::Store;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::audit::{Event, Origin};
use super::{App, AppError};

/// `POST /api/v1/keys`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub user: String,
    pub team: Option<String>,
    pub project: Option<String>,
    pub agent: Option<String>,
    pub name: Option<String>,
    /// A span such as `30d` or `12h`; no expiry when absent.
    pub expires_in: Option<String>,
    /// Calls allowed per minute (absent: unlimited).
    pub requests_per_minute: Option<u64>,
    /// Tokens of every kind allowed per minute (absent: unlimited).
    pub tokens_per_minute: Option<u64>,
}

/// A key as the API shows it; `key` (the secret) only in the response that creates it.
#[derive(Debug, Serialize)]
pub struct KeyView {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub name: Option<String>,
    pub user: String,
    pub team: Option<String>,
    pub project: Option<String>,
    pub agent: Option<String>,
    pub status: &'static str,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub replaced_by: Option<String>,
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
}

impl KeyView {
    pub fn of(key: &VirtualKey, secret: Option<String>, now: Micros) -> KeyView {
        KeyView {
            id: key.id.clone(),
            key: secret,
            name: key.name.clone(),
            user: key.scope.user.clone(),
            team: key.scope.team.clone(),
            project: key.scope.project.clone(),
            agent: key.scope.agent.clone(),
            status: key.status(now).as_str(),
            created_at: key.created_at.rfc3339(),
            expires_at: key.expires_at.map(Micros::rfc3339),
            revoked_at: key.revoked_at.map(Micros::rfc3339),
            replaced_by: key.replaced_by.clone(),
            requests_per_minute: key.limits.requests_per_minute,
            tokens_per_minute: key.limits.tokens_per_minute,
        }
    }
}

pub(crate) fn label(field: &'static str, value: Option<String>, required: bool) -> Result<Option<String>, AppError> {
    let invalid = |message: String| AppError::InvalidField { field, message };
    match value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
        None if required => Err(invalid(format!("`{field}` is required"))),
        None => Ok(None),
        Some(v) if v.chars().count() > MAX_LABEL_CHARS => Err(invalid(format!(
            "`{field}` is longer than {MAX_LABEL_CHARS} characters"
        ))),
        Some(v) if v.chars().any(char::is_control) => Err(invalid(format!("`{field}` contains control characters"))),
        Some(v) => Ok(Some(v)),
    }
}

/// A new key with a fresh secret for `scope`, created at `now`.
fn mint(
    scope: KeyScope,
    name: Option<String>,
    expires_at: Option<Micros>,
    limits: RateLimits,
    now: Micros,
) -> (VirtualKey, String) {
    let (id, secret) = new_secret(rand::rng().random(), rand::rng().random());
    let key = VirtualKey {
        id,
        name,
        scope,
        created_at: now,
        expires_at,
        revoked_at: None,
        replaced_by: None,
        limits,
    };
    (key, secret)
}

/// Validates a request and stores a new key; returns it with its secret (shown once).
async fn create(store: &dyn Store, request: NewKey, now: Micros) -> Result<(VirtualKey, String), AppError> {
    let scope = KeyScope {
        user: label("user", Some(request.user), true)?.unwrap_or_default(),
        team: label("team", request.team, false)?,
        project: label("project", request.project, false)?,
        agent: label("agent", request.agent, false)?,
    };
    let name = label("name", request.name, false)?;
    let expires_at = match request.expires_in.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(span) => match parse_span(span) {
            Some(micros) if micros > 0 => Some(Micros(now.0.saturating_add(micros))),
            _ => {
                return Err(AppError::field(
                    "expires_in",
                    format!("expected a positive span such as 30d, 12h or 2w, got {span:?}"),
                ));
            }
        },
    };
    for (field, limit) in [
        ("requests_per_minute", request.requests_per_minute),
        ("tokens_per_minute", request.tokens_per_minute),
    ] {
        // Stored as a signed 64-bit integer, like every count.
        if limit == Some(0) || limit.is_some_and(|n| i64::try_from(n).is_err()) {
            return Err(AppError::field(
                field,
                format!(
                    "`{field}` must be at least 1 and at most {} (leave it out for no limit)",
                    i64::MAX
                ),
            ));
        }
    }
    let limits = RateLimits {
        requests_per_minute: request.requests_per_minute,
        tokens_per_minute: request.tokens_per_minute,
    };
    let (key, secret) = mint(scope, name, expires_at, limits, now);
    store.create_key(&key, &hash_secret(&secret)).await?;
    Ok((key, secret))
}

/// Replaces an active key by a new one with the same scope, name and lifetime.
async fn rotate(store: &dyn Store, id: &str, now: Micros) -> Result<(VirtualKey, String), AppError> {
    let old = find(store, id).await?;
    let lifetime = old.expires_at.map(|at| at.0 - old.created_at.0);
    let (key, secret) = mint(
        old.scope.clone(),
        old.name.clone(),
        lifetime.map(|l| Micros(now.0 + l)),
        old.limits,
        now,
    );
    if !store.replace_key(id, &key, &hash_secret(&secret), now).await? {
        return Err(AppError::Conflict(format!("key {id} is already revoked")));
    }
    Ok((key, secret))
}

/// Revokes a key; revoking a revoked key is a conflict, an unknown one is not found.
async fn revoke(store: &dyn Store, id: &str, now: Micros) -> Result<VirtualKey, AppError> {
    find(store, id).await?;
    if !store.revoke_key(id, now).await? {
        return Err(AppError::Conflict(format!("key {id} is already revoked")));
    }
    find(store, id).await
}

async fn find(store: &dyn Store, id: &str) -> Result<VirtualKey, AppError> {
    store
        .keys()
        .await?
        .into_iter()
        .find(|k| k.id == id)
        .ok_or_else(|| AppError::not_found(format!("key {id}")))
}

/// A key action's audit event: the key and what it is for (never its secret).
fn key_event(action: &'static str, key: &VirtualKey) -> Event {
    Event::new(action).on("key", key.id.clone()).with(serde_json::json!({
        "name": key.name,
        "user": key.scope.user,
        "team": key.scope.team,
        "project": key.scope.project,
        "agent": key.scope.agent,
        "expires_at": key.expires_at.map(Micros::rfc3339),
        "requests_per_minute": key.limits.requests_per_minute,
        "tokens_per_minute": key.limits.tokens_per_minute,
    }))
}

impl App {
    /// Validates and stores a new key; returns it with its secret (shown once).
    pub async fn create_key(&self, origin: &Origin, request: NewKey) -> Result<(VirtualKey, String), AppError> {
        let (key, secret) = create(self.store(), request, self.now()).await?;
        self.audit(origin, key_event("key.create", &key)).await?;
        Ok((key, secret))
    }

    pub async fn keys(&self) -> Result<Vec<VirtualKey>, AppError> {
        Ok(self.store().keys().await?)
    }

    /// Revokes a key; the gateway here refuses it from now on.
    pub async fn revoke_key(&self, origin: &Origin, id: &str) -> Result<VirtualKey, AppError> {
        let key = revoke(self.store(), id, self.now()).await?;
        self.forget_keys();
        self.audit(origin, key_event("key.revoke", &key)).await?;
        Ok(key)
    }

    /// Replaces a key by a new one; the gateway here refuses the old one from now on.
    pub async fn rotate_key(&self, origin: &Origin, id: &str) -> Result<(VirtualKey, String), AppError> {
        let rotated = rotate(self.store(), id, self.now()).await?;
        self.forget_keys();
        let mut event = key_event("key.rotate", &rotated.0).on("key", id);
        event.details["replaced_by"] = serde_json::Value::String(rotated.0.id.clone());
        self.audit(origin, event).await?;
        Ok(rotated)
    }

    pub(crate) fn forget_keys(&self) {
        if let Some(gateway) = self.gateway() {
            gateway.invalidate_keys();
        }
    }
}
