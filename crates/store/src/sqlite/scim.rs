//! SQLite: people and groups provisioned over SCIM.

use async_trait::async_trait;
use rusqlite::params;

use crate::error::StoreError;
use crate::scim::{self, ScimGroup, ScimStore, ScimUser};

use super::SqliteStore;

#[async_trait]
impl ScimStore for SqliteStore {
    async fn put_scim_user(&self, user: &ScimUser) -> Result<(), StoreError> {
        let u = user.clone();
        self.write(move |w| {
            w.conn.execute(
                scim::UPSERT_USER,
                params![
                    u.id,
                    u.user_name,
                    u.external_id,
                    u.display_name,
                    u.given_name,
                    u.family_name,
                    u.email,
                    u.active,
                    u.created_at.0,
                    u.updated_at.0
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn scim_users(&self) -> Result<Vec<ScimUser>, StoreError> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(scim::SELECT_USERS)?;
            let rows = statement.query_map([], |r| {
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
                ))
            })?;
            Ok(rows.map(|r| r.map(scim::user)).collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn delete_scim_user(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |w| {
            let tx = w
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute(scim::DELETE_USER_MEMBERSHIPS, [&id])?;
            let deleted = tx.execute(scim::DELETE_USER, [&id])? == 1;
            tx.commit()?;
            Ok(deleted)
        })
        .await
    }

    async fn put_scim_group(&self, group: &ScimGroup) -> Result<(), StoreError> {
        let g = group.clone();
        self.write(move |w| {
            let tx = w
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute(
                scim::UPSERT_GROUP,
                params![g.id, g.display_name, g.external_id, g.created_at.0, g.updated_at.0],
            )?;
            tx.execute(scim::DELETE_GROUP_MEMBERSHIPS, [&g.id])?;
            for member in &g.members {
                tx.execute(scim::INSERT_MEMBERSHIP, params![g.id, member])?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn scim_groups(&self) -> Result<Vec<ScimGroup>, StoreError> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(scim::SELECT_GROUPS)?;
            let rows = statement
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
                .collect::<Result<_, _>>()?;
            let mut statement = conn.prepare_cached(scim::SELECT_MEMBERSHIPS)?;
            let memberships = statement
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            Ok(scim::groups(rows, memberships))
        })
        .await
    }

    async fn delete_scim_group(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |w| {
            let tx = w
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute(scim::DELETE_GROUP_MEMBERSHIPS, [&id])?;
            let deleted = tx.execute(scim::DELETE_GROUP, [&id])? == 1;
            tx.commit()?;
            Ok(deleted)
        })
        .await
    }
}
