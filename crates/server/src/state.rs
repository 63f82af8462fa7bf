//! What every handler shares.

use std::sync::Arc;

use goodhart_core::pricing::PriceTable;
use goodhart_gateway::Gateway;
use goodhart_store::Store;

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
}
