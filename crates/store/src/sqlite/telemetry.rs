//! SQLite: agents' own usage counters and the usage recorded per session.

use async_trait::async_trait;
use goodhart_core::Micros;
use goodhart_core::telemetry::{RecordedSession, TelemetryPoint};
use rusqlite::params;

use crate::error::StoreError;
use crate::telemetry::{self, TelemetryStore};

use super::SqliteStore;

#[async_trait]
impl TelemetryStore for SqliteStore {
    async fn insert_telemetry_points(&self, points: &[TelemetryPoint]) -> Result<u64, StoreError> {
        let points = points.to_vec();
        self.write(move |w| {
            let tx = w.conn.transaction()?;
            let mut inserted = 0;
            {
                let mut statement = tx.prepare_cached(telemetry::INSERT)?;
                for p in &points {
                    inserted += statement.execute(params![
                        p.id,
                        p.timestamp.0,
                        p.user,
                        p.session,
                        p.agent,
                        p.model,
                        p.kind.as_str(),
                        telemetry::stored_amount(p)
                    ])? as u64;
                }
            }
            tx.commit()?;
            Ok(inserted)
        })
        .await
    }

    async fn telemetry_points(&self, from: Micros, to: Micros) -> Result<Vec<TelemetryPoint>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(telemetry::SELECT)?;
            let rows = statement.query_map([from.0, to.0], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })?;
            let rows: Vec<telemetry::PointRow> = rows.collect::<Result<_, _>>()?;
            rows.into_iter().map(telemetry::point).collect()
        })
        .await
    }

    async fn recorded_sessions(&self, from: Micros, to: Micros) -> Result<Vec<RecordedSession>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(telemetry::RECORDED)?;
            let rows = statement.query_map([from.0, to.0], |r| {
                let mut n = [0i64; 8];
                for (i, slot) in n.iter_mut().enumerate() {
                    *slot = r.get(i + 1)?;
                }
                Ok(telemetry::session((r.get(0)?, n)))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }
}
