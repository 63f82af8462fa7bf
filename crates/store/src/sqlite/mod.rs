//! The embedded backend: one SQLite file in WAL mode.
//!
//! One writer connection (SQLite allows one writer at a time anyway) and a small pool of
//! reader connections that WAL lets run beside it on tokio's blocking pool, so the async
//! runtime never waits on disk. The writer connection is shared by two threads, its lanes, each
//! taking its jobs in order: the bulk lane stores batches of usage and reprices (milliseconds
//! of work each), the urgent lane does everything else, chiefly the small writes calls wait on
//! (borrowing from budgets' and rate limits' shared pools). A lane holds the connection for one
//! job and then hands it straight to the other lane if it waits, so a borrow waits for at most
//! one batch, never for a queue of them.
//!
//! Both lanes keep normal priority. A bulk lane at nice 10 let calls go first on a busy core,
//! but a borrow waiting for the connection then waited for a starved thread to finish its
//! batch: under the whole test suite the demo's runaway agent got 42 calls through in 15 s
//! instead of reaching its cap (BENCHMARKS.md, 2026-12-06).
//! `synchronous = NORMAL` in WAL mode survives a crash of the process; a power loss may lose
//! the last commits.
//!
//! On a full disk a write fails with "database or disk is full" and nothing of it is kept; the
//! writer then checkpoints the WAL into the database and truncates it — before each later write
//! until that succeeds (it needs room for the database to grow). The WAL, checkpointed only
//! every 64 MiB, holds many copies of the same rollup and index pages, so this frees most of its
//! size: without it, a WAL that had filled the disk took back the space freed at once. From
//! then on the writer checkpoints every [`WAL_PAGES_AFTER_DISK_FULL`] pages (4 MiB) instead of
//! every 64 MiB: on a disk that ran full, a WAL that may grow to 64 MiB would fill it again, and
//! then could not even be checkpointed (the database must grow to take its new pages).
//!
//! This file holds the plumbing (connections, the writer, migrations at open); each domain's
//! trait is implemented in the file of its name.

mod agent_activity;
mod alerts;
mod audit;
mod budgets;
mod directory;
mod findings;
mod insert_queue;
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

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;

use rusqlite::{Connection, OptionalExtension, params};

use crate::clock::now_micros;
use crate::error::StoreError;
use crate::migrations::{self, Migration};
use crate::rollup::NameCache;

const READERS: usize = 4;
/// The WAL checkpoint threshold (pages of 4 KiB) once the disk has run full: SQLite's default.
const WAL_PAGES_AFTER_DISK_FULL: i64 = 1_000;

pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// Jobs for the writer's lanes; `None` once the store is dropped.
    lanes: Option<Lanes>,
    lane_threads: Vec<JoinHandle<()>>,
    readers: Mutex<Vec<Connection>>,
    /// Usage batches waiting to be stored together (see [`insert_queue::InsertQueue`]).
    inserts: Arc<insert_queue::InsertQueue>,
}

struct Lanes {
    urgent: mpsc::Sender<WriteJob>,
    bulk: mpsc::Sender<WriteJob>,
}

/// Which of the writer's lanes a job goes to.
#[derive(Clone, Copy)]
enum Lane {
    Urgent,
    Bulk,
}

type WriteJob = Box<dyn FnOnce(&mut Writer) + Send>;

impl Drop for Inner {
    fn drop(&mut self) {
        // The lanes finish the jobs they have, then the connection closes (checkpointing the
        // WAL) before the store is gone, so the file can be reopened or copied at once.
        drop(self.lanes.take());
        for thread in self.lane_threads.drain(..) {
            let _ = thread.join();
        }
    }
}

struct Writer {
    conn: Connection,
    names: NameCache,
    /// A write found the disk full: checkpoint and truncate the WAL before the next one.
    checkpoint_due: bool,
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
    // Pages are read through the memory map (the kernel's page cache), so SQLite's own cache
    // holds little more than the pages a transaction changes: 8 MiB ingests and reports as fast
    // as 64 MiB did, and a gateway that wrote for a while keeps ~40 MiB less (BENCHMARKS.md).
    conn.pragma_update(None, "cache_size", -8_192)?;
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

fn is_disk_full(error: &StoreError) -> bool {
    matches!(error, StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::DiskFull)
}

/// Checkpoints often from now on, and keeps the WAL file small.
fn smaller_wal(conn: &Connection) {
    let current: i64 = conn
        .pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))
        .unwrap_or(0);
    if current == WAL_PAGES_AFTER_DISK_FULL {
        return;
    }
    let set = conn
        .pragma_update(None, "wal_autocheckpoint", WAL_PAGES_AFTER_DISK_FULL)
        .and_then(|()| conn.pragma_update(None, "journal_size_limit", WAL_PAGES_AFTER_DISK_FULL * 4096));
    match set {
        Ok(()) => tracing::warn!(
            "SQLite: the disk ran full; the WAL is checkpointed every 4 MiB from now on (instead of 64 MiB)"
        ),
        Err(e) => {
            tracing::warn!("SQLite: the disk ran full, and the WAL's checkpoint threshold could not be lowered: {e}")
        }
    }
}

/// Moves the WAL into the database and truncates it, to give back the space of its stale page
/// copies after a write found the disk full; whether it did.
fn checkpoint_after_disk_full(conn: &Connection) -> bool {
    let wal = |conn: &Connection| {
        conn.path()
            .and_then(|p| std::fs::metadata(format!("{p}-wal")).ok())
            .map_or(0, |m| m.len())
    };
    let before = wal(conn);
    match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0)) {
        Ok(0) => {
            tracing::warn!(
                wal_bytes_before = before,
                wal_bytes_after = wal(conn),
                "SQLite: after a full disk, checkpointed and truncated the WAL"
            );
            true
        }
        Ok(_) => {
            tracing::warn!("SQLite: after a full disk, the WAL could not be checkpointed yet (readers busy)");
            false
        }
        Err(e) => {
            tracing::warn!(
                "SQLite: after a full disk, checkpointing the WAL failed (retried before the next write): {e}"
            );
            false
        }
    }
}

/// One lane of the writer: its jobs in the order they were sent, each holding the connection,
/// until the store is dropped.
fn run_lane(writer: &parking_lot::Mutex<Writer>, jobs: mpsc::Receiver<WriteJob>) {
    for job in jobs {
        let mut held = writer.lock();
        // A job that panics fails its own caller (its result is never sent), not the writes
        // after it; SQLite rolls back the transaction it left open when it was dropped.
        if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut held))).is_err() {
            held.names.clear();
        }
        // Straight to the other lane if it waits: without this the lane would usually take
        // the lock back for its next job before the woken waiter had run.
        parking_lot::MutexGuard::unlock_fair(held);
    }
}

fn start_lane(
    lane: Lane,
    writer: &Arc<parking_lot::Mutex<Writer>>,
) -> Result<(mpsc::Sender<WriteJob>, JoinHandle<()>), StoreError> {
    let (sender, jobs) = mpsc::channel();
    let writer = Arc::clone(writer);
    let name = match lane {
        Lane::Urgent => "goodhart-sqlite-writer",
        Lane::Bulk => "goodhart-sqlite-bulk",
    };
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || run_lane(&writer, jobs))
        .map_err(|e| StoreError::Worker(format!("could not start the SQLite writer thread {name}: {e}")))?;
    Ok((sender, thread))
}

impl SqliteStore {
    /// Opens or creates the database file at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let mut conn = connect(&path)?;
            apply_migrations(&mut conn, migrations::SQLITE)?;
            let writer = Arc::new(parking_lot::Mutex::new(Writer {
                conn,
                names: NameCache::default(),
                checkpoint_due: false,
            }));
            let (urgent, urgent_thread) = start_lane(Lane::Urgent, &writer)?;
            let (bulk, bulk_thread) = start_lane(Lane::Bulk, &writer)?;
            Ok(SqliteStore {
                inner: Arc::new(Inner {
                    path,
                    lanes: Some(Lanes { urgent, bulk }),
                    lane_threads: vec![urgent_thread, bulk_thread],
                    readers: Mutex::new(Vec::new()),
                    inserts: Arc::default(),
                }),
            })
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
    }

    /// Runs `job` on the writer's urgent lane, after the urgent writes sent before it.
    async fn write<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Writer) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.write_in(Lane::Urgent, job).await
    }

    /// Runs `job` on the writer's bulk lane, after the bulk writes sent before it: for long
    /// writes no call waits on.
    async fn write_bulk<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Writer) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.write_in(Lane::Bulk, job).await
    }

    async fn write_in<T: Send + 'static>(
        &self,
        lane: Lane,
        job: impl FnOnce(&mut Writer) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: WriteJob = Box::new(move |writer| {
            if writer.checkpoint_due {
                writer.checkpoint_due = !checkpoint_after_disk_full(&writer.conn);
            }
            let outcome = job(writer);
            if let Err(e) = &outcome {
                writer.names.clear();
                if is_disk_full(e) {
                    smaller_wal(&writer.conn);
                    writer.checkpoint_due = !checkpoint_after_disk_full(&writer.conn);
                }
            }
            // The caller may have stopped waiting (its write is done all the same).
            let _ = done.send(outcome);
        });
        let sent = self.inner.lanes.as_ref().map(|lanes| match lane {
            Lane::Urgent => lanes.urgent.send(job),
            Lane::Bulk => lanes.bulk.send(job),
        });
        if !matches!(sent, Some(Ok(()))) {
            return Err(StoreError::Worker("the SQLite writer has stopped".into()));
        }
        result
            .await
            .map_err(|_| StoreError::Worker("a SQLite write panicked".into()))?
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

#[cfg(test)]
mod full_disk {
    use super::*;

    #[tokio::test]
    async fn a_disk_filled_by_the_wal_is_given_back_by_a_checkpoint_and_writes_go_on() {
        let disk = match crate::testing::SmallDisk::mount(4 * 1024 * 1024) {
            Ok(disk) => disk,
            Err(reason) => {
                eprintln!("skipped: {reason}");
                return;
            }
        };
        let path = disk.path().join("g.db");
        let store = SqliteStore::open(&path).await.unwrap();
        store
            .write(|w| {
                Ok(w.conn
                    .execute_batch("CREATE TABLE t (x BLOB); INSERT INTO t VALUES (NULL)")?)
            })
            .await
            .unwrap();
        // The same row rewritten: each version goes to the WAL, until the disk is full.
        let rewrite = |i: u8| move |w: &mut Writer| Ok(w.conn.execute("UPDATE t SET x = ?1", [vec![i; 64 * 1024]])?);
        for i in 0..8u8 {
            store.write(rewrite(i)).await.unwrap();
        }
        disk.fill().unwrap();
        let full = store.write(rewrite(8)).await.unwrap_err();
        assert!(is_disk_full(&full), "{full}");
        let wal = || std::fs::metadata(disk.path().join("g.db-wal")).map_or(0, |m| m.len());
        let filled = wal();
        // Space returns: the next write first moves the WAL into the database.
        disk.free().unwrap();
        store.write(rewrite(9)).await.unwrap();
        assert!(wal() < filled / 2, "the WAL was truncated: {filled} -> {} bytes", wal());
        let threshold: i64 = store
            .write(|w| Ok(w.conn.pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(threshold, WAL_PAGES_AFTER_DISK_FULL, "the WAL stays small from then on");
        let integrity: String = store
            .read(|c| Ok(c.query_row("PRAGMA integrity_check", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(integrity, "ok");
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_run_in_order_on_one_thread_per_lane() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("g.db")).await.unwrap();
        let first = store.write(|_| Ok(std::thread::current().id())).await.unwrap();
        let second = store.write(|_| Ok(std::thread::current().id())).await.unwrap();
        assert_eq!(first, second);
        let bulk = store.write_bulk(|_| Ok(std::thread::current().id())).await.unwrap();
        assert_eq!(
            bulk,
            store.write_bulk(|_| Ok(std::thread::current().id())).await.unwrap()
        );
        assert_ne!(bulk, first);
    }

    #[tokio::test]
    async fn an_urgent_write_waits_for_one_bulk_write_not_for_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("g.db")).await.unwrap();
        let finished = Arc::new(Mutex::new(Vec::new()));
        let bulk: Vec<_> = (0..20)
            .map(|i| {
                let finished = Arc::clone(&finished);
                store.write_bulk(move |_| {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    lock(&finished).push(format!("bulk {i}"));
                    Ok(())
                })
            })
            .collect();
        let urgent = {
            let finished = Arc::clone(&finished);
            store.write(move |_| {
                lock(&finished).push("urgent".to_owned());
                Ok(())
            })
        };
        // `join!` polls the bulk writes first, which sends all their jobs; the urgent one after.
        let (bulk, urgent) = tokio::join!(futures_util::future::join_all(bulk), async {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            urgent.await
        });
        urgent.unwrap();
        bulk.into_iter().collect::<Result<Vec<()>, _>>().unwrap();
        let order = lock(&finished).clone();
        let position = order.iter().position(|job| job == "urgent").unwrap();
        // In one queue it would have come last, after 100 ms of bulk writes.
        assert!(
            position < 10,
            "the urgent write waited for {position} bulk writes: {order:?}"
        );
    }

    #[tokio::test]
    async fn a_write_that_panics_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("g.db")).await.unwrap();
        let failed: Result<(), _> = store.write(|_| panic!("boom")).await;
        assert!(matches!(failed, Err(StoreError::Worker(_))));
        let after = store
            .write(|writer| Ok(writer.conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))?))
            .await
            .unwrap();
        assert_eq!(after, 1);
    }
}
