//! JavaScript and Python plugins through the real gateway: deliveries
//! transformed and signed as sent, hostile guests failing their attempts
//! while other webhooks are served, and a big plugin compiling (after a
//! hot swap) without holding up other webhooks' deliveries.

use std::time::Duration;

use hookgate::signing::verify_hub;
use hookgate::store::Status;
use hookgate_testkit::scripts::built_script_plugins;
use hookgate_testkit::wasm::{built_plugins, repo_root};
use hookgate_testkit::{Receiver, RedisServer, TempDir};
use serde_json::{Value, json};

use crate::common::*;

/// The plugin tests' shared cache: each component compiles once per checkout.
fn shared_cache() -> String {
    format!(
        "[plugins]\ncache_dir = \"{}\"\n\n",
        repo_root().join("target").join("plugin-test-cache").display()
    )
}

fn json_body(r: &hookgate_testkit::Received) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_go_through_javascript_and_python_plugins_and_hostile_ones_are_contained() {
    let s = built_script_plugins();
    let redis = RedisServer::start();
    let rx = Receiver::start().await;
    let key = "0123456789abcdef0123456789abcdef";
    let hooks = [
        shared_cache(),
        webhook("pager", &rx.url("/pager"), &["order.*"], ""),
        plugin(
            &s.pagerduty_js,
            &format!("routing_key = \"{key}\", summary_field = \"/order/title\""),
            "timeout = \"2s\"",
        ),
        webhook("masked", &rx.url("/masked"), &["order.*"], ""),
        plugin(&s.mask_py, "", "timeout = \"2s\""),
        // Both: the JavaScript output goes through the Python plugin.
        webhook("chained", &rx.url("/chained"), &["order.*"], ""),
        plugin(&s.pagerduty_js, &format!("routing_key = \"{key}\""), "timeout = \"2s\""),
        plugin(&s.mask_py, "", "timeout = \"2s\""),
        webhook("plain", &rx.url("/plain"), &["order.*"], ""),
        webhook("js_loop", &rx.url("/js_loop"), &["order.*"], "max_retries = 0"),
        plugin(&s.hostile_js, "mode = \"loop\"", "timeout = \"200ms\""),
        webhook("py_bomb", &rx.url("/py_bomb"), &["order.*"], "max_retries = 0"),
        plugin(
            &s.hostile_py,
            "mode = \"memory\"",
            "timeout = \"10s\"\nmax_memory = \"48MiB\"",
        ),
        webhook("js_throws", &rx.url("/js_throws"), &["order.*"], "max_retries = 0"),
        plugin(&s.hostile_js, "mode = \"throw\"", "timeout = \"2s\""),
    ]
    .concat();
    let (toml, prefix) = config_toml(&redis, FAST_DELIVERY, &hooks);
    let gw = Gateway::start(&toml).await;
    gw.serving().await;
    let data = r#"{"order":{"title":"Order 7 paid","card":"4111 1111 1111 1111","email":"ann@example.com"}}"#;
    let answer = gw.post_event("order.paid", data).await;

    let got = rx.wait_for("/pager", 1, Duration::from_secs(30)).await;
    let alert = json_body(&got[0]);
    assert_eq!(alert["routing_key"], key);
    assert_eq!(alert["dedup_key"], answer["id"]);
    assert_eq!(alert["payload"]["summary"], "Order 7 paid");
    assert_eq!(got[0].header("x-pagerduty-action"), Some("trigger"));
    assert!(verify_hub(
        "secret-pager-0123",
        &got[0].body,
        got[0].header("x-hub-signature").unwrap()
    ));

    let got = rx.wait_for("/masked", 1, Duration::from_secs(30)).await;
    assert_eq!(
        json_body(&got[0]),
        json!({"order": {"title": "Order 7 paid", "card": "**** **** **** 1111", "email": "a***@example.com"}})
    );
    assert_eq!(got[0].header("x-masked"), Some("2"));
    assert!(verify_hub(
        "secret-masked-0123",
        &got[0].body,
        got[0].header("x-hub-signature").unwrap()
    ));

    let got = rx.wait_for("/chained", 1, Duration::from_secs(30)).await;
    let alert = json_body(&got[0]);
    assert_eq!(
        alert["payload"]["custom_details"]["order"]["card"], "**** **** **** 1111",
        "the Python plugin masked the JavaScript plugin's output: {alert}"
    );
    rx.wait_for("/plain", 1, Duration::from_secs(30)).await;

    let store = store(&redis, &prefix);
    for (webhook, expect) in [
        ("js_loop", "timed out after 200ms".to_owned()),
        ("py_bomb", "memory limit of 48 MiB".to_owned()),
        ("js_throws", "hostile plugin threw on purpose for order.paid".to_owned()),
    ] {
        let rec = wait_status(
            &store,
            &delivery_to(&answer, webhook),
            Status::Dead,
            Duration::from_secs(30),
        )
        .await;
        let err = rec.attempts[0].error.as_deref().unwrap();
        assert!(err.starts_with("plugin: ") && err.contains(&expect), "{webhook}: {err}");
    }
    assert!(rx.received_on("/js_loop").is_empty() && rx.received_on("/py_bomb").is_empty());
    // The gateway goes on serving.
    gw.post_event("order.paid", data).await;
    rx.wait_for("/masked", 2, Duration::from_secs(30)).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiling_a_big_plugin_does_not_hold_up_other_webhooks() {
    let (rust, s) = (built_plugins(), built_script_plugins());
    let redis = RedisServer::start();
    let rx = Receiver::start().await;
    // A cache of its own: the Python component must really compile here.
    let dir = TempDir::new("plugins-big-swap");
    let cache = dir.path().join("cache");
    let live = dir.path().join("live.wasm");
    std::fs::copy(&rust.template, &live).unwrap();
    let hooks = [
        format!("[plugins]\ncache_dir = \"{}\"\n\n", cache.display()),
        webhook("swapped", &rx.url("/swapped"), &["*"], "timeout = \"5s\""),
        plugin(&live, "", "timeout = \"2s\""),
        webhook("other", &rx.url("/other"), &["*"], ""),
    ]
    .concat();
    let (toml, _) = config_toml(&redis, FAST_DELIVERY, &hooks);
    let gw = Gateway::start(&toml).await;
    gw.serving().await;
    gw.post_event("a.b", r#"{"email":"ann@example.com"}"#).await;
    rx.wait_for("/swapped", 1, Duration::from_secs(20)).await;
    rx.wait_for("/other", 1, Duration::from_secs(20)).await;

    // Deploy the Python masking plugin over the Rust pass-through one; the
    // next delivery through it compiles the 18 MiB component (seconds).
    let wasm = std::fs::read(&s.mask_py).unwrap();
    let sha: String = hex::encode(hookgate::plugin::cache::sha256(&wasm));
    let next = dir.path().join("next.wasm");
    std::fs::write(&next, &wasm).unwrap();
    std::fs::rename(&next, &live).unwrap();
    let compiled = || {
        std::fs::read_dir(&cache)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(&sha))
    };
    // The reload is checked at most every 250 ms: let one delivery start it
    // (a delivery is claimed within milliseconds; the compile then takes
    // seconds).
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.post_event("a.b", r#"{"email":"bo@example.com"}"#).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // While it compiles, another webhook's deliveries go out.
    for i in 0..3 {
        gw.post_event("c.d", &format!("{{\"i\":{i}}}")).await;
    }
    // Five: the two earlier events (it takes every type) and these three.
    let other = rx.wait_for("/other", 5, Duration::from_secs(20)).await;
    assert!(
        !compiled(),
        "the other webhook was served only after the compile finished"
    );
    for i in 0..3 {
        assert!(other.iter().any(|r| json_body(r) == json!({"i": i})), "{i}");
    }
    // And the swapped plugin is in use once compiled.
    hookgate_testkit::wait_until(Duration::from_secs(120), "the Python plugin to mask emails", || async {
        rx.received_on("/swapped")
            .iter()
            .any(|r| json_body(r).get("email") == Some(&json!("b***@example.com")))
            .then_some(())
    })
    .await;
    assert!(compiled());
    gw.stop().await;
}
