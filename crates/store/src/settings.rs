//! Small named values such as the admin token's hash.

use async_trait::async_trait;

use crate::error::StoreError;

/// Small named values such as the admin token's hash.
#[async_trait]
pub trait SettingsStore: Send + Sync {
    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Sets `key` unless it already has a value; returns whether this call set it.
    async fn set_setting_if_absent(&self, key: &str, value: &str) -> Result<bool, StoreError>;
}
