//! SQLite: the audit log (insert and read only; triggers refuse the rest).

use async_trait::async_trait;
use rusqlite::params;

use crate::audit::{self, AuditEntry, AuditQuery, AuditStore, NewAuditEntry};
use crate::error::StoreError;

use super::SqliteStore;

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, entry: &NewAuditEntry) -> Result<i64, StoreError> {
        let e = entry.clone();
        self.write(move |w| {
            let seq = w.conn.prepare_cached(audit::INSERT)?.query_row(
                params![
                    e.at.0,
                    e.actor_kind,
                    e.actor_id,
                    e.actor_name,
                    e.action,
                    e.outcome,
                    e.target_kind,
                    e.target_id,
                    e.address,
                    e.user_agent,
                    e.details,
                    e.count
                ],
                |r| r.get(0),
            )?;
            Ok(seq)
        })
        .await
    }

    async fn audit_entries(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let q = query.clone();
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(audit::SELECT)?;
            let rows = statement.query_map(
                params![
                    q.actor,
                    q.action_prefix,
                    q.outcome,
                    q.from.map(|m| m.0),
                    q.to.map(|m| m.0),
                    q.before,
                    i64::from(q.limit)
                ],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                        r.get(10)?,
                        r.get(11)?,
                        r.get(12)?,
                    ))
                },
            )?;
            Ok(rows.map(|r| r.map(audit::entry)).collect::<Result<_, _>>()?)
        })
        .await
    }
}
