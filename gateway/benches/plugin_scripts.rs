//! JavaScript and Python plugins: a warm call on a 1 KiB JSON event through
//! the pass-through templates (`template-js`, `template-py`) and the
//! examples (`pagerduty-js`, `mask-py`), with criterion; before that, once
//! per plugin and printed, what criterion cannot time well: the first
//! compile (no cache), a load from the on-disk cache, the first call on a
//! fresh instance, and the memory one warm instance holds (its linear
//! memory, and the process RSS it adds). The components are built by the
//! test kit (`hookgate_testkit::scripts`).
//!
//! `cargo bench -p hookgate --bench plugin_scripts`

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use hookgate::plugin::{PluginHandle, PluginHost, PluginInput, PluginLimits};
use hookgate_testkit::TempDir;
use hookgate_testkit::scripts::built_script_plugins;
use hookgate_testkit::wasm::repo_root;

fn event() -> Bytes {
    let mut items = Vec::new();
    while serde_json::to_vec(&items).map_or(0, |v| v.len()) < 1000 {
        items.push(serde_json::json!({"id": items.len(), "email": "someone@example.com", "ok": true}));
    }
    Bytes::from(serde_json::to_vec(&serde_json::json!({"customer": {"email": "a@b.c"}, "items": items})).unwrap())
}

fn input(body: &Bytes) -> PluginInput<'static> {
    PluginInput {
        event_id: "evt_01K0000000000000000000000",
        event_type: "order.created",
        webhook_id: "bench",
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.clone(),
    }
}

/// Resident set size of this process, from /proc.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// Compile, cache load, first call and warm-instance memory for one plugin,
/// printed on one line.
fn one_off(rt: &tokio::runtime::Runtime, name: &str, path: &Path, config: &[(String, String)], body: &Bytes) {
    let limits = PluginLimits::default();
    let cold = TempDir::new("bench-compile");
    let started = Instant::now();
    let host = PluginHost::new(cold.path(), 16).unwrap();
    host.load(path, None).unwrap();
    let compile = started.elapsed();
    // Another host on the same cache: a load from the cache.
    let host = PluginHost::new(cold.path(), 16).unwrap();
    let started = Instant::now();
    let handle = host.load(path, None).unwrap();
    let load = started.elapsed();
    // The first call instantiates; the instance then stays warm in the pool.
    let before = rss();
    let started = Instant::now();
    rt.block_on(host.call(&handle, input(body), config, limits)).unwrap();
    let first = started.elapsed();
    let added = rss().saturating_sub(before);
    assert_eq!(handle.idle_instances(), 1);
    println!(
        "{name}: {:.1} MiB component; compile {:.2} s, cache load {:.1} ms, first call on a fresh instance {:.2} ms; \
         one warm instance: {:.1} MiB linear memory, +{:.1} MiB process RSS",
        mib(std::fs::metadata(path).unwrap().len()),
        compile.as_secs_f64(),
        load.as_secs_f64() * 1000.0,
        first.as_secs_f64() * 1000.0,
        mib(handle.peak_memory()),
        mib(added),
    );
}

/// A benchmarked plugin: name, component, config.
type Case<'a> = (&'static str, &'a Path, Vec<(String, String)>);

fn script_plugin_call(c: &mut Criterion) {
    let s = built_script_plugins();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = event();
    let pd_config = vec![("routing_key".to_owned(), "0123456789abcdef0123456789abcdef".to_owned())];
    let plugins: [Case<'_>; 4] = [
        ("template_js", &s.template_js, vec![]),
        ("pagerduty_js", &s.pagerduty_js, pd_config),
        ("template_py", &s.template_py, vec![]),
        ("mask_py", &s.mask_py, vec![]),
    ];
    if std::env::var_os("HOOKGATE_BENCH_SKIP_ONE_OFF").is_none() {
        for (name, path, config) in &plugins {
            one_off(&rt, name, path, config, &body);
        }
    }
    let host = PluginHost::new(&repo_root().join("target").join("plugin-bench-cache"), 8).unwrap();
    let mut g = c.benchmark_group("script_plugin_call_1KiB");
    g.measurement_time(Duration::from_secs(5));
    for (name, path, config) in &plugins {
        let handle: PluginHandle = host.load(path, None).unwrap();
        g.bench_function(*name, |b| {
            b.iter(|| {
                rt.block_on(host.call(&handle, black_box(input(&body)), config, PluginLimits::default()))
                    .unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, script_plugin_call);
criterion_main!(benches);
