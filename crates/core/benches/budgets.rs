//! Cost of the budget decisions on the request path: finding a call's worst case and
//! admitting it against five applicable budgets, and computing a budget's calendar window.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use goodhart_core::Micros;
use goodhart_core::budgets::{self, Limits, Period, Usage};
use goodhart_core::money::Nanos;
use goodhart_core::pricing::PriceTable;

fn budget_check(c: &mut Criterion) {
    let prices = PriceTable::builtin();
    let price = prices.resolve(None, "claude-sonnet-4-5").unwrap();
    let five: Vec<(Limits, Usage)> = (1..=5)
        .map(|i| {
            (
                Limits {
                    usd: Nanos(i * 100_000_000_000),
                    tokens: None,
                },
                Usage {
                    spent: Nanos(i * 10_000_000_000),
                    reserved: Nanos(1_000_000_000),
                    ..Default::default()
                },
            )
        })
        .collect();
    let mut group = c.benchmark_group("budget check");
    group.bench_function("worst case + admit against 5 budgets", |b| {
        b.iter(|| {
            let cost = budgets::worst_case_cost(price, budgets::estimate_input_tokens(black_box(40_000)), 4_096);
            budgets::admit(black_box(&five), cost, 0)
        })
    });
    let paris = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
    group.bench_function("monthly window in Europe/Paris", |b| {
        b.iter(|| budgets::window(Period::Month, &paris, black_box(Micros(1_795_000_000_000_000))))
    });
    group.finish();
}

criterion_group!(benches, budget_check);
criterion_main!(benches);
