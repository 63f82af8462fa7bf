//! The gateway's own Prometheus metrics (`GET /metrics`, text exposition format).

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub endpoint: &'static str,
    pub provider: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    task: &'static str,
}

/// Fine enough below a millisecond to see what a call's phases add to its latency, and wide
/// enough to place a stall.
const PHASE_BUCKETS: [f64; 14] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// How long the gateway itself spends in each phase of a metered call (waiting on the
/// provider is in `upstream_latency_seconds`, not here).
pub struct PhaseTimes {
    pub authenticate: Histogram,
    /// Receiving the client's request body.
    pub read_body: Histogram,
    pub plan: Histogram,
    /// Budgets and rate limits.
    pub admit: Histogram,
    /// Pricing, settling, fingerprinting and appending to the spool.
    pub record: Histogram,
}

/// How long the gateway's background work takes, each time it runs.
pub struct BackgroundTimes {
    /// Moving sealed spool segments into the store.
    pub flush: Histogram,
    /// Making appended records survive a power loss.
    pub sync: Histogram,
}

/// A family of timing histograms registered as `name`, and a maker of its series by the value
/// of its one label.
fn timings<L, F>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    label: F,
) -> impl Fn(&'static str) -> Histogram + use<L, F>
where
    F: Fn(&'static str) -> L,
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
{
    let family = Family::<L, Histogram>::new_with_constructor(|| Histogram::new(PHASE_BUCKETS));
    registry.register(name, help, family.clone());
    move |value| family.get_or_create(&label(value)).clone()
}

pub struct Metrics {
    registry: Registry,
    /// Calls answered by a provider, by endpoint, provider and status.
    pub calls: Family<CallLabels, Counter>,
    /// Calls the gateway refused or could not complete, by kind.
    pub errors: Family<ErrorLabels, Counter>,
    /// From sending the request upstream to the provider's response headers.
    pub upstream_latency: Family<EndpointLabels, Histogram>,
    pub open_streams: Gauge,
    /// Open Responses API WebSocket connections, and how many were ever opened.
    pub sockets: Gauge,
    pub sockets_opened: Counter,
    pub estimated: Counter,
    pub spooled: Counter,
    pub spool_errors: Counter,
    pub flushed: Counter,
    /// Spool segments found with damaged records (kept aside as `*.corrupt`).
    pub corrupt_segments: Counter,
    pub spool_depth: Gauge,
    /// Calls admitted past this instance's slices on its own authority, the store being
    /// unreachable and their pools failing open.
    pub fail_open_admissions: Counter,
    /// Calls holding a reservation on budgets or rate limits (set at each scrape).
    pub admissions_in_flight: Gauge,
    /// Tasks alive on the gateway's runtime (set at each scrape): with the two above, what
    /// shows a leak after faults.
    pub runtime_tasks: Gauge,
    /// Flushes of the spool into the store that failed (the records stay spooled).
    pub flush_errors: Counter,
    /// Calls let in on a key lookup older than the cache's TTL because the store could not be
    /// asked (see [`crate::auth::STALE_IF_ERROR`]).
    pub keys_served_stale: Counter,
    pub phases: PhaseTimes,
    pub background: BackgroundTimes,
    /// How late the runtime's lag probe wakes up (see [`crate::lag`]).
    pub runtime_lag: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("goodhart_gateway");
        let calls = Family::<CallLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let upstream_latency = Family::<EndpointLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0])
        });
        let (open_streams, sockets, spool_depth, admissions_in_flight, runtime_tasks) = (
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
        );
        let (estimated, spooled, spool_errors, flushed, corrupt_segments, sockets_opened, fail_open_admissions) = (
            Counter::default(),
            Counter::default(),
            Counter::default(),
            Counter::default(),
            Counter::default(),
            Counter::default(),
            Counter::default(),
        );
        registry.register("calls", "Calls answered by a provider", calls.clone());
        registry.register("errors", "Calls refused or failed by the gateway", errors.clone());
        registry.register(
            "upstream_latency_seconds",
            "Time from forwarding a call to the provider's response headers",
            upstream_latency.clone(),
        );
        registry.register("open_streams", "Streamed responses in flight", open_streams.clone());
        registry.register(
            "open_sockets",
            "Responses API WebSocket connections open",
            sockets.clone(),
        );
        registry.register(
            "sockets_opened",
            "Responses API WebSocket connections accepted",
            sockets_opened.clone(),
        );
        registry.register(
            "estimated_usage",
            "Calls whose usage had to be estimated",
            estimated.clone(),
        );
        registry.register(
            "spooled_records",
            "Usage records appended to the spool",
            spooled.clone(),
        );
        registry.register(
            "spool_errors",
            "Usage records that could not be spooled",
            spool_errors.clone(),
        );
        registry.register(
            "flushed_records",
            "Spooled usage records stored in the database",
            flushed.clone(),
        );
        registry.register(
            "spool_corrupt_segments",
            "Spool segments with damaged records: the rest of each was stored, the segment kept as *.corrupt",
            corrupt_segments.clone(),
        );
        registry.register(
            "fail_open_admissions",
            "Calls admitted on this instance's own authority while the database was unreachable (fail_open)",
            fail_open_admissions.clone(),
        );
        registry.register(
            "admissions_in_flight",
            "Calls holding a reservation on budgets or rate limits",
            admissions_in_flight.clone(),
        );
        registry.register(
            "runtime_alive_tasks",
            "Tasks alive on the server's async runtime",
            runtime_tasks.clone(),
        );
        registry.register(
            "spool_depth_bytes",
            "Bytes of usage waiting in the spool",
            spool_depth.clone(),
        );
        let (flush_errors, keys_served_stale) = (Counter::default(), Counter::default());
        registry.register(
            "flush_errors",
            "Flushes of spooled usage into the database that failed (retried; nothing is lost)",
            flush_errors.clone(),
        );
        registry.register(
            "keys_served_stale",
            "Calls authenticated from a cached key lookup past its TTL because the database could not be asked",
            keys_served_stale.clone(),
        );
        let phase = timings(
            &mut registry,
            "phase_seconds",
            "Time the gateway spends in each phase of a metered call",
            |phase| PhaseLabels { phase },
        );
        let phases = PhaseTimes {
            authenticate: phase("authenticate"),
            read_body: phase("read_body"),
            plan: phase("plan"),
            admit: phase("admit"),
            record: phase("record"),
        };
        let task = timings(
            &mut registry,
            "background_seconds",
            "Time each run of the gateway's background work takes",
            |task| TaskLabels { task },
        );
        let background = BackgroundTimes {
            flush: task("flush"),
            sync: task("sync"),
        };
        let runtime_lag = Histogram::new(PHASE_BUCKETS);
        registry.register(
            "runtime_lag_seconds",
            "How late a periodic timer fires on the gateway's runtime: time its workers were busy or kept off the CPU",
            runtime_lag.clone(),
        );
        Metrics {
            registry,
            calls,
            errors,
            upstream_latency,
            open_streams,
            sockets,
            sockets_opened,
            estimated,
            spooled,
            spool_errors,
            flushed,
            corrupt_segments,
            spool_depth,
            fail_open_admissions,
            admissions_in_flight,
            runtime_tasks,
            flush_errors,
            keys_served_stale,
            phases,
            background,
            runtime_lag,
        }
    }

    /// Records in `histogram` the time since `since`.
    pub fn observe_since(histogram: &Histogram, since: Instant) {
        histogram.observe(since.elapsed().as_secs_f64());
    }

    pub fn error(&self, kind: &'static str) {
        self.errors.get_or_create(&ErrorLabels { kind }).inc();
    }

    #[expect(clippy::expect_used, reason = "writing to a String cannot fail")]
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
