//! The providers' bills held against the meter: the reconciliation report and its
//! `reconciliation` alerts, from usage metered into a real store and the providers' reports
//! imported from the mock of their admin APIs (`goodhart_sim::mock_admin`). Identical data
//! reconciles to nothing; each known gap — a key bypassing the gateway, a price-table error, a
//! day the meter lost — shows up exactly, in tokens and dollars, and raises one alert.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use goodhart_core::budgets::AlertKind;
use goodhart_core::fingerprint::Fingerprints;
use goodhart_core::pricing::{PriceTable, RawModelPrice};
use goodhart_core::time::{MICROS_PER_DAY, MICROS_PER_HOUR};
use goodhart_core::usage::{Attribution, Source, TokenCounts, UsageEvent};
use goodhart_core::{Micros, Nanos};
use goodhart_server::app::query::Window;
use goodhart_server::app::{App, Clock};
use goodhart_server::provider_import::{ReportApi, ReportSource, import_reports};
use goodhart_server::settings::Settings;
use goodhart_sim::mock_admin::{ADMIN_KEY, AdminData, DailyLine, router};
use goodhart_store::testing::TestDatabase;
use goodhart_store::{PricedEvent, Store};
use serde_json::Value;

use crate::common::{serve_upstream, start_configured};

const DAYS: u32 = 6;
const GATEWAY_KEY: &str = "apikey_gateway";

/// One metered call: day, model, uncached input, cache reads, output (multiples of ten, so
/// every price in the table comes to whole nano-dollars and sums match to the nano-dollar).
type Call = (u32, &'static str, u64, u64, u64);

/// Two engineers' calls over [`DAYS`] days, every prompt under the long-context tier: Sonnet
/// every day, Haiku on odd days, Opus on day 3.
fn calls() -> Vec<Call> {
    let mut calls = Vec::new();
    for day in 0..DAYS {
        let n = u64::from(day);
        calls.extend([(day, "claude-sonnet-4-5", 60_000 + 10 * n, 120_000, 12_000); 20]);
        if day % 2 == 1 {
            calls.extend([(day, "claude-haiku-4-5", 100_000, 0, 20_000 + 10 * n); 10]);
        }
        if day == 3 {
            calls.extend([(day, "claude-opus-4-1", 100_000, 50_000, 20_000); 5]);
        }
    }
    calls
}

fn tokens(&(_, _, input, cache_read, output): &Call) -> TokenCounts {
    TokenCounts {
        input,
        cache_read,
        output,
        ..TokenCounts::default()
    }
}

/// The calls as the gateway recorded them, priced at `prices`.
fn metered(first_day: Micros, calls: &[Call], prices: &PriceTable) -> Vec<PricedEvent> {
    calls
        .iter()
        .enumerate()
        .map(|(i, call)| {
            let event = UsageEvent {
                id: format!("call-{i}"),
                timestamp: Micros(
                    first_day.0 + i64::from(call.0) * MICROS_PER_DAY + (9 + i as i64 % 8) * MICROS_PER_HOUR,
                ),
                attribution: Attribution {
                    user: if i % 2 == 0 { "ada" } else { "grace" }.into(),
                    team: Some("platform".into()),
                    ..Attribution::default()
                },
                // The gateway's provider may be named otherwise (`billed_as` maps it).
                provider: Some(if i % 3 == 0 { "claude-prod" } else { "anthropic" }.into()),
                model: call.1.into(),
                tokens: tokens(call),
                finish_reason: Some("end_turn".into()),
                fingerprints: Fingerprints::default(),
                content: None,
                source: Source::Gateway,
                estimated: false,
                call: None,
            };
            let cost = prices.cost_of(event.provider.as_deref(), &event.model, &event.tokens);
            PricedEvent { event, cost }
        })
        .collect()
}

/// What Anthropic reports of the calls: one line per day, model and key, billed at `prices`.
fn reported(calls: &[Call], key: &str, prices: &PriceTable) -> Vec<DailyLine> {
    let mut lines: Vec<DailyLine> = Vec::new();
    for call in calls {
        let billed = prices
            .cost_of(Some("anthropic"), call.1, &tokens(call))
            .unwrap()
            .total();
        match lines.iter_mut().find(|l| l.day == call.0 && l.model == call.1) {
            Some(line) => {
                line.input += call.2;
                line.cache_read += call.3;
                line.output += call.4;
                line.cost_nanos += billed.0;
            }
            None => lines.push(DailyLine {
                day: call.0,
                model: call.1.into(),
                api_key_id: key.into(),
                workspace: Some("wrkspc_default".into()),
                input: call.2,
                cache_read: call.3,
                output: call.4,
                cost_nanos: billed.0,
            }),
        }
    }
    lines
}

fn call_total(calls: &[Call], day: u32, model: &str, prices: &PriceTable) -> (u64, Nanos) {
    let of_day: Vec<&Call> = calls.iter().filter(|c| c.0 == day && c.1 == model).collect();
    let total = of_day.iter().map(|c| tokens(c).total()).sum();
    let cost = of_day
        .iter()
        .map(|c| prices.cost_of(Some("anthropic"), model, &tokens(c)).unwrap().total())
        .sum();
    (total, cost)
}

/// What a test varies: the meter's calls and prices, and what the provider reports.
struct Case {
    metered: Vec<Call>,
    meter_prices: PriceTable,
    reported: Vec<DailyLine>,
}

struct Outcome {
    alerts: Vec<goodhart_core::budgets::Alert>,
    document: Value,
}

/// The first day of the data: a week before "now", so every day is settled. Read once, so a
/// test running across midnight still speaks of one set of days.
fn first_day() -> i64 {
    static FIRST: OnceLock<i64> = OnceLock::new();
    *FIRST.get_or_init(|| {
        Micros::from_timestamp(jiff::Timestamp::now())
            .floor_to(MICROS_PER_DAY)
            .0
            - i64::from(DAYS + 1) * MICROS_PER_DAY
    })
}

fn settings() -> Settings {
    let mut settings = Settings::default();
    let accounts = &mut settings.reconciliation.accounts;
    accounts.gateway_keys = [GATEWAY_KEY.to_owned()].into();
    accounts.owners = [("apikey_notebook".to_owned(), "research".to_owned())].into();
    settings.reconciliation.billed_as = [("claude-prod".to_owned(), "anthropic".to_owned())].into();
    settings
}

async fn run(case: Case) -> Outcome {
    let first = Micros(first_day());
    let now = Micros(first.0 + i64::from(DAYS + 1) * MICROS_PER_DAY);
    let db = TestDatabase::sqlite();
    let store: Arc<dyn Store> = db.open().await.unwrap();
    store
        .insert_usage(
            metered(first, &case.metered, &case.meter_prices),
            case.meter_prices.version(),
        )
        .await
        .unwrap();
    let data = Arc::new(AdminData {
        first_day: first,
        days: DAYS,
        lines: case.reported,
        ..AdminData::default()
    });
    let url = format!("http://{}", serve_upstream(router(data)).await);
    let source = ReportSource {
        api: ReportApi::AnthropicAdmin,
        provider: "anthropic".into(),
        base_url: url,
        admin_key: ADMIN_KEY.into(),
    };
    let client = goodhart_gateway::upstream::client();
    import_reports(store.as_ref(), &client, &source, Some(first), now, now)
        .await
        .unwrap();
    let app = App::new(store, Arc::new(case.meter_prices), settings()).with_clock(Clock::Fixed(now));
    let alerts = app.drift_alerts().await.unwrap();
    let window = Window { from: first, to: now };
    let document = serde_json::to_value(app.bill_reconciliation(window).await.unwrap()).unwrap();
    Outcome { alerts, document }
}

fn exact_case() -> Case {
    let prices = PriceTable::builtin();
    Case {
        reported: reported(&calls(), GATEWAY_KEY, &prices),
        metered: calls(),
        meter_prices: prices,
    }
}

fn usd(value: &Value) -> Nanos {
    Nanos::from_usd(&value.to_string()).unwrap()
}

fn rows<'a>(document: &'a Value, day: u32, model: &str) -> &'a Value {
    let date = date(day);
    document["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["day"] == *date && r["model"] == model)
        .unwrap_or_else(|| panic!("no {date} {model} row in {document:#}"))
}

fn alert_day(outcome: &Outcome) -> String {
    let [alert] = &outcome.alerts[..] else {
        panic!("one alert expected: {:#?}", outcome.alerts)
    };
    assert_eq!(alert.kind, AlertKind::Reconciliation);
    alert.id.rsplit(':').next().unwrap().to_owned()
}

fn date(day: u32) -> String {
    Micros(first_day() + i64::from(day) * MICROS_PER_DAY).utc_day()
}

#[tokio::test]
async fn identical_meter_and_bill_reconcile_to_nothing() {
    let outcome = run(exact_case()).await;
    assert!(outcome.alerts.is_empty(), "{:#?}", outcome.alerts);
    let document = &outcome.document;
    assert_eq!(usd(&document["drift_usd"]), Nanos::ZERO, "{document:#}");
    assert_eq!(usd(&document["unmetered_usd"]), Nanos::ZERO);
    for row in document["rows"].as_array().unwrap() {
        assert_eq!(
            (&row["token_drift"], usd(&row["drift_usd"])),
            (&Value::from(0), Nanos::ZERO),
            "{row}"
        );
        assert_eq!(row["by_source"]["gateway"]["tokens"], row["metered_tokens"], "{row}");
    }
    let days = document["days"].as_array().unwrap();
    assert_eq!(days.len(), DAYS as usize);
    assert_eq!(days[0]["judged"], false, "the first day Goodhart metered is partial");
    assert!(
        days[1..].iter().all(|d| d["judged"] == true && d["alert"] == false),
        "{days:#?}"
    );
    let [account] = &document["accounts"].as_array().unwrap()[..] else {
        panic!("{document:#}")
    };
    assert_eq!(
        (&account["route"], &account["api_key_id"]),
        (&Value::from("gateway"), &Value::from(GATEWAY_KEY))
    );
    assert_eq!(
        usd(&account["list_usd"]),
        usd(&document["billed_usd"]),
        "list prices are the bill here"
    );
    assert_eq!(usd(&document["bypassing_usd"]), Nanos::ZERO);
}

#[tokio::test]
async fn a_key_bypassing_the_gateway_shows_up_exactly_and_raises_one_alert() {
    let prices = PriceTable::builtin();
    let mut case = exact_case();
    // A notebook used straight against Anthropic on day 4, with a model nobody metered.
    let notebook: Vec<Call> = vec![(4, "claude-haiku-4-5", 100_000, 100_000, 22_500); 40];
    case.reported.extend(reported(&notebook, "apikey_notebook", &prices));
    let outcome = run(case).await;
    assert_eq!(alert_day(&outcome), date(4));
    let document = &outcome.document;
    let (tokens, cost) = call_total(&notebook, 4, "claude-haiku-4-5", &prices);
    // Day 4 has no metered Haiku: the notebook's row is all drift.
    let row = rows(document, 4, "claude-haiku-4-5");
    assert_eq!(row["unmetered"], true);
    assert_eq!(row["token_drift"], tokens);
    assert_eq!(usd(&row["drift_usd"]), cost);
    assert_eq!(usd(&document["drift_usd"]), cost, "nothing else drifts");
    assert_eq!(usd(&document["unmetered_usd"]), cost);
    let notebook_account = document["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["api_key_id"] == "apikey_notebook")
        .unwrap();
    assert_eq!(
        (&notebook_account["route"], &notebook_account["team"]),
        (&Value::from("bypassing"), &Value::from("research"))
    );
    assert_eq!(usd(&notebook_account["list_usd"]), cost);
    assert_eq!(usd(&document["bypassing_usd"]), cost);
    assert_eq!(document["bypassing_by_team"][0]["team"], "research");
    assert!(
        outcome.alerts[0].message.contains("none of it metered"),
        "{}",
        outcome.alerts[0].message
    );
}

#[tokio::test]
async fn a_price_table_error_shows_up_exactly_and_raises_one_alert() {
    let billed_at = PriceTable::builtin();
    // Goodhart's table prices Opus input at $1.50 a million instead of $15.
    let wrong: RawModelPrice = toml::from_str(
        "provider = \"anthropic\"\nmodel = \"claude-opus-4-1\"\ninput = \"1.5\"\noutput = \"75\"\ncache_read = \"1.50\"",
    )
    .unwrap();
    let meter_prices = PriceTable::builtin().with_overrides(&[wrong]).unwrap();
    let case = Case {
        reported: reported(&calls(), GATEWAY_KEY, &billed_at),
        metered: calls(),
        meter_prices,
    };
    let outcome = run(case).await;
    assert_eq!(alert_day(&outcome), date(3), "Opus is used on day 3 only");
    let row = rows(&outcome.document, 3, "claude-opus-4-1");
    assert_eq!(row["token_drift"], 0, "the tokens agree");
    // 5 × 100,000 input tokens at $15/M less at $1.50/M.
    let expected = Nanos::from_usd("6.75").unwrap();
    assert_eq!(usd(&row["drift_usd"]), expected);
    assert_eq!(usd(&outcome.document["drift_usd"]), expected);
    assert_eq!(row["unmetered"], false);
}

#[tokio::test]
async fn a_day_the_meter_lost_shows_up_exactly_and_raises_one_alert() {
    let prices = PriceTable::builtin();
    let mut case = exact_case();
    case.metered.retain(|c| c.0 != 2);
    let outcome = run(case).await;
    assert_eq!(alert_day(&outcome), date(2));
    let document = &outcome.document;
    let (tokens, cost) = call_total(&calls(), 2, "claude-sonnet-4-5", &prices);
    let row = rows(document, 2, "claude-sonnet-4-5");
    assert_eq!(
        (&row["token_drift"], usd(&row["drift_usd"])),
        (&Value::from(tokens), cost)
    );
    assert_eq!(usd(&document["drift_usd"]), cost);
    let day = document["days"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["day"] == date(2))
        .unwrap();
    assert_eq!(
        (&day["judged"], &day["alert"]),
        (&Value::from(true), &Value::from(true))
    );
}

#[tokio::test]
async fn serve_imports_the_bills_on_its_schedule_and_raises_the_alert() {
    let prices = PriceTable::builtin();
    let db = TestDatabase::sqlite();
    let first = Micros(first_day());
    let store = db.open().await.unwrap();
    store
        .insert_usage(metered(first, &calls(), &prices), prices.version())
        .await
        .unwrap();
    drop(store);
    let mut lines = reported(&calls(), GATEWAY_KEY, &prices);
    lines.extend(reported(
        &[(5, "claude-haiku-4-5", 100_000, 0, 50_000); 10],
        "apikey_notebook",
        &prices,
    ));
    let data = Arc::new(AdminData {
        first_day: first,
        days: DAYS,
        lines,
        ..AdminData::default()
    });
    let url = format!("http://{}", serve_upstream(router(Arc::clone(&data))).await);
    let server = start_configured(
        db,
        "[reconciliation]\nimport_every_secs = 3600\ngateway_keys = [\"apikey_gateway\"]\n\
         [reconciliation.owners]\napikey_notebook = \"research\"\n\
         [reconciliation.billed_as]\nclaude-prod = \"anthropic\"",
        |config| {
            config.reconciliation.sources = vec![ReportSource {
                api: ReportApi::AnthropicAdmin,
                provider: "anthropic".into(),
                base_url: url,
                admin_key: ADMIN_KEY.into(),
            }];
        },
    )
    .await;
    let mut alerts = Vec::new();
    for _ in 0..100 {
        let reply = server.admin("GET", "/api/v1/alerts?from=30d", "").await;
        alerts = reply.json["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["kind"] == "reconciliation")
            .cloned()
            .collect();
        if !alerts.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let [alert] = &alerts[..] else {
        panic!("one reconciliation alert: {alerts:#?}")
    };
    assert_eq!(alert["id"], format!("reconciliation:anthropic:{}", date(5)));
    let reply = server.admin("GET", "/api/v1/reports/reconciliation?from=30d", "").await;
    let document = reply.json;
    let bypassing = &document["bypassing_by_team"];
    assert_eq!(bypassing[0]["team"], "research", "{document:#}");
    assert!(
        data.requests.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "usage and cost were read"
    );
}
