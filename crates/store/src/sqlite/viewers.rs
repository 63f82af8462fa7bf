//! SQLite: viewer and ingest tokens.

use async_trait::async_trait;
use goodhart_core::Micros;
use rusqlite::{OptionalExtension, params};

use crate::error::StoreError;
use crate::viewers::{self, ViewerStore, ViewerToken};

use super::SqliteStore;

#[async_trait]
impl ViewerStore for SqliteStore {
    async fn create_viewer(&self, token: &ViewerToken, token_hash: &str) -> Result<(), StoreError> {
        let (t, token_hash) = (token.clone(), token_hash.to_owned());
        self.write(move |w| {
            w.conn.execute(
                viewers::INSERT,
                params![
                    t.id,
                    token_hash,
                    t.name,
                    t.team,
                    t.created_at.0,
                    t.role.as_str(),
                    t.user
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn viewers(&self) -> Result<Vec<ViewerToken>, StoreError> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(viewers::SELECT_ALL)?;
            let rows = statement.query_map([], read_viewer)?;
            Ok(rows.map(|r| r.map(viewers::token)).collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn viewer_by_hash(&self, token_hash: &str) -> Result<Option<ViewerToken>, StoreError> {
        let token_hash = token_hash.to_owned();
        self.read(move |conn| {
            let row = conn
                .prepare_cached(viewers::SELECT_BY_HASH)?
                .query_row([token_hash], read_viewer)
                .optional()?;
            Ok(row.map(viewers::token))
        })
        .await
    }

    async fn revoke_viewer(&self, id: &str, at: Micros) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |w| Ok(w.conn.execute(viewers::REVOKE, params![at.0, id])? == 1))
            .await
    }
}

fn read_viewer(r: &rusqlite::Row<'_>) -> rusqlite::Result<viewers::Row> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}
