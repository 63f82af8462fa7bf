//! Goodhart's persistence.
//!
//! Per-domain traits ([`UsageStore`], [`SettingsStore`]) implemented by two sibling backends:
//! [`sqlite`] (the embedded default: one file, WAL) and [`postgres`] (for several instances).
//! Both apply timestamped SQL migrations at open and keep hourly and daily rollups in the same
//! transaction as the events, so reports never see one without the other. One conformance
//! suite (`tests/conformance.rs`) runs against both.

use std::sync::Arc;

use async_trait::async_trait;
use goodhart_core::Micros;
use goodhart_core::budgets::{Alert, Budget, BudgetScope};
use goodhart_core::keys::VirtualKey;
use goodhart_core::pricing::{CostBreakdown, PriceTable};
use goodhart_core::report::{Dimension, SummaryRow};
use goodhart_core::usage::UsageEvent;

pub mod findings;
pub mod leases;
mod migrations;
pub mod outcomes;
pub mod postgres;
mod rollup;
pub mod spool;
pub mod sqlite;
mod summary;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod viewers;

/// A usage event with its price (or none: the model had no price and the event is unpriced).
#[derive(Debug, Clone)]
pub struct PricedEvent {
    pub event: UsageEvent,
    pub cost: Option<CostBreakdown>,
}

/// What a batch insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InsertOutcome {
    /// New events stored.
    pub inserted: u64,
    /// Events whose id was already stored (or repeated within the batch): not counted again.
    pub duplicates: u64,
    /// New events whose model had no price (stored and flagged, priced by a later reprice).
    pub unpriced: u64,
    /// Records from other sources (telemetry, a log, the API) that reached the store first and
    /// were deleted because the gateway's record of the same call replaced them.
    pub superseded: u64,
}

impl std::ops::AddAssign for InsertOutcome {
    fn add_assign(&mut self, other: InsertOutcome) {
        self.inserted += other.inserted;
        self.duplicates += other.duplicates;
        self.unpriced += other.unpriced;
        self.superseded += other.superseded;
    }
}

/// A usage summary request: `[from, to)`, grouped by the given dimensions in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryQuery {
    pub from: Micros,
    pub to: Micros,
    pub group_by: Vec<Dimension>,
}

/// Which events a reprice pass looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepriceScope {
    /// Only events that had no price.
    Unpriced,
    /// Every event: after a price correction.
    All,
}

/// What a reprice pass changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RepriceOutcome {
    pub examined: u64,
    /// Events whose cost changed (including newly priced ones).
    pub repriced: u64,
    /// Events still without a price.
    pub still_unpriced: u64,
}

/// A model seen in usage without a price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpricedModel {
    pub provider: Option<String>,
    pub model: String,
    pub events: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: expected sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("no database at {0}: run `goodhart serve` here first, or pass --database-url")]
    Missing(String),
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("PostgreSQL connection pool: {0}")]
    Pool(String),
    #[error("migration {version} failed: {reason}")]
    Migration { version: &'static str, reason: String },
    #[error("database worker stopped: {0}")]
    Worker(String),
    #[error("stored {what} is not valid: {value:?}")]
    Corrupt { what: &'static str, value: String },
}

/// Usage events and their rollups.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Stores the events whose ids are new — all of them or none — with `price_version`,
    /// creating users, teams, projects and agents on first sight and updating the rollups.
    /// A call is stored once whichever source reports it first, except that the gateway's
    /// record replaces another source's record of the same call — same event id, or `msg:`
    /// and the message id of the gateway call's response.
    async fn insert_usage(&self, events: Vec<PricedEvent>, price_version: &str) -> Result<InsertOutcome, StoreError>;

    /// Totals per group over `[from, to)`, most expensive first.
    async fn usage_summary(&self, query: &SummaryQuery) -> Result<Vec<SummaryRow>, StoreError>;

    /// Models that have unpriced events, with how many.
    async fn unpriced_models(&self) -> Result<Vec<UnpricedModel>, StoreError>;

    /// Prices events again with `prices`, updating the rollups to match.
    async fn reprice(&self, prices: &PriceTable, scope: RepriceScope) -> Result<RepriceOutcome, StoreError>;

    /// How many events are stored.
    async fn event_count(&self) -> Result<u64, StoreError>;
}

/// Virtual keys, stored by the SHA-256 of their secret.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a new key; its id and hash must be new.
    async fn create_key(&self, key: &VirtualKey, key_hash: &str) -> Result<(), StoreError>;
    /// Every key, newest first.
    async fn keys(&self) -> Result<Vec<VirtualKey>, StoreError>;
    async fn key_by_hash(&self, key_hash: &str) -> Result<Option<VirtualKey>, StoreError>;
    /// Revokes a key that is not revoked yet; returns whether it did.
    async fn revoke_key(&self, id: &str, at: Micros) -> Result<bool, StoreError>;
    /// Rotation in one transaction: stores `new` and revokes `old_id`, pointing it at `new`.
    /// Returns false (and stores nothing) when `old_id` does not exist or is already revoked.
    async fn replace_key(&self, old_id: &str, new: &VirtualKey, new_hash: &str, at: Micros)
    -> Result<bool, StoreError>;
}

/// Small named values such as the admin token's hash.
/// What a scope spent in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Spend {
    pub cost: goodhart_core::Nanos,
    pub tokens: u64,
    pub requests: u64,
}

/// An alert and where its delivery stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAlert {
    pub alert: Alert,
    pub delivered_at: Option<Micros>,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// Alerts, deduplicated by id, with their delivery state.
#[async_trait]
pub trait AlertStore: Send + Sync {
    /// Stores a new alert; `false` if one with its id exists (the event was already raised).
    async fn insert_alert(&self, alert: &Alert) -> Result<bool, StoreError>;
    /// Alerts created in `[from, to)`, newest first.
    async fn alerts(&self, from: Micros, to: Micros) -> Result<Vec<StoredAlert>, StoreError>;
    /// Records a delivery attempt: delivered at `delivered`, or failed with `error`.
    async fn alert_attempt(&self, id: &str, delivered: Option<Micros>, error: Option<&str>) -> Result<(), StoreError>;
}

/// Budget definitions and the spend they are measured against.
#[async_trait]
pub trait BudgetStore: Send + Sync {
    async fn create_budget(&self, budget: &Budget) -> Result<(), StoreError>;
    /// Budgets not deleted, oldest first.
    async fn budgets(&self) -> Result<Vec<Budget>, StoreError>;
    /// Marks a budget deleted; `false` if there is no such live budget.
    async fn delete_budget(&self, id: &str, at: Micros) -> Result<bool, StoreError>;
    /// What calls in `scope` cost in `[from, to)` (unpriced calls count as nothing).
    async fn spend(&self, scope: &BudgetScope, from: Micros, to: Micros) -> Result<Spend, StoreError>;
}

#[async_trait]
pub trait SettingsStore: Send + Sync {
    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Sets `key` unless it already has a value; returns whether this call set it.
    async fn set_setting_if_absent(&self, key: &str, value: &str) -> Result<bool, StoreError>;
}

/// Everything Goodhart stores, behind one handle.
pub trait Store:
    UsageStore
    + SettingsStore
    + KeyStore
    + BudgetStore
    + AlertStore
    + leases::LeaseStore
    + outcomes::OutcomeStore
    + findings::FindingStore
    + viewers::ViewerStore
    + telemetry::TelemetryStore
{
    /// `sqlite` or `postgres`, for logs.
    fn backend(&self) -> &'static str;
}

/// Opens (creating and migrating as needed) the database at `url`: `sqlite://PATH`,
/// `sqlite:PATH`, a bare path ending in `.db`, or `postgres://…` / `postgresql://…`.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    match sqlite_path(url)? {
        None => Ok(Arc::new(postgres::PostgresStore::open(url).await?)),
        Some(path) => Ok(Arc::new(sqlite::SqliteStore::open(path.as_ref()).await?)),
    }
}

/// Like [`open`], but a SQLite file must already exist: read-only commands run in the wrong
/// directory should say so, not create an empty database and report nothing.
pub async fn open_existing(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if let Some(path) = sqlite_path(url)?
        && !std::path::Path::new(path).exists()
    {
        return Err(StoreError::Missing(path.to_owned()));
    }
    open(url).await
}

/// The file of a SQLite URL, or `None` for PostgreSQL.
pub fn sqlite_path(url: &str) -> Result<Option<&str>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(None);
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .or_else(|| url.ends_with(".db").then_some(url))
        .filter(|path| !path.is_empty())
        .ok_or_else(|| StoreError::UnsupportedUrl(url.to_owned()))?;
    Ok(Some(path))
}

/// The wall-clock time, as stored (the store is IO; core never reads the clock).
pub fn now_micros() -> Micros {
    Micros::from_timestamp(jiff::Timestamp::now())
}

fn now() -> Micros {
    now_micros()
}

/// How a backend feeds rows to the rollup upsert.
#[derive(Clone, Copy)]
enum RollupRows {
    /// One row of `?1 … ?17` parameters (SQLite).
    Values,
    /// Seventeen arrays unnested into rows (PostgreSQL: one statement per batch).
    Unnest,
}

/// Adds signed deltas to rollup rows: inserts missing rows, adds to existing ones.
fn rollup_upsert_sql(table: &str, rows: RollupRows) -> String {
    let columns: Vec<&str> = [
        "bucket",
        "user_id",
        "team_id",
        "project_id",
        "agent_id",
        "provider",
        "model",
        "requests",
    ]
    .into_iter()
    .chain(rollup::TOKEN_COLUMNS)
    .chain(["cost_nanos", "unpriced_requests", "estimated_requests"])
    .collect();
    let source = match rows {
        RollupRows::Values => {
            let params: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
            format!("VALUES ({})", params.join(", "))
        }
        RollupRows::Unnest => {
            let arrays: Vec<String> = columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    format!(
                        "${}::{}[]",
                        i + 1,
                        if matches!(*c, "provider" | "model") {
                            "text"
                        } else {
                            "bigint"
                        }
                    )
                })
                .collect();
            format!("SELECT * FROM unnest({})", arrays.join(", "))
        }
    };
    let updates: Vec<String> = columns[7..]
        .iter()
        .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO {table} ({}) {source} ON CONFLICT (bucket, user_id, team_id, project_id, agent_id, provider, model) \
         DO UPDATE SET {}",
        columns.join(", "),
        updates.join(", ")
    )
}

/// Models with unpriced events (same SQL on both backends).
const UNPRICED_MODELS_SQL: &str = "SELECT provider, model, CAST(COUNT(*) AS BIGINT) FROM usage_events \
    WHERE cost_nanos IS NULL GROUP BY provider, model ORDER BY 3 DESC, 2";

/// Events read per reprice transaction.
const REPRICE_CHUNK: i64 = 5_000;

/// The columns of a stored event read back as an [`EventRow`](rollup::EventRow).
const EVENT_ROW_COLUMNS: &str = "seq, ts, user_id, team_id, project_id, agent_id, provider, model, \
    input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, reasoning_tokens, \
    cost_nanos, estimated";

/// The events a reprice pass reads (same SQL on both backends; callers add the filter).
fn select_reprice() -> String {
    format!("SELECT {EVENT_ROW_COLUMNS} FROM usage_events")
}

/// Deletes the record of a call that another source stored first, so that the gateway's record
/// of it (the key's attribution, the call's metadata) replaces it; `filter` on `event_id` names
/// the calls (`= $1`, `= ANY($1)`, …).
fn delete_superseded_sql(filter: &str) -> String {
    format!("DELETE FROM usage_events WHERE event_id {filter} AND source <> 'gateway' RETURNING {EVENT_ROW_COLUMNS}")
}

/// Whether any event is keyed by a message id (`msg:`; the partial index `usage_events_by_message`
/// answers it at once).
const ANY_MESSAGE_KEYED_SQL: &str = "SELECT 1 FROM usage_events WHERE event_id LIKE 'msg:%' LIMIT 1";

/// Deletes a rollup row that a removal left without requests (same SQL on both backends).
fn prune_rollup_sql(table: &str) -> String {
    format!(
        "DELETE FROM {table} WHERE bucket = $1 AND user_id = $2 AND team_id = $3 AND project_id = $4 \
         AND agent_id = $5 AND provider = $6 AND model = $7 AND requests = 0"
    )
}

/// Key queries, the same SQL on both backends (`$n` placeholders bind by position in SQLite too).
mod key_sql {
    pub const COLUMNS: &str = "id, name, user_name, team, project, agent, created_at, expires_at, revoked_at, \
        replaced_by, requests_per_minute, tokens_per_minute";
    pub const INSERT: &str = "INSERT INTO virtual_keys (id, key_hash, name, user_name, team, project, agent, \
        created_at, expires_at, requests_per_minute, tokens_per_minute) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
    pub const REVOKE: &str =
        "UPDATE virtual_keys SET revoked_at = $1, replaced_by = $2 WHERE id = $3 AND revoked_at IS NULL";
}

/// SQL shared by both backends for budgets (placeholders `$n` work in SQLite too).
mod budget_sql {
    use goodhart_core::budgets::{Action, Budget, BudgetScope, Period};
    use goodhart_core::{Micros, Nanos};

    use crate::StoreError;

    pub const COLUMNS: &str = "id, scope_kind, scope_name, period, limit_nanos, limit_tokens, action, thresholds, \
        timezone, created_at";
    pub const INSERT: &str = "INSERT INTO budgets (id, scope_kind, scope_name, period, limit_nanos, limit_tokens, \
        action, thresholds, timezone, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    pub const LIVE: &str = "WHERE deleted_at IS NULL ORDER BY created_at, id";
    pub const DELETE: &str = "UPDATE budgets SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL";

    /// Which usage a spend query counts, by where it came from.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Sources {
        All,
        Gateway,
        /// Everything that did not pass through the gateway (ingest API, imports, telemetry).
        Others,
    }

    /// The spend query for a scope kind: `$1`/`$2` the window, `$3` the scope's name or key id.
    pub fn spend(kind: &str, sources: Sources) -> String {
        let filter = match kind {
            "key" => "AND seq IN (SELECT seq FROM gateway_calls WHERE key_id = $3)",
            "user" => "AND user_id = (SELECT id FROM users WHERE name = $3)",
            "team" => "AND team_id = (SELECT id FROM teams WHERE name = $3)",
            "project" => "AND project_id = (SELECT id FROM projects WHERE name = $3)",
            "agent" => "AND agent_id = (SELECT id FROM agents WHERE name = $3)",
            _ => "",
        };
        let source = match sources {
            Sources::All => "",
            Sources::Gateway => " AND source = 'gateway'",
            Sources::Others => " AND source <> 'gateway'",
        };
        format!(
            "SELECT CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT), CAST(COALESCE(SUM(input_tokens + output_tokens \
             + cache_read_tokens + cache_write_5m_tokens + cache_write_1h_tokens + reasoning_tokens), 0) AS BIGINT), \
             COUNT(*) FROM usage_events WHERE ts >= $1 AND ts < $2 {filter}{source}"
        )
    }

    /// Thresholds as stored: `50,80,100`.
    pub fn thresholds(list: &[u32]) -> String {
        list.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
    }

    pub fn parse_thresholds(text: &str) -> Vec<u32> {
        text.split(',').filter_map(|t| t.trim().parse().ok()).collect()
    }

    /// A budget row's columns, in [`COLUMNS`] order.
    pub struct Row {
        pub id: String,
        pub scope_kind: String,
        pub scope_name: Option<String>,
        pub period: String,
        pub limit_nanos: i64,
        pub limit_tokens: Option<i64>,
        pub action: String,
        pub thresholds: String,
        pub timezone: String,
        pub created_at: i64,
    }

    impl Row {
        pub fn into_budget(self) -> Result<Budget, StoreError> {
            let corrupt = |what, value: &str| StoreError::Corrupt {
                what,
                value: value.to_owned(),
            };
            let scope = BudgetScope::from_parts(&self.scope_kind, self.scope_name.clone())
                .ok_or_else(|| corrupt("budget scope", &self.scope_kind))?;
            Ok(Budget {
                scope,
                period: Period::parse(&self.period).ok_or_else(|| corrupt("budget period", &self.period))?,
                action: Action::parse(&self.action).ok_or_else(|| corrupt("budget action", &self.action))?,
                limit: Nanos(self.limit_nanos),
                token_limit: self.limit_tokens.map(|t| t.max(0) as u64),
                thresholds: parse_thresholds(&self.thresholds),
                timezone: self.timezone,
                created_at: Micros(self.created_at),
                id: self.id,
            })
        }
    }
}

/// SQL shared by both backends for alerts.
mod alert_sql {
    use goodhart_core::Micros;
    use goodhart_core::budgets::{Alert, AlertKind};

    use crate::{StoreError, StoredAlert};

    pub const INSERT: &str = "INSERT INTO alerts (id, kind, budget_id, scope, message, created_at) \
        VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING";
    pub const SELECT: &str = "SELECT id, kind, budget_id, scope, message, created_at, delivered_at, attempts, \
        last_error FROM alerts WHERE created_at >= $1 AND created_at < $2 ORDER BY created_at DESC, id";
    pub const ATTEMPT: &str =
        "UPDATE alerts SET attempts = attempts + 1, delivered_at = $1, last_error = $2 WHERE id = $3";

    /// An alert row's columns, in [`SELECT`] order.
    pub struct Row {
        pub id: String,
        pub kind: String,
        pub budget_id: String,
        pub scope: String,
        pub message: String,
        pub created_at: i64,
        pub delivered_at: Option<i64>,
        pub attempts: i64,
        pub last_error: Option<String>,
    }

    impl Row {
        pub fn into_alert(self) -> Result<StoredAlert, StoreError> {
            let kind = AlertKind::parse(&self.kind).ok_or(StoreError::Corrupt {
                what: "alert kind",
                value: self.kind.clone(),
            })?;
            Ok(StoredAlert {
                alert: Alert {
                    id: self.id,
                    kind,
                    budget_id: self.budget_id,
                    scope: self.scope,
                    message: self.message,
                    created_at: Micros(self.created_at),
                },
                delivered_at: self.delivered_at.map(Micros),
                attempts: u32::try_from(self.attempts.max(0)).unwrap_or(u32::MAX),
                last_error: self.last_error,
            })
        }
    }
}
