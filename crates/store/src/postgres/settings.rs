//! PostgreSQL: small named values.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;

use crate::error::StoreError;
use crate::settings::SettingsStore;

use super::PostgresStore;

#[async_trait]
impl SettingsStore for PostgresStore {
    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let client = self.pool.get().await?;
        Ok(client
            .query_opt("SELECT value FROM settings WHERE key = $1", &[&key])
            .await?
            .map(|r| r.get(0)))
    }

    async fn set_setting_if_absent(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let changed = client
            .execute(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &value],
            )
            .await?;
        Ok(changed == 1)
    }
}
