//! What hard caps and rate limits cost a call: one admission and one settlement against five
//! budgets (and its key's two rate limits) from the slices an instance holds (every call), and
//! the database transactions behind them (a slice borrowed about every twentieth of a limit, a
//! rate batch every twentieth of a per-minute limit), on SQLite and on the local PostgreSQL
//! server.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "a benchmark stops at the first broken step of its setup, and spawns what it drives freely"
)]

use criterion::{Criterion, criterion_group, criterion_main};
use goodhart_core::budgets::{Action, Budget, BudgetScope, Period, window};
use goodhart_core::keys::RateLimits;
use goodhart_core::limits::{Amount, Call, Resource, Spent};
use goodhart_core::usage::Attribution;
use goodhart_core::{Micros, Nanos};
use goodhart_gateway::limits::Limiter;
use goodhart_store::leases::{LeaseRequest, RateBucket};
use goodhart_store::testing::TestDatabase;
fn budgets() -> Vec<Budget> {
    let scopes = [
        BudgetScope::Key("0123456789ab".into()),
        BudgetScope::User("alice".into()),
        BudgetScope::Team("payments".into()),
        BudgetScope::Org,
        BudgetScope::Org,
    ];
    scopes
        .into_iter()
        .enumerate()
        .map(|(i, scope)| Budget {
            id: format!("b{i}"),
            scope,
            period: Period::Month,
            limit: Nanos(1 << 60),
            token_limit: None,
            action: Action::Block,
            thresholds: vec![50, 80, 100],
            timezone: "Europe/Paris".into(),
            created_at: Micros(0),
            when_unreachable: None,
        })
        .collect()
}
fn limits(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let alice = Attribution {
        user: "alice".into(),
        team: Some("payments".into()),
        ..Default::default()
    };
    let sqlite = TestDatabase::sqlite();
    let limiter = runtime.block_on(async {
        let store = sqlite.open().await.unwrap();
        for budget in budgets() {
            store.create_budget(&budget).await.unwrap();
        }
        let limiter = Limiter::new(
            store,
            "bench".into(),
            goodhart_core::budgets::WhenUnreachable::FailClosed,
        );
        limiter.reload(goodhart_store::now_micros()).await.unwrap();
        limiter
    });
    let now = goodhart_store::now_micros();
    let spent = Spent {
        key_id: "0123456789ab",
        who: &alice,
        at: now,
        cost: Nanos(1_000_000),
        tokens: 2_000,
    };
    let mut call = Call {
        key_id: "0123456789ab",
        rates: RateLimits::default(),
        who: &alice,
        cost: Some(Nanos(2_000_000)),
        tokens: 5_000,
    };
    c.bench_function("admit and settle a call against 5 budgets from held slices", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let held = limiter.admit(&call, now).await.unwrap();
                held.settle(&spent);
            })
        })
    });
    // Limits big enough that the first batch lasts the whole run.
    call.rates = RateLimits {
        requests_per_minute: Some(u64::MAX >> 24),
        tokens_per_minute: Some(u64::MAX >> 24),
    };
    c.bench_function(
        "admit and settle a call against a key's 2 rate limits and 5 budgets from held slices",
        |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let held = limiter.admit(&call, now).await.unwrap();
                    held.settle(&spent);
                })
            })
        },
    );
    let postgres = runtime.block_on(TestDatabase::postgres());
    for (backend, db) in [("SQLite", &sqlite), ("PostgreSQL", &postgres)] {
        let store = runtime.block_on(db.open()).unwrap();
        let budget = &budgets()[2];
        let month = window(Period::Month, &jiff::tz::TimeZone::UTC, now);
        let slice = Amount {
            cost: Nanos(1_000),
            ..Amount::ZERO
        };
        c.bench_function(&format!("borrow a budget slice ({backend})"), |b| {
            b.iter(|| {
                let request = LeaseRequest {
                    budget,
                    window: month,
                    instance: "bench",
                    want: slice,
                    need: slice,
                    now,
                    overdraw: false,
                };
                runtime.block_on(store.lease_budget(&request)).unwrap().unwrap()
            })
        });
        let bucket = RateBucket {
            key_id: "0123456789ab",
            resource: Resource::Requests,
            capacity: u64::MAX >> 24,
            per_minute: u64::MAX >> 24,
        };
        c.bench_function(&format!("take a rate-limit batch ({backend})"), |b| {
            b.iter(|| runtime.block_on(store.take_rate(&bucket, 50, 1, now)).unwrap().unwrap())
        });
    }
}
criterion_group!(benches, limits);
criterion_main!(benches);
