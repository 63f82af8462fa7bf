//! The cost of holding the providers' bills against the meter over a large stored history, on
//! SQLite and PostgreSQL.
//!
//! `cargo bench -p goodhart-server --bench reconciliation -- [--backend sqlite|postgres|both]
//!  [--scale N] [--runs N]`
//!
//! Simulates the waste evaluation's organisation `--scale` times over (8 by default: about a
//! million calls in four weeks), stores its usage, imports both providers' reports of it from
//! the mock of their admin APIs (what was metered, plus a key bypassing the gateway), then
//! times the import, the metered side's query alone, the reconciliation report and the drift
//! check as the server runs them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "a benchmark stops at the first broken step of its setup, and spawns what it drives freely"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use goodhart_core::Micros;
use goodhart_core::pricing::PriceTable;
use goodhart_core::time::MICROS_PER_DAY;
use goodhart_server::app::query::Window;
use goodhart_server::app::{App, Clock};
use goodhart_server::provider_import::{ReportApi, ReportSource, import_reports};
use goodhart_server::settings::Settings;
use goodhart_sim::mock_admin::{ADMIN_KEY, AdminData, DailyLine, faithful_lines};
use goodhart_sim::org::simulate;
use goodhart_store::testing::TestDatabase;

mod common;
use common::{median, options, priced_usage, runtime, scaled};

fn millis(times: Vec<Duration>) -> f64 {
    median(times).as_secs_f64() * 1_000.0
}

fn main() {
    let options = options(5);
    let runtime = runtime();
    let org = simulate(&scaled(options.scale));
    let events = priced_usage(&org);
    let first_day = org.spec.start.floor_to(MICROS_PER_DAY);
    let days = org.spec.weeks * 7;
    let end = Micros(first_day.0 + i64::from(days) * MICROS_PER_DAY);
    println!(
        "organisation: {} people, {} calls over {days} days",
        org.people.len(),
        events.len()
    );
    let mut settings = Settings::default();
    settings.reconciliation.accounts.gateway_keys = ["apikey_gateway".to_owned(), "key_gateway".to_owned()].into();
    for backend in &options.backends {
        runtime.block_on(async {
            let db = match backend.as_str() {
                "sqlite" => TestDatabase::sqlite(),
                _ => TestDatabase::postgres().await,
            };
            let store = db.open().await.unwrap();
            for batch in events.chunks(10_000) {
                store.insert_usage(batch.to_vec(), "bench").await.unwrap();
            }
            let metered = store.metered_by_source(first_day, end).await.unwrap();
            let client = goodhart_gateway::upstream::client();
            let mut imports = Vec::new();
            let mut lines = 0;
            for api in ReportApi::ALL {
                let key = match api {
                    ReportApi::AnthropicAdmin => "apikey_gateway",
                    ReportApi::OpenAiAdmin => "key_gateway",
                };
                let mut reported = faithful_lines(&metered, api.provider(), first_day, key);
                reported.push(DailyLine {
                    day: days - 2,
                    model: "claude-haiku-4-5".into(),
                    api_key_id: "apikey_notebook".into(),
                    workspace: None,
                    input: 50_000_000,
                    cache_read: 0,
                    output: 10_000_000,
                    cost_nanos: 100_000_000_000,
                });
                lines += reported.len();
                let data = AdminData {
                    first_day,
                    days,
                    lines: reported,
                    ..AdminData::default()
                };
                let addr = goodhart_sim::mock_admin::spawn(Arc::new(data)).await.unwrap();
                let source = ReportSource {
                    api,
                    provider: api.provider().to_owned(),
                    base_url: format!("http://{addr}"),
                    admin_key: ADMIN_KEY.to_owned(),
                };
                let t = Instant::now();
                import_reports(store.as_ref(), &client, &source, Some(first_day), end, end)
                    .await
                    .unwrap();
                imports.push(t.elapsed());
            }
            let now = Micros(end.0 + MICROS_PER_DAY);
            let app = App::new(store, Arc::new(PriceTable::builtin()), settings.clone()).with_clock(Clock::Fixed(now));
            let window = Window {
                from: first_day,
                to: end,
            };
            let (mut queries, mut reports, mut checks) = (Vec::new(), Vec::new(), Vec::new());
            let mut alerts = 0;
            for _ in 0..options.runs {
                let t = Instant::now();
                std::hint::black_box(app.store().metered_by_source(first_day, end).await.unwrap());
                queries.push(t.elapsed());
                let t = Instant::now();
                std::hint::black_box(app.bill_reconciliation(window).await.unwrap());
                reports.push(t.elapsed());
                let t = Instant::now();
                alerts = app.drift_alerts().await.unwrap().len();
                checks.push(t.elapsed());
            }
            println!(
                "{backend}: {} metered rows, {lines} reported lines; import of both providers {:.0} + {:.0} ms; \
                 metered query {:.0} ms, reconciliation report ({days} days) {:.0} ms, drift check (7 days) {:.0} ms \
                 (medians of {}); {alerts} alert(s)",
                metered.len(),
                imports[0].as_secs_f64() * 1_000.0,
                imports[1].as_secs_f64() * 1_000.0,
                millis(queries),
                millis(reports),
                millis(checks),
                options.runs
            );
        });
    }
}
