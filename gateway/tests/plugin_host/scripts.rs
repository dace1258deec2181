//! JavaScript (componentize-js) and Python (componentize-py) plugins: the
//! templates and examples transform as documented, hostile guests fail with
//! the exact error and leave the host (and their own plugin) working, the
//! sandbox holds, warm instances are reused, and the compiled component is
//! cached. Built once per run by `hookgate_testkit::scripts`.

use std::time::Instant;

use hookgate::plugin::CacheOutcome;
use hookgate_testkit::scripts::{ScriptPlugins, built_script_plugins};

use super::*;

fn scripts() -> &'static ScriptPlugins {
    built_script_plugins()
}

/// Generous limits for calls that must succeed on a loaded machine.
fn roomy() -> PluginLimits {
    limits(5_000, 64)
}

#[tokio::test]
async fn templates_forward_unchanged_and_examples_transform() {
    let (s, host) = (scripts(), host());
    for template in [&s.template_js, &s.template_py] {
        let handle = host.load(template, None).unwrap();
        let v = host.call(&handle, input(&task()), &[], roomy()).await;
        assert_eq!(
            v,
            Ok(PluginVerdict::Forward {
                body: input(&task()).body,
                headers: input(&task()).headers,
            }),
            "{}",
            template.display()
        );
        // The templates take no config and say so.
        let err = host
            .validate_config(&handle, &config(&[("x", "1")]), roomy())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, PluginError::Config(m) if m.contains("unknown config key")),
            "{err:?}"
        );
    }

    let key = "0123456789abcdef0123456789abcdef";
    let pd = host.load(&s.pagerduty_js, None).unwrap();
    let cfg = config(&[
        ("routing_key", key),
        ("summary_field", "/task/title"),
        ("severity", "warning"),
    ]);
    host.validate_config(&pd, &cfg, roomy()).await.unwrap();
    let (alert, headers) = forwarded(host.call(&pd, input(&task()), &cfg, roomy()).await);
    assert_eq!(alert["routing_key"], key);
    assert_eq!(alert["event_action"], "trigger");
    assert_eq!(alert["dedup_key"], EVENT_ID);
    assert_eq!(alert["payload"]["summary"], "Ship <v2>");
    assert_eq!(alert["payload"]["severity"], "warning");
    assert_eq!(alert["payload"]["source"], "hookgate/orders");
    assert_eq!(alert["payload"]["custom_details"], task());
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    assert_eq!(header(&headers, "x-pagerduty-action"), Some("trigger"));
    assert_eq!(header(&headers, "x-team"), Some("billing"), "other headers are kept");
    let resolve = config(&[("routing_key", key), ("resolve_types", "task.completed")]);
    let (alert, _) = forwarded(host.call(&pd, input(&task()), &resolve, roomy()).await);
    assert_eq!(alert["event_action"], "resolve");
    assert!(alert.get("payload").is_none(), "{alert}");
    let err = host.validate_config(&pd, &config(&[]), roomy()).await.unwrap_err();
    assert!(
        matches!(&err, PluginError::Config(m) if m.contains("routing_key is required")),
        "{err:?}"
    );
    // A thrown error is the plugin's error, message and all.
    let not_json = PluginInput {
        body: Bytes::from_static(b"not json"),
        ..input(&task())
    };
    let err = host.call(&pd, not_json, &cfg, roomy()).await.unwrap_err();
    assert!(
        matches!(&err, PluginError::Guest(m) if m.starts_with("the event body is not JSON")),
        "{err:?}"
    );

    let mask = host.load(&s.mask_py, None).unwrap();
    let order = json!({
        "card": "4111 1111 1111 1111",
        "note": "call 4111111111111112 or mail ann.lee@example.com",
        "items": [{"pan": "5500-0000-0000-0004"}],
        "support": "help@example.com",
    });
    let cfg = config(&[("skip_fields", "support")]);
    host.validate_config(&mask, &cfg, roomy()).await.unwrap();
    let (masked, headers) = forwarded(host.call(&mask, input(&order), &cfg, roomy()).await);
    assert_eq!(
        masked,
        json!({
            "card": "**** **** **** 1111",
            "note": "call 4111111111111112 or mail a***@example.com",
            "items": [{"pan": "****-****-****-0004"}],
            "support": "help@example.com",
        }),
        "Luhn-invalid numbers and skipped fields are left alone"
    );
    assert_eq!(header(&headers, "x-masked"), Some("3"));
    let err = host
        .validate_config(&mask, &config(&[("keep_last", "9")]), roomy())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PluginError::Config(m) if m.contains("keep_last")),
        "{err:?}"
    );
}

#[tokio::test]
async fn hostile_javascript_and_python_plugins_fail_with_the_exact_error() {
    let (s, host) = (scripts(), host());
    for (plugin, raise, said) in [
        (
            &s.hostile_js,
            "throw",
            "hostile plugin threw on purpose for task.completed",
        ),
        (
            &s.hostile_py,
            "raise",
            "hostile plugin raised on purpose for task.completed",
        ),
    ] {
        let handle = host.load(plugin, None).unwrap();
        let call = |cfg: Vec<(String, String)>, l: PluginLimits| {
            let (host, handle) = (host.clone(), handle.clone());
            async move { host.call(&handle, input(&task()), &cfg, l).await }
        };
        let name = plugin.display();

        let started = Instant::now();
        let err = call(config(&[("mode", "loop")]), limits(200, 32)).await.unwrap_err();
        assert_eq!(err, PluginError::Timeout(Duration::from_millis(200)), "{name}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{name}: {:?}",
            started.elapsed()
        );

        let err = host
            .validate_config(&handle, &config(&[("validate", "loop")]), limits(200, 32))
            .await
            .unwrap_err();
        assert_eq!(err, PluginError::Timeout(Duration::from_millis(200)), "{name}");

        let err = call(config(&[("mode", "memory")]), limits(10_000, 48))
            .await
            .unwrap_err();
        assert_eq!(err, PluginError::Memory(48 << 20), "{name}");
        assert!(err.to_string().contains("max_memory"), "{err}");

        let err = call(config(&[("mode", raise)]), roomy()).await.unwrap_err();
        assert_eq!(err, PluginError::Guest(said.into()), "{name}");

        // After each failure the plugin still works (on a fresh instance).
        let (body, _) = forwarded(call(Vec::new(), roomy()).await);
        assert_eq!(body, task(), "{name}");
    }
}

#[tokio::test]
async fn a_javascript_promise_is_settled_and_a_rejection_is_the_plugins_error() {
    let (s, host) = (scripts(), host());
    let handle = host.load(&s.hostile_js, None).unwrap();
    let (body, _) = forwarded(
        host.call(&handle, input(&task()), &config(&[("mode", "async")]), roomy())
            .await,
    );
    assert_eq!(body, json!({"async": true}));
    let err = host
        .call(&handle, input(&task()), &config(&[("mode", "reject")]), roomy())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PluginError::Guest("hostile plugin rejected on purpose for task.completed".into())
    );
}

#[tokio::test]
async fn a_memory_limit_too_small_to_start_the_plugin_is_named() {
    let (s, host) = (scripts(), host());
    for plugin in [&s.template_js, &s.template_py] {
        let handle = host.load(plugin, None).unwrap();
        let err = host
            .call(&handle, input(&task()), &[], limits(1_000, 4))
            .await
            .unwrap_err();
        assert_eq!(err, PluginError::Memory(4 << 20), "{}", plugin.display());
        assert!(
            err.to_string()
                .contains("memory limit of 4 MiB (its `max_memory` limit"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn python_plugins_get_no_files_network_environment_or_arguments() {
    let (s, host) = (scripts(), host());
    let handle = host.load(&s.hostile_py, None).unwrap();
    // A listener the guest would reach if it had sockets.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let cfg = [("mode", "probe"), ("port", port.as_str())];
    let (report, _) = forwarded(host.call(&handle, input(&task()), &config(&cfg), roomy()).await);
    let report = report.as_object().unwrap().clone();
    assert_eq!(report.len(), 8, "{report:?}");
    for (what, result) in &report {
        let result = result.as_str().unwrap();
        assert!(
            result.starts_with("denied: ") || result == "empty",
            "{what}: {result} (full report: {report:?})"
        );
    }
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "nothing connected");
}

#[tokio::test]
async fn warm_instances_of_big_plugins_are_reused_and_dropped_after_a_failure() {
    let (s, host) = (scripts(), host());
    for (plugin, raise) in [(&s.hostile_js, "throw"), (&s.hostile_py, "raise")] {
        let handle = host.load(plugin, None).unwrap();
        let count = || async {
            let (_, headers) = forwarded(
                host.call(&handle, input(&task()), &config(&[("mode", "counter")]), roomy())
                    .await,
            );
            header(&headers, "x-calls").unwrap().parse::<u32>().unwrap()
        };
        assert_eq!(count().await, 1);
        assert_eq!(count().await, 2);
        assert_eq!(count().await, 3);
        assert_eq!(handle.idle_instances(), 1);
        assert!(handle.peak_memory() > 1 << 20, "{}", handle.peak_memory());
        let failed = host
            .call(&handle, input(&task()), &config(&[("mode", raise)]), roomy())
            .await;
        assert!(matches!(failed, Err(PluginError::Guest(_))), "{failed:?}");
        assert_eq!(
            count().await,
            1,
            "{}: a fresh instance after the failure",
            plugin.display()
        );
    }
}

#[test]
fn big_plugins_are_compiled_once_into_the_cache() {
    let s = scripts();
    let first = host();
    for plugin in [&s.template_js, &s.template_py] {
        let handle = first.load(plugin, None).unwrap();
        let wasm = std::fs::read(plugin).unwrap();
        let entry = first.cache_path(&hookgate::plugin::cache::sha256(&wasm));
        assert!(entry.is_file(), "{} cached as {}", plugin.display(), entry.display());
        // The same host keeps the loaded plugin; another one reads the cache.
        assert!(first.cached(plugin, None).is_some());
        drop(handle);
        let second = host();
        let again = second.load(plugin, None).unwrap();
        assert_eq!(again.cache_outcome(), CacheOutcome::Hit, "{}", plugin.display());
    }
}

/// The examples carry copies of their template's runtime and build files
/// (each folder must build on its own); the copies must not drift.
#[test]
fn examples_carry_their_templates_runtime_unchanged() {
    let plugins = repo_root().join("plugins");
    for (template, example, files) in [
        (
            "template-js",
            "pagerduty-js",
            &["src/index.js", "src/hookgate.js", "build.mjs", ".gitignore"][..],
        ),
        (
            "template-py",
            "mask-py",
            &[
                "src/main.py",
                "src/hookgate.py",
                "build.sh",
                "requirements.txt",
                ".gitignore",
            ][..],
        ),
    ] {
        for file in files {
            let read = |dir: &str| std::fs::read_to_string(plugins.join(dir).join(file)).unwrap();
            assert_eq!(
                read(template),
                read(example),
                "plugins/{example}/{file} differs from plugins/{template}/{file}"
            );
        }
    }
    let lock = |dir: &str| -> Value {
        let text = std::fs::read_to_string(plugins.join(dir).join("package-lock.json")).unwrap();
        let mut lock: Value = serde_json::from_str(&text).unwrap();
        let packages = lock["packages"].as_object_mut().unwrap();
        packages.remove("");
        lock["packages"].clone()
    };
    assert_eq!(lock("template-js"), lock("pagerduty-js"), "the same toolchain versions");
}
