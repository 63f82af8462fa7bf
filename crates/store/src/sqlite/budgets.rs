//! SQLite: budget definitions and the spend they are measured against.

use async_trait::async_trait;
use goodhart_core::Micros;
use goodhart_core::Nanos;
use goodhart_core::budgets::{Budget, BudgetScope};
use rusqlite::{Connection, params};

use crate::budgets::{self, BudgetStore, Sources, Spend};
use crate::error::StoreError;

use super::SqliteStore;

#[async_trait]
impl BudgetStore for SqliteStore {
    async fn create_budget(&self, budget: &Budget) -> Result<(), StoreError> {
        let b = budget.clone();
        self.write(move |w| {
            let (policy, percent) = budgets::when_unreachable(&b);
            w.conn.prepare_cached(budgets::INSERT)?.execute(params![
                b.id,
                b.scope.kind(),
                b.scope.name(),
                b.period.as_str(),
                b.limit.0,
                b.token_limit.map(|t| t as i64),
                b.action.as_str(),
                budgets::thresholds(&b.thresholds),
                b.timezone,
                b.created_at.0,
                policy,
                percent,
            ])?;
            Ok(())
        })
        .await
    }

    async fn budgets(&self) -> Result<Vec<Budget>, StoreError> {
        self.read(|conn| {
            let sql = format!("SELECT {} FROM budgets {}", budgets::COLUMNS, budgets::LIVE);
            let rows: Vec<budgets::Row> = conn
                .prepare_cached(&sql)?
                .query_map([], |r| {
                    Ok(budgets::Row {
                        id: r.get(0)?,
                        scope_kind: r.get(1)?,
                        scope_name: r.get(2)?,
                        period: r.get(3)?,
                        limit_nanos: r.get(4)?,
                        limit_tokens: r.get(5)?,
                        action: r.get(6)?,
                        thresholds: r.get(7)?,
                        timezone: r.get(8)?,
                        created_at: r.get(9)?,
                        when_unreachable: r.get(10)?,
                        fail_open_percent: r.get(11)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            rows.into_iter().map(budgets::Row::into_budget).collect()
        })
        .await
    }

    async fn delete_budget(&self, id: &str, at: Micros) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |w| Ok(w.conn.execute(budgets::DELETE, params![at.0, id])? == 1))
            .await
    }

    async fn spend(&self, scope: &BudgetScope, from: Micros, to: Micros) -> Result<Spend, StoreError> {
        let scope = scope.clone();
        self.read(move |conn| spend_on(conn, &scope, from, to, Sources::All))
            .await
    }
}

/// What `scope` spent in `[from, to)` from `sources`.
pub(super) fn spend_on(
    conn: &Connection,
    scope: &BudgetScope,
    from: Micros,
    to: Micros,
    sources: Sources,
) -> Result<Spend, StoreError> {
    let sql = budgets::spend(scope.kind(), sources);
    let mut statement = conn.prepare_cached(&sql)?;
    let read = |r: &rusqlite::Row<'_>| -> rusqlite::Result<(i64, i64, i64)> { Ok((r.get(0)?, r.get(1)?, r.get(2)?)) };
    let (cost, tokens, requests) = if sql.contains("$3") {
        statement.query_row(params![from.0, to.0, scope.name().unwrap_or_default()], read)?
    } else {
        statement.query_row(params![from.0, to.0], read)?
    };
    Ok(Spend {
        cost: Nanos(cost),
        tokens: tokens.max(0) as u64,
        requests: requests.max(0) as u64,
    })
}
