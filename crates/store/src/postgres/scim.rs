//! PostgreSQL: people and groups provisioned over SCIM.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;

use crate::error::StoreError;
use crate::scim::{self, ScimGroup, ScimStore, ScimUser};

use super::PostgresStore;

#[async_trait]
impl ScimStore for PostgresStore {
    async fn put_scim_user(&self, user: &ScimUser) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                scim::UPSERT_USER,
                &[
                    &user.id,
                    &user.user_name,
                    &user.external_id,
                    &user.display_name,
                    &user.given_name,
                    &user.family_name,
                    &user.email,
                    &user.active,
                    &user.created_at.0,
                    &user.updated_at.0,
                ],
            )
            .await?;
        Ok(())
    }

    async fn scim_users(&self) -> Result<Vec<ScimUser>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client.query(scim::SELECT_USERS, &[]).await?;
        Ok(rows
            .iter()
            .map(|r| {
                scim::user((
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
                ))
            })
            .collect())
    }

    async fn delete_scim_user(&self, id: &str) -> Result<bool, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute(scim::DELETE_USER_MEMBERSHIPS, &[&id]).await?;
        let deleted = tx.execute(scim::DELETE_USER, &[&id]).await? == 1;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn put_scim_group(&self, group: &ScimGroup) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute(
            scim::UPSERT_GROUP,
            &[
                &group.id,
                &group.display_name,
                &group.external_id,
                &group.created_at.0,
                &group.updated_at.0,
            ],
        )
        .await?;
        tx.execute(scim::DELETE_GROUP_MEMBERSHIPS, &[&group.id]).await?;
        for member in &group.members {
            tx.execute(scim::INSERT_MEMBERSHIP, &[&group.id, member]).await?;
        }
        Ok(tx.commit().await?)
    }

    async fn scim_groups(&self) -> Result<Vec<ScimGroup>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(scim::SELECT_GROUPS, &[])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect();
        let memberships = client
            .query(scim::SELECT_MEMBERSHIPS, &[])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        Ok(scim::groups(rows, memberships))
    }

    async fn delete_scim_group(&self, id: &str) -> Result<bool, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute(scim::DELETE_GROUP_MEMBERSHIPS, &[&id]).await?;
        let deleted = tx.execute(scim::DELETE_GROUP, &[&id]).await? == 1;
        tx.commit().await?;
        Ok(deleted)
    }
}
