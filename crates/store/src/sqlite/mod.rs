//! The embedded backend: one SQLite file in WAL mode.
//!
//! One writer connection (SQLite allows one writer at a time anyway) behind a mutex, and a
//! small pool of reader connections that WAL lets run beside it. Every call runs on tokio's
//! blocking pool so the async runtime never waits on disk. `synchronous = NORMAL` in WAL mode
//! survives a crash of the process; a power loss may lose the last commits.
//!
//! This file holds the plumbing (connections, the writer, migrations at open); each domain's
//! trait is implemented in the file of its name.

mod agent_activity;
mod alerts;
mod budgets;
mod findings;
mod keys;
mod leases;
mod outcomes;
mod provider_reports;
mod settings;
mod telemetry;
mod usage;
mod viewers;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};

use crate::clock::now_micros;
use crate::error::StoreError;
use crate::migrations::{self, Migration};
use crate::rollup::NameCache;

const READERS: usize = 4;

pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Writer>,
    readers: Mutex<Vec<Connection>>,
}

struct Writer {
    conn: Connection,
    names: NameCache,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll back
    // on drop), so a poisoned lock is still safe to use.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "busy_timeout", 10_000)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "cache_size", -65_536)?; // 64 MiB
    conn.pragma_update(None, "mmap_size", 1i64 << 30)?;
    // Checkpoint every 64 MiB of WAL instead of 4 MiB: rollup and index pages rewritten by
    // consecutive batches are then copied back once, not once per batch (a few percent more
    // ingest, see BENCHMARKS.md). The WAL file is truncated back to that size after checkpoints.
    conn.pragma_update(None, "wal_autocheckpoint", 16_384)?;
    conn.pragma_update(None, "journal_size_limit", 64i64 << 20)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn apply_migrations(conn: &mut Connection, list: &[Migration]) -> Result<(), StoreError> {
    conn.execute(migrations::CREATE_LEDGER, [])?;
    for migration in list {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let applied: Option<String> = tx
            .query_row(
                "SELECT version FROM schema_migrations WHERE version = ?1",
                [migration.version],
                |r| r.get(0),
            )
            .optional()?;
        if applied.is_none() {
            tx.execute_batch(migration.sql).map_err(|e| StoreError::Migration {
                version: migration.version,
                reason: e.to_string(),
            })?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                params![migration.version, now_micros().0],
            )?;
            tracing::info!(version = migration.version, "applied SQLite migration");
        }
        tx.commit()?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens or creates the database file at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let mut conn = connect(&path)?;
            apply_migrations(&mut conn, migrations::SQLITE)?;
            Ok(SqliteStore {
                inner: Arc::new(Inner {
                    path,
                    writer: Mutex::new(Writer {
                        conn,
                        names: NameCache::default(),
                    }),
                    readers: Mutex::new(Vec::new()),
                }),
            })
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
    }

    async fn write<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Writer) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut writer = lock(&inner.writer);
            let result = job(&mut writer);
            if result.is_err() {
                writer.names.clear();
            }
            result
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
    }

    async fn read<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = lock(&inner.readers).pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => connect(&inner.path)?,
            };
            let result = job(&conn);
            let mut readers = lock(&inner.readers);
            if readers.len() < READERS {
                readers.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
    }
}
