//! SQLite: alerts and their delivery attempts.

use async_trait::async_trait;
use goodhart_core::Micros;
use goodhart_core::budgets::Alert;
use rusqlite::params;

use crate::alerts::{self, AlertStore, StoredAlert};
use crate::error::StoreError;

use super::SqliteStore;

#[async_trait]
impl AlertStore for SqliteStore {
    async fn insert_alert(&self, alert: &Alert) -> Result<bool, StoreError> {
        let a = alert.clone();
        self.write(move |w| {
            let inserted = w.conn.prepare_cached(alerts::INSERT)?.execute(params![
                a.id,
                a.kind.as_str(),
                a.budget_id,
                a.scope,
                a.message,
                a.created_at.0,
            ])?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn alerts(&self, from: Micros, to: Micros) -> Result<Vec<StoredAlert>, StoreError> {
        self.read(move |conn| {
            let rows: Vec<alerts::Row> = conn
                .prepare_cached(alerts::SELECT)?
                .query_map(params![from.0, to.0], |r| {
                    Ok(alerts::Row {
                        id: r.get(0)?,
                        kind: r.get(1)?,
                        budget_id: r.get(2)?,
                        scope: r.get(3)?,
                        message: r.get(4)?,
                        created_at: r.get(5)?,
                        delivered_at: r.get(6)?,
                        attempts: r.get(7)?,
                        last_error: r.get(8)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            rows.into_iter().map(alerts::Row::into_alert).collect()
        })
        .await
    }

    async fn alert_attempt(&self, id: &str, delivered: Option<Micros>, error: Option<&str>) -> Result<(), StoreError> {
        let (id, error) = (id.to_owned(), error.map(str::to_owned));
        self.write(move |w| {
            w.conn
                .execute(alerts::ATTEMPT, params![delivered.map(|d| d.0), error, id])?;
            Ok(())
        })
        .await
    }
}
