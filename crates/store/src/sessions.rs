//! Dashboard sessions of people signed in through OpenID Connect: stored by the SHA-256 of
//! their secret (the cookie carries the secret), with an expiry and a revocation; the SQL is
//! shared by both backends.

use async_trait::async_trait;
use goodhart_core::Micros;

use crate::error::StoreError;

/// A session as stored (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The public handle an admin lists and revokes by.
    pub id: String,
    /// Who signed in: the IdP's issuer and the person's subject there.
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// The IdP's groups of the person at sign-in.
    pub groups: Vec<String>,
    pub created_at: Micros,
    pub expires_at: Micros,
    pub revoked_at: Option<Micros>,
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session; its id and hash must be new.
    async fn create_session(&self, session: &Session, secret_hash: &str) -> Result<(), StoreError>;
    /// The session of a secret's hash, revoked or expired ones included.
    async fn session_by_hash(&self, secret_hash: &str) -> Result<Option<Session>, StoreError>;
    /// The sessions neither revoked nor expired at `now`, newest first.
    async fn live_sessions(&self, now: Micros) -> Result<Vec<Session>, StoreError>;
    /// Revokes a session that is not revoked yet (forgetting its ID token); returns whether it did.
    async fn revoke_session(&self, id: &str, at: Micros) -> Result<bool, StoreError>;
    /// Keeps the ID token of a session's sign-in (for `id_token_hint` at sign-out).
    async fn keep_session_id_token(&self, id: &str, id_token: &str) -> Result<(), StoreError>;
    /// The ID token kept for the session of a secret's hash, while it is not revoked.
    async fn session_id_token(&self, secret_hash: &str) -> Result<Option<String>, StoreError>;
    /// Marks a sign-in's state (its hash) used; false when it already was (a replay).
    async fn use_login_state(&self, state_hash: &str, at: Micros) -> Result<bool, StoreError>;
    /// Forgets the states used before `before`.
    async fn forget_login_states(&self, before: Micros) -> Result<(), StoreError>;
}

pub(crate) const INSERT: &str = "INSERT INTO sessions (id, secret_hash, issuer, subject, email, name, groups_json, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
const COLUMNS: &str = "id, issuer, subject, email, name, groups_json, created_at, expires_at, revoked_at";
pub(crate) fn select_by_hash() -> String {
    format!("SELECT {COLUMNS} FROM sessions WHERE secret_hash = $1")
}
pub(crate) fn select_live() -> String {
    format!("SELECT {COLUMNS} FROM sessions WHERE revoked_at IS NULL AND expires_at > $1 ORDER BY created_at DESC, id")
}
pub(crate) const USE_LOGIN_STATE: &str =
    "INSERT INTO used_login_states (state_hash, used_at) VALUES ($1, $2) ON CONFLICT (state_hash) DO NOTHING";
pub(crate) const FORGET_LOGIN_STATES: &str = "DELETE FROM used_login_states WHERE used_at < $1";
pub(crate) const REVOKE: &str =
    "UPDATE sessions SET revoked_at = $1, id_token = NULL WHERE id = $2 AND revoked_at IS NULL";
pub(crate) const KEEP_ID_TOKEN: &str = "UPDATE sessions SET id_token = $1 WHERE id = $2";
pub(crate) const SELECT_ID_TOKEN: &str =
    "SELECT id_token FROM sessions WHERE secret_hash = $1 AND revoked_at IS NULL AND id_token IS NOT NULL";

/// A row's columns in the order of the selects above.
pub(crate) type Row = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    i64,
    i64,
    Option<i64>,
);

pub(crate) fn groups_json(groups: &[String]) -> String {
    serde_json::Value::from(groups.to_vec()).to_string()
}

pub(crate) fn session((id, issuer, subject, email, name, groups, created_at, expires_at, revoked_at): Row) -> Session {
    Session {
        id,
        issuer,
        subject,
        email,
        name,
        // Only this code writes the column, with a JSON array of strings.
        groups: serde_json::from_str(&groups).unwrap_or_default(),
        created_at: Micros(created_at),
        expires_at: Micros(expires_at),
        revoked_at: revoked_at.map(Micros),
    }
}
