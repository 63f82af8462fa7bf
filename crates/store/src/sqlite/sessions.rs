//! SQLite: sign-in sessions.

use async_trait::async_trait;
use goodhart_core::Micros;
use rusqlite::{OptionalExtension, params};

use crate::error::StoreError;
use crate::sessions::{self, Session, SessionStore};

use super::SqliteStore;

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(&self, session: &Session, secret_hash: &str) -> Result<(), StoreError> {
        let (s, secret_hash) = (session.clone(), secret_hash.to_owned());
        self.write(move |w| {
            w.conn.execute(
                sessions::INSERT,
                params![
                    s.id,
                    secret_hash,
                    s.issuer,
                    s.subject,
                    s.email,
                    s.name,
                    sessions::groups_json(&s.groups),
                    s.created_at.0,
                    s.expires_at.0
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn session_by_hash(&self, secret_hash: &str) -> Result<Option<Session>, StoreError> {
        let secret_hash = secret_hash.to_owned();
        self.read(move |conn| {
            let row = conn
                .prepare_cached(&sessions::select_by_hash())?
                .query_row([secret_hash], read_session)
                .optional()?;
            Ok(row.map(sessions::session))
        })
        .await
    }

    async fn live_sessions(&self, now: Micros) -> Result<Vec<Session>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&sessions::select_live())?;
            let rows = statement.query_map([now.0], read_session)?;
            Ok(rows.map(|r| r.map(sessions::session)).collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn revoke_session(&self, id: &str, at: Micros) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |w| Ok(w.conn.execute(sessions::REVOKE, params![at.0, id])? == 1))
            .await
    }

    async fn keep_session_id_token(&self, id: &str, id_token: &str) -> Result<(), StoreError> {
        let (id, id_token) = (id.to_owned(), id_token.to_owned());
        self.write(move |w| {
            w.conn.execute(sessions::KEEP_ID_TOKEN, params![id_token, id])?;
            Ok(())
        })
        .await
    }

    async fn session_id_token(&self, secret_hash: &str) -> Result<Option<String>, StoreError> {
        let secret_hash = secret_hash.to_owned();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(sessions::SELECT_ID_TOKEN)?
                .query_row([secret_hash], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn use_login_state(&self, state_hash: &str, at: Micros) -> Result<bool, StoreError> {
        let state_hash = state_hash.to_owned();
        self.write(move |w| Ok(w.conn.execute(sessions::USE_LOGIN_STATE, params![state_hash, at.0])? == 1))
            .await
    }

    async fn forget_login_states(&self, before: Micros) -> Result<(), StoreError> {
        self.write(move |w| {
            w.conn.execute(sessions::FORGET_LOGIN_STATES, params![before.0])?;
            Ok(())
        })
        .await
    }
}

fn read_session(r: &rusqlite::Row<'_>) -> rusqlite::Result<sessions::Row> {
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
    ))
}
