//! The retry schedule: `RetryPolicy::next_delay` with jitter, with a
//! `Retry-After` floor, and past the budget.

#![forbid(unsafe_code)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use hookgate::retry::RetryPolicy;

fn retry(c: &mut Criterion) {
    let p = RetryPolicy {
        max_retries: 10,
        base: Duration::from_secs(5),
        factor: 5,
        max_delay: Duration::from_secs(36_000),
        jitter: 0.1,
    };
    let mut g = c.benchmark_group("retry_next_delay");
    g.bench_function("jittered", |b| {
        b.iter(|| p.next_delay(black_box(3), None, black_box(0.37)))
    });
    g.bench_function("retry_after_floor", |b| {
        b.iter(|| p.next_delay(black_box(2), Some(Duration::from_secs(90)), black_box(-0.5)))
    });
    g.bench_function("capped_high_attempt", |b| {
        b.iter(|| p.next_delay(black_box(10), None, black_box(1.0)))
    });
    g.bench_function("budget_spent", |b| {
        b.iter(|| p.next_delay(black_box(11), None, black_box(0.0)))
    });
    g.finish();
}

criterion_group!(benches, retry);
criterion_main!(benches);
