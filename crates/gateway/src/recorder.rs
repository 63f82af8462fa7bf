//! Recording usage without losing any: every call's record is appended to the durable spool
//! (one `write`, which survives the process being killed) before its response completes; a
//! syncer makes appends survive a power loss within `spool_sync_ms` (or at once when that is
//! 0); a flusher moves sealed segments into the store every `flush_interval`. Segments left
//! by a previous run — killed or not — are flushed at start, and inserts are idempotent by
//! event id, so every call is stored exactly once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use goodhart_store::Store;
use goodhart_store::spool::{self, Spool, SpoolError, SpooledEvent};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;

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
        let result = spool
            .append(std::slice::from_ref(&record))
            .and_then(|()| if self.sync_every_call { spool.sync() } else { Ok(()) });
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
                    input = record.event.tokens.input, output = record.event.tokens.output,
                    "usage could not be spooled: {e}");
            }
        }
    }

    /// The spool failed to take a record within the last `REFUSE_AFTER_FAILURE` (one second).
    pub fn is_failing(&self) -> bool {
        let failed_at = *self.failed_at.lock().unwrap_or_else(|e| e.into_inner());
        failed_at.is_some_and(|at| at.elapsed() < REFUSE_AFTER_FAILURE)
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
        tracker.spawn(async move {
            let mut backoff = flush_interval;
            loop {
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = cancel.cancelled() => break,
                }
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
        let event = goodhart_core::usage::UsageEvent {
            id: format!("corrupt-test-{i}"),
            timestamp: goodhart_core::Micros(1_700_000_000_000_000 + i as i64),
            attribution: goodhart_core::usage::Attribution {
                user: "alice".into(),
                ..Default::default()
            },
            provider: None,
            model: "m".into(),
            tokens: Default::default(),
            finish_reason: None,
            fingerprints: Default::default(),
            content: None,
            source: goodhart_core::usage::Source::Gateway,
            estimated: false,
            call: None,
        };
        SpooledEvent {
            event,
            cost: None,
            price_version: "v1".into(),
        }
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
