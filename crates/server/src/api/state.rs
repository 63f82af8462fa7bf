//! What every handler shares.

use crate::app::App;

/// The application and the API's own limits.
#[derive(Clone)]
pub struct ApiState {
    pub app: App,
    /// Largest request body, compressed or decompressed.
    pub max_body_bytes: usize,
}
