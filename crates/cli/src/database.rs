//! The configured database, opened for a command, and the application over it.

use std::sync::Arc;

use anyhow::Context;
use goodhart_server::app::App;
use goodhart_server::config::Config;
use goodhart_store::Store;

/// The configured database, created and migrated if need be (for commands that write).
pub(crate) async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    goodhart_store::open(&config.database_url)
        .await
        .context("opening the database")
}

/// The configured database, which must exist (for commands that only read).
pub(crate) async fn open_existing_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    goodhart_store::open_existing(&config.database_url)
        .await
        .context("opening the database")
}

/// The application over the configured database, created if need be (for commands that write).
pub(crate) async fn open_app(config: &Config) -> anyhow::Result<App> {
    Ok(App::new(
        open_store(config).await?,
        Arc::clone(&config.prices),
        config.settings(),
    ))
}

/// The application over the configured database, which must exist (for commands that only read).
pub(crate) async fn open_existing_app(config: &Config) -> anyhow::Result<App> {
    Ok(App::new(
        open_existing_store(config).await?,
        Arc::clone(&config.prices),
        config.settings(),
    ))
}
