//! Signing cost per delivery: `X-Hub-Signature` and the Standard Webhooks
//! header (one and two secrets, as during a rotation) over a 1 KiB body,
//! from a secret's prepared keys (what attempts use) and from the secret
//! itself (keyed anew each time), plus the hub signature over 64 KiB to show
//! the per-byte cost.

#![forbid(unsafe_code)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hookgate::signing::{SigningKeys, hub_signature, standard_key, standard_signature};
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
    g.bench_function("standard_signature/keyed_each_time", |b| {
        b.iter(|| {
            standard_signature(
                &standard_key(black_box(SECRET)),
                "dlv_01K0000000000000000000000",
                1_700_000_000,
                black_box(&kib),
            )
        })
    });
    let keys = SigningKeys::new(SECRET);
    let old = SigningKeys::new(OLD_SECRET);
    let std = |keys: &SigningKeys, out: &mut String| {
        keys.push_standard(out, "dlv_01K0000000000000000000000", 1_700_000_000, black_box(&kib));
    };
    g.bench_function("prepared/hub", |b| {
        b.iter(|| {
            let mut out = String::with_capacity(71);
            keys.push_hub(&mut out, black_box(&kib));
            out
        })
    });
    g.bench_function("prepared/standard_1_secret", |b| {
        b.iter(|| {
            let mut out = String::with_capacity(47);
            std(&keys, &mut out);
            out
        })
    });
    g.bench_function("prepared/standard_2_secrets", |b| {
        b.iter(|| {
            let mut out = String::with_capacity(95);
            std(&keys, &mut out);
            out.push(' ');
            std(&old, &mut out);
            out
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
