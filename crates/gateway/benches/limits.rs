//! What hard caps and rate limits cost a call: admission and settlement against five
//! budgets from the slices an instance holds (every call), and the database transactions
//! behind them (a slice borrowed about every twentieth of a limit, a rate batch every
//! twentieth of a per-minute limit), on SQLite and on the local PostgreSQL server.

use criterion::{Criterion, criterion_group, criterion_main};
use goodhart_core::budgets::{Action, Amount, Budget, BudgetScope, Period, window};
use goodhart_core::usage::Attribution;
use goodhart_core::{Micros, Nanos};
use goodhart_gateway::guard::BudgetGuard;
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
    let guard = runtime.block_on(async {
        let store = sqlite.open().await.unwrap();
        for budget in budgets() {
            store.create_budget(&budget).await.unwrap();
        }
        let guard = BudgetGuard::new(store, "bench".into());
        guard.reload(goodhart_store::now_micros()).await.unwrap();
        guard
    });
    let now = goodhart_store::now_micros();
    c.bench_function("admit and settle a call against 5 budgets from held slices", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let held = guard
                    .admit("0123456789ab", &alice, Some(Nanos(2_000_000)), 5_000, now)
                    .await
                    .unwrap();
                held.settle("0123456789ab", &alice, now, Nanos(1_000_000), 2_000);
            })
        })
    });
    let postgres = runtime.block_on(TestDatabase::postgres());
    for (backend, db) in [("SQLite", &sqlite), ("PostgreSQL", &postgres)] {
        let store = runtime.block_on(db.open()).unwrap();
        let budget = &budgets()[2];
        let month = window(Period::Month, &jiff::tz::TimeZone::UTC, now);
        let slice = Amount {
            cost: Nanos(1_000),
            tokens: 0,
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
                };
                runtime.block_on(store.lease_budget(&request)).unwrap().unwrap()
            })
        });
        let bucket = RateBucket {
            key_id: "0123456789ab",
            kind: "requests",
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
