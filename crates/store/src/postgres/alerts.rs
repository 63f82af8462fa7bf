//! PostgreSQL: alerts and their delivery attempts.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use goodhart_core::Micros;
use goodhart_core::budgets::Alert;

use crate::alerts::{self, AlertStore, StoredAlert};
use crate::error::StoreError;

use super::PostgresStore;

#[async_trait]
impl AlertStore for PostgresStore {
    async fn insert_alert(&self, a: &Alert) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let inserted = client
            .execute(
                alerts::INSERT,
                &[
                    &a.id,
                    &a.kind.as_str(),
                    &a.budget_id,
                    &a.scope,
                    &a.message,
                    &a.created_at.0,
                ],
            )
            .await?;
        Ok(inserted == 1)
    }

    async fn alerts(&self, from: Micros, to: Micros) -> Result<Vec<StoredAlert>, StoreError> {
        let client = self.pool.get().await?;
        client
            .query(alerts::SELECT, &[&from.0, &to.0])
            .await?
            .iter()
            .map(|r| {
                alerts::Row {
                    id: r.get(0),
                    kind: r.get(1),
                    budget_id: r.get(2),
                    scope: r.get(3),
                    message: r.get(4),
                    created_at: r.get(5),
                    delivered_at: r.get(6),
                    attempts: r.get(7),
                    last_error: r.get(8),
                }
                .into_alert()
            })
            .collect()
    }

    async fn alert_attempt(&self, id: &str, delivered: Option<Micros>, error: Option<&str>) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(alerts::ATTEMPT, &[&delivered.map(|d| d.0), &error, &id])
            .await?;
        Ok(())
    }
}
