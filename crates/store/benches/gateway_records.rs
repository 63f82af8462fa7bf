//! Storing the gateway's records of calls (what a spool flush does), on SQLite and PostgreSQL:
//! fresh calls, and calls that telemetry reported first (each gateway record then replaces the
//! telemetry's, by request id or by response id).
//!
//! `cargo bench -p goodhart-store --bench gateway_records -- [--backend sqlite|postgres|both]
//!  [--calls N] [--batch N]`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "a benchmark stops at the first broken step of its setup, and spawns what it drives freely"
)]

use std::time::Instant;

use goodhart_core::Micros;
use goodhart_core::fingerprint::Fingerprints;
use goodhart_core::usage::{Attribution, CallMeta, Source, TokenCounts, UsageEvent};
use goodhart_store::PricedEvent;
use goodhart_store::testing::TestDatabase;

const START: i64 = 1_793_491_200_000_000; // 2026-11-01T00:00:00Z

struct Options {
    backends: Vec<String>,
    calls: usize,
    batch: usize,
}

fn options() -> Options {
    let mut o = Options {
        backends: vec!["sqlite".into(), "postgres".into()],
        calls: 200_000,
        batch: 500,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--backend" => {
                o.backends = match value().as_str() {
                    "both" => vec!["sqlite".into(), "postgres".into()],
                    one => vec![one.to_owned()],
                }
            }
            "--calls" => o.calls = value().parse().expect("--calls N"),
            "--batch" => o.batch = value().parse().expect("--batch N"),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    o
}

/// Call `i`, one every 100 ms from `START`, by one of 50 users, as `source` records it.
fn call(i: usize, source: Source) -> PricedEvent {
    let gateway = source == Source::Gateway;
    let event = UsageEvent {
        // Every tenth call is known to the telemetry by its response id only.
        id: if !gateway && i.is_multiple_of(10) {
            format!("msg:msg_{i}")
        } else {
            format!("req:req_{i}")
        },
        timestamp: Micros(START + i as i64 * 100_000),
        attribution: Attribution {
            user: format!("user{}", i % 50),
            team: Some(format!("team{}", i % 5)),
            agent: Some("claude-code".into()),
            session: Some(format!("s{}", i / 40)),
            ..Attribution::default()
        },
        provider: Some("anthropic".into()),
        model: "claude-sonnet-4-5".into(),
        tokens: TokenCounts {
            input: 1_000 + (i % 997) as u64,
            output: 200,
            cache_read: 20_000,
            ..TokenCounts::default()
        },
        finish_reason: Some("end_turn".into()),
        fingerprints: Fingerprints::default(),
        content: None,
        source,
        estimated: false,
        call: gateway.then(|| CallMeta {
            key_id: "k1".into(),
            endpoint: "messages".into(),
            status: 200,
            stream: true,
            latency_micros: 900_000,
            ttft_micros: Some(300_000),
            max_tokens: Some(4_096),
            upstream_request_id: Some(format!("req_{i}")),
            response_id: Some(format!("msg_{i}")),
            client_disconnected: false,
        }),
    };
    PricedEvent { event, cost: None }
}

async fn store_all(db: &TestDatabase, events: Vec<PricedEvent>, batch: usize) -> (f64, u64) {
    let store = db.open().await.unwrap();
    let started = Instant::now();
    let mut inserted = 0;
    let mut chunks = events.into_iter().peekable();
    while chunks.peek().is_some() {
        let chunk: Vec<PricedEvent> = chunks.by_ref().take(batch).collect();
        inserted += store.insert_usage(chunk, "bench").await.unwrap().inserted;
    }
    (started.elapsed().as_secs_f64(), inserted)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let o = options();
    println!("| backend | scenario | calls | batch | seconds | calls/s |");
    println!("| --- | --- | ---: | ---: | ---: | ---: |");
    for backend in &o.backends {
        for telemetry_first in [false, true] {
            let db = match backend.as_str() {
                "sqlite" => TestDatabase::sqlite(),
                "postgres" => TestDatabase::postgres().await,
                other => panic!("unknown backend {other}"),
            };
            if telemetry_first {
                let telemetry = (0..o.calls).map(|i| call(i, Source::Otlp)).collect();
                store_all(&db, telemetry, o.batch).await;
            }
            let gateway = (0..o.calls).map(|i| call(i, Source::Gateway)).collect();
            let (seconds, inserted) = store_all(&db, gateway, o.batch).await;
            assert_eq!(inserted as usize, o.calls, "every gateway record is stored");
            let scenario = if telemetry_first {
                "each replaces telemetry's record"
            } else {
                "new calls"
            };
            println!(
                "| {backend} | {scenario} | {} | {} | {seconds:.2} | {:.0} |",
                o.calls,
                o.batch,
                o.calls as f64 / seconds
            );
        }
    }
}
