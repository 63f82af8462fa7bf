//! SQLite: usage batches waiting for the writer, taken in groups so that batches queued under
//! load are stored in one transaction.

use std::collections::VecDeque;

use tokio::sync::oneshot;

use crate::error::StoreError;
use crate::usage::{InsertOutcome, PricedEvent};

/// Events at most stored in one transaction, however many batches are queued: a transaction
/// holds the writer (and budget borrows behind it) for about 5 µs an event.
const GROUP_EVENTS: usize = 10_000;

/// Batches waiting for the writer. Each caller queues its batch and sends the writer a job;
/// the first job to run stores the batches queued by then (up to [`GROUP_EVENTS`] events) in
/// one transaction, and later jobs find theirs done. Under load, consecutive batches then share
/// rollup rows, index pages and one commit (see BENCHMARKS.md).
#[derive(Default)]
pub(super) struct InsertQueue {
    waiting: parking_lot::Mutex<VecDeque<QueuedInsert>>,
}

pub(super) type Stored = Result<(InsertOutcome, Vec<PricedEvent>), StoreError>;

pub(super) struct QueuedInsert {
    pub(super) events: Vec<PricedEvent>,
    pub(super) price_version: String,
    pub(super) done: oneshot::Sender<Stored>,
}

impl InsertQueue {
    /// Queues `batch` for the writer's next job.
    pub(super) fn push(&self, batch: QueuedInsert) {
        self.waiting.lock().push_back(batch);
    }

    /// How many batches wait (tests hold the writer until theirs have queued).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.waiting.lock().len()
    }

    /// The batches at the front of the queue, up to [`GROUP_EVENTS`] events but at least one.
    pub(super) fn take_group(&self) -> Vec<QueuedInsert> {
        let mut waiting = self.waiting.lock();
        let mut group = Vec::new();
        let mut events = 0;
        while let Some(next) = waiting.front()
            && (group.is_empty() || events + next.events.len() <= GROUP_EVENTS)
        {
            events += next.events.len();
            group.extend(waiting.pop_front());
        }
        group
    }
}
