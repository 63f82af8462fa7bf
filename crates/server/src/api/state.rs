//! What every handler shares.

use std::sync::Arc;

use crate::app::App;
use crate::oidc::Sso;

/// The application and the API's own limits.
#[derive(Clone)]
pub struct ApiState {
    pub app: App,
    /// Largest request body, compressed or decompressed.
    pub max_body_bytes: usize,
    /// Whether the client's address is the last of `X-Forwarded-For` (behind a trusted proxy)
    /// rather than the connection's peer (`audit.trust_forwarded_for`).
    pub trust_forwarded_for: bool,
    /// Single sign-on, when configured.
    pub sso: Option<Arc<Sso>>,
}
