//! Cost of fingerprinting one call's prompt and completion (SimHashes and the completion's
//! compressibility), which the gateway does inline for every call it records.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use goodhart_core::fingerprint::{Fingerprints, compress_permille, simhash};

fn fingerprint(c: &mut Criterion) {
    let prompt = "Refactor the payment module so that refunds go through the ledger, and add tests. ".repeat(20);
    let short = "Done: refunds now post to the ledger; 4 tests added.";
    let long = "The refund path now writes a ledger entry before it calls the processor. ".repeat(60);
    for (name, completion) in [("short completion", short), ("4 KB completion", long.as_str())] {
        c.bench_function(&format!("compress_permille, {name}"), |b| {
            b.iter(|| compress_permille(black_box(completion)))
        });
        c.bench_function(&format!("simhash, {name}"), |b| {
            b.iter(|| simhash(black_box(completion)))
        });
        c.bench_function(&format!("Fingerprints::of, 1.6 KB prompt and {name}"), |b| {
            b.iter(|| Fingerprints::of(black_box(Some(&prompt)), black_box(Some(completion))))
        });
    }
}

criterion_group!(benches, fingerprint);
criterion_main!(benches);
