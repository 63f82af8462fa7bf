//! Cost of the limit decisions on the request path: finding a call's worst case, admitting it
//! against five applicable budgets and its key's two rate limits from the slices an instance
//! holds, and settling it; and computing a budget's calendar window.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "a benchmark stops at the first broken step of its setup, and spawns what it drives freely"
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use goodhart_core::Micros;
use goodhart_core::budgets::{self, Action, Budget, BudgetScope, Period, Window};
use goodhart_core::keys::RateLimits;
use goodhart_core::limits::{Amount, BudgetWindow, Call, Check, Ledger, Spent};
use goodhart_core::money::Nanos;
use goodhart_core::pricing::PriceTable;
use goodhart_core::usage::Attribution;

/// The key, its user, its team and two organisation budgets, all hard caps with room to spare.
fn five_budgets() -> Vec<BudgetWindow> {
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
        .map(|(i, scope)| BudgetWindow {
            budget: Budget {
                id: format!("b{i}"),
                scope,
                period: Period::Total,
                limit: Nanos(1 << 60),
                token_limit: None,
                action: Action::Block,
                thresholds: vec![50, 80, 100],
                timezone: "UTC".into(),
                created_at: Micros(0),
                when_unreachable: None,
            },
            window: Window {
                start: Micros(0),
                end: None,
            },
            spent: Amount::ZERO,
        })
        .collect()
}

fn budget_check(c: &mut Criterion) {
    let prices = PriceTable::builtin();
    let price = prices.resolve(None, "claude-sonnet-4-5").unwrap();
    let alice = Attribution {
        user: "alice".into(),
        team: Some("payments".into()),
        ..Default::default()
    };
    let rates = RateLimits {
        requests_per_minute: Some(1 << 40),
        tokens_per_minute: Some(1 << 40),
    };
    let mut ledger = Ledger::new();
    ledger.load(five_budgets());
    let call = |cost| Call {
        key_id: "0123456789ab",
        rates,
        who: &alice,
        cost: Some(cost),
        tokens: 44_000,
    };
    // Slices that last the whole run: the store is not part of this measurement.
    if let Check::Short(short) = ledger.check(&call(Nanos(1)), Micros(0)) {
        for shortfall in short.iter() {
            ledger.credit(
                &shortfall.pool.id(),
                Amount {
                    cost: Nanos(1 << 60),
                    tokens: 1 << 60,
                    requests: 1 << 60,
                },
            );
        }
    }
    let mut group = c.benchmark_group("budget check");
    group.bench_function(
        "worst case + admission against 5 budgets and 2 rate limits + settlement",
        |b| {
            b.iter(|| {
                let input = budgets::estimate_input_tokens(black_box(40_000));
                let cost = budgets::worst_case_cost(price, input, 4_096);
                let Check::Admitted(hold) = ledger.check(&call(cost), Micros(1)) else {
                    panic!("the slices hold enough for the whole run");
                };
                let spent = Spent {
                    key_id: "0123456789ab",
                    who: &alice,
                    at: Micros(1),
                    cost: Nanos(cost.0 / 2),
                    tokens: 20_000,
                };
                ledger.settle(hold, &spent)
            })
        },
    );
    let paris = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
    group.bench_function("monthly window in Europe/Paris", |b| {
        b.iter(|| budgets::window(Period::Month, &paris, black_box(Micros(1_795_000_000_000_000))))
    });
    group.finish();
}

criterion_group!(benches, budget_check);
criterion_main!(benches);
