//! What every handler shares.

use std::sync::Arc;

use goodhart_core::pricing::PriceTable;
use goodhart_gateway::Gateway;
use goodhart_store::Store;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::TokenHash;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub prices: Arc<PriceTable>,
    pub admin_token_hash: TokenHash,
    pub store_content: bool,
    pub max_body_bytes: usize,
    pub gateway: Gateway,
    pub outcomes: Arc<crate::outcomes::OutcomeSettings>,
    pub waste: Arc<crate::waste::WasteSettings>,
    pub background: Background,
}

/// The server's own background work (scheduled waste detection), stopped at shutdown.
#[derive(Clone, Default)]
pub struct Background {
    pub tracker: TaskTracker,
    pub cancel: CancellationToken,
}

impl Background {
    /// Stops the background work and waits for what is running to finish.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}
