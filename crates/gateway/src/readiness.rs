//! Whether this instance can do its job (`GET /readyz`), as opposed to whether it is alive
//! (`/healthz`): the store answers a cheap query within [`PROBE_TIMEOUT`], the spool takes
//! records, moving it into the store has not been failing for [`MAX_FLUSH_FAILING`] (a store
//! that answers reads but takes no writes: a full disk), and the spool's backlog is below
//! [`MAX_BACKLOG_BYTES`]. The store's answer is
//! cached for [`PROBE_CACHE`], so a load balancer polling every instance often does not
//! become the database's load.

use std::sync::Arc;
use std::time::{Duration, Instant};

use goodhart_store::Store;
use serde::Serialize;

/// How long the store may take to answer the probe before it counts as unreachable.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long one probe's answer is reused.
pub const PROBE_CACHE: Duration = Duration::from_secs(1);
/// A spool holding more than this is not keeping up with the store (hours of calls at most
/// rates): the instance still records, but says it is not ready.
pub const MAX_BACKLOG_BYTES: u64 = 1 << 30;
/// Flushes failing for this long mean the store takes no writes.
pub const MAX_FLUSH_FAILING: Duration = Duration::from_secs(10);

/// The store's side of readiness: reachable or why not.
#[derive(Debug, Clone, Serialize)]
pub struct StoreReadiness {
    pub backend: &'static str,
    pub reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long the probe took (when it answered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
}

/// The spool's side of readiness.
#[derive(Debug, Clone, Serialize)]
pub struct SpoolReadiness {
    /// The last append succeeded (or failed more than a second ago).
    pub writable: bool,
    /// Bytes of usage waiting to be moved into the store.
    pub backlog_bytes: u64,
    /// Since when moving the spool into the store has been failing, in seconds, if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush_failing_for_s: Option<u64>,
}

/// What `/readyz` answers: `ready`, and each part with what is wrong in `problems`.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub problems: Vec<String>,
    pub store: StoreReadiness,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spool: Option<SpoolReadiness>,
}

impl Readiness {
    /// Readiness from its parts (`spool` is absent where no gateway runs).
    pub fn new(store: StoreReadiness, spool: Option<SpoolReadiness>) -> Readiness {
        let mut problems = Vec::new();
        if let Some(error) = store.error.as_ref().filter(|_| !store.reachable) {
            problems.push(format!("store: unreachable ({error})"));
        }
        if let Some(spool) = &spool {
            if !spool.writable {
                problems.push("spool: the last record could not be written".to_owned());
            }
            if let Some(seconds) = spool.flush_failing_for_s.filter(|s| *s >= MAX_FLUSH_FAILING.as_secs()) {
                problems.push(format!(
                    "store: moving spooled usage into it has failed for {seconds} s"
                ));
            }
            if spool.backlog_bytes > MAX_BACKLOG_BYTES {
                problems.push(format!(
                    "spool: backlog of {} bytes is over the bound of {MAX_BACKLOG_BYTES}",
                    spool.backlog_bytes
                ));
            }
        }
        Readiness {
            ready: problems.is_empty(),
            problems,
            store,
            spool,
        }
    }
}

/// Probes a store at most once per [`PROBE_CACHE`]; concurrent callers share one probe.
pub struct StoreProbe {
    store: Arc<dyn Store>,
    last: tokio::sync::Mutex<Option<(Instant, StoreReadiness)>>,
}

/// Looked up by the probe: a hash no key has (a primary-key lookup that finds nothing).
const PROBE_HASH: &str = "readiness-probe";

impl StoreProbe {
    pub fn new(store: Arc<dyn Store>) -> StoreProbe {
        StoreProbe {
            store,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The store's readiness, from a probe at most [`PROBE_CACHE`] old.
    pub async fn check(&self) -> StoreReadiness {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = last.as_ref()
            && at.elapsed() < PROBE_CACHE
        {
            return answer.clone();
        }
        let answer = probe(self.store.as_ref()).await;
        *last = Some((Instant::now(), answer.clone()));
        answer
    }
}

/// One probe of `store`, bounded by [`PROBE_TIMEOUT`].
pub async fn probe(store: &dyn Store) -> StoreReadiness {
    let started = Instant::now();
    let (reachable, error) = match tokio::time::timeout(PROBE_TIMEOUT, store.key_by_hash(PROBE_HASH)).await {
        Ok(Ok(_)) => (true, None),
        Ok(Err(e)) => (false, Some(e.to_string())),
        Err(_) => (
            false,
            Some(format!("no answer within {} ms", PROBE_TIMEOUT.as_millis())),
        ),
    };
    StoreReadiness {
        backend: store.backend(),
        reachable,
        error,
        latency_ms: reachable.then(|| u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(reachable: bool) -> StoreReadiness {
        StoreReadiness {
            backend: "sqlite",
            reachable,
            error: (!reachable).then(|| "connection refused".to_owned()),
            latency_ms: None,
        }
    }

    #[test]
    fn each_problem_is_named() {
        assert!(Readiness::new(store(true), None).ready);
        let spool = SpoolReadiness {
            writable: false,
            backlog_bytes: MAX_BACKLOG_BYTES + 1,
            flush_failing_for_s: Some(MAX_FLUSH_FAILING.as_secs()),
        };
        let readiness = Readiness::new(store(false), Some(spool));
        assert!(!readiness.ready);
        assert_eq!(readiness.problems.len(), 4, "{:?}", readiness.problems);
        assert!(readiness.problems[0].contains("connection refused"));
    }
}
