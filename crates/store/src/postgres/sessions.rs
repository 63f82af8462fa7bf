//! PostgreSQL: sign-in sessions.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use goodhart_core::Micros;

use crate::error::StoreError;
use crate::sessions::{self, Session, SessionStore};

use super::PostgresStore;

#[async_trait]
impl SessionStore for PostgresStore {
    async fn create_session(&self, session: &Session, secret_hash: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                sessions::INSERT,
                &[
                    &session.id,
                    &secret_hash,
                    &session.issuer,
                    &session.subject,
                    &session.email,
                    &session.name,
                    &sessions::groups_json(&session.groups),
                    &session.created_at.0,
                    &session.expires_at.0,
                ],
            )
            .await?;
        Ok(())
    }

    async fn session_by_hash(&self, secret_hash: &str) -> Result<Option<Session>, StoreError> {
        let client = self.pool.get().await?;
        let row = client.query_opt(&sessions::select_by_hash(), &[&secret_hash]).await?;
        Ok(row.map(|r| sessions::session(read_session(&r))))
    }

    async fn live_sessions(&self, now: Micros) -> Result<Vec<Session>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client.query(&sessions::select_live(), &[&now.0]).await?;
        Ok(rows.iter().map(|r| sessions::session(read_session(r))).collect())
    }

    async fn revoke_session(&self, id: &str, at: Micros) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        Ok(client.execute(sessions::REVOKE, &[&at.0, &id]).await? == 1)
    }

    async fn keep_session_id_token(&self, id: &str, id_token: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client.execute(sessions::KEEP_ID_TOKEN, &[&id_token, &id]).await?;
        Ok(())
    }

    async fn session_id_token(&self, secret_hash: &str) -> Result<Option<String>, StoreError> {
        let client = self.pool.get().await?;
        let row = client.query_opt(sessions::SELECT_ID_TOKEN, &[&secret_hash]).await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn use_login_state(&self, state_hash: &str, at: Micros) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        Ok(client.execute(sessions::USE_LOGIN_STATE, &[&state_hash, &at.0]).await? == 1)
    }

    async fn forget_login_states(&self, before: Micros) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client.execute(sessions::FORGET_LOGIN_STATES, &[&before.0]).await?;
        Ok(())
    }
}

fn read_session(r: &tokio_postgres::Row) -> sessions::Row {
    (
        r.get(0),
        r.get(1),
        r.get(2),
        r.get(3),
        r.get(4),
        r.get(5),
        r.get(6),
        r.get(7),
        r.get(8),
    )
}
