//! PostgreSQL: the audit log (insert and read only; triggers refuse the rest).

use async_trait::async_trait;
use deadpool_postgres::GenericClient;

use crate::audit::{self, AuditEntry, AuditQuery, AuditStore, NewAuditEntry};
use crate::error::StoreError;

use super::PostgresStore;

#[async_trait]
impl AuditStore for PostgresStore {
    async fn append_audit(&self, e: &NewAuditEntry) -> Result<i64, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                audit::INSERT,
                &[
                    &e.at.0,
                    &e.actor_kind,
                    &e.actor_id,
                    &e.actor_name,
                    &e.action,
                    &e.outcome,
                    &e.target_kind,
                    &e.target_id,
                    &e.address,
                    &e.user_agent,
                    &e.details,
                    &e.count,
                ],
            )
            .await?;
        Ok(row.get(0))
    }

    async fn audit_entries(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                audit::SELECT,
                &[
                    &q.actor,
                    &q.action_prefix,
                    &q.outcome,
                    &q.from.map(|m| m.0),
                    &q.to.map(|m| m.0),
                    &q.before,
                    &i64::from(q.limit),
                ],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                audit::entry((
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                    r.get(6),
                    r.get(7),
                    r.get(8),
                    r.get(9),
                    r.get(10),
                    r.get(11),
                    r.get(12),
                ))
            })
            .collect())
    }
}
