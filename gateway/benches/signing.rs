//! Signing cost per delivery: `X-Hub-Signature` and the Standard Webhooks
//! header (one and two secrets, as during a rotation) over a 1 KiB body,
//! plus the hub signature over 64 KiB to show the per-byte cost.

#![forbid(unsafe_code)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hookgate::signing::{hub_signature, standard_signature_header};
use std::hint::black_box;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_SECRET: &str = "an-older-plain-secret-still-in-grace";

fn body(n: usize) -> Vec<u8> {
    let mut b = b"{\"pad\":\"".to_vec();
    b.resize(n - 2, b'x');
    b.extend_from_slice(b"\"}");
    b
}

fn signing(c: &mut Criterion) {
    let kib = body(1024);
    let mut g = c.benchmark_group("signing_1KiB");
    g.throughput(Throughput::Bytes(kib.len() as u64));
    g.bench_function("hub_signature", |b| {
        b.iter(|| hub_signature(black_box(SECRET), black_box(&kib)))
    });
    g.bench_function("standard_signature_header/1_secret", |b| {
        b.iter(|| {
            standard_signature_header(
                [black_box(SECRET)],
                "dlv_01K0000000000000000000000",
                1_700_000_000,
                black_box(&kib),
            )
        })
    });
    g.bench_function("standard_signature_header/2_secrets", |b| {
        b.iter(|| {
            standard_signature_header(
                [black_box(SECRET), black_box(OLD_SECRET)],
                "dlv_01K0000000000000000000000",
                1_700_000_000,
                black_box(&kib),
            )
        })
    });
    g.finish();

    let big = body(64 * 1024);
    let mut g = c.benchmark_group("signing_64KiB");
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("hub_signature", |b| {
        b.iter(|| hub_signature(black_box(SECRET), black_box(&big)))
    });
    g.finish();
}

criterion_group!(benches, signing);
criterion_main!(benches);
