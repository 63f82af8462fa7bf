//! The audit log: one row per admin or manager action, authentication failure or refusal —
//! who, when, what, to what, from where. Append-only: this trait offers insert and read, and
//! both backends' triggers refuse UPDATE and DELETE on the table. The SQL is shared.

use async_trait::async_trait;
use goodhart_core::Micros;

use crate::error::StoreError;

/// One entry as written (the store assigns its sequence number).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewAuditEntry {
    pub at: Micros,
    /// `admin_token`, `viewer_token`, `ingest_token`, `cli`, `anonymous` (later `user`).
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub actor_name: Option<String>,
    /// A stable dotted name: `key.create`, `auth.failure`, …
    pub action: String,
    /// `success`, `denied` or `failure`.
    pub outcome: String,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    /// The client's address (IP), when known.
    pub address: Option<String>,
    pub user_agent: Option<String>,
    /// A small JSON object of what matters about the action (never a secret).
    pub details: String,
    /// How many occurrences the entry stands for (more than 1 only for a summary of failures
    /// past the bound).
    pub count: i64,
}

/// An entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Increases with every insert: the order of the log, and the pagination cursor.
    pub seq: i64,
    pub entry: NewAuditEntry,
}

/// Which entries to read: every filter is optional; newest first, before `before` (a `seq`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditQuery {
    /// Matches the actor's id, name or kind.
    pub actor: Option<String>,
    /// Entries whose action starts with this.
    pub action_prefix: Option<String>,
    pub outcome: Option<String>,
    /// `at >= from`.
    pub from: Option<Micros>,
    /// `at < to`.
    pub to: Option<Micros>,
    /// Only entries with `seq < before`.
    pub before: Option<i64>,
    pub limit: u32,
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends one entry; returns its sequence number.
    async fn append_audit(&self, entry: &NewAuditEntry) -> Result<i64, StoreError>;
    /// The entries matching `query`, newest (highest `seq`) first, at most `query.limit`.
    async fn audit_entries(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError>;
}

pub(crate) const INSERT: &str = "INSERT INTO audit_log (at, actor_kind, actor_id, actor_name, action, outcome, \
    target_kind, target_id, address, user_agent, details, count) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING seq";

/// Filters are `NULL` when unused; the action prefix is compared with `substr` (no `LIKE`
/// wildcards to escape). `$1` … `$7` first appear in order, as SQLite's numbering needs.
pub(crate) const SELECT: &str = "SELECT seq, at, actor_kind, actor_id, actor_name, action, outcome, target_kind, \
    target_id, address, user_agent, details, count FROM audit_log \
    WHERE (CAST($1 AS TEXT) IS NULL OR actor_id = $1 OR actor_name = $1 OR actor_kind = $1) \
    AND (CAST($2 AS TEXT) IS NULL OR substr(action, 1, length($2)) = $2) \
    AND (CAST($3 AS TEXT) IS NULL OR outcome = $3) \
    AND (CAST($4 AS BIGINT) IS NULL OR at >= $4) \
    AND (CAST($5 AS BIGINT) IS NULL OR at < $5) \
    AND (CAST($6 AS BIGINT) IS NULL OR seq < $6) \
    ORDER BY seq DESC LIMIT $7";

/// A row's columns in [`SELECT`] order.
pub(crate) type Row = (
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    i64,
);

pub(crate) fn entry(
    (
        seq,
        at,
        actor_kind,
        actor_id,
        actor_name,
        action,
        outcome,
        target_kind,
        target_id,
        address,
        user_agent,
        details,
        count,
    ): Row,
) -> AuditEntry {
    AuditEntry {
        seq,
        entry: NewAuditEntry {
            at: Micros(at),
            actor_kind,
            actor_id,
            actor_name,
            action,
            outcome,
            target_kind,
            target_id,
            address,
            user_agent,
            details,
            count,
        },
    }
}
