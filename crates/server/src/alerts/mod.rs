//! The alert dispatcher: what is raised into the [`AlertSink`] — `threshold` and `blocked`
//! alerts from the gateway's calls, `waste` alerts from detection, and the `forecast` and
//! `runaway` alerts it evaluates itself every minute over the gateway's budget windows
//! ([`evaluate`]) — is stored, then posted to the configured webhooks ([`webhooks`]).
//!
//! Each alert is stored first — its id names the event, so one raised twice (by two instances,
//! or after a restart) is stored and delivered once — then posted to every webhook, retried
//! with backoff until delivered or out of attempts; every attempt is recorded. An alert that
//! cannot be stored (the database is unreachable) is kept and stored again every few seconds,
//! then posted: late, never lost (up to [`SEEN_CAPACITY`] of them).

pub mod config;
pub mod evaluate;
pub mod webhooks;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use goodhart_core::budgets::Alert;
use goodhart_core::limits::BudgetWindow;
use goodhart_gateway::alerts::AlertSink;
use goodhart_gateway::upstream::UpstreamClient;
use goodhart_store::Store;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{AlertsConfig, RawAlerts, RunawayRule, Webhook, WebhookFormat};

/// How often forecast and runaway alerts are evaluated.
const EVALUATE_EVERY: Duration = Duration::from_secs(60);

/// How often alerts that could not be stored are tried again.
const RETRY_STORE_EVERY: Duration = Duration::from_secs(5);

/// Ids handled lately, kept up to this many: an event raised on every refused call is stored
/// once without a database round trip per call.
const SEEN_CAPACITY: usize = 10_000;

/// What the dispatcher stores into and posts with.
pub struct Dispatcher {
    pub store: Arc<dyn Store>,
    /// The webhooks' HTTP client.
    pub client: UpstreamClient,
    pub config: AlertsConfig,
}

impl Dispatcher {
    /// Starts, on `tracker`, the delivery of what arrives on `queue` (the receiving end of
    /// `sink`) and the minute-by-minute evaluation of `windows()`, whose alerts are raised into
    /// `sink`. On `cancel` the evaluation stops, then the queue is closed and what it still
    /// holds is stored and posted once (a shutdown stops the retries): cancel only after
    /// everything else raising into the sink has stopped, and no alert is lost.
    pub fn start(
        self,
        queue: UnboundedReceiver<Alert>,
        sink: AlertSink,
        windows: impl Fn() -> Vec<BudgetWindow> + Send + 'static,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) {
        let rule = self.config.runaway;
        let (store, evaluating) = (Arc::clone(&self.store), cancel.clone());
        let evaluator = tracker.spawn(async move {
            let mut tick = tokio::time::interval(EVALUATE_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = evaluating.cancelled() => break,
                }
                let now = goodhart_store::now_micros();
                match evaluate::evaluate(store.as_ref(), &windows(), rule, now).await {
                    Ok(alerts) => alerts.into_iter().for_each(|a| sink.raise(a)),
                    Err(e) => tracing::warn!("alert evaluation failed: {e}"),
                }
            }
        });
        let mut delivery = Delivery {
            store: self.store,
            client: self.client,
            webhooks: Arc::new(self.config.webhooks),
            tracker: tracker.clone(),
            cancel: cancel.clone(),
            seen: HashSet::new(),
            unstored: Vec::new(),
        };
        tracker.spawn(async move {
            let mut queue = queue;
            let mut retry = tokio::time::interval(RETRY_STORE_EVERY);
            loop {
                tokio::select! {
                    alert = queue.recv() => match alert {
                        Some(alert) => delivery.take(alert).await,
                        None => return,
                    },
                    _ = retry.tick() => delivery.retry_unstored().await,
                    () = cancel.cancelled() => break,
                }
            }
            // The evaluation may be in the middle of a pass: let it raise what it found, then
            // take what is left.
            let _ = evaluator.await;
            queue.close();
            while let Some(alert) = queue.recv().await {
                delivery.take(alert).await;
            }
            delivery.retry_unstored().await;
            for alert in &delivery.unstored {
                tracing::error!(alert = %alert.id, "alert lost at shutdown, the database being unreachable: {}", alert.message);
            }
        });
    }
}

/// The delivery loop's state.
struct Delivery {
    store: Arc<dyn Store>,
    client: UpstreamClient,
    webhooks: Arc<Vec<Webhook>>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    seen: HashSet<String>,
    /// Alerts the store could not take yet, to store and post once it can.
    unstored: Vec<Alert>,
}

impl Delivery {
    /// Stores `alert` unless its event was stored before, then posts it in a task of its own.
    async fn take(&mut self, alert: Alert) {
        if self.seen.len() >= SEEN_CAPACITY {
            self.seen.clear();
        }
        if !self.seen.insert(alert.id.clone()) {
            return;
        }
        self.store_and_post(alert).await;
    }

    /// Stores `alert` and posts it if it is new; keeps it for later if it cannot be stored.
    async fn store_and_post(&mut self, alert: Alert) {
        match self.store.insert_alert(&alert).await {
            Ok(false) => return, // raised before: stored and delivered once
            Ok(true) => tracing::warn!(alert = %alert.id, "{}", alert.message),
            Err(e) => {
                tracing::error!(alert = %alert.id, "alert could not be stored yet (kept to retry): {e}; {}", alert.message);
                if self.unstored.len() < SEEN_CAPACITY {
                    self.unstored.push(alert);
                }
                return;
            }
        }
        let (store, client, webhooks) = (Arc::clone(&self.store), self.client.clone(), Arc::clone(&self.webhooks));
        let cancel = self.cancel.clone();
        self.tracker.spawn(async move {
            webhooks::deliver(store.as_ref(), &client, &webhooks, &alert, &cancel).await;
        });
    }

    /// Tries again to store (and then post) the alerts the store could not take, in the order
    /// they were raised; stops at the first that still cannot be stored.
    async fn retry_unstored(&mut self) {
        let waiting = std::mem::take(&mut self.unstored);
        let mut waiting = waiting.into_iter();
        for alert in waiting.by_ref() {
            self.store_and_post(alert).await;
            if !self.unstored.is_empty() {
                break;
            }
        }
        self.unstored.extend(waiting);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use goodhart_core::Micros;
    use goodhart_core::budgets::AlertKind;
    use goodhart_store::testing::TestDatabase;

    fn alert(id: &str) -> Alert {
        Alert {
            id: id.into(),
            kind: AlertKind::Waste,
            budget_id: String::new(),
            scope: "user u".into(),
            message: format!("finding {id}"),
            created_at: goodhart_store::now_micros(),
        }
    }

    /// A dispatcher with the default configuration on `store`, not started yet.
    fn dispatcher(
        store: &Arc<dyn Store>,
    ) -> (
        Dispatcher,
        AlertSink,
        tokio::sync::mpsc::UnboundedReceiver<goodhart_core::budgets::Alert>,
        TaskTracker,
        CancellationToken,
    ) {
        let (sink, queue) = AlertSink::channel();
        let dispatcher = Dispatcher {
            store: Arc::clone(store),
            client: goodhart_gateway::upstream::client(),
            config: AlertsConfig::default(),
        };
        (dispatcher, sink, queue, TaskTracker::new(), CancellationToken::new())
    }

    #[tokio::test]
    async fn alerts_queued_when_the_dispatcher_is_stopped_are_stored_once() {
        let db = TestDatabase::sqlite();
        let store = db.open().await.unwrap();
        let (dispatcher, sink, queue, tracker, cancel) = dispatcher(&store);
        dispatcher.start(queue, sink.clone(), Vec::new, &tracker, cancel.clone());
        for id in ["waste:a", "waste:b", "waste:a"] {
            sink.raise(alert(id));
        }
        cancel.cancel();
        tracker.close();
        tracker.wait().await;
        let stored = store.alerts(Micros(0), Micros(i64::MAX)).await.unwrap();
        let mut ids: Vec<&str> = stored.iter().map(|s| s.alert.id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["waste:a", "waste:b"]);
        sink.raise(alert("waste:late"));
        assert_eq!(
            store.alerts(Micros(0), Micros(i64::MAX)).await.unwrap().len(),
            2,
            "once drained, the dispatcher takes nothing more"
        );
    }

    #[tokio::test]
    async fn alerts_raised_while_the_database_is_unreachable_are_stored_once_it_is_back() {
        let db = TestDatabase::sqlite();
        let store = db.open().await.unwrap();
        let (dispatcher, sink, queue, tracker, cancel) = dispatcher(&store);
        db.execute_batch("ALTER TABLE alerts RENAME TO alerts_away")
            .await
            .unwrap();
        dispatcher.start(queue, sink.clone(), Vec::new, &tracker, cancel.clone());
        sink.raise(alert("fail_open:b:1"));
        sink.raise(alert("fail_open:b:1"));
        tokio::time::sleep(Duration::from_millis(500)).await;
        db.execute_batch("ALTER TABLE alerts_away RENAME TO alerts")
            .await
            .unwrap();
        let stored = || async { store.alerts(Micros(0), Micros(i64::MAX)).await.unwrap().len() };
        assert_eq!(stored().await, 0, "nothing could be stored yet");
        let deadline = tokio::time::Instant::now() + RETRY_STORE_EVERY * 3;
        while stored().await == 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(stored().await, 1, "stored, once, when the database is back");
        cancel.cancel();
        tracker.close();
        tracker.wait().await;
        assert_eq!(stored().await, 1);
    }
}
