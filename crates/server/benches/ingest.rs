//! Ingestion throughput over HTTP and summary latency, on SQLite and PostgreSQL.
//!
//! `cargo bench -p goodhart-server --bench ingest -- [--backend sqlite|postgres|both]
//!  [--events N] [--batch N] [--connections N] [--summary-sizes 1000000,10000000]
//!  [--teams named|none|directory]`
//!
//! `--teams` says what the throughput load's events say of their team: `named` (the default,
//! as generated), `none` (no team: stored without one), or `directory` (no team, and every
//! person in the people directory with a home team, so each request looks their teams up).
//!
//! The server runs in this process on its own 2-thread runtime, bound to a random loopback
//! port; the load generator is a 1-thread runtime posting pre-generated NDJSON bodies over
//! keep-alive connections. Summary latency is measured over HTTP after loading each size.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "a benchmark stops at the first broken step of its setup, and spawns what it drives freely"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use goodhart_core::Micros;
use goodhart_core::time::MICROS_PER_DAY;
use goodhart_server::config::{Config, Overrides, RawConfig};
use goodhart_sim::{OrgShape, UsageGenerator};
use goodhart_store::testing::TestDatabase;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const ADMIN: &str = "bench-admin-token";
const HISTORY_DAYS: u32 = 60;

struct Options {
    backends: Vec<String>,
    events: usize,
    batch: usize,
    connections: usize,
    summary_sizes: Vec<usize>,
    teams: String,
}

fn options() -> Options {
    let mut o = Options {
        backends: vec!["sqlite".into(), "postgres".into()],
        events: 1_000_000,
        batch: 5_000,
        connections: 4,
        summary_sizes: vec![1_000_000, 10_000_000],
        teams: "named".into(),
    };
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--backend" => o.backends = if value == "both" { o.backends } else { vec![value] },
            "--events" => o.events = value.parse().expect("--events N"),
            "--batch" => o.batch = value.parse().expect("--batch N"),
            "--connections" => o.connections = value.parse().expect("--connections N"),
            "--teams" => {
                assert!(
                    ["named", "none", "directory"].contains(&value.as_str()),
                    "--teams named|none|directory"
                );
                o.teams = value;
            }
            "--summary-sizes" => {
                o.summary_sizes = value
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse().expect("sizes"))
                    .collect()
            }
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

fn main() {
    let o = options();
    for backend in &o.backends {
        let server_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let client_rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let db = match backend.as_str() {
            "sqlite" => TestDatabase::sqlite(),
            "postgres" => server_rt.block_on(TestDatabase::postgres()),
            other => panic!("unknown backend {other}"),
        };
        // GOODHART_BENCH_DATABASE_URL keeps the data afterwards (to inspect query plans).
        let url = std::env::var("GOODHART_BENCH_DATABASE_URL").unwrap_or_else(|_| db.url.clone());
        let addr = server_rt.block_on(start(&url));
        println!("== {backend}");

        let now = Micros::from_timestamp(jiff::Timestamp::now());
        let start = Micros(now.0 - i64::from(HISTORY_DAYS) * MICROS_PER_DAY);
        // Every load spreads its events evenly over the whole history, in time order.
        let generator = |seed: u64, events: usize| {
            UsageGenerator::new(seed, OrgShape::default(), start, HISTORY_DAYS, events as u64)
        };

        // Throughput: a fresh database, `events` new events.
        let mut batches = bodies(&mut generator(42, o.events), o.events, o.batch);
        if o.teams != "named" {
            let homes;
            (batches, homes) = without_teams(&batches);
            if o.teams == "directory" {
                server_rt.block_on(record_homes(&url, homes));
            }
        }
        println!("teams: {}", o.teams);
        let elapsed = client_rt.block_on(post_all(addr, &batches, o.connections));
        let mut loaded = o.events;
        let rate = o.events as f64 / elapsed.as_secs_f64();
        println!(
            "ingest: {} events in batches of {} over {} connections: {:.2} s, {:.0} events/s",
            o.events,
            o.batch,
            o.connections,
            elapsed.as_secs_f64(),
            rate
        );
        drop(batches);

        for (step, &size) in o.summary_sizes.iter().enumerate() {
            if loaded < size {
                let mut more = generator(43 + step as u64, size - loaded);
                while loaded < size {
                    let chunk = (size - loaded).min(500_000);
                    let batches = bodies(&mut more, chunk, o.batch);
                    client_rt.block_on(post_all(addr, &batches, o.connections));
                    loaded += chunk;
                }
            }
            if backend == "postgres" {
                // Measure the steady state autovacuum reaches within minutes of a bulk load.
                server_rt.block_on(vacuum_analyze(&url));
            }
            println!("summary latency with {loaded} stored events over {HISTORY_DAYS} days (20 runs each; p50 / max):");
            let all = format!("from={}", start.rfc3339());
            for (label, query) in [
                ("all history, one total", format!("{all}&group_by=")),
                ("all history by team", format!("{all}&group_by=team")),
                ("all history by user", format!("{all}&group_by=user")),
                ("all history by team,model", format!("{all}&group_by=team,model")),
                ("all history by model,day", format!("{all}&group_by=model,day")),
                ("all history by project", format!("{all}&group_by=project")),
                ("last 30 days (default) by user", "group_by=user".to_owned()),
                ("last 7 days by team", "from=7d&group_by=team".to_owned()),
                ("last 7 days by agent", "from=7d&group_by=agent".to_owned()),
            ] {
                let (p50, max) = client_rt.block_on(summary_latency(addr, &query, 20));
                println!(
                    "  {label:<34} {:>8.1} ms {:>8.1} ms",
                    p50.as_secs_f64() * 1e3,
                    max.as_secs_f64() * 1e3
                );
            }
        }
        drop(server_rt);
        drop(db);
    }
}

async fn start(url: &str) -> SocketAddr {
    let overrides = Overrides {
        listen: Some("127.0.0.1:0".into()),
        database_url: Some(url.to_owned()),
    };
    let spool = std::env::temp_dir().join(format!("goodhart-bench-spool-{}", std::process::id()));
    let file = RawConfig::from_toml(&format!(
        "[limits]\nmax_body_bytes = 268435456\n[gateway]\nspool_dir = {spool:?}"
    ))
    .unwrap();
    let config = Config::resolve(file, overrides).unwrap();
    let (server, _) = goodhart_server::Server::start(&config, Some(ADMIN), None)
        .await
        .unwrap();
    let listener = goodhart_server::serve::bind(config.listen).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.serve(listener, std::future::pending()));
    addr
}

/// The bodies with every event's team removed, and the first team each person named.
fn without_teams(bodies: &[Bytes]) -> (Vec<Bytes>, std::collections::BTreeMap<String, String>) {
    let mut homes = std::collections::BTreeMap::new();
    let stripped = bodies
        .iter()
        .map(|body| {
            let mut out = String::with_capacity(body.len());
            for line in std::str::from_utf8(body).unwrap().lines() {
                let mut event: serde_json::Value = serde_json::from_str(line).unwrap();
                let object = event.as_object_mut().unwrap();
                if let Some(serde_json::Value::String(team)) = object.remove("team") {
                    let user = object["user"].as_str().unwrap().to_owned();
                    homes.entry(user).or_insert(team);
                }
                out.push_str(&event.to_string());
                out.push('\n');
            }
            Bytes::from(out)
        })
        .collect();
    (stripped, homes)
}

async fn record_homes(url: &str, homes: std::collections::BTreeMap<String, String>) {
    let store = goodhart_store::open(url).await.unwrap();
    let people = homes.len();
    for (user, team) in homes {
        let member = goodhart_store::directory::Member {
            subject: user.clone(),
            email: None,
            issuer: "bench".into(),
            user,
            team: Some(team),
            updated_at: Micros(0),
        };
        store.record_member(&member).await.unwrap();
    }
    println!("directory: {people} people with a home team");
}

fn bodies(generator: &mut UsageGenerator, events: usize, batch: usize) -> Vec<Bytes> {
    (0..events.div_ceil(batch))
        .map(|i| Bytes::from(generator.ndjson(batch.min(events - i * batch))))
        .collect()
}

async fn post_all(addr: SocketAddr, bodies: &[Bytes], connections: usize) -> Duration {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let bodies = Arc::new(bodies.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (client, bodies, next) = (client.clone(), bodies.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    let request = hyper::Request::post(format!("http://{addr}/api/v1/usage"))
                        .header("authorization", format!("Bearer {ADMIN}"))
                        .header("content-type", "application/x-ndjson")
                        .body(Full::new(body.clone()))
                        .unwrap();
                    let response = client.request(request).await.expect("request");
                    let status = response.status();
                    let reply = response.into_body().collect().await.unwrap().to_bytes();
                    assert!(
                        status.is_success(),
                        "ingest failed: {status} {}",
                        String::from_utf8_lossy(&reply)
                    );
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("load generator task");
    }
    started.elapsed()
}

async fn summary_latency(addr: SocketAddr, query: &str, runs: usize) -> (Duration, Duration) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let request = hyper::Request::get(format!("http://{addr}/api/v1/usage/summary?{query}"))
            .header("authorization", format!("Bearer {ADMIN}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let started = Instant::now();
        let response = client.request(request).await.expect("request");
        assert!(response.status().is_success());
        response.into_body().collect().await.unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    (times[runs / 2], times[runs - 1])
}

async fn vacuum_analyze(url: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
        .batch_execute("VACUUM ANALYZE usage_events, usage_hourly, usage_daily, usage_daily_lean, usage_hourly_projects, usage_daily_projects")
        .await
        .expect("vacuum");
}
