//! Budget definitions and the spend they are measured against; the SQL is shared by both
//! backends (placeholders `$n` work in SQLite too).

use async_trait::async_trait;
use goodhart_core::budgets::{Action, Budget, BudgetScope, Period, WhenUnreachable};
use goodhart_core::{Micros, Nanos};

use crate::error::StoreError;

/// What a scope spent in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Spend {
    pub cost: goodhart_core::Nanos,
    pub tokens: u64,
    pub requests: u64,
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

pub(crate) const COLUMNS: &str = "id, scope_kind, scope_name, period, limit_nanos, limit_tokens, action, thresholds, \
    timezone, created_at, when_unreachable, fail_open_percent";
pub(crate) const INSERT: &str = "INSERT INTO budgets (id, scope_kind, scope_name, period, limit_nanos, limit_tokens, \
    action, thresholds, timezone, created_at, when_unreachable, fail_open_percent) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
pub(crate) const LIVE: &str = "WHERE deleted_at IS NULL ORDER BY created_at, id";
pub(crate) const DELETE: &str = "UPDATE budgets SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL";

/// Which usage a spend query counts, by where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sources {
    All,
    Gateway,
    /// Everything that did not pass through the gateway (ingest API, imports, telemetry).
    Others,
}

/// The spend query for a scope kind: `$1`/`$2` the window, `$3` the scope's name or key id.
pub(crate) fn spend(kind: &str, sources: Sources) -> String {
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
pub(crate) fn thresholds(list: &[u32]) -> String {
    list.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

pub(crate) fn parse_thresholds(text: &str) -> Vec<u32> {
    text.split(',').filter_map(|t| t.trim().parse().ok()).collect()
}

/// A budget row's columns, in [`COLUMNS`] order.
pub(crate) struct Row {
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
    pub when_unreachable: Option<String>,
    pub fail_open_percent: Option<i64>,
}

/// A budget's policy when the store is unreachable, as stored: its name and, failing open,
/// its allowance.
pub(crate) fn when_unreachable(budget: &Budget) -> (Option<&'static str>, Option<i64>) {
    match budget.when_unreachable {
        None => (None, None),
        Some(policy) => (Some(policy.as_str()), policy.percent().map(i64::from)),
    }
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
            when_unreachable: match self.when_unreachable.as_deref() {
                None => None,
                Some(name) => {
                    let percent = self.fail_open_percent.and_then(|p| u32::try_from(p).ok());
                    Some(WhenUnreachable::from_parts(name, percent).ok_or_else(|| corrupt("budget policy", name))?)
                }
            },
            id: self.id,
        })
    }
}
