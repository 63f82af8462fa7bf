//! Recording usage without losing any: every call's record is appended to the durable spool
//! (one `write`, which survives the process being killed) before its response completes; a
//! syncer makes appends survive a power loss within `spool_sync_ms` (or at once when that is
//! 0); a flusher moves sealed segments into the store every `flush_interval`. Segments left
//! by a previous run — killed or not — are flushed at start, and inserts are idempotent by
//! event id, so every call is stored exactly once.
//!
//! When the spool cannot take a record (a full disk, EIO), the record is kept in memory — at
//! most [`MAX_PENDING`] of them, the oldest dropped beyond — and new calls are refused (503)
//! until an append succeeds again: each later append, and the flusher at every turn, first
//! writes the kept records. Calls in flight when the disk fills are thus recorded once it has
//! room, unless the process dies before.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use goodhart_store::Store;
use goodhart_store::spool::{self, Spool, SpoolError, SpooledEvent};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;

/// Records the spool refused, kept in memory until it takes them: a bound on memory (a few
/// MiB) far above the calls in flight when a disk fills, as new calls are refused meanwhile.
pub const MAX_PENDING: usize = 10_000;

/// How long calls are refused after the spool failed to take a record.
const REFUSE_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// The longest wait between flushes while the store fails (the wait doubles from the flush
/// interval up to this): after an outage, records reach the store within about this long.
const MAX_FLUSH_BACKOFF: Duration = Duration::from_secs(2);

pub struct Recorder {
    spool: Mutex<Spool>,
    /// Something was appended since the last sync.
    dirty: AtomicBool,
    sync_every_call: bool,
    /// When an append last failed: new calls are refused for [`REFUSE_AFTER_FAILURE`], then
    /// let through again (their appends are the retry).
    failed_at: Mutex<Option<Instant>>,
    /// Records the spool refused, oldest first (locked after `spool`, never before).
    pending: Mutex<VecDeque<SpooledEvent>>,
    /// One flush at a time (the background flusher and on-demand flushes).
    flushing: tokio::sync::Mutex<()>,
    /// Since when flushes have been failing (cleared by the next one that succeeds).
    flush_failing_since: Mutex<Option<Instant>>,
    metrics: Arc<Metrics>,
}

impl Recorder {
    pub fn new(spool: Spool, sync_every_call: bool, metrics: Arc<Metrics>) -> Recorder {
        Recorder {
            spool: Mutex::new(spool),
            dirty: AtomicBool::new(false),
            sync_every_call,
            failed_at: Mutex::new(None),
            pending: Mutex::new(VecDeque::new()),
            flushing: tokio::sync::Mutex::new(()),
            flush_failing_since: Mutex::new(None),
            metrics,
        }
    }

    fn spool(&self) -> std::sync::MutexGuard<'_, Spool> {
        self.spool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one call's record. Called from response bodies (also when they are dropped),
    /// so it is synchronous: a `write` of a few hundred bytes into the page cache.
    pub fn append(&self, record: SpooledEvent) {
        let mut spool = self.spool();
        let mut pending = self.pending();
        let result = self.append_pending(&mut spool, &mut pending).and_then(|()| {
            spool
                .append(std::slice::from_ref(&record))
                .and_then(|()| if self.sync_every_call { spool.sync() } else { Ok(()) })
        });
        drop(spool);
        match result {
            Ok(()) => {
                self.dirty.store(true, Ordering::Release);
                self.metrics.spooled.inc();
            }
            Err(e) => {
                *self.failed_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                self.metrics.spool_errors.inc();
                tracing::error!(event = %record.event.id, user = %record.event.attribution.user, model = %record.event.model,
                    input = record.event.tokens.input, output = record.event.tokens.output, kept = pending.len() + 1,
                    "usage could not be spooled; kept in memory until the spool takes it: {e}");
                if pending.len() >= MAX_PENDING
                    && let Some(dropped) = pending.pop_front()
                {
                    tracing::error!(event = %dropped.event.id, user = %dropped.event.attribution.user,
                        "usage dropped: {MAX_PENDING} records are waiting for the spool already");
                }
                pending.push_back(record);
            }
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, VecDeque<SpooledEvent>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the records the spool refused before (the caller holds both locks).
    fn append_pending(&self, spool: &mut Spool, pending: &mut VecDeque<SpooledEvent>) -> Result<(), SpoolError> {
        if pending.is_empty() {
            return Ok(());
        }
        spool.append(pending.make_contiguous())?;
        tracing::info!(
            records = pending.len(),
            "usage kept in memory while the spool failed is spooled now"
        );
        self.metrics.spooled.inc_by(pending.len() as u64);
        self.dirty.store(true, Ordering::Release);
        pending.clear();
        Ok(())
    }

    /// Retries the records the spool refused (the flusher calls this at every turn).
    pub fn retry_pending(&self) {
        let mut spool = self.spool();
        let mut pending = self.pending();
        if let Err(e) = self.append_pending(&mut spool, &mut pending) {
            *self.failed_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
            tracing::warn!(
                kept = pending.len(),
                "usage kept in memory still cannot be spooled: {e}"
            );
        }
    }

    /// The spool failed to take a record within the last `REFUSE_AFTER_FAILURE` (one second),
    /// or records it refused are still waiting.
    pub fn is_failing(&self) -> bool {
        let failed_at = *self.failed_at.lock().unwrap_or_else(|e| e.into_inner());
        failed_at.is_some_and(|at| at.elapsed() < REFUSE_AFTER_FAILURE) || !self.pending().is_empty()
    }

    /// How long flushes into the store have been failing, if the last one failed.
    pub fn flush_failing_for(&self) -> Option<Duration> {
        let since = *self.flush_failing_since.lock().unwrap_or_else(|e| e.into_inner());
        since.map(|at| at.elapsed())
    }

    pub fn depth_bytes(&self) -> u64 {
        self.spool().depth_bytes().unwrap_or(0)
    }

    /// Syncs the active segment if anything was appended (without holding the spool, so
    /// appends are never held up by the disk).
    async fn sync(&self) {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        let syncing = Instant::now();
        let handle = self.spool().active_handle();
        let synced = match handle {
            Ok(file) => tokio::task::spawn_blocking(move || file.sync_data())
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e))),
            Err(SpoolError::Io { source, .. }) => Err(source),
            Err(e) => Err(std::io::Error::other(e.to_string())),
        };
        Metrics::observe_since(&self.metrics.background.sync, syncing);
        if let Err(e) = synced {
            self.dirty.store(true, Ordering::Release);
            tracing::warn!("spool sync failed: {e}");
        }
    }

    /// Seals the active segment and moves every sealed one into the store (a failure is
    /// counted in `flush_errors`; what was not stored stays spooled).
    pub async fn flush(&self, store: &dyn Store) -> Result<spool::FlushOutcome, SpoolError> {
        let _one_at_a_time = self.flushing.lock().await;
        self.retry_pending();
        let flushed = self.flush_sealed(store).await;
        let mut failing_since = self.flush_failing_since.lock().unwrap_or_else(|e| e.into_inner());
        match &flushed {
            Ok(_) => *failing_since = None,
            Err(_) => {
                self.metrics.flush_errors.inc();
                failing_since.get_or_insert_with(Instant::now);
            }
        }
        flushed
    }

    async fn flush_sealed(&self, store: &dyn Store) -> Result<spool::FlushOutcome, SpoolError> {
        let sealed = {
            let mut spool = self.spool();
            spool.seal()?;
            spool.sealed()?
        };
        if sealed.is_empty() {
            return Ok(spool::FlushOutcome::default());
        }
        let flushing = Instant::now();
        let outcome = spool::flush(sealed, store).await?;
        Metrics::observe_since(&self.metrics.background.flush, flushing);
        self.metrics.flushed.inc_by(outcome.inserted);
        self.metrics.corrupt_segments.inc_by(outcome.corrupt_segments);
        Ok(outcome)
    }

    /// Runs the syncer and the flusher until `cancel`, then flushes once more.
    pub fn start(
        self: &Arc<Self>,
        store: Arc<dyn Store>,
        sync_interval: Duration,
        flush_interval: Duration,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) {
        if !sync_interval.is_zero() {
            let (recorder, cancel) = (Arc::clone(self), cancel.clone());
            tracker.spawn(async move {
                let mut tick = tokio::time::interval(sync_interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => recorder.sync().await,
                        () = cancel.cancelled() => break,
                    }
                }
                recorder.sync().await;
            });
        }
        let recorder = Arc::clone(self);
        // Records kept in memory are retried at least this often, however long flushes back off.
        let retry_every = Duration::from_millis(250);
        tracker.spawn(async move {
            let mut backoff = flush_interval;
            let mut waited_since = Instant::now();
            loop {
                tokio::select! {
                    () = tokio::time::sleep(backoff.min(retry_every)) => {}
                    () = cancel.cancelled() => break,
                }
                recorder.retry_pending();
                if waited_since.elapsed() < backoff {
                    continue;
                }
                waited_since = Instant::now();
                match recorder.flush(store.as_ref()).await {
                    Ok(outcome) => {
                        backoff = flush_interval;
                        if outcome.superseded > 0 {
                            tracing::debug!(
                                superseded = outcome.superseded,
                                "gateway records replaced other sources' records of the same calls"
                            );
                        }
                        if outcome.duplicates > 0 {
                            tracing::info!(
                                duplicates = outcome.duplicates,
                                "replayed spooled usage the store already had"
                            );
                        }
                    }
                    Err(e) => {
                        backoff = (backoff * 2).min(MAX_FLUSH_BACKOFF.max(flush_interval));
                        tracing::warn!(retry_in = ?backoff, "usage flush failed, will retry (nothing is lost): {e}");
                    }
                }
            }
            recorder.retry_pending();
            let lost = recorder.pending().len();
            if lost > 0 {
                tracing::error!(records = lost, "usage the spool could not take is lost at shutdown");
            }
            if let Err(e) = recorder.flush(store.as_ref()).await {
                tracing::warn!("final usage flush failed; the spool is replayed at the next start: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use goodhart_store::testing::TestDatabase;

    use super::*;

    fn record(i: u64) -> SpooledEvent {
        goodhart_store::testing::spooled_event(format!("corrupt-test-{i}"), "m".into())
    }

    #[tokio::test]
    async fn records_the_spool_refused_on_a_full_disk_are_kept_and_stored_once_it_has_room() {
        let disk = match goodhart_store::testing::SmallDisk::mount(256 * 1024) {
            Ok(disk) => disk,
            Err(reason) => {
                eprintln!("skipped: {reason}");
                return;
            }
        };
        let db = TestDatabase::sqlite();
        let store = db.open().await.unwrap();
        let spool = Spool::open(&disk.path().join("spool")).unwrap();
        let recorder = Recorder::new(spool, false, Arc::new(Metrics::new()));
        recorder.append(record(0));
        disk.fill().unwrap();
        // Enough to need pages the disk no longer has.
        for i in 1..40 {
            recorder.append(record(i));
        }
        assert!(!recorder.pending().is_empty(), "some records did not fit");
        assert!(recorder.is_failing(), "new calls are refused while records wait");
        let mut stored = recorder.flush(store.as_ref()).await.unwrap().inserted;
        assert!(!recorder.pending().is_empty(), "still no room");
        disk.free().unwrap();
        stored += recorder.flush(store.as_ref()).await.unwrap().inserted;
        assert!(recorder.pending().is_empty());
        assert_eq!(stored, 40, "every record stored once");
    }

    #[tokio::test]
    async fn a_damaged_segment_is_counted_in_metrics_and_the_rest_of_it_stored() {
        let dir = tempfile::tempdir().unwrap();
        let db = TestDatabase::sqlite();
        let store = db.open().await.unwrap();
        let mut spool = Spool::open(dir.path()).unwrap();
        spool.append(&(0..3).map(record).collect::<Vec<_>>()).unwrap();
        spool.seal().unwrap();
        let path = spool.sealed().unwrap().remove(0);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[20] ^= 0xff; // inside the first record's JSON
        std::fs::write(&path, bytes).unwrap();
        let metrics = Arc::new(Metrics::new());
        let recorder = Recorder::new(spool, false, Arc::clone(&metrics));
        let outcome = recorder.flush(store.as_ref()).await.unwrap();
        assert_eq!((outcome.inserted, outcome.corrupt_segments), (2, 1));
        assert!(
            metrics
                .encode()
                .contains("goodhart_gateway_spool_corrupt_segments_total 1\n"),
            "{}",
            metrics.encode()
        );
    }
}
