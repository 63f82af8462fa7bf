//! PostgreSQL: agents' own usage counters and the usage recorded per session.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use goodhart_core::Micros;
use goodhart_core::telemetry::{RecordedSession, TelemetryPoint};

use crate::error::StoreError;
use crate::telemetry::{self, TelemetryStore};

use super::PostgresStore;

#[async_trait]
impl TelemetryStore for PostgresStore {
    async fn insert_telemetry_points(&self, points: &[TelemetryPoint]) -> Result<u64, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let statement = tx.prepare_cached(telemetry::INSERT).await?;
        let mut inserted = 0;
        for p in points {
            inserted += tx
                .execute(
                    &statement,
                    &[
                        &p.id,
                        &p.timestamp.0,
                        &p.user,
                        &p.session,
                        &p.agent,
                        &p.model,
                        &p.kind.as_str(),
                        &telemetry::stored_amount(p),
                    ],
                )
                .await?;
        }
        tx.commit().await?;
        Ok(inserted)
    }

    async fn telemetry_points(&self, from: Micros, to: Micros) -> Result<Vec<TelemetryPoint>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client.query(telemetry::SELECT, &[&from.0, &to.0]).await?;
        rows.iter()
            .map(|r| {
                telemetry::point((
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                    r.get(6),
                    r.get(7),
                ))
            })
            .collect()
    }

    async fn recorded_sessions(&self, from: Micros, to: Micros) -> Result<Vec<RecordedSession>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client.query(telemetry::RECORDED, &[&from.0, &to.0]).await?;
        Ok(rows
            .iter()
            .map(|r| telemetry::session((r.get(0), std::array::from_fn(|i| r.get(i + 1)))))
            .collect())
    }
}
