//! Per-call cost of the plugin host: a 1 KiB JSON event through the
//! pass-through template plugin (host overhead: a warm instance, limits,
//! copying in and out) and through `redact` (plus the guest's JSON work);
//! `pass_through_fresh` is the template with warm reuse off (a fresh
//! instance per call). The plugins are built from source first (once) by
//! the test kit.

#![forbid(unsafe_code)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use hookgate::plugin::{PluginHost, PluginInput, PluginLimits, WarmLimits};
use hookgate_testkit::wasm::{built_plugins, repo_root};

fn event() -> Bytes {
    let mut items = Vec::new();
    while serde_json::to_vec(&items).map_or(0, |v| v.len()) < 1000 {
        items.push(serde_json::json!({"id": items.len(), "email": "someone@example.com", "ok": true}));
    }
    Bytes::from(serde_json::to_vec(&serde_json::json!({"customer": {"email": "a@b.c"}, "items": items})).unwrap())
}

fn plugin_call(c: &mut Criterion) {
    let plugins = built_plugins();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache = repo_root().join("target").join("plugin-bench-cache");
    let host = PluginHost::new(&cache, 8).unwrap();
    let cold = WarmLimits {
        per_plugin: 0,
        ..WarmLimits::default()
    };
    let fresh_host = PluginHost::with_warm_limits(&cache, 8, cold).unwrap();
    let body = event();
    let mut g = c.benchmark_group("plugin_call_1KiB");
    for (name, host, path, config) in [
        ("pass_through", &host, &plugins.template, vec![]),
        (
            "redact",
            &host,
            &plugins.redact,
            vec![("fields".to_owned(), "/customer/email".to_owned())],
        ),
        ("pass_through_fresh", &fresh_host, &plugins.template, vec![]),
    ] {
        let handle = host.load(path, None).unwrap();
        g.bench_function(name, |b| {
            b.iter(|| {
                let input = PluginInput {
                    event_id: "evt_01K0000000000000000000000",
                    event_type: "order.created",
                    webhook_id: "bench",
                    headers: vec![("content-type".into(), "application/json".into())],
                    body: body.clone(),
                };
                rt.block_on(host.call(&handle, black_box(input), &config, PluginLimits::default()))
                    .unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, plugin_call);
criterion_main!(benches);
