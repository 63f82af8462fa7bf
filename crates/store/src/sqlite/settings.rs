//! SQLite: small named values.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use crate::error::StoreError;
use crate::settings::SettingsStore;

use super::SqliteStore;

#[async_trait]
impl SettingsStore for SqliteStore {
    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        self.read(move |conn| {
            Ok(conn
                .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn set_setting_if_absent(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.write(move |w| {
            let changed = w.conn.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                params![key, value],
            )?;
            Ok(changed == 1)
        })
        .await
    }
}
