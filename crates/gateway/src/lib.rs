//! Goodhart's LLM gateway: a drop-in OpenAI- and Anthropic-compatible base URL that meters
//! every call.
//!
//! A call is authenticated with a virtual key ([`auth`]), attributed (key scope narrowed by
//! `x-goodhart-*` headers), routed to a configured provider ([`config`]) and forwarded with the
//! provider's own key; the response — streamed chunk by chunk, never buffered — is tapped for
//! usage ([`meter`]) and the priced record goes to the durable spool before the response
//! completes ([`recorder`]), from where it is batched into the store.

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use goodhart_core::pricing::PriceTable;
use goodhart_store::Store;
use goodhart_store::spool::{Spool, SpoolError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub mod auth;
pub mod config;
pub mod errors;
pub mod estimate;
pub mod guard;
pub mod meter;
pub mod metrics;
mod proxy;
pub mod recorder;
pub mod upstream;

pub use config::{GatewayConfig, Protocol, RawGateway, RawProvider};

use crate::metrics::Metrics;
use crate::recorder::Recorder;

/// The gateway's shared state (cheap to clone).
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    tracker: TaskTracker,
    cancel: CancellationToken,
    store: Arc<dyn Store>,
    config: GatewayConfig,
    client: upstream::UpstreamClient,
    keys: auth::KeyCache,
    prices: Arc<PriceTable>,
    recorder: Arc<Recorder>,
    metrics: Arc<Metrics>,
}

impl Gateway {
    /// Opens the spool (segments left by a previous run are flushed first) and starts the
    /// recorder's background work, which runs until [`Gateway::shutdown`].
    pub fn start(config: GatewayConfig, store: Arc<dyn Store>, prices: Arc<PriceTable>) -> Result<Gateway, SpoolError> {
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
        Ok(Gateway {
            inner: Arc::new(Inner {
                tracker,
                cancel,
                client: upstream::client(),
                keys: auth::KeyCache::new(Arc::clone(&store)),
                store,
                config,
                prices,
                recorder,
                metrics,
            }),
        })
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.inner.config
    }

    /// Forgets cached key lookups (call after revoking or rotating a key).
    pub fn invalidate_keys(&self) {
        self.inner.keys.invalidate();
    }

    /// Moves everything spooled so far into the store now.
    pub async fn flush(&self) -> Result<goodhart_store::spool::FlushOutcome, SpoolError> {
        self.inner.recorder.flush(self.inner.store.as_ref()).await
    }

    /// Stops the background work after a last sync and flush (what cannot be flushed stays
    /// spooled for the next start).
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }

    /// The Prometheus text exposition of the gateway's metrics.
    pub fn metrics_text(&self) -> String {
        let metrics = &self.inner.metrics;
        metrics
            .spool_depth
            .set(i64::try_from(self.inner.recorder.depth_bytes()).unwrap_or(i64::MAX));
        metrics.encode()
    }

    /// The provider routes, with and without the `/v1` prefix (some clients omit it).
    pub fn router(&self) -> Router {
        let routes = |prefix: &str| {
            Router::new()
                .route(&format!("{prefix}/chat/completions"), post(proxy::chat_completions))
                .route(&format!("{prefix}/responses"), post(proxy::responses))
                .route(&format!("{prefix}/embeddings"), post(proxy::embeddings))
                .route(&format!("{prefix}/models"), get(proxy::models))
                .route(&format!("{prefix}/messages"), post(proxy::messages))
                .route(&format!("{prefix}/messages/count_tokens"), post(proxy::count_tokens))
        };
        let gateway = self.clone();
        routes("/v1")
            .merge(routes(""))
            .route("/", get(proxy::root).head(proxy::root))
            .route("/metrics", get(move || async move { gateway.metrics_text() }))
            .with_state(self.clone())
    }
}
