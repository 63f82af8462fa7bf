//! Usage events and their rollups: what a batch insert, a summary and a reprice pass take and
//! return, and the SQL both backends share for them (the rollup upserts are in `rollup.rs`, the
//! summary's segments in `summary.rs`).

use async_trait::async_trait;
use goodhart_core::Micros;
use goodhart_core::pricing::{CostBreakdown, PriceTable};
use goodhart_core::report::{Dimension, SummaryRow};
use goodhart_core::usage::UsageEvent;

use crate::error::StoreError;

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

/// Models with unpriced events (same SQL on both backends).
pub(crate) const UNPRICED_MODELS_SQL: &str = "SELECT provider, model, CAST(COUNT(*) AS BIGINT) FROM usage_events \
    WHERE cost_nanos IS NULL GROUP BY provider, model ORDER BY 3 DESC, 2";

/// Events read per reprice transaction.
pub(crate) const REPRICE_CHUNK: i64 = 5_000;

/// The columns of a stored event read back as an [`EventRow`](rollup::EventRow).
const EVENT_ROW_COLUMNS: &str = "seq, ts, user_id, team_id, project_id, agent_id, provider, model, \
    input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, reasoning_tokens, \
    cost_nanos, estimated";

/// The events a reprice pass reads (same SQL on both backends; callers add the filter).
pub(crate) fn select_reprice() -> String {
    format!("SELECT {EVENT_ROW_COLUMNS} FROM usage_events")
}

/// Deletes the record of a call that another source stored first, so that the gateway's record
/// of it (the key's attribution, the call's metadata) replaces it; `filter` on `event_id` names
/// the calls (`= $1`, `= ANY($1)`, …).
pub(crate) fn delete_superseded_sql(filter: &str) -> String {
    format!("DELETE FROM usage_events WHERE event_id {filter} AND source <> 'gateway' RETURNING {EVENT_ROW_COLUMNS}")
}

/// Whether any event is keyed by a message id (`msg:`; the partial index `usage_events_by_message`
/// answers it at once).
pub(crate) const ANY_MESSAGE_KEYED_SQL: &str = "SELECT 1 FROM usage_events WHERE event_id LIKE 'msg:%' LIMIT 1";
