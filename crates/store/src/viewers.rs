//! Viewer tokens: read-only access to the dashboard and the read API, and their send-only
//! sibling, ingest tokens (OTLP exports and the ingest API); either may be limited to one team.
//! Stored by the SHA-256 of their secret, like virtual keys; the SQL is shared by both backends.

use async_trait::async_trait;
use goodhart_core::Micros;

use crate::error::StoreError;

goodhart_core::named_enum! {
    /// What a token may do.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub enum TokenRole {
        /// Read the dashboard and the read API.
        #[default]
        Viewer = "viewer",
        /// Send usage: OTLP exports and `POST /api/v1/usage`.
        Ingest = "ingest",
        /// Read everything, and manage budgets and virtual keys.
        Finops = "finops",
        /// Read one team, and confirm or dismiss its people's findings.
        Manager = "manager",
        /// Read one person's own usage, findings and budgets.
        Engineer = "engineer",
        /// Provision people and groups over SCIM (an identity provider's).
        Scim = "scim",
    }
}

/// A viewer (or ingest) token as stored (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewerToken {
    pub id: String,
    pub name: Option<String>,
    /// A viewer's one team it may see (every team when absent); an ingest token's team for
    /// usage that names none.
    pub team: Option<String>,
    /// The one person an engineer's token speaks for.
    pub user: Option<String>,
    pub role: TokenRole,
    pub created_at: Micros,
    pub revoked_at: Option<Micros>,
}

#[async_trait]
pub trait ViewerStore: Send + Sync {
    /// Stores a new token; its id and hash must be new.
    async fn create_viewer(&self, token: &ViewerToken, token_hash: &str) -> Result<(), StoreError>;
    /// Every token, newest first.
    async fn viewers(&self) -> Result<Vec<ViewerToken>, StoreError>;
    async fn viewer_by_hash(&self, token_hash: &str) -> Result<Option<ViewerToken>, StoreError>;
    /// Revokes a token that is not revoked yet; returns whether it did.
    async fn revoke_viewer(&self, id: &str, at: Micros) -> Result<bool, StoreError>;
}

pub(crate) const INSERT: &str = "INSERT INTO viewer_tokens (id, token_hash, name, team, created_at, role, user_name) VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub(crate) const SELECT_ALL: &str =
    "SELECT id, name, team, created_at, revoked_at, role, user_name FROM viewer_tokens ORDER BY created_at DESC, id";
pub(crate) const SELECT_BY_HASH: &str =
    "SELECT id, name, team, created_at, revoked_at, role, user_name FROM viewer_tokens WHERE token_hash = $1";
pub(crate) const REVOKE: &str = "UPDATE viewer_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL";

/// A row's columns in the order of the selects above.
pub(crate) type Row = (
    String,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
    String,
    Option<String>,
);

pub(crate) fn token((id, name, team, created_at, revoked_at, role, user): Row) -> ViewerToken {
    ViewerToken {
        id,
        name,
        team,
        user,
        // Only this code writes the column, with one of the roles.
        role: TokenRole::parse(&role).unwrap_or_default(),
        created_at: Micros(created_at),
        revoked_at: revoked_at.map(Micros),
    }
}
