//! Cost of pricing one event: name resolution plus exact arithmetic (on every ingested event).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use goodhart_core::pricing::PriceTable;
use goodhart_core::usage::TokenCounts;

fn pricing(c: &mut Criterion) {
    let table = PriceTable::builtin();
    let tokens = TokenCounts {
        input: 1_200,
        output: 350,
        cache_read: 8_000,
        ..Default::default()
    };
    c.bench_function("price canonical name", |b| {
        b.iter(|| {
            table.cost_of(
                black_box(Some("anthropic")),
                black_box("claude-sonnet-4-5"),
                black_box(&tokens),
            )
        })
    });
    c.bench_function("price bedrock name", |b| {
        b.iter(|| {
            table.cost_of(
                None,
                black_box("us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
                black_box(&tokens),
            )
        })
    });
    c.bench_function("price unknown model", |b| {
        b.iter(|| table.cost_of(None, black_box("mystery-model-7"), black_box(&tokens)))
    });
}

criterion_group!(benches, pricing);
criterion_main!(benches);
