//! Goodhart's persistence.
//!
//! Per-domain traits ([`UsageStore`], [`KeyStore`], [`BudgetStore`], [`AlertStore`],
//! [`LeaseStore`], [`OutcomeStore`], [`FindingStore`], [`ViewerStore`], [`TelemetryStore`],
//! [`ProviderReportStore`], [`AgentActivityStore`], [`SettingsStore`], [`AuditStore`], [`SessionStore`], [`DirectoryStore`], [`ScimStore`]), each in its domain's module with its row types and the SQL both dialects
//! share, implemented by two sibling backends: [`sqlite`] (the embedded default: one file, WAL)
//! and [`postgres`] (for several instances), one file per domain in each. Both apply
//! timestamped SQL migrations at open and keep hourly and daily rollups in the same
//! transaction as the events, so reports never see one without the other. One conformance
//! suite (`tests/conformance.rs`) runs against both.
//!
//! This file is the facade: [`Store`], [`open`] and the re-exports other crates name.

use std::sync::Arc;

pub mod agent_activity;
pub mod alerts;
pub mod audit;
pub mod budgets;
mod clock;
pub mod directory;
mod error;
pub mod findings;
pub mod keys;
pub mod leases;
mod migrations;
pub mod outcomes;
pub mod postgres;
pub mod provider_reports;
mod rollup;
pub mod scim;
pub mod sessions;
pub mod settings;
pub mod spool;
pub mod sqlite;
mod summary;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod usage;
pub mod viewers;

pub use agent_activity::AgentActivityStore;
pub use alerts::{AlertStore, StoredAlert};
pub use audit::AuditStore;
pub use budgets::{BudgetStore, Spend};
pub use clock::now_micros;
pub use directory::DirectoryStore;
pub use error::StoreError;
pub use findings::FindingStore;
pub use keys::KeyStore;
pub use leases::LeaseStore;
pub use outcomes::OutcomeStore;
pub use provider_reports::ProviderReportStore;
pub use scim::ScimStore;
pub use sessions::SessionStore;
pub use settings::SettingsStore;
pub use telemetry::TelemetryStore;
pub use usage::{InsertOutcome, PricedEvent, RepriceOutcome, RepriceScope, SummaryQuery, UnpricedModel, UsageStore};
pub use viewers::ViewerStore;

/// Everything Goodhart stores, behind one handle.
pub trait Store:
    UsageStore
    + SettingsStore
    + KeyStore
    + BudgetStore
    + AlertStore
    + LeaseStore
    + OutcomeStore
    + FindingStore
    + ViewerStore
    + TelemetryStore
    + ProviderReportStore
    + AgentActivityStore
    + AuditStore
    + SessionStore
    + DirectoryStore
    + ScimStore
{
    /// `sqlite` or `postgres`, for logs.
    fn backend(&self) -> &'static str;
}

impl Store for sqlite::SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

impl Store for postgres::PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }
}

/// Opens (creating and migrating as needed) the database at `url`: `sqlite://PATH`,
/// `sqlite:PATH`, a bare path ending in `.db`, or `postgres://…` / `postgresql://…`.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    match sqlite_path(url)? {
        None => Ok(Arc::new(postgres::PostgresStore::open(url).await?)),
        Some(path) => Ok(Arc::new(sqlite::SqliteStore::open(path.as_ref()).await?)),
    }
}

/// Like [`open`], but a SQLite file must already exist: read-only commands run in the wrong
/// directory should say so, not create an empty database and report nothing.
pub async fn open_existing(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if let Some(path) = sqlite_path(url)?
        && !std::path::Path::new(path).exists()
    {
        return Err(StoreError::Missing(path.to_owned()));
    }
    open(url).await
}

/// The file of a SQLite URL, or `None` for PostgreSQL.
pub fn sqlite_path(url: &str) -> Result<Option<&str>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(None);
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .or_else(|| url.ends_with(".db").then_some(url))
        .filter(|path| !path.is_empty())
        .ok_or_else(|| StoreError::UnsupportedUrl(url.to_owned()))?;
    Ok(Some(path))
}
