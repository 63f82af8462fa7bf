//! PostgreSQL: the people directory.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;

use crate::directory::{self, DirectoryStore, Member, RoleGrant};
use crate::error::StoreError;

use super::PostgresStore;

#[async_trait]
impl DirectoryStore for PostgresStore {
    async fn record_member(&self, member: &Member) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                directory::UPSERT,
                &[
                    &member.user,
                    &member.team,
                    &member.email,
                    &member.issuer,
                    &member.subject,
                    &member.updated_at.0,
                ],
            )
            .await?;
        Ok(())
    }

    async fn forget_member(&self, user: &str) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        Ok(client.execute(directory::DELETE, &[&user]).await? == 1)
    }

    async fn members(&self) -> Result<Vec<Member>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client.query(directory::SELECT_ALL, &[]).await?;
        Ok(rows
            .iter()
            .map(|r| directory::member((r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5))))
            .collect())
    }

    async fn teams_of(&self, users: &[String]) -> Result<HashMap<String, String>, StoreError> {
        if users.is_empty() {
            return Ok(HashMap::new());
        }
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT user_name, team FROM directory WHERE team IS NOT NULL AND user_name = ANY($1)",
                &[&users],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn grant_role(&self, grant: &RoleGrant) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                directory::UPSERT_GRANT,
                &[&grant.user, &grant.role, &grant.team, &grant.granted_at.0],
            )
            .await?;
        Ok(())
    }

    async fn revoke_role_grant(&self, user: &str) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        Ok(client.execute(directory::DELETE_GRANT, &[&user]).await? == 1)
    }

    async fn role_grants(&self) -> Result<Vec<RoleGrant>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client.query(directory::SELECT_GRANTS, &[]).await?;
        Ok(rows.iter().map(read_grant).collect())
    }

    async fn role_grant(&self, user: &str) -> Result<Option<RoleGrant>, StoreError> {
        let client = self.pool.get().await?;
        Ok(client
            .query_opt(directory::SELECT_GRANT, &[&user])
            .await?
            .as_ref()
            .map(read_grant))
    }
}

fn read_grant(r: &tokio_postgres::Row) -> RoleGrant {
    directory::grant((r.get(0), r.get(1), r.get(2), r.get(3)))
}
