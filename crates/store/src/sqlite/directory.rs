//! SQLite: the people directory.

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use crate::directory::{self, DirectoryStore, Member, RoleGrant};
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

    async fn forget_member(&self, user: &str) -> Result<bool, StoreError> {
        let user = user.to_owned();
        self.write(move |w| Ok(w.conn.execute(directory::DELETE, [user])? == 1))
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

    async fn grant_role(&self, grant: &RoleGrant) -> Result<(), StoreError> {
        let g = grant.clone();
        self.write(move |w| {
            w.conn
                .execute(directory::UPSERT_GRANT, params![g.user, g.role, g.team, g.granted_at.0])?;
            Ok(())
        })
        .await
    }

    async fn revoke_role_grant(&self, user: &str) -> Result<bool, StoreError> {
        let user = user.to_owned();
        self.write(move |w| Ok(w.conn.execute(directory::DELETE_GRANT, [user])? == 1))
            .await
    }

    async fn role_grants(&self) -> Result<Vec<RoleGrant>, StoreError> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(directory::SELECT_GRANTS)?;
            let rows = statement.query_map([], read_grant)?;
            Ok(rows.map(|r| r.map(directory::grant)).collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn role_grant(&self, user: &str) -> Result<Option<RoleGrant>, StoreError> {
        let user = user.to_owned();
        self.read(move |conn| {
            let row = conn
                .prepare_cached(directory::SELECT_GRANT)?
                .query_row([user], read_grant)
                .optional()?;
            Ok(row.map(directory::grant))
        })
        .await
    }
}

fn read_grant(r: &rusqlite::Row<'_>) -> rusqlite::Result<directory::GrantRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}
