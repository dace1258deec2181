//! The GCRA decision (`Gcra::check`): admitted, refused, and a steady
//! stream through one bucket (what the Redis script mirrors per request).

#![forbid(unsafe_code)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hookgate::ratelimit::{Decision, Gcra};

fn gcra(c: &mut Criterion) {
    let g = Gcra::per_minute(600, 10);
    let mut group = c.benchmark_group("gcra_check");
    group.bench_function("allow_fresh", |b| {
        b.iter(|| g.check(black_box(None), black_box(1_000_000)))
    });
    group.bench_function("wait_over_limit", |b| {
        b.iter(|| g.check(black_box(Some(10_000_000)), black_box(1_000_000)))
    });
    group.bench_function("stream_1000", |b| {
        b.iter(|| {
            let mut tat = None;
            let mut admitted = 0u32;
            for i in 0..1000u64 {
                if let Decision::Allow { new_tat } = g.check(tat, black_box(i * 50_000)) {
                    tat = Some(new_tat);
                    admitted += 1;
                }
            }
            admitted
        })
    });
    group.finish();
}

criterion_group!(benches, gcra);
criterion_main!(benches);
