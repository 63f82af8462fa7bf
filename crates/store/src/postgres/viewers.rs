//! PostgreSQL: viewer and ingest tokens.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use goodhart_core::Micros;

use crate::error::StoreError;
use crate::viewers::{self, ViewerStore, ViewerToken};

use super::PostgresStore;

#[async_trait]
impl ViewerStore for PostgresStore {
    async fn create_viewer(&self, token: &ViewerToken, token_hash: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                viewers::INSERT,
                &[
                    &token.id,
                    &token_hash,
                    &token.name,
                    &token.team,
                    &token.created_at.0,
                    &token.role.as_str(),
                    &token.user,
                ],
            )
            .await?;
        Ok(())
    }

    async fn viewers(&self) -> Result<Vec<ViewerToken>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client.query(viewers::SELECT_ALL, &[]).await?;
        Ok(rows.iter().map(|r| viewers::token(read_viewer(r))).collect())
    }

    async fn viewer_by_hash(&self, token_hash: &str) -> Result<Option<ViewerToken>, StoreError> {
        let client = self.pool.get().await?;
        let row = client.query_opt(viewers::SELECT_BY_HASH, &[&token_hash]).await?;
        Ok(row.map(|r| viewers::token(read_viewer(&r))))
    }

    async fn revoke_viewer(&self, id: &str, at: Micros) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        Ok(client.execute(viewers::REVOKE, &[&at.0, &id]).await? == 1)
    }
}

fn read_viewer(r: &tokio_postgres::Row) -> viewers::Row {
    (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6))
}
