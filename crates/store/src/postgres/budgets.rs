//! PostgreSQL: budget definitions and the spend they are measured against.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use goodhart_core::Micros;
use goodhart_core::budgets::{Budget, BudgetScope};

use crate::budgets::{self, BudgetStore, Sources, Spend};
use crate::error::StoreError;

use super::PostgresStore;

#[async_trait]
impl BudgetStore for PostgresStore {
    async fn create_budget(&self, b: &Budget) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        let (policy, percent) = budgets::when_unreachable(b);
        client
            .execute(
                budgets::INSERT,
                &[
                    &b.id,
                    &b.scope.kind(),
                    &b.scope.name(),
                    &b.period.as_str(),
                    &b.limit.0,
                    &b.token_limit.map(|t| t as i64),
                    &b.action.as_str(),
                    &budgets::thresholds(&b.thresholds),
                    &b.timezone,
                    &b.created_at.0,
                    &policy,
                    &percent,
                ],
            )
            .await?;
        Ok(())
    }

    async fn budgets(&self) -> Result<Vec<Budget>, StoreError> {
        let client = self.pool.get().await?;
        let sql = format!("SELECT {} FROM budgets {}", budgets::COLUMNS, budgets::LIVE);
        client
            .query(&sql, &[])
            .await?
            .iter()
            .map(|r| {
                budgets::Row {
                    id: r.get(0),
                    scope_kind: r.get(1),
                    scope_name: r.get(2),
                    period: r.get(3),
                    limit_nanos: r.get(4),
                    limit_tokens: r.get(5),
                    action: r.get(6),
                    thresholds: r.get(7),
                    timezone: r.get(8),
                    created_at: r.get(9),
                    when_unreachable: r.get(10),
                    fail_open_percent: r.get(11),
                }
                .into_budget()
            })
            .collect()
    }

    async fn delete_budget(&self, id: &str, at: Micros) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        Ok(client.execute(budgets::DELETE, &[&at.0, &id]).await? == 1)
    }

    async fn spend(&self, scope: &BudgetScope, from: Micros, to: Micros) -> Result<Spend, StoreError> {
        let client = self.pool.get().await?;
        spend_on(&client, scope, from, to, Sources::All).await
    }
}

/// What `scope` spent in `[from, to)` from `sources`, on a connection or in a transaction.
pub(super) async fn spend_on(
    client: &impl GenericClient,
    scope: &BudgetScope,
    from: Micros,
    to: Micros,
    sources: Sources,
) -> Result<Spend, StoreError> {
    let sql = budgets::spend(scope.kind(), sources);
    let name = scope.name().unwrap_or_default();
    let row = if sql.contains("$3") {
        client.query_one(&sql, &[&from.0, &to.0, &name]).await?
    } else {
        client.query_one(&sql, &[&from.0, &to.0]).await?
    };
    Ok(Spend {
        cost: goodhart_core::Nanos(row.get(0)),
        tokens: row.get::<_, i64>(1).max(0) as u64,
        requests: row.get::<_, i64>(2).max(0) as u64,
    })
}
