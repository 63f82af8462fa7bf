//! No lost usage: `goodhart serve` killed with SIGKILL in the middle of gateway load, then
//! restarted, has stored every call whose response the client received completely, and no
//! call twice.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{exchange, serve_with};

const ADMIN: &str = "kill-test-admin";

/// A call the client saw complete: its response ended as the protocol ends it.
fn completed_call_id(response: &str, stream: bool) -> Option<String> {
    let (head, body) = response.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    let complete = if stream {
        // Chunked: the terminating zero-length chunk arrived after `[DONE]`.
        body.contains("data: [DONE]") && body.ends_with("0\r\n\r\n")
    } else {
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))?
            .trim()
            .parse()
            .ok()?;
        body.len() == length
    };
    let id = head.lines().find_map(|l| l.strip_prefix("x-goodhart-call-id: "))?;
    complete.then(|| id.trim().to_owned())
}

fn stored_calls(db: &std::path::Path) -> Vec<(String, Option<String>)> {
    let db = rusqlite::Connection::open(db).unwrap();
    db.prepare("SELECT e.event_id, c.upstream_request_id FROM usage_events e JOIN gateway_calls c ON c.seq = e.seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn sigkill_mid_load_loses_nothing_and_counts_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("GOODHART_ADMIN_TOKEN", ADMIN)];
    let mut first = serve_with(dir.path(), &env);
    let auth = format!("Bearer {ADMIN}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let created = exchange(&first.addr, "POST", "/api/v1/keys", &headers, r#"{"user": "alice"}"#).unwrap();
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    let key: serde_json::Value = serde_json::from_str(created.split_once("\r\n\r\n").unwrap().1).unwrap();
    let key = key["key"].as_str().unwrap().to_owned();

    let completed = Arc::new(Mutex::new(Vec::<String>::new()));
    let attempted = Arc::new(Mutex::new(0u64));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..16)
        .map(|worker| {
            let (addr, key) = (first.addr.clone(), key.clone());
            let (completed, attempted, stop) = (completed.clone(), attempted.clone(), stop.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(20);
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let stream = (worker + i).is_multiple_of(2);
                    let body = format!(
                        r#"{{"model": "gpt-4o-mini", "stream": {stream}, "messages": [{{"role": "user", "content": "call {worker}-{i}"}}]}}"#
                    );
                    *attempted.lock().unwrap() += 1;
                    let auth = format!("Bearer {key}");
                    let response = exchange(&addr, "POST", "/v1/chat/completions", &[("Authorization", &auth)], &body);
                    match response {
                        Ok(response) => {
                            if let Some(id) = completed_call_id(&response, stream) {
                                completed.lock().unwrap().push(id);
                            }
                        }
                        Err(_) => break, // the server is gone
                    }
                    i += 1;
                }
            })
        })
        .collect();

    // Let the load run past a few flushes, then kill without warning.
    let started = Instant::now();
    while completed.lock().unwrap().len() < 300 && started.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(20));
    }
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
    let completed: Vec<String> = completed.lock().unwrap().clone();
    let attempted = *attempted.lock().unwrap();
    assert!(completed.len() >= 300, "load ran ({} calls completed)", completed.len());
    let db = dir.path().join("goodhart.db");
    let before_restart = stored_calls(&db).len();

    // Restart: the spool left behind is replayed into the store.
    let second = serve_with(dir.path(), &env);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stored = stored_calls(&db);
    while stored.len() < completed.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        stored = stored_calls(&db);
    }
    std::thread::sleep(Duration::from_millis(500)); // any late duplicate would show now
    let stored = stored_calls(&db);
    drop(second);

    let ids: HashSet<&str> = stored.iter().map(|(id, _)| id.as_str()).collect();
    let missing: Vec<&String> = completed.iter().filter(|id| !ids.contains(id.as_str())).collect();
    assert!(
        missing.is_empty(),
        "{} completed calls were lost: {missing:?}",
        missing.len()
    );
    let upstream: HashSet<&str> = stored.iter().filter_map(|(_, r)| r.as_deref()).collect();
    assert_eq!(upstream.len(), stored.len(), "each provider call is stored once");
    assert!(
        stored.len() as u64 <= attempted,
        "no more calls stored ({}) than attempted ({attempted})",
        stored.len()
    );
    assert!(
        before_restart < stored.len(),
        "the kill left spooled usage to replay (stored before restart: {before_restart}, after: {})",
        stored.len()
    );
}
