//! Warm instances: reused after clean calls, never after a failure, dropped
//! with their version on a reload, bounded under concurrency. The counter
//! plugin reports how many calls its instance has served (`x-calls`), so a
//! count of 1 means a fresh instance.

use hookgate::plugin::{PluginHandle, WarmLimits};
use hookgate_testkit::TempDir;

use super::*;

/// The calls the instance that ran this call has served, this one included.
async fn calls(host: &PluginHost, handle: &PluginHandle, cfg: &[(&str, &str)], limits: PluginLimits) -> u64 {
    let (_, headers) = forwarded(host.call(handle, input(&task()), &config(cfg), limits).await);
    header(&headers, "x-calls").expect("x-calls header").parse().unwrap()
}

async fn clean(host: &PluginHost, handle: &PluginHandle) -> u64 {
    calls(host, handle, &[], PluginLimits::default()).await
}

#[tokio::test]
async fn a_warm_instance_serves_later_calls() {
    let (p, host) = (plugins(), host());
    let handle = host.load(&p.hostile_counter, None).unwrap();
    assert_eq!(handle.idle_instances(), 0);
    for expected in 1..=5 {
        assert_eq!(clean(&host, &handle).await, expected);
        assert_eq!(handle.idle_instances(), 1);
        assert_eq!(host.idle_instances(), 1);
    }
    // validate-config runs on the same instance.
    host.validate_config(&handle, &[], PluginLimits::default())
        .await
        .unwrap();
    assert_eq!(clean(&host, &handle).await, 6);
}

/// A counter config that fails the call, its limits, the expected error.
type Failure = (&'static [(&'static str, &'static str)], PluginLimits, PluginError);

#[tokio::test]
async fn an_instance_that_failed_is_never_reused() {
    let (p, host) = (plugins(), host());
    let handle = host.load(&p.hostile_counter, None).unwrap();
    assert_eq!(clean(&host, &handle).await, 1);
    assert_eq!(clean(&host, &handle).await, 2);
    let cases: [Failure; 5] = [
        (
            &[("mode", "panic")],
            PluginLimits::default(),
            PluginError::Trap(String::new()),
        ),
        (
            &[("mode", "loop")],
            limits(50, 32),
            PluginError::Timeout(Duration::from_millis(50)),
        ),
        (
            &[("sleep_ms", "10000")],
            limits(50, 32),
            PluginError::Timeout(Duration::from_millis(50)),
        ),
        (&[("mode", "grow")], limits(1000, 16), PluginError::Memory(16 << 20)),
        (
            &[("mode", "error")],
            PluginLimits::default(),
            PluginError::Guest("counter error at call 3".into()),
        ),
    ];
    for (cfg, limits, expected) in cases {
        let err = host
            .call(&handle, input(&task()), &config(cfg), limits)
            .await
            .unwrap_err();
        match (&err, &expected) {
            // The failing call ran on the warm instance (its third call).
            (PluginError::Trap(m), PluginError::Trap(_)) => {
                assert!(m.contains("counter plugin panicked on purpose at call 3"), "{m}");
            }
            _ => assert_eq!(err, expected, "{cfg:?}"),
        }
        assert_eq!(handle.idle_instances(), 0, "{cfg:?}: the failed instance was kept");
        assert_eq!(
            clean(&host, &handle).await,
            1,
            "{cfg:?}: the next call is not on a fresh instance"
        );
        assert_eq!(clean(&host, &handle).await, 2, "{cfg:?}");
    }
}

#[tokio::test]
async fn a_warm_instance_holding_more_than_a_calls_memory_limit_is_not_used_for_it() {
    let (p, host) = (plugins(), host());
    let handle = host.load(&p.hostile_counter, None).unwrap();
    assert_eq!(clean(&host, &handle).await, 1);
    // The guest keeps 20 MiB for good; the call succeeds within 64 MiB.
    let hold = [("mode", "hold"), ("hold_mib", "20")];
    assert_eq!(calls(&host, &handle, &hold, limits(1000, 64)).await, 2);
    assert_eq!(handle.idle_instances(), 1);
    // Under a 16 MiB limit that instance does not qualify: a fresh one runs.
    assert_eq!(calls(&host, &handle, &[], limits(1000, 16)).await, 1);
    assert_eq!(calls(&host, &handle, &[], limits(1000, 16)).await, 2);
}

#[tokio::test]
async fn an_instance_is_retired_after_max_calls() {
    let p = plugins();
    let warm = WarmLimits {
        max_calls: 3,
        ..WarmLimits::default()
    };
    let host = PluginHost::with_warm_limits(&repo_root().join("target").join("plugin-test-cache"), 8, warm).unwrap();
    let handle = host.load(&p.hostile_counter, None).unwrap();
    let mut seen = Vec::new();
    for _ in 0..7 {
        seen.push(clean(&host, &handle).await);
    }
    assert_eq!(seen, [1, 2, 3, 1, 2, 3, 1]);
}

/// `wasm` with a custom section appended: the same code, a new version.
fn with_custom_section(wasm: &[u8]) -> Vec<u8> {
    let name = b"hookgate-test";
    let payload = b"v2";
    let mut out = wasm.to_vec();
    out.push(0); // custom section id
    out.push(u8::try_from(1 + name.len() + payload.len()).unwrap());
    out.push(u8::try_from(name.len()).unwrap());
    out.extend_from_slice(name);
    out.extend_from_slice(payload);
    out
}

#[tokio::test]
async fn a_reload_drops_the_old_versions_warm_instances() {
    let (p, host) = (plugins(), host());
    host.set_reload_interval(Duration::ZERO);
    let dir = TempDir::new("plugin-warm-reload");
    let path = dir.path().join("counter.wasm");
    let original = std::fs::read(&p.hostile_counter).unwrap();
    std::fs::write(&path, &original).unwrap();
    let handle = host.load(&path, None).unwrap();
    let old = handle.sha256();
    assert_eq!(clean(&host, &handle).await, 1);
    assert_eq!(clean(&host, &handle).await, 2);
    assert_eq!(host.idle_instances(), 1);

    let tmp = path.with_extension("new");
    std::fs::write(&tmp, with_custom_section(&original)).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    assert_eq!(
        clean(&host, &handle).await,
        1,
        "the new version runs on a fresh instance"
    );
    assert_ne!(handle.sha256(), old);
    assert_eq!(
        host.idle_instances(),
        1,
        "the old version's idle instance is gone, the new one's is kept"
    );
    assert_eq!(clean(&host, &handle).await, 2);
}

// Two workers and few calls: enough to overlap calls past the caps without
// starving the timing-sensitive tests running beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_beyond_the_idle_caps_all_succeed() {
    let p = plugins();
    // The allocator has room for 4 running + 3 idle instances, no more: any
    // slip in the accounting fails an instantiation, and so a call.
    let warm = WarmLimits {
        per_plugin: 2,
        total: 3,
        max_calls: 1000,
    };
    let host = PluginHost::with_warm_limits(&repo_root().join("target").join("plugin-test-cache"), 4, warm).unwrap();
    let counter = host.load(&p.hostile_counter, None).unwrap();
    let template = host.load(&p.template, None).unwrap();
    let redact = host.load(&p.redact, None).unwrap();
    for round in 0..2 {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..24 {
            let (host, handle, cfg) = match i % 3 {
                // Sleeps inside a WASI call, so calls overlap and every permit is used.
                0 => (host.clone(), counter.clone(), config(&[("sleep_ms", "5")])),
                1 => (host.clone(), template.clone(), vec![]),
                _ => (host.clone(), redact.clone(), config(&[("fields", "/task/owner")])),
            };
            tasks.spawn(async move { host.call(&handle, input(&task()), &cfg, PluginLimits::default()).await });
        }
        while let Some(result) = tasks.join_next().await {
            let verdict = result.unwrap();
            assert!(
                matches!(verdict, Ok(PluginVerdict::Forward { .. })),
                "round {round}: {verdict:?}"
            );
        }
        assert!(host.idle_instances() <= 3, "{}", host.idle_instances());
        for h in [&counter, &template, &redact] {
            assert!(h.idle_instances() <= 2, "{}: {}", h.name(), h.idle_instances());
        }
        let idle: usize = [&counter, &template, &redact].iter().map(|h| h.idle_instances()).sum();
        assert_eq!(idle, host.idle_instances());
        assert!(idle >= 1, "nothing was kept warm");
    }
}
