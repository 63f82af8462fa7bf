//! Threads for long work that no call waits on — detection passes — at a lower scheduling
//! priority. On a core shared with the runtime's workers the kernel then runs the workers (and
//! the calls they serve) first and this work in the time left over, instead of giving each an
//! equal share. Where cores are idle it changes nothing.
//!
//! Not the SQLite writer: calls borrow from budgets' and rate limits' shared pools through it,
//! and with the whole test suite on two cores a writer at nice 10 was starved long enough for
//! a per-key rate limit to refuse a key's first call.

use goodhart_store::StoreError;
use tokio::sync::oneshot;

/// The nice value of background threads: a tenth of a normal thread's share of a busy core,
/// so they still progress when the gateway keeps the core busy.
pub const NICE: i32 = 10;

/// Lowers the calling thread's priority to [`NICE`]. It cannot be raised back (that needs
/// privileges), so only threads that do nothing else call it. Where it fails the work runs at
/// normal priority, which is harmless.
fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), NICE) {
        tracing::debug!("could not lower a background thread's priority: {e}");
    }
}

/// Runs `job` on a new thread named `name` at background priority and waits for its result.
pub async fn run<T: Send + 'static>(name: &str, job: impl FnOnce() -> T + Send + 'static) -> Result<T, StoreError> {
    let (done, result) = oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            lower_this_thread();
            // The caller may have stopped waiting; the result is then not needed.
            let _ = done.send(job());
        })
        .map_err(|e| StoreError::Worker(format!("could not start a background thread: {e}")))?;
    result
        .await
        .map_err(|_| StoreError::Worker(format!("the background thread `{name}` panicked")))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn this_threads_nice() -> i32 {
        rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(i32::MIN)
    }

    #[tokio::test]
    async fn background_work_runs_at_lower_priority_and_leaves_the_caller_alone() {
        let before = this_threads_nice();
        let nice = run("test-background", this_threads_nice).await.unwrap();
        assert_eq!(nice, NICE);
        assert_eq!(this_threads_nice(), before, "the caller's thread keeps its priority");
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_not_a_crash() {
        let outcome: Result<(), _> = run("test-panic", || panic!("boom")).await;
        assert!(matches!(outcome, Err(StoreError::Worker(message)) if message.contains("test-panic")));
    }
}
