//! SQLite: virtual keys.

use async_trait::async_trait;
use goodhart_core::Micros;
use goodhart_core::keys::{KeyScope, RateLimits, VirtualKey};
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::StoreError;
use crate::keys::{self, KeyStore};

use super::SqliteStore;

fn read_key(r: &rusqlite::Row<'_>) -> rusqlite::Result<VirtualKey> {
    Ok(VirtualKey {
        id: r.get(0)?,
        name: r.get(1)?,
        scope: KeyScope {
            user: r.get(2)?,
            team: r.get(3)?,
            project: r.get(4)?,
            agent: r.get(5)?,
        },
        created_at: Micros(r.get(6)?),
        expires_at: r.get::<_, Option<i64>>(7)?.map(Micros),
        revoked_at: r.get::<_, Option<i64>>(8)?.map(Micros),
        replaced_by: r.get(9)?,
        limits: RateLimits {
            requests_per_minute: r.get::<_, Option<i64>>(10)?.map(|n| n.max(0) as u64),
            tokens_per_minute: r.get::<_, Option<i64>>(11)?.map(|n| n.max(0) as u64),
        },
    })
}

fn insert_key(conn: &Connection, key: &VirtualKey, key_hash: &str) -> Result<(), StoreError> {
    let s = &key.scope;
    conn.prepare_cached(keys::INSERT)?.execute(params![
        key.id,
        key_hash,
        key.name,
        s.user,
        s.team,
        s.project,
        s.agent,
        key.created_at.0,
        key.expires_at.map(|m| m.0),
        key.limits.requests_per_minute.map(|n| n as i64),
        key.limits.tokens_per_minute.map(|n| n as i64),
    ])?;
    Ok(())
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn create_key(&self, key: &VirtualKey, key_hash: &str) -> Result<(), StoreError> {
        let (key, key_hash) = (key.clone(), key_hash.to_owned());
        self.write(move |w| insert_key(&w.conn, &key, &key_hash)).await
    }

    async fn keys(&self) -> Result<Vec<VirtualKey>, StoreError> {
        self.read(|conn| {
            let sql = format!(
                "SELECT {} FROM virtual_keys ORDER BY created_at DESC, id",
                keys::COLUMNS
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let keys = stmt.query_map([], read_key)?.collect::<Result<_, _>>()?;
            Ok(keys)
        })
        .await
    }

    async fn key_by_hash(&self, key_hash: &str) -> Result<Option<VirtualKey>, StoreError> {
        let key_hash = key_hash.to_owned();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(keys::SELECT_FOR_CALL)?
                .query_row([key_hash], read_key)
                .optional()?)
        })
        .await
    }

    async fn revoke_key(&self, id: &str, at: Micros) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |w| Ok(w.conn.execute(keys::REVOKE, params![at.0, None::<String>, id])? == 1))
            .await
    }

    async fn replace_key(
        &self,
        old_id: &str,
        new: &VirtualKey,
        new_hash: &str,
        at: Micros,
    ) -> Result<bool, StoreError> {
        let (old_id, new, new_hash) = (old_id.to_owned(), new.clone(), new_hash.to_owned());
        self.write(move |w| {
            let tx = w
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            if tx.execute(keys::REVOKE, params![at.0, new.id, old_id])? != 1 {
                return Ok(false);
            }
            insert_key(&tx, &new, &new_hash)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }
}
