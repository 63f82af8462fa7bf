//! SQLite: the people directory.

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::params;

use crate::directory::{self, DirectoryStore, Member};
use crate::error::StoreError;

use super::SqliteStore;

#[async_trait]
impl DirectoryStore for SqliteStore {
    async fn record_member(&self, member: &Member) -> Result<(), StoreError> {
        let m = member.clone();
        self.write(move |w| {
            w.conn.execute(
                directory::UPSERT,
                params![m.user, m.team, m.email, m.issuer, m.subject, m.updated_at.0],
            )?;
            Ok(())
        })
        .await
    }

    async fn members(&self) -> Result<Vec<Member>, StoreError> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(directory::SELECT_ALL)?;
            let rows = statement.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
            })?;
            Ok(rows.map(|r| r.map(directory::member)).collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn teams_of(&self, users: &[String]) -> Result<HashMap<String, String>, StoreError> {
        if users.is_empty() {
            return Ok(HashMap::new());
        }
        let users = serde_json::Value::from(users.to_vec()).to_string();
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT user_name, team FROM directory \
                 WHERE team IS NOT NULL AND user_name IN (SELECT value FROM json_each($1))",
            )?;
            let rows = statement.query_map([users], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }
}
