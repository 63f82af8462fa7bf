//! A probe of the runtime's responsiveness: a task that asks to be woken every [`PERIOD`] and
//! records how late it wakes. A late wake means the runtime's workers were busy with something
//! else, or kept off the CPU by other threads, and so were the calls waiting on them: it is how
//! a tail of slow calls is traced to what ran beside them (`runtime_lag_seconds` in `/metrics`).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;

/// Often enough to catch stalls of a few milliseconds, rarely enough to cost nothing.
pub const PERIOD: Duration = Duration::from_millis(10);

/// Tokio's timers fire on whole milliseconds: a wake up to this late is the timer, not a stall.
const TIMER_RESOLUTION: Duration = Duration::from_millis(1);

pub fn spawn(metrics: Arc<Metrics>, tracker: &TaskTracker, cancel: CancellationToken) {
    tracker.spawn(async move {
        loop {
            let due = Instant::now() + PERIOD;
            tokio::select! {
                () = tokio::time::sleep_until(due) => {}
                () = cancel.cancelled() => break,
            }
            let late = Instant::now().saturating_duration_since(due + TIMER_RESOLUTION);
            metrics.runtime_lag.observe(late.as_secs_f64());
        }
    });
}
