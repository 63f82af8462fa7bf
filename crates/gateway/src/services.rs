//! The gateway's shared services — the `Arc`'d part every call uses and none owns — kept apart
//! from the data of any one call ([`crate::proxy::plan::CallPlan`]).

use std::sync::Arc;

use goodhart_core::pricing::PriceTable;
use tokio_util::sync::CancellationToken;

use crate::alerts::AlertSink;
use crate::limits::Limiter;
use crate::metrics::Metrics;
use crate::recorder::Recorder;

pub struct Services {
    pub prices: Arc<PriceTable>,
    pub recorder: Arc<Recorder>,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<Limiter>,
    pub alerts: AlertSink,
    /// Cancelled when the server's drain deadline passes: the streams still open end with an
    /// in-band error event and are recorded as cut ([`crate::Gateway::end_streams`]).
    pub end_streams: CancellationToken,
}
