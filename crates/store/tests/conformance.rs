//! The store conformance suite: every case runs against SQLite and against the real
//! PostgreSQL server (a fresh schema per case, dropped afterwards).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "a test stops at the first broken step, and spawns what it drives freely"
)]

use std::collections::HashMap;
use std::sync::Arc;

use goodhart_core::Micros;
use goodhart_core::Nanos;
use goodhart_core::agent_analytics::{ActivityCounts, ActivityLine, Actor, ActorKind, ModelUsage, Tool};
use goodhart_core::budgets::window;
use goodhart_core::budgets::{Action, Alert, AlertKind, Budget, BudgetScope, Period, WhenUnreachable};
use goodhart_core::fingerprint::Fingerprints;
use goodhart_core::keys::{KeyScope, KeyStatus, VirtualKey, hash_secret, new_secret};
use goodhart_core::limits::{Amount, Pool, Resource};
use goodhart_core::pricing::PriceTable;
use goodhart_core::provider_reports::{Bucket, CostLine, Page, ReportKind, ReportPage, UsageLine};
use goodhart_core::report::{Dimension, UsageTotals};
use goodhart_core::telemetry::{TelemetryKind, TelemetryPoint};
use goodhart_core::time::{MICROS_PER_DAY, MICROS_PER_HOUR, parse_rfc3339};
use goodhart_core::usage::{Attribution, CallMeta, Content, Source, TokenCounts, UsageEvent};
use goodhart_store::audit::{AuditQuery, NewAuditEntry};
use goodhart_store::directory::{Member, RoleGrant};
use goodhart_store::findings::Decider;
use goodhart_store::leases::{LeaseRequest, Lent, PoolStore, RateBucket};
use goodhart_store::scim::{ScimGroup, ScimUser};
use goodhart_store::sessions::Session;
use goodhart_store::testing::TestDatabase;
use goodhart_store::viewers::{TokenRole, ViewerToken};
use goodhart_store::{PricedEvent, RepriceScope, Store, SummaryQuery};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const PRICES: &str = r#"
version = "conformance.1"
[[model]]
provider = "anthropic"
model = "claude-sonnet-4-5"
input = "3"
output = "15"
cache_read = "0.3"
[[model]]
provider = "openai"
model = "gpt-4o-mini"
input = "0.15"
output = "0.6"
"#;

fn prices() -> PriceTable {
    PriceTable::parse(PRICES).unwrap()
}

fn event(id: &str, ts: Micros, user: &str, team: Option<&str>, model: &str, input: u64, output: u64) -> UsageEvent {
    UsageEvent {
        id: id.to_owned(),
        timestamp: ts,
        attribution: Attribution {
            user: user.to_owned(),
            team: team.map(str::to_owned),
            ..Attribution::default()
        },
        provider: None,
        model: model.to_owned(),
        tokens: TokenCounts {
            input,
            output,
            ..TokenCounts::default()
        },
        finish_reason: Some("stop".into()),
        fingerprints: Fingerprints::default(),
        content: None,
        source: Source::Api,
        estimated: false,
        call: None,
    }
}

fn priced(table: &PriceTable, events: Vec<UsageEvent>) -> Vec<PricedEvent> {
    events
        .into_iter()
        .map(|event| {
            let cost = table.cost_of(event.provider.as_deref(), &event.model, &event.tokens);
            PricedEvent { event, cost }
        })
        .collect()
}

fn at(text: &str) -> Micros {
    parse_rfc3339(text).unwrap()
}

fn all_time() -> (Micros, Micros) {
    (Micros(0), at("2100-01-01T00:00:00Z"))
}

async fn summary(
    store: &Arc<dyn Store>,
    from: Micros,
    to: Micros,
    group_by: &[Dimension],
) -> Vec<(Vec<Option<String>>, UsageTotals)> {
    let query = SummaryQuery {
        from,
        to,
        group_by: group_by.to_vec(),
    };
    store
        .usage_summary(&query)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.totals))
        .collect()
}

/// Generates one `#[tokio::test]` per backend for each listed case.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $case() {
                let db = goodhart_store::testing::TestDatabase::sqlite();
                super::$case(&db).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $case() {
                let db = goodhart_store::testing::TestDatabase::postgres().await;
                super::$case(&db).await;
            })*
        }
    };
}

conformance!(
    duplicates_are_counted_once,
    the_first_event_of_an_id_in_a_batch_is_the_one_stored,
    summary_groups_and_totals,
    rollups_agree_with_raw_events_on_any_window,
    reports_by_project_and_agent_agree_with_raw_events,
    project_rollups_are_backfilled_from_existing_events,
    unpriced_events_are_flagged_and_repriced,
    reprice_all_applies_corrections,
    idempotent_whatever_the_batching,
    large_batches_keep_the_first_event_of_each_id,
    settings_are_set_once,
    reopening_keeps_data_and_schema,
    keys_are_found_by_hash_revoked_and_rotated,
    budgets_are_kept_listed_deleted_and_measured_per_scope,
    alerts_are_stored_once_and_their_deliveries_tracked,
    budget_pools_lend_only_what_the_limit_leaves,
    concurrent_leases_never_lend_past_the_limit,
    rate_buckets_are_shared_and_refill,
    budgets_and_key_buckets_lend_through_one_borrow,
    outcome_facts_and_deliveries_are_stored_once,
    waste_calls_carry_what_detection_needs,
    finding_passes_keep_decisions_and_withdraw_what_is_gone,
    passes_dismiss_only_new_findings_automatically_and_decisions_are_listed,
    viewer_tokens_are_found_by_hash_and_revoked,
    telemetry_points_are_stored_once_and_sessions_summed,
    the_gateway_record_of_a_call_replaces_another_sources,
    concurrent_writers_still_count_a_call_once,
    provider_report_buckets_are_replaced_not_added_to,
    metered_usage_is_summed_per_day_model_and_source,
    agent_activity_days_are_replaced_not_added_to,
    the_audit_log_is_read_newest_first_filtered_paged_and_append_only,
    sessions_are_found_by_hash_listed_while_live_and_revoked_and_login_states_used_once,
    the_directory_gives_keys_and_usage_their_persons_team_and_grants_replace,
    provisioned_users_and_groups_are_replaced_whole_and_deleted_with_their_memberships,
);

async fn duplicates_are_counted_once(db: &TestDatabase) {
    let store = db.open().await.unwrap();
    let table = prices();
    let t = at("2026-11-02T09:14:03Z");
    let batch = vec![
        event("a", t, "alice", Some("payments"), "gpt-4o-mini", 100, 10),
        event("b", t, "bob", None, "gpt-4o-mini", 200, 20),
        event("a", t, "alice", Some("payments"), "gpt-4o-mini", 100, 10),
    ];
    let first = store
        .insert_usage(priced(&table, batch.clone()), table.version())
        .await
        .unwrap();
    assert_eq!(
        (first.inserted, first.duplicates),
        (2, 1),
        "a repeat within one batch is a duplicate"
    );
    let again = store
        .insert_usage(priced(&table, batch), table.version())
        .await
        .unwrap();
    assert_eq!(
        (again.inserted, again.duplicates),
        (0, 3),
        "a re-sent batch adds nothing"
    );
    assert_eq!(store.event_count().await.unwrap(), 2);
    let (from, to) = all_time();
    let rows = summary(&store, from, to, &[]).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1.requests, 2);
    assert_eq!(rows[0].1.tokens.input, 300);
}

/// Events repeating an id within one batch are not always identical (a client that reuses ids):
/// the first is stored, with its own attribution and counts, and the rollups agree.
async fn the_first_event_of_an_id_in_a_batch_is_the_one_stored(db: &TestDatabase) {
    let store = db.open().await.unwrap();
    let table = prices();
    let t = at("2026-11-02T09:14:03Z");
    let batch = vec![
        event("b", t, "bob", None, "gpt-4o-mini", 200, 20),
        event("a", t, "alice", None, "gpt-4o-mini", 100, 10),
        event("a", t, "carol", None, "gpt-4o-mini", 999, 99),
        event("b", t, "carol", None, "gpt-4o-mini", 999, 99),
    ];
    let outcome = store
        .insert_usage(priced(&table, batch), table.version())
        .await
        .unwrap();
    assert_eq!((outcome.inserted, outcome.duplicates), (2, 2));
    let (from, to) = all_time();
    let mut by_user: Vec<(Option<String>, u64)> = summary(&store, from, to, &[Dimension::User])
        .await
        .into_iter()
        .map(|(key, totals)| (key[0].clone(), totals.tokens.input))
        .collect();
    by_user.sort();
    assert_eq!(
        by_user,
        vec![(Some("alice".to_owned()), 100), (Some("bob".to_owned()), 200)]
    );
    let (day_from, day_to) = (at("2026-11-02T09:00:00Z"), at("2026-11-02T09:15:00Z"));
    let mut raw: Vec<u64> = summary(&store, day_from, day_to, &[Dimension::User])
        .await
        .into_iter()
        .map(|(_, totals)| totals.tokens.input)
        .collect();
    raw.sort();
    assert_eq!(
        raw,
        vec![100, 200],
        "raw events (a partial hour) agree with the rollups"
    );
}

/// A call as an agent's telemetry reported it (an estimate, attributed to `user`).
fn reported(id: &str, user: &str, t: Micros) -> UsageEvent {
    let mut e = event(id, t, user, None, "claude-sonnet-4-5", 1_000, 100);
    e.source = Source::Otlp;
    e.estimated = true;
    e
}

/// A call as the gateway metered it for alice's key, answered by `response`.
fn metered(id: &str, response: &str, t: Micros) -> UsageEvent {
    let mut e = event(id, t, "alice", Some("payments"), "claude-sonnet-4-5", 1_000, 100);
    e.source = Source::Gateway;
    e.call = Some(CallMeta {
        key_id: "k1".into(),
        status: 200,
        response_id: Some(response.into()),
        ..Default::default()
    });
    e
}

async fn the_gateway_record_of_a_call_replaces_another_sources(db: &TestDatabase) {
    let store = db.open().await.unwrap();
    let table = prices();
    let t = at("2026-11-02T09:14:03Z");
    let telemetry = |id: &str, user: &str| reported(id, user, t);
    let gateway = |id: &str, response: &str| metered(id, response, t);
    // Telemetry knows two calls by request id, one only by its message id.
    let first = vec![
        telemetry("req:1", "carol"),
        telemetry("req:2", "ana"),
        telemetry("msg:m4", "dan"),
    ];
    store.insert_usage(priced(&table, first.clone()), "t").await.unwrap();

    let outcome = store
        .insert_usage(
            priced(
                &table,
                vec![gateway("req:1", "m1"), gateway("req:3", "m3"), gateway("req:4", "m4")],
            ),
            "t",
        )
        .await
        .unwrap();
    assert_eq!(
        (outcome.inserted, outcome.duplicates, outcome.superseded),
        (3, 0, 2),
        "the gateway's records of req:1 and of the call that answered m4 replaced the telemetry's"
    );
    let mut later = first;
    later.push(telemetry("msg:m3", "erin"));
    for again in [later, vec![gateway("req:1", "m1")]] {
        let outcome = store.insert_usage(priced(&table, again), "t").await.unwrap();
        assert_eq!(
            (outcome.inserted, outcome.superseded),
            (0, 0),
            "later reports are duplicates, by request id or by message id"
        );
    }
    assert_eq!(store.event_count().await.unwrap(), 4);

    // Whole days (daily rollups), whole hours (hourly rollups), a few minutes (raw events): the
    // replaced records are gone from each, and carol and dan, who had nothing else, from the
    // rollups too.
    let hour = at("2026-11-02T09:00:00Z").0;
    for (from, to) in [
        all_time(),
        (Micros(hour), Micros(hour + MICROS_PER_HOUR)),
        (Micros(t.0 - 60_000_000), Micros(t.0 + 60_000_000)),
    ] {
        let by_user: Vec<(Option<String>, u64, bool)> = summary(&store, from, to, &[Dimension::User])
            .await
            .into_iter()
            .map(|(mut key, totals)| (key.remove(0), totals.requests, totals.estimated_requests > 0))
            .collect();
        assert_eq!(
            by_user,
            [(Some("alice".into()), 3, false), (Some("ana".into()), 1, true)],
            "window {} .. {}",
            from.rfc3339(),
            to.rfc3339()
        );
    }

    // Within one batch the gateway's records are stored whatever the order, the others'
    // records of the same calls are duplicates.
    let mixed = vec![
        telemetry("req:5", "erin"),
        telemetry("msg:m6", "frank"),
        gateway("req:5", "m5"),
        gateway("req:6", "m6"),
    ];
    let outcome = store.insert_usage(priced(&table, mixed), "t").await.unwrap();
    assert_eq!((outcome.inserted, outcome.duplicates, outcome.superseded), (2, 2, 0));
    // One gateway record replaces two records of its call: by request id and by message id.
    let both = vec![telemetry("req:7", "gina"), telemetry("msg:m7", "hal")];
    store.insert_usage(priced(&table, both), "t").await.unwrap();
    let outcome = store
        .insert_usage(priced(&table, vec![gateway("req:7", "m7")]), "t")
        .await
        .unwrap();
    assert_eq!((outcome.inserted, outcome.superseded), (1, 2));
    assert_eq!(store.event_count().await.unwrap(), 7);
    let (from, to) = all_time();
    let users: Vec<(Option<String>, u64)> = summary(&store, from, to, &[Dimension::User])
        .await
        .into_iter()
        .map(|(mut key, totals)| (key.remove(0), totals.requests))
        .collect();
    assert_eq!(users, [(Some("alice".into()), 6), (Some("ana".into()), 1)]);
}

async fn concurrent_writers_still_count_a_call_once(db: &TestDatabase) {
    let store = db.open().await.unwrap();
    let table = prices();
    let t = at("2026-11-02T09:14:03Z");
    let calls = 40;
    let mut writers = Vec::new();
    for i in 0..calls {
        // The gateway's record and telemetry knowing the call only by its response id, written
        // at the same time by two connections.
        for event in [
            metered(&format!("req:{i}"), &format!("m{i}"), t),
            reported(&format!("msg:m{i}"), "bo", t),
        ] {
            let (store, batch) = (Arc::clone(&store), priced(&table, vec![event]));
            writers.push(tokio::spawn(
                async move { store.insert_usage(batch, "t").await.unwrap() },
            ));
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(store.event_count().await.unwrap(), calls);
    let (from, to) = all_time();
    let users = summary(&store, from, to, &[Dimension::User]).await;
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!((users[0].0[0].as_deref(), users[0].1.requests), (Some("alice"), calls));
}

async fn summary_groups_and_totals(db: &TestDatabase) {
    let store = db.open().await.unwrap();
    let table = prices();
    let events = vec![
        event(
            "1",
            at("2026-11-02T09:00:00Z"),
            "alice",
            Some("payments"),
            "claude-sonnet-4-5",
            1_000_000,
            0,
        ),
        event(
            "2",
            at("2026-11-02T23:59:59Z"),
            "alice",
            Some("payments"),
            "gpt-4o-mini",
            1_000_000,
            1_000_000,
        ),
        event(
            "3",
            at("2026-11-03T00:00:00Z"),
            "bob",
            None,
            "claude-sonnet-4-5",
            0,
            1_000_000,
        ),
    ];
    store
        .insert_usage(priced(&table, events), table.version())
        .await
        .unwrap();
    let (from, to) = all_time();

    let by_user = summary(&store, from, to, &[Dimension::User]).await;
    assert_eq!(
        by_user[0].0,
        vec![Some("bob".into())],
        "most expensive first: $15 before $3.75"
    );
    assert_eq!(by_user[0].1.cost.usd_string(), "15");
    assert_eq!(by_user[1].1.cost.usd_string(), "3.75");
    assert_eq!(by_user[1].1.requests, 2);

    let by_team = summary(&store, from, to, &[Dimension::Team]).await;
    let keys: Vec<_> = by_team.iter().map(|(k, _)| k[0].clone()).collect();
    assert_eq!(
        keys,
        vec![None, Some("payments".into())],
        "events without a team group under null"
    );

    let by_day_model = summary(&store, from, to, &[Dimension::Day, Dimension::Model]).await;
    let mut keys: Vec<_> = by_day_model.iter().map(|(k, _)| k.clone()).collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            vec![Some("2026-11-02".into()), Some("claude-sonnet-4-5".into())],
            vec![Some("2026-11-02".into()), Some("gpt-4o-mini".into())],
            vec![Some("2026-11-03".into()), Some("claude-sonnet-4-5".into())],
        ]
    );

    let window = summary(&store, at("2026-11-02T10:00:00Z"), at("2026-11-03T00:00:00Z"), &[]).await;
    assert_eq!(
        window[0].1.requests, 1,
        "the window is half-open and excludes 09:00 and the next midnight"
    );
    assert!(
        summary(&store, at("2027-01-01T00:00:00Z"), at("2027-02-01T00:00:00Z"), &[])
            .await
            .is_empty()
    );
}

/// Random events over a few days, then random windows: the rollup-backed summary must equal a
/// sum computed directly from the events.
async fn rollups_agree_with_raw_events_on_any_window(db: &TestDatabase) {
    let store = db.open().await.unwrap();
    let table = prices();
    let mut rng = StdRng::seed_from_u64(7);
    let start = at("2026-10-30T00:00:00Z").0;
    let events = varied_events(&mut rng, start, 2_000);
    for chunk in priced(&table, events.clone()).chunks(500) {
        store.insert_usage(chunk.to_vec(), table.version()).await.unwrap();
    }
    let dimensions = [Dimension::User, Dimension::Project, Dimension::Agent, Dimension::Model];
    for round in 0..25 {
        let from = Micros(start + rng.random_range(-MICROS_PER_DAY..4 * MICROS_PER_DAY));
        let to = Micros(from.0 + rng.random_range(0..3 * MICROS_PER_DAY + 7 * MICROS_PER_HOUR));
        let dim = dimensions[round % dimensions.len()];
        let got: HashMap<Vec<Option<String>>, UsageTotals> =
            summary(&store, from, to, &[dim]).await.into_iter().collect();
        assert_eq!(
            got,
            summary_of_events(&events, &table, from, to, &[dim]),
            "by {dim:?}, window {} .. {}",
            from.rfc3339(),
            to.rfc3339()
        );
    }
}

/// Random calls by four users in two teams across projects, agents, models and three days;
/// a quarter of them estimated (telemetry) and some of an unpriced model.
fn varied_events(rng: &mut StdRng, start: i64, count: usize) -> Vec<UsageEvent> {
    let users = ["alice", "bob", "carol", "dan"];
    let models = ["claude-sonnet-4-5", "gpt-4o-mini", "unknown-model"];
    (0..count)
        .map(|i| {
            let ts = Micros(start + rng.random_range(0..3 * MICROS_PER_DAY));
            let user = users[rng.random_range(0..users.len())];
            let team = match user {
                "alice" | "bob" => Some("core"),
                "carol" => Some("data"),
                _ => None,
            };
            let model = models[rng.random_range(0..models.len())];
            let mut e = event(
                &format!("req:{i}"),
                ts,
                user,
                team,
                model,
                rng.random_range(0..50_000),
                rng.random_range(0..5_000),
            );
            e.attribution.project = rng
                .random_bool(0.8)
                .then(|| ["web", "api", "ml"][rng.random_range(0..3)].to_owned());
            e.attribution.agent = rng
                .random_bool(0.5)
                .then(|| ["bot", "ci"][rng.random_range(0..2)].to_owned());
            e.estimated = rng.random_bool(0.25);
            if e.estimated {
                e.source = Source::Otlp;
            }
            e
        })
        .collect()
}

type GroupKey = fn(&UsageEvent, Dimension) -> Option<String>;

/// A summary computed from `events` themselves, priced with `table`.
fn summary_of_events(
    events: &[UsageEvent],
    table: &PriceTable,
    from: Micros,
    to: Micros,
    group_by: &[Dimension],
) -> HashMap<Vec<Option<String>>, UsageTotals> {
    let key_of: GroupKey = |e, dim| match dim {
        Dimension::User => Some(e.attribution.user.clone()),
        Dimension::Team => e.attribution.team.clone(),
        Dimension::Project => e.attribution.project.clone(),
        Dimension::Agent => e.attribution.agent.clone(),
        Dimension::Model => Some(e.model.clone()),
        Dimension::Provider => e.provider.clone(),
        Dimension::Day => Some(e.timestamp.utc_day()),
    };
    let mut expected: HashMap<Vec<Option<String>>, UsageTotals> = HashMap::new();
    for e in events.iter().filter(|e| e.timestamp >= from && e.timestamp < to) {
        let cost = table.cost_of(e.provider.as_deref(), &e.model, &e.tokens);
        let key = group_by.iter().map(|dim| key_of(e, *dim)).collect();
        expected.entry(key).or_default().add(&UsageTotals {
            requests: 1,
            tokens: e.tokens,
            cost: cost.map(|c| c.total()).unwrap_or_default(),
            unpriced_requests: u64::from(cost.is_none()),
            estimated_requests: u64::from(e.estimated),
        });
    }
    expected
}

/// Group-bys that read each rollup: the projects rollups (project and agent without user or
/// team), the full daily rollup with raw edges (with user or team), the lean ones (neither).
const GROUPINGS: [&[Dimension]; 10] = [
    &[Dimension::Project],
    &[Dimension::Agent],
    &[Dimension::Project, Dimension::Agent],
    &[Dimension::Agent, Dimension::Model],
    &[Dimension::Project, Dimension::Day],
    &[Dimension::Provider, Dimension::Project],
    &[Dimension::User, Dimension::Project],
    &[Dimension::Team, Dimension::Agent],
    &[Dimension::Team, Dimension::Model],
    &[],
];

/// Compares the store's summaries with the events' own on windows with partial hours and days
/// at their edges, whole days, and everything.
async fn assert_summaries_match(
    store: &Arc<dyn Store>,
    events: &[UsageEvent],
    table: &PriceTable,
    start: i64,
    rng: &mut StdRng,
) {
    let mut windows = vec![
        all_time(),
        (Micros(start + MICROS_PER_DAY), Micros(start + 2 * MICROS_PER_DAY)),
        (
            Micros(start + 3 * MICROS_PER_HOUR),
            Micros(start + 2 * MICROS_PER_DAY + 5 * MICROS_PER_HOUR),
        ),
    ];
    windows.extend((0..12).map(|_| {
        let from = start + rng.random_range(-MICROS_PER_DAY..3 * MICROS_PER_DAY);
        (
            Micros(from),
            Micros(from + rng.random_range(0..2 * MICROS_PER_DAY + 7 * MICROS_PER_HOUR)),
        )
    }));
    for (from, to) in windows {
        for group_by in GROUPINGS {
            let got: HashMap<Vec<Option<String>>, UsageTotals> =
                summary(store, from, to, group_by).await.into_iter().collect();
            assert_eq!(
                got,
                summary_of_events(events, table, from, to, group_by),
                "by {group_by:?}, window {} .. {}",
                from.rfc3339(),
                to.rfc3339()
            );
        }
    }
}

/// Reports by project and agent (from their own rollups) equal totals computed from the events
/// after inserts, the gateway replacing telemetry's records (under another attribution and in
/// another hour), and a reprice that prices a model and corrects another's price.
async fn reports_by_project_and_agent_agree_with_raw_events(db: &TestDatabase) {
    let store = db.open().await.unwrap();
    let table = prices();
    let mut rng = StdRng::seed_from_u64(21);
    let start = at("2026-10-30T00:00:00Z").0;
    let mut events = varied_events(&mut rng, start, 1_500);
    for chunk in priced(&table, events[..1_000].to_vec()).chunks(300) {
        store.insert_usage(chunk.to_vec(), table.version()).await.unwrap();
    }
    assert_summaries_match(&store, &events[..1_000], &table, start, &mut rng).await;

    // The gateway's records of 150 of the telemetry's calls replace them.
    let replaced: Vec<UsageEvent> = (0..150)
        .map(|n| {
            let mut e = events[n * 6].clone();
            e.timestamp = Micros(e.timestamp.0 + rng.random_range(-MICROS_PER_HOUR..MICROS_PER_HOUR));
            e.attribution.user = "erin".into();
            e.attribution.team = Some("platform".into());
            e.attribution.project = (n % 3 != 0).then(|| "gateway-project".to_owned());
            e.attribution.agent = (n % 2 == 0).then(|| "gateway-agent".to_owned());
            e.source = Source::Gateway;
            e.estimated = false;
            e.call = Some(CallMeta {
                key_id: "k1".into(),
                status: 200,
                response_id: Some(format!("resp-{n}")),
                ..Default::default()
            });
            events[n * 6] = e.clone();
            e
        })
        .collect();
    let outcome = store
        .insert_usage(priced(&table, replaced), table.version())
        .await
        .unwrap();
    assert_eq!((outcome.inserted, outcome.superseded), (150, 150));
    for chunk in priced(&table, events[1_000..].to_vec()).chunks(300) {
        store.insert_usage(chunk.to_vec(), table.version()).await.unwrap();
    }
    assert_summaries_match(&store, &events, &table, start, &mut rng).await;

    let corrected = PriceTable::parse(&format!(
        "{}[[model]]\nprovider = \"openai\"\nmodel = \"unknown-model\"\ninput = \"1\"\noutput = \"2\"\n",
        PRICES.replace("\"0.15\"", "\"0.25\"")
    ))
    .unwrap();
    store.reprice(&corrected, RepriceScope::All).await.unwrap();
    assert_summaries_match(&store, &events, &corrected, start, &mut rng).await;
}

/// A database that had events before the projects rollups existed gets them filled in from
/// its events when it is opened by this version.
async fn project_rollups_are_backfilled_from_existing_events(db: &TestDatabase) {
    let table = prices();
    let mut rng = StdRng::seed_from_u64(5);
    let start = at("2026-10-30T00:00:00Z").0;
    let events = varied_events(&mut rng, start, 800);
    {
        let store = db.open().await.unwrap();
        store
            .insert_usage(priced(&table, events.clone()), table.version())
            .await
            .unwrap();
    }
    db.execute_batch(
        "DROP TABLE usage_hourly_projects; DROP TABLE usage_daily_projects; \
         DELETE FROM schema_migrations WHERE version = '20261208000000_project_rollups'",
    )
    .await
    .unwrap();
    let store = db.open().await.unwrap();
    assert_summaries_match(&store, &events, &table, start, &mut rng).await;
}

async fn unpriced_events_are_flagged_and_repriced(db: &TestDatabase) {
    let store = db.open().await.unwrap();
    let table = prices();
    let t = at("2026-11-02T09:14:03Z");
    let events = vec![
        event("1", t, "alice", None, "mystery-model", 1_000_000, 0),
        event("2", t, "alice", None, "mystery-model", 1_000_000, 0),
        event("3", t, "alice", None, "gpt-4o-mini", 1_000_000, 0),
    ];
    store
        .insert_usage(priced(&table, events), table.version())
        .await
        .unwrap();
    let (from, to) = all_time();
    let before = summary(&store, from, to, &[]).await[0].1;
    assert_eq!(before.unpriced_requests, 2);
    assert_eq!(
        before.cost.usd_string(),
        "0.15",
        "unpriced events add no cost, but are counted"
    );
    let unpriced = store.unpriced_models().await.unwrap();
    assert_eq!(unpriced.len(), 1);
    assert_eq!((unpriced[0].model.as_str(), unpriced[0].events), ("mystery-model", 2));

    let nothing_new = store.reprice(&table, RepriceScope::Unpriced).await.unwrap();
    assert_eq!(
        (nothing_new.examined, nothing_new.repriced, nothing_new.still_unpriced),
        (2, 0, 2)
    );

    let extended = PriceTable::parse(&format!(
        "{PRICES}\n[[model]]\nprovider = \"internal\"\nmodel = \"mystery-model\"\ninput = \"2\"\noutput = \"4\"\n"
    ))
    .unwrap();
    let outcome = store.reprice(&extended, RepriceScope::Unpriced).await.unwrap();
    assert_eq!((outcome.examined, outcome.repriced, outcome.still_unpriced), (2, 2, 0));
    let after = summary(&store, from, to, &[]).await[0].1;
    assert_eq!(after.unpriced_requests, 0);
    assert_eq!(after.cost.usd_string(), "4.15");
    assert!(store.unpriced_models().await.unwrap().is_empty());
    // Raw edges and rollups must agree after repricing.
    let ragged = summary(&store, at("2026-11-02T09:14:00Z"), at("2026-11-02T09:15:00Z"), &[]).await[0].1;
    assert_eq!(ragged, after);
}

async fn reprice_all_applies_corrections(db: &TestDatabase) {
    let store = db.open().await.unwrap();
    let table = prices();
    let t = at("2026-11-02T09:14:03Z");
    store
        .insert_usage(
            priced(&table, vec![event("1", t, "alice", None, "gpt-4o-mini", 1_000_000, 0)]),
            table.version(),
        )
        .await
        .unwrap();
    let corrected = PriceTable::parse(&PRICES.replace("\"0.15\"", "\"0.25\"")).unwrap();
    let outcome = store.reprice(&corrected, RepriceScope::All).await.unwrap();
    assert_eq!(outcome.repriced, 1);
    let (from, to) = all_time();
    assert_eq!(summary(&store, from, to, &[]).await[0].1.cost.usd_string(), "0.25");
    assert_eq!(
        store.reprice(&corrected, RepriceScope::All).await.unwrap().repriced,
        0,
        "a second pass changes nothing"
    );
}

/// The same events in any order, split into any batches and partly repeated, store the same totals.
async fn idempotent_whatever_the_batching(db: &TestDatabase) {
    let store = db.open().await.unwrap();
    let table = prices();
    let mut rng = StdRng::seed_from_u64(11);
    let events: Vec<UsageEvent> = (0..300)
        .map(|i| {
            let ts = Micros(at("2026-11-01T00:00:00Z").0 + rng.random_range(0..2 * MICROS_PER_DAY));
            event(
                &format!("id-{i}"),
                ts,
                ["a", "b"][i % 2],
                None,
                "gpt-4o-mini",
                rng.random_range(0..9_000),
                7,
            )
        })
        .collect();
    let mut sent = events.clone();
    sent.extend(events.iter().take(120).cloned());
    for i in (1..sent.len()).rev() {
        sent.swap(i, rng.random_range(0..=i));
    }
    let mut inserted = 0;
    let mut rest = &sent[..];
    while !rest.is_empty() {
        let n = rng.random_range(1..=rest.len().min(90));
        inserted += store
            .insert_usage(priced(&table, rest[..n].to_vec()), table.version())
            .await
            .unwrap()
            .inserted;
        rest = &rest[n..];
    }
    assert_eq!(inserted, 300);
    let (from, to) = all_time();
    let total = summary(&store, from, to, &[]).await[0].1;
    assert_eq!(total.requests, 300);
    assert_eq!(total.tokens.input, events.iter().map(|e| e.tokens.input).sum::<u64>());
}

/// Batches of hundreds of events (stored many to a statement on SQLite) with ids stored before,
/// ids repeated within the batch, and events with content (stored one by one) among them: the
/// first event of each new id is stored, every other is a duplicate, and the totals agree.
async fn large_batches_keep_the_first_event_of_each_id(db: &TestDatabase) {
    let store = db.open().await.unwrap();
    let table = prices();
    let mut rng = StdRng::seed_from_u64(5);
    let base = at("2026-11-01T00:00:00Z").0;
    let make = |i: usize, input: u64, rng: &mut StdRng| {
        let ts = Micros(base + rng.random_range(0..2 * MICROS_PER_DAY));
        let mut e = event(
            &format!("big-{i}"),
            ts,
            ["a", "b", "c"][i % 3],
            None,
            "gpt-4o-mini",
            input,
            3,
        );
        if i.is_multiple_of(17) {
            e.content = Some(Content {
                prompt: Some(format!("prompt {i}")),
                completion: None,
            });
        }
        e
    };
    let earlier: Vec<UsageEvent> = (0..150).map(|i| make(i, 1_000 + i as u64, &mut rng)).collect();
    let outcome = store
        .insert_usage(priced(&table, earlier.clone()), table.version())
        .await
        .unwrap();
    assert_eq!((outcome.inserted, outcome.duplicates), (150, 0));

    // Ids 100..400, every fifth sent twice (the second copy with other tokens, later in the
    // batch), shuffled; ids below 150 were stored before.
    let mut batch: Vec<UsageEvent> = (100..400).map(|i| make(i, 2_000 + i as u64, &mut rng)).collect();
    for i in (1..batch.len()).rev() {
        batch.swap(i, rng.random_range(0..=i));
    }
    let repeats: Vec<UsageEvent> = batch
        .iter()
        .filter(|e| {
            e.id.trim_start_matches("big-")
                .parse::<usize>()
                .unwrap()
                .is_multiple_of(5)
        })
        .map(|e| {
            let mut again = e.clone();
            again.tokens.input += 77;
            again.content = None;
            again
        })
        .collect();
    for (n, again) in repeats.into_iter().enumerate() {
        let at = (n * 7 + 40).min(batch.len());
        let first = batch.iter().position(|e| e.id == again.id).unwrap();
        batch.insert(at.max(first + 1), again);
    }
    let outcome = store
        .insert_usage(priced(&table, batch.clone()), table.version())
        .await
        .unwrap();
    let new = 250;
    assert_eq!((outcome.inserted, outcome.duplicates), (new, batch.len() as u64 - new));

    let mut seen = std::collections::HashSet::new();
    let mut kept: Vec<UsageEvent> = earlier.clone();
    seen.extend(earlier.iter().map(|e| e.id.clone()));
    kept.extend(batch.into_iter().filter(|e| seen.insert(e.id.clone())));
    assert_eq!(store.event_count().await.unwrap(), 400);
    for group_by in [&[][..], &[Dimension::User], &[Dimension::User, Dimension::Day]] {
        let (from, to) = all_time();
        let got: HashMap<Vec<Option<String>>, UsageTotals> =
            summary(&store, from, to, group_by).await.into_iter().collect();
        assert_eq!(
            got,
            summary_of_events(&kept, &table, from, to, group_by),
            "by {group_by:?}"
        );
    }
}

async fn settings_are_set_once(db: &TestDatabase) {
    let store = db.open().await.unwrap();
    assert_eq!(store.setting("admin_token_sha256").await.unwrap(), None);
    assert!(
        store
            .set_setting_if_absent("admin_token_sha256", "first")
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_setting_if_absent("admin_token_sha256", "second")
            .await
            .unwrap()
    );
    assert_eq!(
        store.setting("admin_token_sha256").await.unwrap().as_deref(),
        Some("first")
    );
}

async fn reopening_keeps_data_and_schema(db: &TestDatabase) {
    let table = prices();
    let batch = || {
        priced(
            &table,
            vec![event(
                "x",
                at("2026-11-02T09:00:00Z"),
                "alice",
                None,
                "gpt-4o-mini",
                1,
                1,
            )],
        )
    };
    {
        let store = db.open().await.unwrap();
        store.insert_usage(batch(), table.version()).await.unwrap();
    }
    let store = db.open().await.unwrap();
    assert_eq!(store.event_count().await.unwrap(), 1);
    let outcome = store.insert_usage(batch(), table.version()).await.unwrap();
    assert_eq!(outcome.duplicates, 1);
}

async fn keys_are_found_by_hash_revoked_and_rotated(db: &TestDatabase) {
    let store = db.open().await.unwrap();
    let t0 = at("2026-11-02T09:00:00Z");
    let make = |seed: u8, created: Micros| {
        let (id, secret) = new_secret([seed; 6], [seed; 32]);
        let key = VirtualKey {
            id,
            name: Some("ci bot".into()),
            scope: KeyScope {
                user: "alice".into(),
                team: Some("payments".into()),
                project: None,
                agent: Some("bot".into()),
            },
            created_at: created,
            expires_at: Some(Micros(created.0 + 30 * MICROS_PER_DAY)),
            revoked_at: None,
            replaced_by: None,
            limits: goodhart_core::keys::RateLimits {
                requests_per_minute: Some(60),
                tokens_per_minute: None,
            },
        };
        (key, secret)
    };
    let (first, secret) = make(1, t0);
    store.create_key(&first, &hash_secret(&secret)).await.unwrap();
    assert_eq!(
        store.key_by_hash(&hash_secret(&secret)).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.key_by_hash(&hash_secret("gk-unknown")).await.unwrap(), None);
    assert!(
        store.create_key(&first, &hash_secret(&secret)).await.is_err(),
        "ids and hashes are unique"
    );

    let (second, second_secret) = make(2, Micros(t0.0 + 1));
    assert!(
        store
            .replace_key(&first.id, &second, &hash_secret(&second_secret), Micros(t0.0 + 1))
            .await
            .unwrap()
    );
    let old = store.key_by_hash(&hash_secret(&secret)).await.unwrap().unwrap();
    assert_eq!(old.status(Micros(t0.0 + 2)), KeyStatus::Revoked);
    assert_eq!(old.replaced_by.as_deref(), Some(second.id.as_str()));
    let (third, third_secret) = make(3, Micros(t0.0 + 2));
    assert!(
        !store
            .replace_key(&first.id, &third, &hash_secret(&third_secret), Micros(t0.0 + 2))
            .await
            .unwrap(),
        "a revoked key cannot be rotated again"
    );
    assert_eq!(
        store.key_by_hash(&hash_secret(&third_secret)).await.unwrap(),
        None,
        "nothing stored on refusal"
    );

    assert!(store.revoke_key(&second.id, Micros(t0.0 + 3)).await.unwrap());
    assert!(
        !store.revoke_key(&second.id, Micros(t0.0 + 4)).await.unwrap(),
        "revoking twice changes nothing"
    );
    assert!(!store.revoke_key("nope", Micros(t0.0 + 4)).await.unwrap());
    let ids: Vec<String> = store.keys().await.unwrap().into_iter().map(|k| k.id).collect();
    assert_eq!(ids, vec![second.id.clone(), first.id.clone()], "newest first");
}

mod properties {
    use super::*;
    use proptest::prelude::{ProptestConfig, any, prop, proptest};

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// However events are re-sent — repeated, reordered, split into any batches — the stored
        /// totals equal those of the distinct events, and every event is accepted exactly once.
        #[test]
        fn ingestion_is_idempotent(
            tokens in prop::collection::vec((0u64..100_000, 0u64..10_000, 0i64..3 * MICROS_PER_DAY), 1..60),
            resend in prop::collection::vec(any::<prop::sample::Index>(), 0..60),
            order_seed in any::<u64>(),
            cuts in prop::collection::vec(1usize..20, 1..30),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let db = TestDatabase::sqlite();
                let store = db.open().await.unwrap();
                let table = prices();
                let base = at("2026-11-01T00:00:00Z").0;
                let events: Vec<UsageEvent> = tokens
                    .iter()
                    .enumerate()
                    .map(|(i, (input, output, offset))| {
                        event(&format!("p{i}"), Micros(base + offset), ["a", "b", "c"][i % 3], None, "gpt-4o-mini", *input, *output)
                    })
                    .collect();
                let mut sent = events.clone();
                sent.extend(resend.iter().map(|ix| events[ix.index(events.len())].clone()));
                let mut rng = StdRng::seed_from_u64(order_seed);
                for i in (1..sent.len()).rev() {
                    sent.swap(i, rng.random_range(0..=i));
                }
                let (mut accepted, mut duplicates, mut rest, mut cut) = (0, 0, &sent[..], cuts.iter().cycle());
                while !rest.is_empty() {
                    let n = (*cut.next().unwrap()).min(rest.len());
                    let outcome = store.insert_usage(priced(&table, rest[..n].to_vec()), table.version()).await.unwrap();
                    accepted += outcome.inserted;
                    duplicates += outcome.duplicates;
                    rest = &rest[n..];
                }
                assert_eq!(accepted, events.len() as u64);
                assert_eq!(duplicates, resend.len() as u64);
                let (from, to) = all_time();
                let rows = summary(&store, from, to, &[Dimension::User]).await;
                for user in ["a", "b", "c"] {
                    let mine: Vec<&UsageEvent> = events.iter().filter(|e| e.attribution.user == user).collect();
                    let got = rows.iter().find(|(k, _)| k[0].as_deref() == Some(user)).map(|(_, t)| *t).unwrap_or_default();
                    assert_eq!(got.requests, mine.len() as u64);
                    assert_eq!(got.tokens.input, mine.iter().map(|e| e.tokens.input).sum::<u64>());
                    let cost: i64 = mine.iter().map(|e| table.cost_of(None, &e.model, &e.tokens).unwrap().total().0).sum();
                    assert_eq!(got.cost.0, cost);
                }
            });
        }
    }
}

async fn budgets_are_kept_listed_deleted_and_measured_per_scope(db: &TestDatabase) {
    let store = db.open().await.unwrap();
    let budget = |id: &str, scope: BudgetScope, created: &str| Budget {
        id: id.into(),
        scope,
        period: Period::Month,
        limit: goodhart_core::Nanos(500_000_000_000),
        token_limit: Some(1_000_000),
        action: Action::Block,
        thresholds: vec![50, 80, 100],
        timezone: "Europe/Paris".into(),
        created_at: at(created),
        when_unreachable: None,
    };
    let team = Budget {
        when_unreachable: Some(WhenUnreachable::FailOpen { percent: 7 }),
        ..budget("b1", BudgetScope::Team("payments".into()), "2026-11-01T00:00:00Z")
    };
    let org = Budget {
        token_limit: None,
        action: Action::Alert,
        ..budget("b2", BudgetScope::Org, "2026-11-02T00:00:00Z")
    };
    store.create_budget(&team).await.unwrap();
    store.create_budget(&org).await.unwrap();
    assert_eq!(store.budgets().await.unwrap(), vec![team.clone(), org.clone()]);
    assert!(store.delete_budget("b2", at("2026-11-03T00:00:00Z")).await.unwrap());
    assert!(
        !store.delete_budget("b2", at("2026-11-03T00:00:00Z")).await.unwrap(),
        "deleted once"
    );
    assert_eq!(store.budgets().await.unwrap(), vec![team]);

    let table = prices();
    let mut via_key = event(
        "g1",
        at("2026-11-10T10:00:00Z"),
        "alice",
        Some("payments"),
        "gpt-4o-mini",
        1_000_000,
        0,
    );
    via_key.call = Some(CallMeta {
        key_id: "k1".into(),
        status: 200,
        ..Default::default()
    });
    via_key.attribution.agent = Some("bot".into());
    let events = vec![
        via_key,
        event(
            "a1",
            at("2026-11-10T11:00:00Z"),
            "alice",
            Some("payments"),
            "claude-sonnet-4-5",
            1_000_000,
            0,
        ),
        event(
            "a2",
            at("2026-11-11T11:00:00Z"),
            "bob",
            Some("search"),
            "claude-sonnet-4-5",
            0,
            100_000,
        ),
        event(
            "a3",
            at("2026-12-01T00:00:00Z"),
            "alice",
            Some("payments"),
            "claude-sonnet-4-5",
            1_000_000,
            0,
        ),
    ];
    store
        .insert_usage(priced(&table, events), table.version())
        .await
        .unwrap();
    let (from, to) = (at("2026-11-01T00:00:00Z"), at("2026-12-01T00:00:00Z"));
    let spend = |scope: BudgetScope| {
        let store = Arc::clone(&store);
        async move { store.spend(&scope, from, to).await.unwrap() }
    };
    let dollars = |d: f64| goodhart_core::Nanos((d * 1e9) as i64);
    let team = spend(BudgetScope::Team("payments".into())).await;
    assert_eq!((team.cost, team.tokens, team.requests), (dollars(3.15), 2_000_000, 2));
    assert_eq!(spend(BudgetScope::Key("k1".into())).await.cost, dollars(0.15));
    assert_eq!(spend(BudgetScope::Agent("bot".into())).await.requests, 1);
    assert_eq!(spend(BudgetScope::User("bob".into())).await.cost, dollars(1.5));
    assert_eq!(
        spend(BudgetScope::Org).await.requests,
        3,
        "the December call is outside the window"
    );
    assert_eq!(spend(BudgetScope::Project("nowhere".into())).await.requests, 0);
}

async fn alerts_are_stored_once_and_their_deliveries_tracked(db: &TestDatabase) {
    let store = db.open().await.unwrap();
    let alert = |id: &str, created: &str| Alert {
        id: id.into(),
        kind: AlertKind::Threshold,
        budget_id: "b1".into(),
        scope: "team payments".into(),
        message: "team payments reached 80 %".into(),
        created_at: at(created),
    };
    assert!(
        store
            .insert_alert(&alert("threshold:b1:0:80", "2026-11-10T10:00:00Z"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .insert_alert(&alert("threshold:b1:0:80", "2026-11-10T10:05:00Z"))
            .await
            .unwrap(),
        "raised twice, stored once"
    );
    assert!(
        store
            .insert_alert(&alert("threshold:b1:0:100", "2026-11-10T11:00:00Z"))
            .await
            .unwrap()
    );
    store
        .alert_attempt("threshold:b1:0:80", None, Some("HTTP 500"))
        .await
        .unwrap();
    store
        .alert_attempt("threshold:b1:0:80", Some(at("2026-11-10T10:00:03Z")), None)
        .await
        .unwrap();
    let listed = store
        .alerts(at("2026-11-01T00:00:00Z"), at("2026-12-01T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].alert.id, "threshold:b1:0:100", "newest first");
    let first = &listed[1];
    assert_eq!(
        (first.attempts, first.delivered_at, first.last_error.as_deref()),
        (2, Some(at("2026-11-10T10:00:03Z")), None)
    );
    assert_eq!(first.alert, alert("threshold:b1:0:80", "2026-11-10T10:00:00Z"));
}

fn dollars(cents: i64) -> Amount {
    Amount {
        cost: Nanos(cents * 10_000_000),
        ..Amount::ZERO
    }
}

fn capped(id: &str, limit_cents: i64) -> Budget {
    Budget {
        id: id.into(),
        scope: BudgetScope::Team("payments".into()),
        period: Period::Month,
        limit: Nanos(limit_cents * 10_000_000),
        token_limit: None,
        action: Action::Block,
        thresholds: vec![100],
        timezone: "UTC".into(),
        created_at: at("2026-11-01T00:00:00Z"),
        when_unreachable: None,
    }
}

async fn lease(store: &Arc<dyn Store>, budget: &Budget, instance: &str, want: i64, need: i64) -> Option<i64> {
    let now = at("2026-11-15T12:00:00Z");
    let request = LeaseRequest {
        budget,
        window: window(budget.period, &jiff::tz::TimeZone::UTC, now),
        instance,
        want: dollars(want),
        need: dollars(need),
        now,
        overdraw: false,
    };
    let granted = store.lease_budget(&request).await.unwrap();
    granted.map(|g| g.cost.0 / 10_000_000)
}

async fn budget_pools_lend_only_what_the_limit_leaves(db: &TestDatabase) {
    let store = db.open().await.unwrap();
    let table = prices();
    let costs_cents = |id: &str, day: &str, cents: u64, source: Source| {
        // gpt-4o-mini input: 15 cents per million tokens.
        let mut e = event(
            id,
            at(day),
            "alice",
            Some("payments"),
            "gpt-4o-mini",
            cents * 1_000_000 / 15,
            0,
        );
        e.source = source;
        e
    };
    let before = vec![
        costs_cents("gw", "2026-11-02T10:00:00Z", 150, Source::Gateway),
        costs_cents("api", "2026-11-03T10:00:00Z", 300, Source::Api),
        costs_cents("last-month", "2026-10-31T10:00:00Z", 900, Source::Api),
    ];
    store
        .insert_usage(priced(&table, before), table.version())
        .await
        .unwrap();
    let budget = capped("cap", 1_000);
    // $10 limit, $1.50 of gateway and $3 of other spend already in the window: $5.50 left.
    assert_eq!(lease(&store, &budget, "a", 50, 10).await, Some(50));
    assert_eq!(
        lease(&store, &budget, "b", 1_000, 100).await,
        Some(500),
        "what is left, not what was wanted"
    );
    assert_eq!(lease(&store, &budget, "a", 50, 1).await, None, "nothing left");
    store
        .return_lease(
            "cap",
            at("2026-11-01T00:00:00Z"),
            "b",
            dollars(200),
            at("2026-11-15T12:00:00Z"),
        )
        .await
        .unwrap();
    assert_eq!(
        lease(&store, &budget, "a", 50, 10).await,
        Some(50),
        "given back, lent again"
    );
    // Gateway spend recorded after the pool opened is already counted by the leases that
    // admitted it; other sources' spend is read at every lease.
    let after = vec![
        costs_cents("gw-later", "2026-11-04T10:00:00Z", 100, Source::Gateway),
        costs_cents("api-later", "2026-11-04T11:00:00Z", 100, Source::Api),
    ];
    store
        .insert_usage(priced(&table, after), table.version())
        .await
        .unwrap();
    assert_eq!(lease(&store, &budget, "c", 1_000, 1).await, Some(50));
    assert_eq!(lease(&store, &budget, "c", 1_000, 1).await, None);
    // What an instance admitted on its own while the store was unreachable is counted as lent
    // to it, past the limit: what "c" gives back then does not make room.
    let now = at("2026-11-15T12:00:00Z");
    let pool = Pool::Budget {
        budget: budget.clone(),
        window: window(budget.period, &jiff::tz::TimeZone::UTC, now),
    };
    store.overdraw(&pool, "d", dollars(200), now).await.unwrap();
    store
        .return_lease("cap", at("2026-11-01T00:00:00Z"), "c", dollars(50), now)
        .await
        .unwrap();
    assert_eq!(
        lease(&store, &budget, "c", 1_000, 1).await,
        None,
        "still $1.50 past the limit"
    );
    let tokens = Budget {
        token_limit: Some(1_000),
        ..capped("tokens", 1_000_000)
    };
    let now = at("2026-11-15T12:00:00Z");
    let ask = |need_tokens: u64| LeaseRequest {
        budget: &tokens,
        window: window(tokens.period, &jiff::tz::TimeZone::UTC, now),
        instance: "a",
        want: Amount {
            cost: Nanos(1),
            tokens: 100,
            requests: 0,
        },
        need: Amount {
            cost: Nanos(1),
            tokens: need_tokens,
            requests: 0,
        },
        now,
        overdraw: false,
    };
    // 1_100 gateway-and-other tokens are already above the token limit: nothing to lend.
    assert_eq!(store.lease_budget(&ask(1)).await.unwrap(), None);
}

async fn concurrent_leases_never_lend_past_the_limit(db: &TestDatabase) {
    let store = db.open().await.unwrap();
    let budget = capped("cap", 1_000);
    let asks: Vec<_> = (0..40)
        .map(|i| {
            let (store, budget) = (Arc::clone(&store), budget.clone());
            tokio::spawn(async move { lease(&store, &budget, &format!("instance-{}", i % 4), 100, 100).await })
        })
        .collect();
    let mut lent = 0;
    for ask in asks {
        lent += ask.await.unwrap().unwrap_or(0);
    }
    assert_eq!(
        lent, 1_000,
        "ten $1 slices of a $10 pool, whichever instances asked first"
    );
}

async fn rate_buckets_are_shared_and_refill(db: &TestDatabase) {
    let store = db.open().await.unwrap();
    let bucket = RateBucket {
        key_id: "k1",
        resource: Resource::Requests,
        capacity: 10,
        per_minute: 10,
    };
    let t0 = at("2026-11-15T12:00:00Z");
    let take = |want, need, now| {
        let store = Arc::clone(&store);
        async move { store.take_rate(&bucket, want, need, now).await.unwrap() }
    };
    assert_eq!(take(4, 1, t0).await, Ok(4));
    assert_eq!(take(4, 1, t0).await, Ok(4));
    assert_eq!(take(4, 1, t0).await, Ok(2), "what is left");
    assert_eq!(take(4, 1, t0).await, Err(Some(6_000_001)), "one unit refills every 6 s");
    store.return_rate(&bucket, 3, t0).await.unwrap();
    assert_eq!(take(5, 1, t0).await, Ok(3));
    let later = Micros(t0.0 + 600_000_000);
    assert_eq!(take(50, 1, later).await, Ok(10), "refilled to capacity, not beyond");
    let other = RateBucket { key_id: "k2", ..bucket };
    assert_eq!(
        store.take_rate(&other, 10, 1, t0).await.unwrap(),
        Ok(10),
        "buckets are per key"
    );
    assert_eq!(take(1, 11, later).await, Err(None), "more than the capacity never fits");
}

async fn budgets_and_key_buckets_lend_through_one_borrow(db: &TestDatabase) {
    let store = db.open().await.unwrap();
    let now = at("2026-11-15T12:00:00Z");
    let budget = capped("cap", 1_000);
    let window = window(budget.period, &jiff::tz::TimeZone::UTC, now);
    let pool = Pool::Budget { budget, window };
    let borrow = |instance: &'static str, want: i64, need: i64| {
        let (store, pool) = (Arc::clone(&store), pool.clone());
        async move {
            store
                .borrow(&pool, instance, dollars(want), dollars(need), now)
                .await
                .unwrap()
        }
    };
    assert_eq!(borrow("a", 600, 100).await, Lent::Granted(dollars(600)));
    assert_eq!(
        borrow("b", 600, 500).await,
        Lent::Refused { retry_after: None },
        "$4 left of $10"
    );
    store.give_back(&pool, "a", dollars(200), now).await.unwrap();
    assert_eq!(
        borrow("b", 600, 500).await,
        Lent::Granted(dollars(600)),
        "given back, lent again"
    );
    let key = Pool::Key {
        key_id: "k1".into(),
        resource: Resource::Tokens,
        per_minute: 100,
    };
    let tokens = |n| Amount::of(Resource::Tokens, n);
    let take = |want, need| {
        let (store, key) = (Arc::clone(&store), key.clone());
        async move { store.borrow(&key, "a", tokens(want), tokens(need), now).await.unwrap() }
    };
    assert_eq!(take(5, 80).await, Lent::Granted(tokens(80)));
    assert_eq!(
        take(5, 30).await,
        Lent::Refused {
            retry_after: Some(6_000_001)
        },
        "ten tokens short, at 100 a minute"
    );
    store.give_back(&key, "a", tokens(50), now).await.unwrap();
    assert_eq!(take(5, 30).await, Lent::Granted(tokens(30)));
}

async fn outcome_facts_and_deliveries_are_stored_once(db: &TestDatabase) {
    use goodhart_core::outcomes::{Approval, Credited, Fact, OutcomeKind, Reported};
    let store = db.open().await.unwrap();
    let approval = |n: u64, when: &str| {
        (
            format!("gh:review:{n}"),
            Fact::Approval(Approval {
                repo: "acme/shop".into(),
                number: n,
                reviewer: "bob".into(),
                at: at(when),
            }),
        )
    };
    let first = store
        .insert_delivery("d-1", "pull_request_review", vec![approval(1, "2026-11-02T10:00:00Z")])
        .await
        .unwrap();
    assert_eq!(first.map(|o| o.inserted), Some(1));
    let replay = store
        .insert_delivery("d-1", "pull_request_review", vec![approval(2, "2026-11-02T10:00:00Z")])
        .await
        .unwrap();
    assert_eq!(
        replay, None,
        "a replayed delivery stores nothing, even with other content"
    );
    let reported = (
        "api:r1".to_owned(),
        Fact::Reported(Reported {
            kind: OutcomeKind::TicketResolved,
            at: at("2026-11-01T08:00:00Z"),
            weight: 1_000,
            reference: Some("PAY-1".into()),
            credited: Credited {
                user: "alice".into(),
                ..Credited::default()
            },
        }),
    );
    let batch = store
        .insert_facts(vec![
            reported.clone(),
            reported.clone(),
            approval(1, "2026-11-02T10:00:00Z"),
        ])
        .await
        .unwrap();
    assert_eq!((batch.inserted, batch.duplicates), (1, 2));
    let facts = store.facts_before(at("2026-11-03T00:00:00Z")).await.unwrap();
    assert_eq!(
        facts,
        vec![reported, approval(1, "2026-11-02T10:00:00Z")],
        "oldest first"
    );
    assert_eq!(store.facts_before(at("2026-11-02T00:00:00Z")).await.unwrap().len(), 1);

    assert_eq!(store.github_user("octo-alice").await.unwrap(), None);
    store.map_github_login("octo-alice", "alice").await.unwrap();
    store.map_github_login("octo-alice", "alice.smith").await.unwrap();
    assert_eq!(
        store.github_user("octo-alice").await.unwrap().as_deref(),
        Some("alice.smith")
    );
    assert_eq!(
        store.github_logins().await.unwrap(),
        vec![("octo-alice".to_owned(), "alice.smith".to_owned())]
    );
}

async fn waste_calls_carry_what_detection_needs(db: &TestDatabase) {
    use goodhart_core::waste::Call;
    let store = db.open().await.unwrap();
    let table = prices();
    let mut looped = event(
        "e1",
        at("2026-11-02T23:00:00Z"),
        "bob",
        Some("payments"),
        "claude-sonnet-4-5",
        1_000,
        500,
    );
    looped.tokens.cache_read = 2_000;
    looped.tokens.cache_write_5m = 100;
    looped.attribution.agent = Some("loop-agent".into());
    looped.attribution.session = Some("s-1".into());
    looped.finish_reason = Some("max_tokens".into());
    looped.fingerprints = Fingerprints {
        prompt_simhash: Some(u64::MAX - 7), // the top bit set: stored signed, read back whole
        completion_simhash: Some(42),
        completion_compress_permille: Some(95),
        ..Fingerprints::default()
    };
    let mut unpriced = event("e2", at("2026-11-02T23:01:00Z"), "bob", None, "no-such-model", 10, 0);
    unpriced.finish_reason = Some("length".into());
    let outside = event("e3", at("2026-11-03T00:00:00Z"), "bob", None, "gpt-4o-mini", 10, 0);
    store
        .insert_usage(priced(&table, vec![looped, unpriced, outside]), "t")
        .await
        .unwrap();
    let mut calls = store
        .waste_calls(at("2026-11-02T00:00:00Z"), at("2026-11-03T00:00:00Z"))
        .await
        .unwrap();
    calls.sort_by_key(|c| c.at);
    assert_eq!(
        calls,
        vec![
            Call {
                at: at("2026-11-02T23:00:00Z"),
                user: "bob".into(),
                team: Some("payments".into()),
                agent: Some("loop-agent".into()),
                session: Some("s-1".into()),
                model: "claude-sonnet-4-5".into(),
                // 1,000 × $3/M + 500 × $15/M + 2,000 cache reads × $0.30/M + 100 cache writes at
                // the input rate (this test's table names no cache-write rate)
                cost: Nanos(11_400_000),
                input_tokens: 1_100,
                cache_read_tokens: 2_000,
                output_tokens: 500,
                truncated: true,
                prompt_simhash: Some(u64::MAX - 7),
                completion_simhash: Some(42),
                completion_compress_permille: Some(95),
            },
            Call {
                at: at("2026-11-02T23:01:00Z"),
                user: "bob".into(),
                model: "no-such-model".into(),
                input_tokens: 10,
                truncated: true,
                ..Call::default()
            },
        ],
        "the window's calls only; an unpriced call costs nothing yet"
    );
}

async fn finding_passes_keep_decisions_and_withdraw_what_is_gone(db: &TestDatabase) {
    use goodhart_core::waste::{Detector, Finding, FindingStatus, SubjectKind};
    let store = db.open().await.unwrap();
    let finding = |id: &str, when: &str, cents: i64| Finding {
        id: id.into(),
        subject_kind: SubjectKind::Agent,
        subject: "loop-agent".into(),
        user: "bob".into(),
        detector: Detector::RepeatedPrompts,
        signals: vec![Detector::RepeatedPrompts, Detector::MetronomicCadence],
        evidence: format!("{cents} cents of loops"),
        from: at(when),
        to: Micros(at(when).0 + MICROS_PER_HOUR),
        calls: 400,
        wasted_tokens: 1_000_000,
        wasted: Nanos(cents * 10_000_000),
        confidence: 850,
        samples: Vec::new(),
    };
    let (day1, day2, day3) = (
        at("2026-11-02T00:00:00Z"),
        at("2026-11-03T00:00:00Z"),
        at("2026-11-04T00:00:00Z"),
    );
    let mut a = finding("a", "2026-11-02T01:00:00Z", 500);
    a.samples = vec![goodhart_core::waste::CallSample {
        at: at("2026-11-02T01:00:00Z"),
        model: "claude-sonnet-4-5".into(),
        session: Some("s-1".into()),
        agent: Some("loop-agent".into()),
        input_tokens: 1_100,
        cache_read_tokens: 20_000,
        output_tokens: 4_096,
        cost: Nanos(70_740_000),
    }];
    let (a, b, c) = (
        a,
        finding("b", "2026-11-02T02:00:00Z", 300),
        finding("c", "2026-11-02T03:00:00Z", 100),
    );
    let first = store
        .record_findings(
            day1,
            day2,
            vec![
                a.clone(),
                b.clone(),
                c.clone(),
                finding("late", "2026-11-03T01:00:00Z", 1),
            ],
            HashMap::new(),
            Micros(1),
        )
        .await
        .unwrap();
    assert_eq!(
        first.new,
        vec![a.clone(), b.clone(), c.clone()],
        "outside the window: skipped"
    );
    let stored = store.findings(day1, day3).await.unwrap();
    assert_eq!(
        stored.iter().map(|s| &s.finding).collect::<Vec<_>>(),
        vec![&a, &b, &c],
        "most wasteful first"
    );
    assert!(
        stored
            .iter()
            .all(|s| s.status == FindingStatus::Open && s.detected_at == Micros(1))
    );

    let dismissed = store
        .decide_finding(
            "b",
            FindingStatus::Dismissed,
            Some("release crunch"),
            Decider::Admin,
            Micros(5),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (dismissed.status, dismissed.decided_at, dismissed.note.as_deref()),
        (FindingStatus::Dismissed, Some(Micros(5)), Some("release crunch"))
    );
    assert_eq!(dismissed.decided_by, Some(Decider::Admin));
    assert_eq!(
        store
            .decide_finding("nope", FindingStatus::Confirmed, None, Decider::Admin, Micros(5))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.finding("b").await.unwrap(),
        Some(dismissed.clone()),
        "read back by id"
    );
    assert_eq!(store.finding("nope").await.unwrap(), None);
    // A manager's decision says so; the admin's, made again, takes it back.
    for by in [Decider::Manager, Decider::Admin] {
        let decided = store
            .decide_finding("b", FindingStatus::Dismissed, Some("release crunch"), by, Micros(5))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(decided.decided_by, Some(by));
    }

    // A later pass sees a grow, b again, and not c (nor b, were it undecided).
    let grown = finding("a", "2026-11-02T01:00:00Z", 900);
    let second = store
        .record_findings(day1, day2, vec![grown.clone()], HashMap::new(), Micros(9))
        .await
        .unwrap();
    assert_eq!((second.new.len(), second.updated, second.withdrawn), (0, 1, 1));
    let stored = store.findings(day1, day3).await.unwrap();
    let ids: Vec<(&str, FindingStatus)> = stored.iter().map(|s| (s.finding.id.as_str(), s.status)).collect();
    assert_eq!(
        ids,
        vec![("a", FindingStatus::Open), ("b", FindingStatus::Dismissed)],
        "the undecided finding no longer found is withdrawn; the decided one is kept"
    );
    assert_eq!(stored[0].finding, grown);
    assert_eq!((stored[0].detected_at, stored[0].updated_at), (Micros(1), Micros(9)));
    assert_eq!(stored[1].note.as_deref(), Some("release crunch"));

    // The decision survives a pass that finds it again.
    store
        .record_findings(day1, day2, vec![grown, b], HashMap::new(), Micros(10))
        .await
        .unwrap();
    let b = store.findings(day1, day2).await.unwrap().pop().unwrap();
    assert_eq!((b.finding.id.as_str(), b.status), ("b", FindingStatus::Dismissed));
    assert!(store.findings(day2, day3).await.unwrap().is_empty());
}

async fn passes_dismiss_only_new_findings_automatically_and_decisions_are_listed(db: &TestDatabase) {
    use goodhart_core::waste::{Detector, Finding, FindingStatus, SubjectKind};
    let store = db.open().await.unwrap();
    let finding = |id: &str, when: &str| Finding {
        id: id.into(),
        subject_kind: SubjectKind::Agent,
        subject: "loop-agent".into(),
        user: "bob".into(),
        detector: Detector::RepeatedPrompts,
        signals: vec![Detector::RepeatedPrompts, Detector::OffHours],
        evidence: "loops".into(),
        from: at(when),
        to: Micros(at(when).0 + MICROS_PER_HOUR),
        calls: 400,
        wasted_tokens: 1_000_000,
        wasted: Nanos(5_000_000_000),
        confidence: 850,
        samples: Vec::new(),
    };
    let (day1, day2, day3) = (
        at("2026-11-02T00:00:00Z"),
        at("2026-11-03T00:00:00Z"),
        at("2026-11-04T00:00:00Z"),
    );
    let (monday, open) = (
        finding("monday", "2026-11-02T22:00:00Z"),
        finding("open", "2026-11-02T23:00:00Z"),
    );
    store
        .record_findings(day1, day2, vec![monday, open], HashMap::new(), Micros(1))
        .await
        .unwrap();
    store
        .decide_finding(
            "monday",
            FindingStatus::Dismissed,
            Some("load test"),
            Decider::Admin,
            Micros(2),
        )
        .await
        .unwrap();

    let (tuesday, other) = (
        finding("tuesday", "2026-11-03T22:00:00Z"),
        finding("other", "2026-11-03T23:00:00Z"),
    );
    let note = |id: &str| (id.to_owned(), format!("dismissed automatically: like monday ({id})"));
    let first = store
        .record_findings(
            day2,
            day3,
            vec![tuesday.clone(), other.clone()],
            HashMap::from([note("tuesday")]),
            Micros(3),
        )
        .await
        .unwrap();
    assert_eq!(
        (first.new, first.auto_dismissed, first.updated),
        (vec![other.clone()], 1, 0),
        "a covered new finding is stored dismissed, not announced"
    );
    let stored = store.findings(day2, day3).await.unwrap();
    let tuesday_stored = stored.iter().find(|s| s.finding.id == "tuesday").unwrap();
    assert_eq!(
        (
            tuesday_stored.status,
            tuesday_stored.decided_at,
            tuesday_stored.decided_by,
            tuesday_stored.note.as_deref()
        ),
        (
            FindingStatus::Dismissed,
            Some(Micros(3)),
            Some(Decider::Automatic),
            Some("dismissed automatically: like monday (tuesday)")
        )
    );
    assert_eq!(tuesday_stored.finding, tuesday);

    // A later pass over the window: the automatic decision stays, and a finding stored open
    // stays open even if the pass would now dismiss it (only new findings are dismissed).
    let again = store
        .record_findings(
            day2,
            day3,
            vec![tuesday.clone(), other.clone()],
            HashMap::from([note("tuesday"), note("other")]),
            Micros(4),
        )
        .await
        .unwrap();
    assert_eq!(
        (again.new.len(), again.auto_dismissed, again.updated, again.withdrawn),
        (0, 0, 2, 0)
    );
    let statuses = |stored: Vec<goodhart_store::findings::StoredFinding>| {
        stored
            .into_iter()
            .map(|s| (s.finding.id, s.status, s.decided_by, s.decided_at))
            .collect::<Vec<_>>()
    };
    let mut now = statuses(store.findings(day2, day3).await.unwrap());
    now.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        now,
        vec![
            ("other".to_owned(), FindingStatus::Open, None, None),
            (
                "tuesday".to_owned(),
                FindingStatus::Dismissed,
                Some(Decider::Automatic),
                Some(Micros(3))
            ),
        ]
    );
    // Not found any more: decided, so kept.
    let gone = store
        .record_findings(day2, day3, vec![], HashMap::new(), Micros(5))
        .await
        .unwrap();
    assert_eq!(gone.withdrawn, 1, "only the open one");

    assert_eq!(
        statuses(store.decided_findings(day1, day3).await.unwrap()),
        vec![
            (
                "monday".to_owned(),
                FindingStatus::Dismissed,
                Some(Decider::Admin),
                Some(Micros(2))
            ),
            (
                "tuesday".to_owned(),
                FindingStatus::Dismissed,
                Some(Decider::Automatic),
                Some(Micros(3))
            ),
        ],
        "decided findings of the window, oldest first; open ones are not decisions"
    );
    assert!(store.decided_findings(day2, day2).await.unwrap().is_empty());

    // An admin's word replaces the automatic one.
    let confirmed = store
        .decide_finding("tuesday", FindingStatus::Confirmed, None, Decider::Admin, Micros(6))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (confirmed.status, confirmed.decided_by, confirmed.note),
        (FindingStatus::Confirmed, Some(Decider::Admin), None)
    );
    store
        .record_findings(day2, day3, vec![tuesday], HashMap::from([note("tuesday")]), Micros(7))
        .await
        .unwrap();
    let tuesday = store.decided_findings(day2, day3).await.unwrap().pop().unwrap();
    assert_eq!(tuesday.status, FindingStatus::Confirmed);
}

async fn viewer_tokens_are_found_by_hash_and_revoked(db: &TestDatabase) {
    let store = db.open().await.unwrap();
    let t0 = at("2026-11-02T09:00:00Z");
    let payments = ViewerToken {
        id: "vt_1".into(),
        name: Some("payments managers".into()),
        team: Some("payments".into()),
        user: None,
        role: TokenRole::Viewer,
        created_at: t0,
        revoked_at: None,
    };
    let everyone = ViewerToken {
        id: "vt_2".into(),
        name: None,
        team: None,
        user: None,
        role: TokenRole::Ingest,
        created_at: Micros(t0.0 + 1),
        revoked_at: None,
    };
    let ana = ViewerToken {
        id: "vt_0".into(),
        name: None,
        team: None,
        user: Some("ana".into()),
        role: TokenRole::Engineer,
        created_at: Micros(t0.0 - 1),
        revoked_at: None,
    };
    store.create_viewer(&payments, &hash_secret("secret-1")).await.unwrap();
    store.create_viewer(&everyone, &hash_secret("secret-2")).await.unwrap();
    store.create_viewer(&ana, &hash_secret("secret-0")).await.unwrap();
    assert_eq!(
        store.viewer_by_hash(&hash_secret("secret-0")).await.unwrap(),
        Some(ana),
        "an engineer's token keeps its person"
    );
    assert!(
        store.create_viewer(&payments, &hash_secret("secret-3")).await.is_err(),
        "ids are unique"
    );
    assert_eq!(
        store.viewer_by_hash(&hash_secret("secret-1")).await.unwrap(),
        Some(payments.clone())
    );
    assert_eq!(store.viewer_by_hash(&hash_secret("nope")).await.unwrap(), None);
    let listed: Vec<String> = store.viewers().await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(listed, ["vt_2", "vt_1", "vt_0"], "newest first");

    let revoked_at = Micros(t0.0 + 60);
    assert!(store.revoke_viewer("vt_1", revoked_at).await.unwrap());
    assert!(!store.revoke_viewer("vt_1", revoked_at).await.unwrap(), "once");
    assert!(!store.revoke_viewer("vt_missing", revoked_at).await.unwrap());
    let found = store.viewer_by_hash(&hash_secret("secret-1")).await.unwrap().unwrap();
    assert_eq!(
        found.revoked_at,
        Some(revoked_at),
        "a revoked token is still found, marked revoked"
    );
}

async fn telemetry_points_are_stored_once_and_sessions_summed(db: &TestDatabase) {
    let store = db.open().await.unwrap();
    let t0 = at("2026-11-02T09:00:00Z");
    let point = |id: &str, ts: Micros, kind: TelemetryKind, amount: u64| TelemetryPoint {
        id: id.into(),
        timestamp: ts,
        user: "ana".into(),
        session: Some("s-1".into()),
        agent: "claude-code".into(),
        model: Some("claude-sonnet-4-5".into()),
        kind,
        amount,
    };
    let points = [
        point("p1", t0, TelemetryKind::InputTokens, 1_000),
        point("p2", t0, TelemetryKind::CostNanos, 6_000_000),
        point("p3", Micros(t0.0 + MICROS_PER_DAY), TelemetryKind::OutputTokens, 200),
    ];
    assert_eq!(store.insert_telemetry_points(&points).await.unwrap(), 3);
    assert_eq!(
        store.insert_telemetry_points(&points[..2]).await.unwrap(),
        0,
        "a retried export adds nothing"
    );
    let first_day = store.telemetry_points(t0, Micros(t0.0 + MICROS_PER_DAY)).await.unwrap();
    assert_eq!(first_day, points[..2].to_vec());

    let mut calls = Vec::new();
    for (i, session) in ["s-1", "s-1", "s-2"].into_iter().enumerate() {
        let mut e = event(
            &format!("e{i}"),
            Micros(t0.0 + i as i64),
            "ana",
            None,
            "claude-sonnet-4-5",
            100,
            10,
        );
        e.attribution.session = Some(session.into());
        calls.push(e);
    }
    calls.push(event("e-none", t0, "ana", None, "claude-sonnet-4-5", 5, 5));
    let table = prices();
    store
        .insert_usage(priced(&table, calls), table.version())
        .await
        .unwrap();
    let mut sessions = store
        .recorded_sessions(t0, Micros(t0.0 + MICROS_PER_HOUR))
        .await
        .unwrap();
    sessions.sort_by(|a, b| a.session.cmp(&b.session));
    let summed: Vec<(&str, u64, u64, u64)> = sessions
        .iter()
        .map(|s| (s.session.as_str(), s.calls, s.tokens.input, s.tokens.output))
        .collect();
    assert_eq!(
        summed,
        [("s-1", 2, 200, 20), ("s-2", 1, 100, 10)],
        "events without a session are left out"
    );
    assert!(sessions[0].cost.0 > 0, "priced");
}

fn day_bucket(day: &str) -> Bucket {
    let start = at(&format!("{day}T00:00:00Z"));
    Bucket {
        start,
        end: Micros(start.0 + MICROS_PER_DAY),
    }
}

fn usage_line(bucket: Bucket, model: &str, input: u64) -> UsageLine {
    UsageLine {
        bucket,
        model: Some(model.into()),
        api_key_id: Some("apikey_01".into()),
        workspace: None,
        service_tier: Some("standard".into()),
        requests: None,
        tokens: TokenCounts {
            input,
            output: 7,
            cache_read: 100,
            cache_write_5m: 20,
            cache_write_1h: 3,
            reasoning: 0,
        },
    }
}

async fn provider_report_buckets_are_replaced_not_added_to(db: &TestDatabase) {
    let store = db.open().await.unwrap();
    let (monday, tuesday) = (day_bucket("2026-11-02"), day_bucket("2026-11-03"));
    let first = Page {
        buckets: vec![monday, tuesday],
        lines: vec![
            usage_line(monday, "claude-sonnet-4-5", 1_000),
            usage_line(monday, "claude-haiku-4-5", 50),
        ],
        next_page: None,
    };
    let now = at("2026-11-04T01:00:00Z");
    let stored = store
        .record_report_page("anthropic", ReportPage::Usage(first.clone()), now)
        .await
        .unwrap();
    assert_eq!(stored, 2);
    assert_eq!(
        store
            .report_imported_until("anthropic", ReportKind::Usage)
            .await
            .unwrap(),
        Some(tuesday.end),
        "an empty bucket is imported too"
    );
    assert_eq!(
        store
            .report_imported_until("anthropic", ReportKind::Cost)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.report_imported_until("openai", ReportKind::Usage).await.unwrap(),
        None
    );
    // Importing the same page again adds nothing.
    store
        .record_report_page("anthropic", ReportPage::Usage(first.clone()), now)
        .await
        .unwrap();
    let (from, to) = all_time();
    let lines = store.provider_usage(from, to).await.unwrap();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.iter().all(|(p, _)| p == "anthropic"));
    assert!(lines.contains(&("anthropic".to_owned(), first.lines[0].clone())));
    // The provider revised Monday: one model only, more tokens, and Tuesday now has usage.
    let revised = Page {
        buckets: vec![monday, tuesday],
        lines: vec![
            usage_line(monday, "claude-sonnet-4-5", 1_500),
            usage_line(tuesday, "claude-sonnet-4-5", 10),
        ],
        next_page: None,
    };
    store
        .record_report_page("anthropic", ReportPage::Usage(revised.clone()), now)
        .await
        .unwrap();
    let lines: Vec<UsageLine> = store
        .provider_usage(from, to)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, l)| l)
        .collect();
    assert_eq!(lines, revised.lines);
    let tuesday_only = store.provider_usage(tuesday.start, tuesday.end).await.unwrap();
    assert_eq!(tuesday_only.len(), 1);

    // Costs: fractions of a cent kept to the nano-dollar, other providers apart.
    let cost = |bucket: Bucket, item: &str, nanos: i64| CostLine {
        bucket,
        amount: Nanos(nanos),
        workspace: Some("wrkspc_01".into()),
        api_key_id: None,
        model: None,
        item: Some(item.into()),
    };
    let costs = Page {
        buckets: vec![monday],
        lines: vec![
            cost(monday, "Claude Sonnet 4.5 Usage - Input Tokens", 457_020_000),
            cost(monday, "Claude Sonnet 4.5 Usage - Output Tokens", 918_750_000),
        ],
        next_page: None,
    };
    store
        .record_report_page("anthropic", ReportPage::Cost(costs.clone()), now)
        .await
        .unwrap();
    let openai = Page {
        buckets: vec![monday],
        lines: vec![cost(monday, "gpt-4o, input", 1_284_000_000)],
        next_page: None,
    };
    store
        .record_report_page("openai", ReportPage::Cost(openai), now)
        .await
        .unwrap();
    let billed = store.provider_costs(from, to).await.unwrap();
    let anthropic: Vec<CostLine> = billed
        .iter()
        .filter(|(p, _)| p == "anthropic")
        .map(|(_, l)| l.clone())
        .collect();
    assert_eq!(anthropic, costs.lines);
    assert_eq!(billed.len(), 3);
    assert_eq!(
        store
            .report_imported_until("anthropic", ReportKind::Cost)
            .await
            .unwrap(),
        Some(monday.end)
    );
    assert_eq!(
        store.provider_usage(from, to).await.unwrap().len(),
        2,
        "costs leave usage alone"
    );
}

async fn metered_usage_is_summed_per_day_model_and_source(db: &TestDatabase) {
    let store = db.open().await.unwrap();
    let table = prices();
    let from_source = |id: &str, ts: &str, source: Source, input: u64| UsageEvent {
        provider: Some("anthropic".into()),
        source,
        ..event(id, at(ts), "alice", None, "claude-sonnet-4-5", input, 10)
    };
    let events = vec![
        from_source("g1", "2026-11-02T09:00:00Z", Source::Gateway, 1_000),
        from_source("g2", "2026-11-02T23:59:59Z", Source::Gateway, 2_000),
        from_source("i1", "2026-11-02T10:00:00Z", Source::Import, 500),
        from_source("g3", "2026-11-03T00:00:00Z", Source::Gateway, 7),
        UsageEvent {
            provider: Some("anthropic".into()),
            ..event("u1", at("2026-11-02T11:00:00Z"), "bob", None, "unknown-model", 40, 0)
        },
    ];
    store
        .insert_usage(priced(&table, events), table.version())
        .await
        .unwrap();
    let metered = store
        .metered_by_source(at("2026-11-02T00:00:00Z"), at("2026-11-03T00:00:00Z"))
        .await
        .unwrap();
    let rows: Vec<_> = metered
        .iter()
        .map(|m| {
            (
                m.day,
                m.model.as_str(),
                m.source,
                m.tokens.input,
                m.tokens.output,
                m.cost,
            )
        })
        .collect();
    let monday = at("2026-11-02T00:00:00Z");
    assert_eq!(
        rows,
        [
            // 3,000 input at $3/M and 20 output at $15/M.
            (
                monday,
                "claude-sonnet-4-5",
                Source::Gateway,
                3_000,
                20,
                Nanos(9_300_000)
            ),
            (monday, "claude-sonnet-4-5", Source::Import, 500, 10, Nanos(1_650_000)),
            (monday, "unknown-model", Source::Api, 40, 0, Nanos::ZERO),
        ],
        "Tuesday's call is outside the window; an unpriced call costs nothing metered"
    );

    let page = Page {
        buckets: vec![day_bucket("2026-11-02"), day_bucket("2026-11-03")],
        lines: Vec::new(),
        next_page: None,
    };
    store
        .record_report_page("openai", ReportPage::Cost(page), at("2026-11-04T00:00:00Z"))
        .await
        .unwrap();
    let buckets = store
        .report_buckets(ReportKind::Cost, monday, at("2026-11-03T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(buckets, [("openai".to_owned(), day_bucket("2026-11-02"))]);
    assert!(
        store
            .report_buckets(ReportKind::Usage, Micros(0), at("2100-01-01T00:00:00Z"))
            .await
            .unwrap()
            .is_empty()
    );
}

fn activity(tool: Tool, day: Micros, kind: ActorKind, actor: &str, sessions: u64, cost: Option<i64>) -> ActivityLine {
    ActivityLine {
        tool,
        day,
        actor: Actor {
            kind,
            name: actor.into(),
        },
        surface: "vscode".into(),
        counts: ActivityCounts {
            sessions,
            lines_added: 500,
            commits: 2,
            tool_accepted: 30,
            tool_rejected: 3,
            acceptances: 7,
            ..ActivityCounts::default()
        },
        models: cost
            .map(|nanos| {
                ["claude-haiku-4-5", "claude-sonnet-4-5"]
                    .map(|model| ModelUsage {
                        model: model.into(),
                        tokens: TokenCounts {
                            input: 1_000,
                            output: 200,
                            cache_read: 9_000,
                            cache_write_5m: 50,
                            ..TokenCounts::default()
                        },
                        estimated_cost: Some(Nanos(nanos)),
                    })
                    .to_vec()
            })
            .unwrap_or_default(),
    }
}

async fn agent_activity_days_are_replaced_not_added_to(db: &TestDatabase) {
    let store = db.open().await.unwrap();
    let (monday, tuesday) = (at("2026-11-02T00:00:00Z"), at("2026-11-03T00:00:00Z"));
    let now = at("2026-11-04T01:00:00Z");
    let day = vec![
        activity(
            Tool::ClaudeCode,
            monday,
            ActorKind::Email,
            "dev1@example.com",
            4,
            Some(5_400_000_000),
        ),
        activity(Tool::ClaudeCode, monday, ActorKind::ApiKey, "ci-bot", 1, None),
    ];
    for _ in 0..2 {
        let stored = store
            .record_activity_day(Tool::ClaudeCode, "", monday, day.clone(), now)
            .await
            .unwrap();
        assert_eq!(stored, 2);
    }
    store
        .record_activity_day(Tool::ClaudeCode, "", tuesday, Vec::new(), now)
        .await
        .unwrap();
    let (from, to) = all_time();
    let lines = store.agent_activity(from, to).await.unwrap();
    assert_eq!(
        lines,
        day.iter().map(|l| (String::new(), l.clone())).collect::<Vec<_>>(),
        "a day imported twice is there once, tokens and estimates to the nano-dollar"
    );
    assert_eq!(
        store.activity_imported_until(Tool::ClaudeCode, "").await.unwrap(),
        Some(Micros(tuesday.0 + MICROS_PER_DAY)),
        "an empty day is imported too"
    );
    assert_eq!(
        store.activity_imported_until(Tool::Copilot, "acme").await.unwrap(),
        None
    );

    // Copilot for two organisations on the same day, apart from each other and from Claude Code.
    for org in ["acme", "globex"] {
        let copilot = vec![activity(
            Tool::Copilot,
            monday,
            ActorKind::GithubLogin,
            "alice",
            0,
            None,
        )];
        store
            .record_activity_day(Tool::Copilot, org, monday, copilot, now)
            .await
            .unwrap();
    }
    // The vendor revised Monday: one line only.
    let revised = vec![activity(
        Tool::ClaudeCode,
        monday,
        ActorKind::Email,
        "dev1@example.com",
        6,
        Some(1),
    )];
    store
        .record_activity_day(Tool::ClaudeCode, "", monday, revised.clone(), now)
        .await
        .unwrap();
    let lines = store.agent_activity(monday, tuesday).await.unwrap();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0], (String::new(), revised[0].clone()));
    let orgs: Vec<&str> = lines[1..].iter().map(|(org, _)| org.as_str()).collect();
    assert_eq!(orgs, ["acme", "globex"]);
    assert_eq!(
        store.activity_imported_until(Tool::Copilot, "acme").await.unwrap(),
        Some(tuesday)
    );
    assert!(store.agent_activity(tuesday, to).await.unwrap().is_empty());

    // Activity names no Goodhart user; metered usage does.
    assert!(store.known_users(&["dev1".into()]).await.unwrap().is_empty());
    let table = prices();
    let events = vec![event("k-1", monday, "dev1", None, "gpt-4o-mini", 10, 1)];
    store
        .insert_usage(priced(&table, events), table.version())
        .await
        .unwrap();
    assert_eq!(
        store
            .known_users(&["dev1@example.com".into(), "dev1".into()])
            .await
            .unwrap(),
        ["dev1"]
    );
}

fn audit_entry(at: Micros, actor: &str, action: &str, outcome: &str) -> NewAuditEntry {
    NewAuditEntry {
        at,
        actor_kind: if actor == "admin" {
            "admin_token"
        } else {
            "viewer_token"
        }
        .into(),
        actor_id: (actor != "admin").then(|| actor.to_owned()),
        actor_name: None,
        action: action.into(),
        outcome: outcome.into(),
        target_kind: Some("key".into()),
        target_id: Some(format!("gk_{action}")),
        address: Some("192.0.2.7".into()),
        user_agent: Some("curl/8".into()),
        details: r#"{"user":"alice"}"#.into(),
        count: 1,
    }
}

/// Runs `sql` straight on the database, as an operator with a SQL shell would; the error, if any.
async fn raw_sql(db: &TestDatabase, sql: &str) -> Option<String> {
    match goodhart_store::sqlite_path(&db.url).unwrap() {
        Some(path) => {
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.execute_batch(sql).err().map(|e| e.to_string())
        }
        None => {
            let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(connection);
            client.batch_execute(sql).await.err().map(|e| format!("{e:?}"))
        }
    }
}

async fn the_audit_log_is_read_newest_first_filtered_paged_and_append_only(db: &TestDatabase) {
    let store = db.open().await.unwrap();
    let t0 = at("2026-12-01T09:00:00Z");
    let written = [
        audit_entry(t0, "admin", "key.create", "success"),
        audit_entry(Micros(t0.0 + 10), "vt_1", "audit.read", "denied"),
        audit_entry(Micros(t0.0 + 20), "admin", "key.revoke", "success"),
        audit_entry(Micros(t0.0 + 30), "admin", "budget.create", "success"),
        // Clocks of two instances disagree: the log's order is the order of insertion.
        audit_entry(Micros(t0.0 + 25), "anonymous", "auth.failure", "failure"),
    ];
    let mut seqs = Vec::new();
    for entry in &written {
        seqs.push(store.append_audit(entry).await.unwrap());
    }
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "sequence numbers increase: {seqs:?}"
    );
    let read = |query: AuditQuery| {
        let store = Arc::clone(&store);
        async move { store.audit_entries(&query).await.unwrap() }
    };
    let all = read(AuditQuery {
        limit: 100,
        ..AuditQuery::default()
    })
    .await;
    let actions: Vec<&str> = all.iter().map(|e| e.entry.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "auth.failure",
            "budget.create",
            "key.revoke",
            "audit.read",
            "key.create"
        ]
    );
    assert_eq!(all[4].entry, written[0], "stored as written");

    let names = |entries: Vec<goodhart_store::audit::AuditEntry>| -> Vec<String> {
        entries.into_iter().map(|e| e.entry.action).collect()
    };
    let prefix = read(AuditQuery {
        action_prefix: Some("key.".into()),
        limit: 100,
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(names(prefix), ["key.revoke", "key.create"]);
    // `_` is not a wildcard: `key_` matches nothing.
    let literal = read(AuditQuery {
        action_prefix: Some("key_".into()),
        limit: 100,
        ..AuditQuery::default()
    })
    .await;
    assert!(literal.is_empty());
    let by_actor = read(AuditQuery {
        actor: Some("vt_1".into()),
        limit: 100,
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(names(by_actor), ["audit.read"]);
    let by_kind = read(AuditQuery {
        actor: Some("admin_token".into()),
        limit: 100,
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(names(by_kind), ["budget.create", "key.revoke", "key.create"]);
    let failures = read(AuditQuery {
        outcome: Some("failure".into()),
        limit: 100,
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(names(failures), ["auth.failure"]);
    let window = read(AuditQuery {
        from: Some(Micros(t0.0 + 10)),
        to: Some(Micros(t0.0 + 25)),
        limit: 100,
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(
        names(window),
        ["key.revoke", "audit.read"],
        "from inclusive, to exclusive"
    );

    // Pages of two, each starting before the last one's cursor, cover the log once.
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = read(AuditQuery {
            before,
            limit: 2,
            ..AuditQuery::default()
        })
        .await;
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        before = Some(last.seq);
        paged.extend(page.into_iter().map(|e| e.entry.action));
    }
    assert_eq!(paged, actions);

    // Append-only: neither the store's own connection nor a SQL shell changes a row.
    for sql in [
        "UPDATE audit_log SET action = 'key.forged'",
        "DELETE FROM audit_log",
        "UPDATE audit_log SET outcome = 'success' WHERE outcome = 'failure'",
    ] {
        let error = raw_sql(db, sql).await.unwrap_or_else(|| panic!("{sql} was allowed"));
        assert!(error.contains("append-only"), "{sql}: {error}");
    }
    if goodhart_store::sqlite_path(&db.url).unwrap().is_none() {
        let error = raw_sql(db, "TRUNCATE audit_log").await.expect("TRUNCATE refused");
        assert!(error.contains("append-only"), "{error}");
    }
    let after = read(AuditQuery {
        limit: 100,
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(after, all, "nothing changed");
}

async fn sessions_are_found_by_hash_listed_while_live_and_revoked_and_login_states_used_once(db: &TestDatabase) {
    let store = db.open().await.unwrap();
    let t0 = at("2026-11-02T09:00:00Z");
    let hour = 3_600_000_000;
    let alice = Session {
        id: "ses_1".into(),
        issuer: "https://idp.example".into(),
        subject: "alice-sub".into(),
        email: Some("alice@example.com".into()),
        name: Some("Alice".into()),
        groups: vec!["goodhart-admins".into(), "payments".into()],
        created_at: t0,
        expires_at: Micros(t0.0 + 8 * hour),
        revoked_at: None,
    };
    let bob = Session {
        id: "ses_2".into(),
        subject: "bob-sub".into(),
        email: None,
        name: None,
        groups: vec![],
        created_at: Micros(t0.0 + 1),
        expires_at: Micros(t0.0 + hour),
        ..alice.clone()
    };
    store.create_session(&alice, &hash_secret("s-1")).await.unwrap();
    store.create_session(&bob, &hash_secret("s-2")).await.unwrap();
    assert!(
        store.create_session(&alice, &hash_secret("s-3")).await.is_err(),
        "ids are unique"
    );
    assert_eq!(
        store.session_by_hash(&hash_secret("s-1")).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(store.session_by_hash(&hash_secret("nope")).await.unwrap(), None);
    let live = |at: Micros| {
        let store = &store;
        async move {
            store
                .live_sessions(at)
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(live(t0).await, ["ses_2", "ses_1"], "newest first");
    assert_eq!(
        live(Micros(t0.0 + 2 * hour)).await,
        ["ses_1"],
        "an expired session is not live"
    );

    // The sign-in's ID token is kept for the sign-out's `id_token_hint`, until revocation.
    store.keep_session_id_token("ses_1", "eyJ.alice.sig").await.unwrap();
    assert_eq!(
        store.session_id_token(&hash_secret("s-1")).await.unwrap().as_deref(),
        Some("eyJ.alice.sig")
    );
    assert_eq!(store.session_id_token(&hash_secret("s-2")).await.unwrap(), None);

    let revoked_at = Micros(t0.0 + 60);
    assert!(store.revoke_session("ses_1", revoked_at).await.unwrap());
    assert_eq!(
        store.session_id_token(&hash_secret("s-1")).await.unwrap(),
        None,
        "forgotten at revocation"
    );
    assert!(!store.revoke_session("ses_1", revoked_at).await.unwrap(), "once");
    assert!(!store.revoke_session("ses_missing", revoked_at).await.unwrap());
    assert_eq!(live(t0).await, ["ses_2"], "a revoked session is not live");
    let found = store.session_by_hash(&hash_secret("s-1")).await.unwrap().unwrap();
    assert_eq!(
        found.revoked_at,
        Some(revoked_at),
        "a revoked session is still found, marked revoked"
    );
    // A sign-in's state is used once, until forgotten.
    assert!(store.use_login_state("state-1", t0).await.unwrap());
    assert!(
        !store.use_login_state("state-1", Micros(t0.0 + 1)).await.unwrap(),
        "a replay"
    );
    assert!(store.use_login_state("state-2", Micros(t0.0 + hour)).await.unwrap());
    store.forget_login_states(Micros(t0.0 + 1)).await.unwrap();
    assert!(store.use_login_state("state-1", t0).await.unwrap(), "forgotten");
    assert!(
        !store.use_login_state("state-2", t0).await.unwrap(),
        "kept: used after the bound"
    );
}

async fn the_directory_gives_keys_and_usage_their_persons_team_and_grants_replace(db: &TestDatabase) {
    let store = db.open().await.unwrap();
    let t0 = at("2026-11-02T09:00:00Z");
    let member = |user: &str, team: Option<&str>, at: Micros| Member {
        user: user.into(),
        team: team.map(Into::into),
        email: Some(format!("{user}@example.com")),
        issuer: "https://idp.example".into(),
        subject: format!("sub-{user}"),
        updated_at: at,
    };
    store.record_member(&member("ana", Some("search"), t0)).await.unwrap();
    store.record_member(&member("ben", None, t0)).await.unwrap();
    let moved = member("ana", Some("payments"), Micros(t0.0 + 1));
    store.record_member(&moved).await.unwrap();
    assert_eq!(
        store.members().await.unwrap(),
        [moved.clone(), member("ben", None, t0)],
        "one row per person, the last sign-in's"
    );
    let users = ["ana", "ben", "cy", "ana"].map(String::from);
    assert_eq!(
        store.teams_of(&users).await.unwrap(),
        HashMap::from([("ana".to_owned(), "payments".to_owned())]),
        "only people with a home team"
    );
    assert!(store.teams_of(&[]).await.unwrap().is_empty());

    // A key without a team takes its person's; a key with one keeps it.
    let key = |seed: u8, user: &str, team: Option<&str>| {
        let (id, secret) = new_secret([seed; 6], [seed; 32]);
        let key = VirtualKey {
            id,
            name: None,
            scope: KeyScope {
                user: user.into(),
                team: team.map(Into::into),
                project: None,
                agent: None,
            },
            created_at: t0,
            expires_at: None,
            revoked_at: None,
            replaced_by: None,
            limits: Default::default(),
        };
        (key, secret)
    };
    for (seed, user, team, seen) in [
        (7, "ana", None, Some("payments")),
        (8, "ana", Some("platform"), Some("platform")),
        (9, "ben", None, None),
        (10, "dee", None, None),
    ] {
        let (made, secret) = key(seed, user, team);
        store.create_key(&made, &hash_secret(&secret)).await.unwrap();
        let found = store.key_by_hash(&hash_secret(&secret)).await.unwrap().unwrap();
        assert_eq!(found.scope.team.as_deref(), seen, "{user}'s key with team {team:?}");
        let listed = store
            .keys()
            .await
            .unwrap()
            .into_iter()
            .find(|k| k.id == made.id)
            .unwrap();
        assert_eq!(listed, made, "the listing shows the key as made");
    }

    let grant = |user: &str, role: &str, team: Option<&str>| RoleGrant {
        user: user.into(),
        role: role.into(),
        team: team.map(Into::into),
        granted_at: t0,
    };
    store.grant_role(&grant("ana", "viewer", None)).await.unwrap();
    store
        .grant_role(&grant("ana", "manager", Some("payments")))
        .await
        .unwrap();
    store.grant_role(&grant("zed", "finops", None)).await.unwrap();
    assert_eq!(
        store.role_grants().await.unwrap(),
        [grant("ana", "manager", Some("payments")), grant("zed", "finops", None)]
    );
    assert_eq!(
        store.role_grant("zed").await.unwrap(),
        Some(grant("zed", "finops", None))
    );
    assert!(store.revoke_role_grant("zed").await.unwrap());
    assert!(!store.revoke_role_grant("zed").await.unwrap());
    assert_eq!(store.role_grant("zed").await.unwrap(), None);
}

async fn provisioned_users_and_groups_are_replaced_whole_and_deleted_with_their_memberships(db: &TestDatabase) {
    let store = db.open().await.unwrap();
    let t0 = at("2026-11-02T09:00:00Z");
    let user = |id: &str, name: &str, active: bool| ScimUser {
        id: id.into(),
        user_name: name.into(),
        external_id: Some(format!("ext-{id}")),
        display_name: None,
        given_name: Some("Ana".into()),
        family_name: None,
        email: Some(format!("{id}@example.com")),
        active,
        created_at: t0,
        updated_at: t0,
    };
    store.put_scim_user(&user("u2", "ben@example.com", true)).await.unwrap();
    store.put_scim_user(&user("u1", "ana@example.com", true)).await.unwrap();
    let mut ana = user("u1", "ana@example.com", false);
    ana.updated_at = Micros(t0.0 + 1);
    ana.created_at = Micros(t0.0 + 1);
    store.put_scim_user(&ana).await.unwrap();
    ana.created_at = t0;
    assert_eq!(
        store.scim_users().await.unwrap(),
        [ana.clone(), user("u2", "ben@example.com", true)],
        "replaced whole, by id; its creation kept"
    );
    let clash = user("u3", "ANA@example.com", true);
    assert!(
        store.put_scim_user(&clash).await.is_err(),
        "userName is unique ignoring case"
    );

    let group = |id: &str, name: &str, members: &[&str]| ScimGroup {
        id: id.into(),
        display_name: name.into(),
        external_id: None,
        members: members.iter().map(|m| (*m).to_owned()).collect(),
        created_at: t0,
        updated_at: t0,
    };
    store
        .put_scim_group(&group("g1", "org-search", &["u1", "u2"]))
        .await
        .unwrap();
    store
        .put_scim_group(&group("g2", "org-payments", &["u2"]))
        .await
        .unwrap();
    store.put_scim_group(&group("g1", "org-search", &["u2"])).await.unwrap();
    assert_eq!(
        store.scim_groups().await.unwrap(),
        [group("g1", "org-search", &["u2"]), group("g2", "org-payments", &["u2"])],
        "members replaced with the group"
    );
    assert!(store.put_scim_group(&group("g3", "ORG-SEARCH", &[])).await.is_err());
    assert!(store.delete_scim_user("u2").await.unwrap());
    assert!(!store.delete_scim_user("u2").await.unwrap());
    assert_eq!(
        store.scim_groups().await.unwrap(),
        [group("g1", "org-search", &[]), group("g2", "org-payments", &[])],
        "a deleted user leaves their groups"
    );
    store
        .put_scim_group(&group("g2", "org-payments", &["u1"]))
        .await
        .unwrap();
    assert!(store.delete_scim_group("g2").await.unwrap());
    assert!(!store.delete_scim_group("g2").await.unwrap());
    assert_eq!(store.scim_groups().await.unwrap(), [group("g1", "org-search", &[])]);
    assert_eq!(store.scim_users().await.unwrap(), [ana]);

    // Offboarding takes a person out of the directory.
    let member = Member {
        user: "ana".into(),
        team: Some("search".into()),
        email: None,
        issuer: "scim".into(),
        subject: "u1".into(),
        updated_at: t0,
    };
    store.record_member(&member).await.unwrap();
    assert!(store.forget_member("ana").await.unwrap());
    assert!(!store.forget_member("ana").await.unwrap());
    assert!(store.members().await.unwrap().is_empty());
}
