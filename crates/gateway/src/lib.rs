//! Goodhart's LLM gateway: a drop-in OpenAI- and Anthropic-compatible base URL that meters
//! every call.
//!
//! A call is authenticated with a virtual key ([`auth`]), attributed (key scope narrowed by
//! `x-goodhart-*` headers), routed to a configured provider ([`config`]) and forwarded with the
//! provider's own key; the response — streamed chunk by chunk, never buffered — is tapped for
//! usage ([`proxy`], one phase per module, one adapter per wire protocol) and the priced record
//! goes to the durable spool before the response completes ([`recorder`]), from where it is
//! batched into the store.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use goodhart_core::limits::{BudgetWindow, Idle, Standing};
use goodhart_core::pricing::PriceTable;
use goodhart_store::Store;
use goodhart_store::spool::{Spool, SpoolError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub mod alerts;
pub mod auth;
pub mod config;
pub mod errors;
pub mod estimate;
pub mod google_auth;
pub mod lag;
pub mod limits;
pub mod metrics;
pub mod proxy;
pub mod readiness;
pub mod recorder;
pub mod services;
pub mod sigv4;
pub mod upstream;

pub use config::{GatewayConfig, Protocol, RawGateway, RawProvider};

use crate::alerts::AlertSink;
use crate::metrics::Metrics;
use crate::proxy::Proxy;
use crate::recorder::Recorder;
use crate::services::Services;

/// The gateway's shared state (cheap to clone).
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    tracker: TaskTracker,
    cancel: CancellationToken,
    store: Arc<dyn Store>,
    /// What the request handlers share (configuration, client, keys, services).
    proxy: Arc<Proxy>,
    /// The store's side of `/readyz`, cached.
    probe: readiness::StoreProbe,
}

/// How often budgets are re-read and their spend re-seeded from the store (to see usage
/// that arrived by other paths).
const BUDGET_RELOAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// How often the list of budgets is compared with the store's, so that a budget created or
/// deleted through another instance is enforced here within this delay.
const BUDGET_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

impl Gateway {
    /// Opens the spool, flushes what a previous run left in it, loads the budgets, and starts
    /// the background work (recorder, budget reloads), which runs until [`Gateway::shutdown`].
    /// The `threshold` and `blocked` alerts calls raise go to `alerts`; storing and delivering
    /// them is the caller's.
    pub async fn start(
        config: GatewayConfig,
        store: Arc<dyn Store>,
        prices: Arc<PriceTable>,
        alerts: AlertSink,
    ) -> Result<Gateway, SpoolError> {
        let (tracker, cancel) = (TaskTracker::new(), CancellationToken::new());
        let metrics = Arc::new(Metrics::new());
        let spool = Spool::open(&config.spool_dir)?;
        let waiting = spool.sealed()?.len();
        if waiting > 0 {
            tracing::info!(segments = waiting, dir = %config.spool_dir.display(), "replaying spooled usage from a previous run");
        }
        let recorder = Arc::new(Recorder::new(spool, config.spool_sync.is_zero(), Arc::clone(&metrics)));
        recorder.start(
            Arc::clone(&store),
            config.spool_sync,
            config.flush_interval,
            &tracker,
            cancel.clone(),
        );
        lag::spawn(Arc::clone(&metrics), &tracker, cancel.clone());
        let instance = format!("{}-{:012x}", std::process::id(), rand::random::<u64>() >> 16);
        let limits = limits::Limiter::new(Arc::clone(&store), instance, config.when_unreachable);
        let client = upstream::client();
        let keys = auth::KeyCache::new(Arc::clone(&store) as _, metrics.keys_served_stale.clone());
        let services = Arc::new(Services {
            prices,
            recorder,
            metrics,
            limits,
            alerts,
            end_streams: CancellationToken::new(),
        });
        let proxy = Arc::new(Proxy {
            config,
            client,
            keys,
            services,
            shutdown: cancel.clone(),
            sessions: tracker.clone(),
        });
        let gateway = Gateway {
            inner: Arc::new(Inner {
                tracker,
                cancel,
                probe: readiness::StoreProbe::new(Arc::clone(&store)),
                store,
                proxy,
            }),
        };
        gateway.reload_budgets().await?;
        let reloader = gateway.clone();
        gateway.inner.tracker.spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            let (mut last, mut last_check) = (tokio::time::Instant::now(), tokio::time::Instant::now());
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = reloader.inner.cancel.cancelled() => break,
                }
                let now = goodhart_store::now_micros();
                let limits = &reloader.inner.proxy.services.limits;
                limits.report_own(now).await;
                limits.give_back_idle(now, Idle::Lapsed).await;
                let mut due =
                    last.elapsed() >= BUDGET_RELOAD_INTERVAL || reloader.inner.proxy.services.limits.needs_reload(now);
                if !due && last_check.elapsed() >= BUDGET_CHECK_INTERVAL {
                    last_check = tokio::time::Instant::now();
                    due = reloader
                        .inner
                        .proxy
                        .services
                        .limits
                        .definitions_changed()
                        .await
                        .unwrap_or_else(|e| {
                            tracing::warn!("budgets could not be checked for changes: {e}");
                            false
                        });
                }
                if due {
                    last = tokio::time::Instant::now();
                    if let Err(e) = reloader.reload_budgets().await {
                        tracing::warn!("budgets could not be reloaded (the last ones stay in force): {e}");
                    }
                }
            }
        });
        Ok(gateway)
    }

    /// Re-reads the budgets and re-seeds their spend from the store, after moving spooled
    /// usage into it (call after budgets are created or deleted).
    pub async fn reload_budgets(&self) -> Result<(), SpoolError> {
        self.flush().await?;
        self.inner
            .proxy
            .services
            .limits
            .reload(goodhart_store::now_micros())
            .await?;
        Ok(())
    }

    /// Where each loaded budget stands in its current window: spent, and reserved by calls in
    /// flight through this instance.
    pub fn standing(&self) -> Vec<Standing> {
        self.inner.proxy.services.limits.standing()
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.inner.proxy.config
    }

    /// Each loaded budget with its current window and what it has spent in it (what forecast
    /// and runaway alerts are evaluated over).
    pub fn budget_windows(&self) -> Vec<BudgetWindow> {
        self.inner.proxy.services.limits.snapshot()
    }

    /// Forgets cached key lookups (call after revoking or rotating a key).
    pub fn invalidate_keys(&self) {
        self.inner.proxy.keys.invalidate();
    }

    /// Moves everything spooled so far into the store now.
    pub async fn flush(&self) -> Result<goodhart_store::spool::FlushOutcome, SpoolError> {
        self.inner
            .proxy
            .services
            .recorder
            .flush(self.inner.store.as_ref())
            .await
    }

    /// Ends the streams still open, each with an in-band error event in its protocol, recorded
    /// as cut: what the server does when its drain deadline passes.
    pub fn end_streams(&self) {
        self.inner.proxy.services.end_streams.cancel();
    }

    /// Stops the background work after a last sync and flush (what cannot be flushed stays
    /// spooled for the next start).
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
        // What this instance lent itself is reported, and what it borrowed and did not use
        // goes back to the shared pools.
        let (limits, now) = (&self.inner.proxy.services.limits, goodhart_store::now_micros());
        limits.report_own(now).await;
        limits.give_back_idle(now, Idle::All).await;
    }

    /// Whether this instance can serve and record calls: the store answers (a probe at most a
    /// second old), the spool takes records and its backlog is bounded.
    pub async fn readiness(&self) -> readiness::Readiness {
        let store = self.inner.probe.check().await;
        let recorder = &self.inner.proxy.services.recorder;
        let spool = readiness::SpoolReadiness {
            writable: !recorder.is_failing(),
            backlog_bytes: recorder.depth_bytes(),
            flush_failing_for_s: recorder.flush_failing_for().map(|d| d.as_secs()),
        };
        readiness::Readiness::new(store, Some(spool))
    }

    /// The Prometheus text exposition of the gateway's metrics.
    pub fn metrics_text(&self) -> String {
        let services = &self.inner.proxy.services;
        let metrics = &services.metrics;
        metrics
            .spool_depth
            .set(i64::try_from(services.recorder.depth_bytes()).unwrap_or(i64::MAX));
        metrics.admissions_in_flight.set(services.limits.admissions_in_flight());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let tasks = runtime.metrics().num_alive_tasks();
            metrics.runtime_tasks.set(i64::try_from(tasks).unwrap_or(i64::MAX));
        }
        metrics.encode()
    }

    /// The provider routes (see [`proxy::router`]) and `/metrics`.
    pub fn router(&self) -> Router {
        let gateway = self.clone();
        proxy::router(Arc::clone(&self.inner.proxy))
            .route("/metrics", get(move || async move { gateway.metrics_text() }))
    }
}
