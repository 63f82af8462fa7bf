//! The database going away under load: a PostgreSQL cluster of the test's own stopped and
//! started again, and a SQLite database on a file system that fills up. Calls no hard cap needs
//! the database for keep being served (their records wait in the spool), capped calls that
//! need a new slice are refused with 503 and `retry-after`, `/healthz` stays 200 while
//! `/readyz` says not ready, and after recovery — without a restart — every completed call is
//! recorded exactly once. Each test prints one `chaos-row:` line for BENCHMARKS.md.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use goodhart_store::testing::{PgCluster, SmallDisk, TestDatabase};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::common::{TestServer, metric_in, start_configured, start_with};

const PRICED: &str =
    "[[prices.model]]\nprovider = \"mock\"\nmodel = \"slow-mini\"\ninput = \"0.15\"\noutput = \"0.60\"\n";

/// When a call was sent, relative to the fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Before = 0,
    During = 1,
    After = 2,
}

impl Phase {
    fn of(value: u8) -> Phase {
        match value {
            0 => Phase::Before,
            1 => Phase::During,
            _ => Phase::After,
        }
    }
}

/// One call as the client saw it.
#[derive(Debug)]
struct Outcome {
    phase: Phase,
    capped: bool,
    status: u16,
    retry_after: bool,
    /// The response id, when the call completed (a whole body, or a stream to its end).
    completed: Option<String>,
    /// When the answer had been read.
    finished: Instant,
    body: String,
}

/// What the load and the probes saw.
#[derive(Default)]
struct Seen {
    calls: Vec<Outcome>,
    /// (phase, /healthz status, its latency, /readyz status).
    probes: Vec<(Phase, u16, Duration, u16)>,
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn get(client: &HttpClient, url: String) -> (u16, String) {
    let request = hyper::Request::get(url).body(Full::new(Bytes::new())).unwrap();
    match tokio::time::timeout(Duration::from_secs(10), async {
        let response = client.request(request).await.ok()?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.ok()?.to_bytes();
        Some((status, String::from_utf8_lossy(&bytes).into_owned()))
    })
    .await
    {
        Ok(Some(answer)) => answer,
        _ => (0, String::new()),
    }
}

/// One chat call; a stream counts as completed when it reached `[DONE]`.
async fn call(client: &HttpClient, url: &str, key: &str, body: &Value) -> (u16, bool, Option<String>, String) {
    let request = hyper::Request::post(format!("{url}/v1/chat/completions"))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let answered = tokio::time::timeout(Duration::from_secs(20), async {
        let response = client.request(request).await.ok()?;
        let status = response.status().as_u16();
        let retry_after = response.headers().contains_key("retry-after");
        let bytes = response.into_body().collect().await.ok()?.to_bytes();
        Some((status, retry_after, String::from_utf8_lossy(&bytes).into_owned()))
    })
    .await;
    let Ok(Some((status, retry_after, text))) = answered else {
        return (0, false, None, "no answer".into());
    };
    let completed = if status != 200 {
        None
    } else if body["stream"] == true {
        let chunks: Vec<Value> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect();
        text.contains("data: [DONE]")
            .then(|| chunks.first().and_then(|c| c["id"].as_str()).map(str::to_owned))
            .flatten()
    } else {
        serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_owned))
    };
    (status, retry_after, completed, text)
}

/// Calls from an uncapped key (streamed and not) and a capped one, and `/healthz` and
/// `/readyz` polled every 100 ms, until stopped.
struct Load {
    phase: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(server: &TestServer, free_key: &str, capped_key: &str, capped_workers: usize) -> Load {
        let (phase, stop) = (Arc::new(AtomicU8::new(0)), Arc::new(AtomicBool::new(false)));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mut tasks = Vec::new();
        let free = |stream: bool| json!({"model": "gpt-4o-mini", "max_tokens": 20, "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
        let mut workers: Vec<(String, Value, bool)> =
            (0..4).map(|i| (free_key.to_owned(), free(i % 2 == 0), false)).collect();
        workers.extend((0..capped_workers).map(|i| (capped_key.to_owned(), capped_call(i % 2 == 0), true)));
        for (key, body, is_capped) in workers {
            let (url, phase, stop, seen) = (server.url(), Arc::clone(&phase), Arc::clone(&stop), Arc::clone(&seen));
            tasks.push(tokio::spawn(async move {
                let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
                while !stop.load(Ordering::SeqCst) {
                    let sent_in = Phase::of(phase.load(Ordering::SeqCst));
                    let (status, retry_after, completed, text) = call(&client, &url, &key, &body).await;
                    let refused = status != 200;
                    seen.lock().unwrap().calls.push(Outcome {
                        phase: sent_in,
                        capped: is_capped,
                        status,
                        retry_after,
                        completed,
                        finished: Instant::now(),
                        body: text.chars().take(300).collect(),
                    });
                    if refused {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }));
        }
        let (url, phase_probe, stop_probe, seen_probe) =
            (server.url(), Arc::clone(&phase), Arc::clone(&stop), Arc::clone(&seen));
        tasks.push(tokio::spawn(async move {
            let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
            while !stop_probe.load(Ordering::SeqCst) {
                let at = Phase::of(phase_probe.load(Ordering::SeqCst));
                let started = Instant::now();
                let (health, _) = get(&client, format!("{url}/healthz")).await;
                let latency = started.elapsed();
                let (ready, _) = get(&client, format!("{url}/readyz")).await;
                seen_probe.lock().unwrap().probes.push((at, health, latency, ready));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
        Load {
            phase,
            stop,
            seen,
            tasks,
        }
    }

    fn enter(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::SeqCst);
    }

    async fn finish(self) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("a load task ended")
                .unwrap();
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// Waits (at most `limit`) until `/readyz` answers `status`; returns how long it took.
async fn await_readyz(server: &TestServer, status: u16, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let reply = server.send("GET", "/readyz", &[], Bytes::new()).await;
        if reply.status == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "/readyz still {} after {limit:?}: {}",
            reply.status,
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (at most 30 s) until the instance is ready, the spool takes records and the background
/// flusher has stored what waited; returns the time since `since`.
async fn await_recovery(server: &TestServer, since: Instant) -> Duration {
    loop {
        let readiness = server.gateway.readiness().await;
        let spool = readiness.spool.as_ref().unwrap();
        if readiness.ready && spool.writable && spool.flush_failing_for_s.is_none() {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "never recovered: {:?}",
            readiness.problems
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Flushes until the spool is empty (the store may take a moment to come back); bounded.
async fn drain(server: &TestServer) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match server.gateway.flush().await {
            Ok(_)
                if server
                    .gateway
                    .readiness()
                    .await
                    .spool
                    .is_some_and(|s| s.backlog_bytes == 0) =>
            {
                return;
            }
            Ok(_) => {}
            Err(e) => assert!(
                Instant::now() < deadline,
                "the spool never drained: {e}; files beside the database: {:?}",
                files_beside(&server.db.url)
            ),
        }
        assert!(Instant::now() < deadline, "the spool never drained");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The files in a SQLite database's directory, with their sizes (what filled a disk).
fn files_beside(url: &str) -> Vec<(String, u64)> {
    let Some(dir) = url
        .strip_prefix("sqlite://")
        .and_then(|p| std::path::Path::new(p).parent())
    else {
        return Vec::new();
    };
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().map_or(0, |m| m.len()),
            )
        })
        .collect()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn p99(mut latencies: Vec<Duration>) -> Duration {
    latencies.sort();
    latencies
        .get((latencies.len() * 99).div_ceil(100).saturating_sub(1))
        .copied()
        .unwrap_or_default()
}

/// A capped call: held a second by the mock, with a long prompt so that it costs about three
/// quarters of its worst case (the prompt's tokens are estimated at a third of its characters,
/// counted at a quarter) and the cap is reached within seconds.
fn capped_call(stream: bool) -> Value {
    json!({"model": "slow-mini", "max_tokens": 100, "stream": stream, "messages": [{"role": "user", "content": "hi ".repeat(10_000)}]})
}

/// Creates the two keys and the capped budget (a hard cap that fits 60 of the capped calls'
/// worst case, so a slice fits three); returns (uncapped key, capped key, limit in nanos).
async fn keys_and_cap(server: &TestServer) -> (String, String, i64) {
    let free = server.create_key(r#"{"user": "bob", "team": "research"}"#).await.1;
    let capped = server.create_key(r#"{"user": "alice", "team": "payments"}"#).await.1;
    let body = capped_call(false).to_string();
    let prices = goodhart_core::pricing::PriceTable::parse(&format!(
        "version = \"t\"\n[[model]]\n{}",
        PRICED.trim_start_matches("[[prices.model]]\n")
    ))
    .unwrap();
    let price = prices.resolve(None, "slow-mini").unwrap();
    let input = goodhart_core::budgets::estimate_input_tokens(body.len() as u64);
    let limit = goodhart_core::Nanos(60 * goodhart_core::budgets::worst_case_cost(price, input, 100).0);
    server.create_budget(json!({"scope": "team", "name": "payments", "period": "month", "limit_usd": limit.usd_string(), "action": "block"})).await;
    (free, capped, limit.0)
}

/// What the budget has spent, in nanos.
async fn spent(server: &TestServer) -> i64 {
    let listed = server.admin("GET", "/api/v1/budgets", Bytes::new()).await;
    let text = listed.json["budgets"][0]["spent_usd"].to_string();
    goodhart_core::Nanos::from_usd(text.trim_matches('"'))
        .unwrap_or_else(|e| panic!("spent_usd {text}: {e}"))
        .0
}

/// Checks what every fault test promises and prints its chaos row; `recorded` counts the
/// stored calls by response id.
fn judge(
    fault: &str,
    seen: &Seen,
    recorded: &HashMap<String, i64>,
    overshoot: i64,
    recovery: Duration,
    rss: (u64, u64),
) {
    let completed: Vec<&str> = seen.calls.iter().filter_map(|c| c.completed.as_deref()).collect();
    let lost = completed.iter().filter(|id| !recorded.contains_key(**id)).count();
    let doubled = recorded.values().filter(|n| **n > 1).count();
    let during: Vec<Duration> = seen
        .probes
        .iter()
        .filter(|p| p.0 == Phase::During)
        .map(|p| p.2)
        .collect();
    eprintln!(
        "chaos-row: | {fault} | {} | {} | {} | {lost} | {doubled} | {} nanos | {:.1} s | {:.1} ms | {} -> {} MiB |",
        seen.calls.len(),
        completed.len(),
        completed.iter().filter(|id| recorded.contains_key(**id)).count(),
        overshoot.max(0),
        recovery.as_secs_f64(),
        p99(during).as_secs_f64() * 1e3,
        rss.0 / 1024,
        rss.1 / 1024,
    );
    assert_eq!((lost, doubled), (0, 0), "every completed call recorded exactly once");
    assert!(overshoot <= 0, "the cap was exceeded by {overshoot} nanos");
    assert!(
        seen.probes.iter().all(|p| p.1 == 200),
        "/healthz answers 200 throughout"
    );
    assert!(
        seen.probes
            .iter()
            .filter(|p| p.0 == Phase::During)
            .all(|p| p.2 < Duration::from_secs(2)),
        "/healthz answered within 2 s during the fault"
    );
}

/// Calls completed by the server's store, counted by response id (PostgreSQL).
async fn recorded_postgres(url: &str) -> HashMap<String, i64> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .query(
            "SELECT response_id, count(*) FROM gateway_calls WHERE response_id IS NOT NULL GROUP BY response_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1)))
        .collect()
}

/// Calls recorded in a SQLite database, counted by response id.
fn recorded_sqlite(path: &std::path::Path) -> HashMap<String, i64> {
    let db = rusqlite::Connection::open(path).unwrap();
    let mut statement = db
        .prepare("SELECT response_id, count(*) FROM gateway_calls WHERE response_id IS NOT NULL GROUP BY response_id")
        .unwrap();
    statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

async fn postgres_outage(mode: &str) {
    if let Some(reason) = PgCluster::unavailable() {
        eprintln!("skipped: {reason}");
        return;
    }
    let cluster = tokio::task::block_in_place(PgCluster::start).unwrap();
    let server = start_with(TestDatabase::external(cluster.url()), PRICED).await;
    let (free, capped, limit) = keys_and_cap(&server).await;
    let rss_before = rss_kib();
    let load = Load::start(&server, &free, &capped, 12);
    tokio::time::sleep(Duration::from_secs(2)).await;

    load.enter(Phase::During);
    tokio::task::block_in_place(|| cluster.stop(mode)).unwrap();
    await_readyz(&server, 503, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    tokio::task::block_in_place(|| cluster.start_again()).unwrap();
    let restarted = Instant::now();
    load.enter(Phase::After);
    let ready_after = await_readyz(&server, 200, Duration::from_secs(30)).await;
    let recovered = await_recovery(&server, restarted).await;
    // Capped calls go on until the cap refuses them (429), which it must do without overshoot.
    let mut reached = false;
    while !reached {
        assert!(
            restarted.elapsed() < Duration::from_secs(60),
            "the cap was never reached"
        );
        reached = (load.seen.lock().unwrap().calls.iter()).any(|c| c.capped && c.status == 429);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = load.finish().await;
    drain(&server).await;
    let rss_after = rss_kib();
    // Capped calls are admitted again once a slice can be borrowed.
    let capped_again = (seen.calls.iter())
        .filter(|c| c.phase == Phase::After && c.capped && c.status == 200)
        .map(|c| c.finished.duration_since(restarted))
        .min()
        .expect("capped calls were admitted after the restart");
    let spent_at_end = spent(&server).await;
    eprintln!(
        "postgres outage ({mode}): /readyz 200 {:.2} s after the restart, backlog stored by the flusher after {:.2} s, \
         the first capped call (1 s upstream) answered after {:.2} s; cap {limit} nanos, spent {spent_at_end}",
        ready_after.as_secs_f64(),
        recovered.as_secs_f64(),
        capped_again.as_secs_f64(),
    );

    let during: Vec<&Outcome> = seen.calls.iter().filter(|c| c.phase == Phase::During).collect();
    let free_during: Vec<&&Outcome> = during.iter().filter(|c| !c.capped).collect();
    assert!(free_during.len() > 10, "uncapped calls ran during the outage");
    let refused: Vec<_> = free_during.iter().filter(|c| c.status != 200).collect();
    assert!(
        refused.is_empty(),
        "uncapped calls are served during the outage: {} of {} refused, e.g. {:?}",
        refused.len(),
        free_during.len(),
        refused.first().map(|c| (c.status, &c.body))
    );
    let capped_refused: Vec<_> = during.iter().filter(|c| c.capped && c.status != 200).collect();
    let over_cap: Vec<_> = (seen.calls.iter()).filter(|c| c.capped && c.status == 429).collect();
    assert!(
        over_cap.iter().all(|c| c.body.contains("budget_exceeded")),
        "429s are the cap's: {:?}",
        over_cap.first().map(|c| &c.body)
    );
    assert!(
        capped_refused.iter().all(|c| c.status == 503 && c.retry_after),
        "capped calls are refused with 503 and retry-after: {:?}",
        capped_refused
            .iter()
            .find(|c| c.status != 503 || !c.retry_after)
            .map(|c| (c.status, &c.body))
    );
    assert!(
        !capped_refused.is_empty(),
        "capped calls needing a slice were refused during the outage"
    );
    assert!(
        seen.probes.iter().any(|p| p.0 == Phase::During && p.3 == 503),
        "/readyz said not ready during the outage"
    );
    let overshoot = spent_at_end - limit;
    let recorded = recorded_postgres(&cluster.url()).await;
    judge(
        &format!("PostgreSQL stopped ({mode}) 4 s under load"),
        &seen,
        &recorded,
        overshoot,
        recovered,
        (rss_before, rss_after),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_postgres_stopped_fast() {
    postgres_outage("fast").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_postgres_stopped_immediate() {
    postgres_outage("immediate").await;
}

/// SQLite on a small tmpfs that fills up; the spool on the normal disk or on the full one. The
/// disk is larger than the WAL grows before the fault: a WAL that fills a disk by itself cannot
/// be checkpointed, the database having no room to take its pages (see the report on sizing).
async fn sqlite_full_disk(spool_on_full_disk: bool) {
    let disk = match SmallDisk::mount(64 * 1024 * 1024) {
        Ok(disk) => disk,
        Err(reason) => {
            eprintln!("skipped: {reason}");
            return;
        }
    };
    let path = disk.path().join("goodhart.db");
    let spool_dir = disk.path().join("spool");
    let server = start_configured(TestDatabase::sqlite_at(&path), PRICED, |config| {
        if spool_on_full_disk {
            config.gateway.spool_dir = spool_dir.clone();
        }
    })
    .await;
    let (free, capped, limit) = keys_and_cap(&server).await;
    let rss_before = rss_kib();
    let load = Load::start(&server, &free, &capped, 4);
    tokio::time::sleep(Duration::from_secs(2)).await;

    load.enter(Phase::During);
    disk.fill().unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let flushed = server.gateway.flush().await;
    let metrics = server.send("GET", "/metrics", &[], Bytes::new()).await.text;
    let readyz = server.send("GET", "/readyz", &[], Bytes::new()).await;
    disk.free().unwrap();
    let freed = Instant::now();
    load.enter(Phase::After);
    // Recovered: the background flusher stored the backlog and the spool takes records again.
    loop {
        let readiness = server.gateway.readiness().await;
        let spool = readiness.spool.unwrap();
        if readiness.ready && spool.writable && spool.flush_failing_for_s.is_none() {
            break;
        }
        assert!(
            freed.elapsed() < Duration::from_secs(30),
            "never recovered: {:?}",
            readiness.problems
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let recovered = freed.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seen = load.finish().await;
    drain(&server).await;
    let rss_after = rss_kib();

    let error = flushed
        .expect_err("the store cannot take writes on a full disk")
        .to_string();
    assert!(error.contains("full"), "a clear error: {error}");
    let flush_errors = metric_in(&metrics, "goodhart_gateway_flush_errors_total");
    assert!(flush_errors > 0, "failed flushes are counted:\n{metrics}");
    assert!(readyz.text.contains("flush_failing_for_s"), "{}", readyz.text);
    let during: Vec<&Outcome> = seen.calls.iter().filter(|c| c.phase == Phase::During).collect();
    let refused: Vec<_> = during.iter().filter(|c| c.status != 200).collect();
    assert!(
        refused.iter().all(|c| c.status == 503 && c.retry_after),
        "refusals are 503 with retry-after: {:?}",
        refused
            .iter()
            .find(|c| c.status != 503 || !c.retry_after)
            .map(|c| (c.status, &c.body))
    );
    if spool_on_full_disk {
        let spooled = metric_in(&metrics, "goodhart_gateway_spool_errors_total");
        assert!(spooled > 0, "records that could not be spooled are counted");
    } else {
        let free_refused = refused.iter().filter(|c| !c.capped).count();
        assert_eq!(
            free_refused,
            0,
            "uncapped calls are served: {:?}",
            refused.first().map(|c| (c.status, &c.body))
        );
    }
    // The spool kept everything whole: no segment set aside as damaged.
    let spool_dir = if spool_on_full_disk {
        spool_dir
    } else {
        server.db.dir().join("spool")
    };
    let corrupt = std::fs::read_dir(&spool_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "corrupt"))
        .count();
    assert_eq!(corrupt, 0, "no spool segment damaged");
    let integrity: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let overshoot = spent(&server).await - limit;
    let recorded = recorded_sqlite(&path);
    let fault = if spool_on_full_disk {
        "SQLite and spool on a full disk 4 s"
    } else {
        "SQLite on a full disk 4 s"
    };
    judge(fault, &seen, &recorded, overshoot, recovered, (rss_before, rss_after));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_sqlite_full_disk() {
    sqlite_full_disk(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_sqlite_and_spool_full_disk() {
    sqlite_full_disk(true).await;
}

#[tokio::test]
async fn readyz_reports_each_part_and_healthz_stays_liveness() {
    let server = start_with(TestDatabase::sqlite(), "").await;
    let ready = server.send("GET", "/readyz", &[], Bytes::new()).await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(ready.json["ready"], true);
    assert_eq!(ready.json["problems"], json!([]));
    assert_eq!(ready.json["store"]["backend"], "sqlite");
    assert_eq!(ready.json["store"]["reachable"], true);
    assert_eq!(ready.json["spool"]["writable"], true);
    assert!(ready.json["spool"]["backlog_bytes"].is_u64(), "{}", ready.text);
    let health = server.send("GET", "/healthz", &[], Bytes::new()).await;
    assert_eq!(health.json["status"], "ok");
}
