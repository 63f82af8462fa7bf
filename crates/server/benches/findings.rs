//! The cost of a waste detection pass over a large stored history, on SQLite and PostgreSQL.
//!
//! `cargo bench -p goodhart-server --bench findings -- [--backend sqlite|postgres|both]
//!  [--scale N] [--runs N]`
//!
//! Simulates the waste evaluation's organisation `--scale` times over (8 by default: 280
//! people, about a million calls in four weeks), stores its usage and outcomes, then times
//! reading the calls back, detection alone, and a whole pass as the server runs it (read,
//! credits, detect, record), and scores the stored findings against the personas.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "a benchmark stops at the first broken step of its setup, and spawns what it drives freely"
)]

use std::time::{Duration, Instant};

use goodhart_core::Micros;
use goodhart_core::time::MICROS_PER_DAY;
use goodhart_core::waste::{Ledger, WasteRules, detect};
use goodhart_server::app::findings::run_pass;
use goodhart_sim::evaluate::{facts, score_findings};
use goodhart_sim::org::simulate;
use goodhart_store::testing::TestDatabase;

mod common;
use common::{median, options, priced_usage, runtime, scaled};

/// Resident memory of this process (Linux, MiB): now (`VmRSS`) or at its peak (`VmHWM`).
fn rss_mib(field: &str) -> String {
    let read = || -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with(field))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok()
    };
    read().map_or_else(|| "?".into(), |kib| (kib / 1024).to_string())
}

/// Starts measuring the peak anew (Linux: `5` in `clear_refs` resets `VmHWM`).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() {
    let options = options(3);
    let runtime = runtime();
    let started = Instant::now();
    let org = simulate(&scaled(options.scale));
    let events = priced_usage(&org);
    let facts = facts(&org);
    let (from, to) = (
        org.spec.start,
        Micros(org.spec.start.0 + i64::from(org.spec.weeks) * 7 * MICROS_PER_DAY),
    );
    println!(
        "organisation: {} people, {} calls, {} facts over {} weeks (simulated in {:.1} s)",
        org.people.len(),
        events.len(),
        facts.len(),
        org.spec.weeks,
        started.elapsed().as_secs_f64()
    );
    let rules = WasteRules::default();
    let value_rules = goodhart_core::outcomes::ValueRules::default();
    for backend in &options.backends {
        runtime.block_on(async {
            let db = match backend.as_str() {
                "sqlite" => TestDatabase::sqlite(),
                _ => TestDatabase::postgres().await,
            };
            let store = db.open().await.unwrap();
            let loading = Instant::now();
            for batch in events.chunks(10_000) {
                store.insert_usage(batch.to_vec(), "bench").await.unwrap();
            }
            store.insert_facts(facts.clone()).await.unwrap();
            println!("\n{backend}: stored in {:.1} s", loading.elapsed().as_secs_f64());

            let mut reads = Vec::new();
            let mut calls = Vec::new();
            for _ in 0..options.runs {
                drop(std::mem::take(&mut calls));
                let t = Instant::now();
                calls = store.waste_calls(from, to).await.unwrap();
                reads.push(t.elapsed());
            }
            let value_by_user = std::collections::HashMap::new();
            let mut detections = Vec::new();
            for _ in 0..options.runs {
                let t = Instant::now();
                std::hint::black_box(detect(&calls, &Ledger::of_calls(&calls, value_by_user.clone()), &rules));
                detections.push(t.elapsed());
            }
            let calls_read = calls.len();
            drop(calls);
            let mut passes = Vec::new();
            let mut report = None;
            let resident = rss_mib("VmRSS:");
            reset_peak_rss();
            for _ in 0..options.runs {
                let t = Instant::now();
                report = Some(
                    run_pass(store.as_ref(), &value_rules, &rules, &Default::default(), from, to, to)
                        .await
                        .unwrap(),
                );
                passes.push(t.elapsed());
            }
            let report = report.unwrap();
            println!(
                "  read {calls_read} calls: {:.2} s; detect: {:.2} s; whole pass (read, credits, detect, record): {:.2} s \
                 (median of {}); resident before the passes {resident} MiB (the simulated organisation), peak during \
                 them {} MiB",
                median(reads).as_secs_f64(),
                median(detections).as_secs_f64(),
                median(passes).as_secs_f64(),
                options.runs,
                rss_mib("VmHWM:")
            );
            let stored: Vec<_> = store
                .findings(from, to)
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.finding)
                .collect();
            let score = score_findings(&org, report.calls as usize, stored, Duration::ZERO);
            println!(
                "  findings: {} ({} people flagged); precision {:.2}, recall {:.2} ({} of {} wasteful people); \
                 false positives {:?}, missed {:?}",
                score.findings.len(),
                score.overall.flagged,
                score.overall.precision(),
                score.overall.recall(),
                score.overall.true_positives,
                score.overall.wasteful,
                score.false_positives,
                score.missed
            );
        });
    }
}
