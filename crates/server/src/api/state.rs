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
    /// Single sign-on, when configured.
    pub sso: Option<Arc<Sso>>,
}
