//! Virtual keys, stored by the SHA-256 of their secret; the SQL is shared by both backends
//! (`$n` placeholders bind by position in SQLite too).

use async_trait::async_trait;
use goodhart_core::Micros;
use goodhart_core::keys::VirtualKey;

use crate::error::StoreError;

/// Virtual keys, stored by the SHA-256 of their secret.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a new key; its id and hash must be new.
    async fn create_key(&self, key: &VirtualKey, key_hash: &str) -> Result<(), StoreError>;
    /// Every key, newest first.
    async fn keys(&self) -> Result<Vec<VirtualKey>, StoreError>;
    /// The key behind a hash, as a call sees it (see [`SELECT_FOR_CALL`]).
    async fn key_by_hash(&self, key_hash: &str) -> Result<Option<VirtualKey>, StoreError>;
    /// Revokes a key that is not revoked yet; returns whether it did.
    async fn revoke_key(&self, id: &str, at: Micros) -> Result<bool, StoreError>;
    /// Rotation in one transaction: stores `new` and revokes `old_id`, pointing it at `new`.
    /// Returns false (and stores nothing) when `old_id` does not exist or is already revoked.
    async fn replace_key(&self, old_id: &str, new: &VirtualKey, new_hash: &str, at: Micros)
    -> Result<bool, StoreError>;
}

pub(crate) const COLUMNS: &str = "id, name, user_name, team, project, agent, created_at, expires_at, revoked_at, \
    replaced_by, requests_per_minute, tokens_per_minute";
/// The key a call presents, by its hash: a key made without a team takes its person's home
/// team from the directory ([`crate::directory`]), so the call is attributed and capped as the
/// org chart says.
pub(crate) const SELECT_FOR_CALL: &str = "SELECT k.id, k.name, k.user_name, COALESCE(k.team, d.team), k.project, \
    k.agent, k.created_at, k.expires_at, k.revoked_at, k.replaced_by, k.requests_per_minute, k.tokens_per_minute \
    FROM virtual_keys k LEFT JOIN directory d ON d.user_name = k.user_name WHERE k.key_hash = $1";
pub(crate) const INSERT: &str = "INSERT INTO virtual_keys (id, key_hash, name, user_name, team, project, agent, \
    created_at, expires_at, requests_per_minute, tokens_per_minute) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
pub(crate) const REVOKE: &str =
    "UPDATE virtual_keys SET revoked_at = $1, replaced_by = $2 WHERE id = $3 AND revoked_at IS NULL";
