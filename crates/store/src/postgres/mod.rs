//! The PostgreSQL backend, for several Goodhart instances sharing one database.
//!
//! A batch goes into `usage_events` as one insert of its columns as arrays with
//! `ON CONFLICT DO NOTHING RETURNING`, which tells exactly which ids were
//! new even when two instances ingest the same events at once. Rollup deltas are upserted in
//! key order with `unnest`, so concurrent writers never deadlock on them.
//!
//! The pool bounds every wait on the database (connecting, checking a connection, waiting for
//! one): while the server is down or unreachable, each use fails within seconds instead of
//! hanging its caller, and connections the server closed are replaced as soon as it is back,
//! without a restart.
//!
//! This file holds the plumbing (the connection pool, migrations at open, the cache of name
//! ids); each domain's trait is implemented in the file of its name.

mod agent_activity;
mod alerts;
mod audit;
mod budgets;
mod directory;
mod findings;
mod keys;
mod leases;
mod outcomes;
mod provider_reports;
mod scim;
mod sessions;
mod settings;
mod telemetry;
mod usage;
mod viewers;

use std::str::FromStr;
use std::sync::Mutex;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::clock::now_micros;
use crate::error::StoreError;
use crate::migrations;
use crate::rollup::NameCache;

const POOL_SIZE: usize = 16;
/// Connecting (unless the URL sets `connect_timeout`), and checking a pooled connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Waiting for a free connection when all are in use.
const WAIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Serialises migrations between instances starting at once (an arbitrary constant key).
const MIGRATION_LOCK_KEY: i64 = 0x0600_d4a7;

pub struct PostgresStore {
    pool: Pool,
    names: Mutex<NameCache>,
    /// Ingest transactions of one instance that may run at once. Batches of recent events
    /// upsert the same rollup rows, so more concurrent writers only wait on each other's row
    /// locks (2 measured best on 2 cores: BENCHMARKS.md).
    ingest_slots: tokio::sync::Semaphore,
}

const CONCURRENT_INGESTS: usize = 2;

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Pool(e.to_string())
    }
}

impl PostgresStore {
    /// Connects to `url` and brings the schema up to date. Use the `options` URL parameter
    /// (e.g. `?options=-csearch_path%3Dgoodhart`) to place the tables in another schema.
    pub async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(WAIT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        let store = PostgresStore {
            pool,
            names: Mutex::new(NameCache::default()),
            ingest_slots: tokio::sync::Semaphore::new(CONCURRENT_INGESTS),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
            .await?;
        tx.batch_execute(migrations::CREATE_LEDGER).await?;
        for migration in migrations::POSTGRES {
            let applied = tx
                .query_opt(
                    "SELECT version FROM schema_migrations WHERE version = $1",
                    &[&migration.version],
                )
                .await?;
            if applied.is_some() {
                continue;
            }
            tx.batch_execute(migration.sql)
                .await
                .map_err(|e| StoreError::Migration {
                    version: migration.version,
                    reason: e.to_string(),
                })?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                &[&migration.version, &now_micros().0],
            )
            .await?;
            tracing::info!(version = migration.version, "applied PostgreSQL migration");
        }
        tx.commit().await?;
        Ok(())
    }

    fn cached_names(&self) -> std::sync::MutexGuard<'_, NameCache> {
        self.names.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
