//! PostgreSQL: virtual keys.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use goodhart_core::Micros;
use goodhart_core::keys::{KeyScope, RateLimits, VirtualKey};

use crate::error::StoreError;
use crate::keys::{self, KeyStore};

use super::PostgresStore;

fn read_key(r: &tokio_postgres::Row) -> VirtualKey {
    VirtualKey {
        id: r.get(0),
        name: r.get(1),
        scope: KeyScope {
            user: r.get(2),
            team: r.get(3),
            project: r.get(4),
            agent: r.get(5),
        },
        created_at: Micros(r.get(6)),
        expires_at: r.get::<_, Option<i64>>(7).map(Micros),
        revoked_at: r.get::<_, Option<i64>>(8).map(Micros),
        replaced_by: r.get(9),
        limits: RateLimits {
            requests_per_minute: r.get::<_, Option<i64>>(10).map(|n| n.max(0) as u64),
            tokens_per_minute: r.get::<_, Option<i64>>(11).map(|n| n.max(0) as u64),
        },
    }
}

async fn insert_key(
    client: &impl deadpool_postgres::GenericClient,
    key: &VirtualKey,
    key_hash: &str,
) -> Result<(), StoreError> {
    let s = &key.scope;
    client
        .execute(
            keys::INSERT,
            &[
                &key.id,
                &key_hash,
                &key.name,
                &s.user,
                &s.team,
                &s.project,
                &s.agent,
                &key.created_at.0,
                &key.expires_at.map(|m| m.0),
                &key.limits.requests_per_minute.map(|n| n as i64),
                &key.limits.tokens_per_minute.map(|n| n as i64),
            ],
        )
        .await?;
    Ok(())
}

#[async_trait]
impl KeyStore for PostgresStore {
    async fn create_key(&self, key: &VirtualKey, key_hash: &str) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        insert_key(&tx, key, key_hash).await?;
        Ok(tx.commit().await?)
    }

    async fn keys(&self) -> Result<Vec<VirtualKey>, StoreError> {
        let client = self.pool.get().await?;
        let sql = format!(
            "SELECT {} FROM virtual_keys ORDER BY created_at DESC, id",
            keys::COLUMNS
        );
        Ok(client.query(&sql, &[]).await?.iter().map(read_key).collect())
    }

    async fn key_by_hash(&self, key_hash: &str) -> Result<Option<VirtualKey>, StoreError> {
        let client = self.pool.get().await?;
        Ok(client
            .query_opt(keys::SELECT_FOR_CALL, &[&key_hash])
            .await?
            .as_ref()
            .map(read_key))
    }

    async fn revoke_key(&self, id: &str, at: Micros) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        Ok(client.execute(keys::REVOKE, &[&at.0, &None::<String>, &id]).await? == 1)
    }

    async fn replace_key(
        &self,
        old_id: &str,
        new: &VirtualKey,
        new_hash: &str,
        at: Micros,
    ) -> Result<bool, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        if tx.execute(keys::REVOKE, &[&at.0, &new.id, &old_id]).await? != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_key(&tx, new, new_hash).await?;
        tx.commit().await?;
        Ok(true)
    }
}
