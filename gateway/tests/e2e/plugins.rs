//! WebAssembly plugins through the real gateway: transformations signed as
//! sent, filtering, hostile plugins contained, on_error = "skip", hot reload
//! under load, validation on registration and in `hookgate check`.

use std::time::Duration;

use hookgate::signing::verify_hub;
use hookgate::store::Status;
use hookgate_testkit::wasm::built_plugins;
use hookgate_testkit::{Receiver, TempDir};
use serde_json::{Value, json};

use crate::common::*;

/// A `[plugins]` section caching into `dir`.
fn json_body(r: &hookgate_testkit::Received) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

async fn example_plugins_transform_and_the_signature_covers_what_is_sent(backend: Backend) {
    let p = built_plugins();
    let db = TestStore::start(backend);
    // Metric labels are process-wide: a webhook name of its own per backend.
    let only_done = format!("only_done_{}", backend.tag());
    let rx = Receiver::start().await;
    let dir = TempDir::new("plugins-e2e");
    let hooks = [
        plugins_section(&dir),
        webhook("redacted", &rx.url("/redacted"), &["task.*"], ""),
        plugin(&p.redact, "fields = \"/task/owner/email\"", ""),
        webhook("cloud", &rx.url("/cloud"), &["task.*"], ""),
        plugin(&p.redact, "fields = \"/task/owner\"", ""),
        plugin(&p.cloudevents, "", ""),
        webhook("slack", &rx.url("/slack"), &["task.*"], ""),
        plugin(
            &p.slack,
            "template = \"{{type}}: {{/task/title}} is {{/task/status}}\"",
            "",
        ),
        webhook(&only_done, &rx.url("/done"), &["task.*"], ""),
        plugin(
            &p.event_filter,
            "field = \"/task/status\", op = \"eq\", value = \"done\"",
            "",
        ),
    ]
    .concat();
    let (toml, prefix) = config_toml(&db, FAST_DELIVERY, &hooks);
    let gw = Gateway::start(&toml).await;
    let done = r#"{"task":{"title":"Ship","status":"done","owner":{"name":"Ann","email":"ann@example.com"}}}"#;
    let open = r#"{"task":{"title":"Plan","status":"open","owner":{"name":"Bo","email":"bo@example.com"}}}"#;
    let first = gw.post_event("task.completed", done).await;
    let second = gw.post_event("task.updated", open).await;

    let r = rx.wait_for("/redacted", 2, Duration::from_secs(20)).await;
    let bodies: Vec<Value> = r.iter().map(json_body).collect();
    assert!(
        bodies.contains(&json!({"task":{"title":"Ship","status":"done","owner":{"name":"Ann"}}})),
        "{bodies:?}"
    );
    for got in &r {
        let secret = "secret-redacted-0123";
        assert!(
            verify_hub(secret, &got.body, got.header("x-hub-signature").unwrap()),
            "signed over the new body"
        );
        assert!(!String::from_utf8_lossy(&got.body).contains("@example.com"));
    }

    let c = rx.wait_for("/cloud", 2, Duration::from_secs(20)).await;
    let env = c.iter().map(json_body).find(|b| b["type"] == "task.completed").unwrap();
    assert_eq!(env["specversion"], "1.0");
    assert_eq!(env["source"], "hookgate/cloud");
    assert_eq!(env["id"], first["id"]);
    assert_eq!(
        env["data"],
        json!({"task":{"title":"Ship","status":"done"}}),
        "the chain ran in order"
    );
    assert_eq!(c[0].header("content-type"), Some("application/cloudevents+json"));

    let s = rx.wait_for("/slack", 2, Duration::from_secs(20)).await;
    let texts: Vec<Value> = s.iter().map(|r| json_body(r)["text"].clone()).collect();
    assert!(texts.contains(&json!("task.completed: Ship is done")), "{texts:?}");

    // The filter forwards the done task and drops the open one.
    let d = rx.wait_for("/done", 1, Duration::from_secs(20)).await;
    assert_eq!(json_body(&d[0])["task"]["status"], "done");
    let store = store(&db, &prefix);
    let dropped = delivery_to(&second, &only_done);
    let rec = wait_status(&store, &dropped, Status::Filtered, Duration::from_secs(10)).await;
    assert!(
        rec.attempts[0].filtered.as_deref().is_some_and(|r| !r.is_empty()) && rec.attempts[0].error.is_none(),
        "a filter is an outcome with its reason, not an error: {:?}",
        rec.attempts
    );
    assert_eq!(rec.attempts[0].status_code, None);

    // The payload as last sent is the transformed one.
    let redacted = delivery_to(&first, "redacted");
    if let TestStore::Redis(redis) = &db {
        // The store keeps a copy of what was sent only when a plugin
        // changed it; the filter forwarded its body unchanged.
        let forwarded = delivery_to(&first, &only_done);
        wait_status(&store, &forwarded, Status::Succeeded, Duration::from_secs(10)).await;
        wait_status(&store, &redacted, Status::Succeeded, Duration::from_secs(10)).await;
        let mut conn = ::redis::Client::open(redis.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let mut copy_kept = async |id: &str| -> bool {
            let keys: Vec<String> = ::redis::cmd("KEYS")
                .arg(format!("*:dlv:{id}"))
                .query_async(&mut conn)
                .await
                .unwrap();
            assert_eq!(keys.len(), 1, "{keys:?}");
            let (whole, chunked): (bool, bool) = ::redis::pipe()
                .cmd("HEXISTS")
                .arg(&keys[0])
                .arg("payload")
                .cmd("HEXISTS")
                .arg(&keys[0])
                .arg("pn")
                .query_async(&mut conn)
                .await
                .unwrap();
            whole || chunked
        };
        assert!(!copy_kept(&forwarded).await, "forwarded unchanged: no copy");
        assert!(copy_kept(&redacted).await, "redacted: its body is kept");
        let (_, _, view) = gw.api("GET", &format!("/api/deliveries/{forwarded}"), None).await;
        assert_eq!(view["payload"]["task"]["status"], "done", "the event's data: {view}");
    }
    let (_, _, view) = gw.api("GET", &format!("/api/deliveries/{redacted}"), None).await;
    assert_eq!(
        view["payload"],
        json!({"task":{"title":"Ship","status":"done","owner":{"name":"Ann"}}})
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received_on("/done").len(), 1);
    let text = gw.metrics().await;
    assert!(
        text.contains("hookgate_plugin_duration_seconds_count{plugin=\"redact\"}"),
        "{text}"
    );
    assert!(text.contains(&format!(
        "hookgate_deliveries_total{{webhook=\"{only_done}\",outcome=\"filtered\"}} 1"
    )));
    gw.stop().await;
}

async fn hostile_plugins_fail_their_attempt_while_a_healthy_webhook_keeps_delivering(backend: Backend) {
    let p = built_plugins();
    let db = TestStore::start(backend);
    // Metric labels are process-wide: a webhook name of its own per backend.
    let looping = format!("looping_{}", backend.tag());
    let rx = Receiver::start().await;
    let dir = TempDir::new("plugins-hostile");
    let hooks = [
        plugins_section(&dir),
        webhook("healthy", &rx.url("/healthy"), &["*"], ""),
        webhook(&looping, &rx.url("/loop"), &["*"], "max_retries = 0"),
        plugin(&p.hostile_loop, "", ""),
        webhook("bomb", &rx.url("/bomb"), &["*"], "max_retries = 0"),
        plugin(&p.hostile_memory, "", "max_memory = \"8MiB\""),
        webhook("panics", &rx.url("/panic"), &["*"], "max_retries = 0"),
        plugin(&p.hostile_panic, "", ""),
        webhook("skips", &rx.url("/skip"), &["*"], ""),
        plugin(&p.hostile_panic, "", "on_error = \"skip\""),
    ]
    .concat();
    let (toml, prefix) = config_toml(&db, FAST_DELIVERY, &hooks);
    let gw = Gateway::start(&toml).await;
    let mut answers = Vec::new();
    for i in 0..5 {
        answers.push(gw.post_event("a.b", &format!("{{\"i\":{i}}}")).await);
    }
    rx.wait_for("/healthy", 5, Duration::from_secs(10)).await;
    // on_error = "skip": delivered as if the plugin forwarded it unchanged.
    let skipped = rx.wait_for("/skip", 5, Duration::from_secs(10)).await;
    assert!(skipped.iter().any(|r| r.body.as_ref() == br#"{"i":0}"#));

    let store = store(&db, &prefix);
    for (webhook, expect) in [
        (looping.as_str(), "timed out"),
        ("bomb", "memory"),
        ("panics", "trapped"),
    ] {
        for a in &answers {
            let id = delivery_to(a, webhook);
            let rec = wait_status(&store, &id, Status::Dead, Duration::from_secs(20)).await;
            let err = rec.attempts[0].error.as_deref().unwrap();
            assert!(err.starts_with("plugin: ") && err.contains(expect), "{webhook}: {err}");
            assert!(
                rec.attempts[0].duration_ms < 2_000,
                "{webhook} took {}ms",
                rec.attempts[0].duration_ms
            );
        }
    }
    assert!(
        rx.received_on("/loop").is_empty() && rx.received_on("/bomb").is_empty() && rx.received_on("/panic").is_empty()
    );
    let text = gw.metrics().await;
    assert!(
        text.contains(&format!(
            "hookgate_delivery_attempts_total{{webhook=\"{looping}\",result=\"plugin_error\"}} 5"
        )),
        "{text}"
    );
    // The gateway is still healthy.
    gw.post_event("a.b", "{}").await;
    rx.wait_for("/healthy", 6, Duration::from_secs(10)).await;
    gw.stop().await;
}

async fn hot_reload_swaps_a_plugin_under_load_without_a_failed_delivery(backend: Backend) {
    let p = built_plugins();
    let db = TestStore::start(backend);
    let rx = Receiver::start().await;
    let dir = TempDir::new("plugins-reload");
    let live = dir.path().join("live.wasm");
    std::fs::copy(&p.template, &live).unwrap();
    let hooks = [
        plugins_section(&dir),
        webhook("w", &rx.url("/w"), &["*"], ""),
        plugin(&live, "", ""),
    ]
    .concat();
    let (toml, prefix) = config_toml(&db, FAST_DELIVERY, &hooks);
    let gw = Gateway::start(&toml).await;
    let mut ids = Vec::new();
    for i in 0..60 {
        if i == 30 {
            // Replace the file atomically, as a deploy would.
            let next = dir.path().join("next.wasm");
            std::fs::copy(&p.cloudevents, &next).unwrap();
            std::fs::rename(&next, &live).unwrap();
        }
        ids.extend(delivery_ids(&gw.post_event("a.b", &format!("{{\"i\":{i}}}")).await));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let store = store(&db, &prefix);
    for id in &ids {
        let rec = wait_status(&store, id, Status::Succeeded, Duration::from_secs(20)).await;
        assert_eq!(rec.attempts.len(), 1, "no failed attempt during the swap");
    }
    let got = rx.wait_for("/w", 60, Duration::from_secs(10)).await;
    let first = json_body(&got[0]);
    assert_eq!(first, json!({"i": 0}), "the template forwards unchanged");
    hookgate_testkit::wait_until(Duration::from_secs(10), "the new plugin to be in use", || async {
        gw.post_event("a.b", r#"{"i":"after"}"#).await;
        rx.received()
            .iter()
            .any(|r| json_body(r)["specversion"] == "1.0")
            .then_some(())
    })
    .await;
    gw.stop().await;
}

/// A rebuilt plugin that rejects its webhook's config is not taken: the
/// previous version keeps running, and the webhook's API answer says why.
#[tokio::test]
async fn a_reload_that_rejects_the_config_keeps_the_previous_version() {
    let p = built_plugins();
    let db = TestStore::start(Backend::Redis);
    let rx = Receiver::start().await;
    let dir = TempDir::new("plugins-reload-reject");
    let live = dir.path().join("live.wasm");
    std::fs::copy(&p.redact, &live).unwrap();
    let hooks = [
        plugins_section(&dir),
        webhook("w", &rx.url("/w"), &["*"], ""),
        plugin(&live, r#"fields = "/secret""#, ""),
    ]
    .concat();
    let (toml, _) = config_toml(&db, FAST_DELIVERY, &hooks);
    let gw = Gateway::start(&toml).await;
    gw.post_event("a.b", r#"{"secret": 1, "n": 0}"#).await;
    rx.wait_for("/w", 1, Duration::from_secs(10)).await;

    // A new file whose validate-config refuses `fields`.
    let next = dir.path().join("next.wasm");
    std::fs::copy(&p.event_filter, &next).unwrap();
    std::fs::rename(&next, &live).unwrap();
    let error = hookgate_testkit::wait_until(Duration::from_secs(20), "the rejected reload", || async {
        gw.post_event("a.b", r#"{"secret": 1, "n": 1}"#).await;
        let (_, _, hook) = gw.api("GET", "/api/webhooks/w", None).await;
        hook["plugins"][0]["reloadError"].as_str().map(str::to_owned)
    })
    .await;
    assert!(
        error.contains("was not loaded") && error.contains("previous version keeps running"),
        "{error}"
    );
    let n = rx.received().len();
    gw.post_event("a.b", r#"{"secret": 1, "n": 2}"#).await;
    let got = rx.wait_for("/w", n + 1, Duration::from_secs(10)).await;
    assert!(
        got.iter().all(|r| json_body(r).get("secret").is_none()),
        "every delivery still went through the old redact version"
    );

    // A file that accepts the config again is taken, and the error goes.
    let next = dir.path().join("next.wasm");
    std::fs::copy(&p.redact, &next).unwrap();
    std::fs::rename(&next, &live).unwrap();
    hookgate_testkit::wait_until(Duration::from_secs(20), "the good reload", || async {
        gw.post_event("a.b", r#"{"secret": 1}"#).await;
        let (_, _, hook) = gw.api("GET", "/api/webhooks/w", None).await;
        hook["plugins"][0].get("reloadError").is_none().then_some(())
    })
    .await;
    gw.stop().await;
}

async fn plugin_configs_are_validated_on_registration_and_by_check(backend: Backend) {
    let p = built_plugins();
    let db = TestStore::start(backend);
    let rx = Receiver::start().await;
    let dir = TempDir::new("plugins-validate");
    let (toml, _) = config_toml(&db, FAST_DELIVERY, &plugins_section(&dir));
    let gw = Gateway::start(&toml).await;
    let redact = p.redact.display().to_string();
    let (status, _, body) = gw
        .api(
            "POST",
            "/api/webhooks",
            Some(
                json!({"name": "n", "url": rx.url("/n"), "events": ["*"], "plugins": [{"path": redact, "config": {}}]}),
            ),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.starts_with("plugins[0]") && msg.contains("fields"), "{msg}");
    let (status, _, body) = gw
        .api(
            "POST",
            "/api/webhooks",
            Some(json!({"name": "n", "url": rx.url("/n"), "events": ["*"], "plugins": [{"path": "/nope.wasm"}]})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, _, created) = gw
        .api(
            "POST",
            "/api/webhooks",
            Some(json!({"name": "n", "url": rx.url("/n"), "events": ["*"], "plugins": [{"path": redact, "config": {"fields": "/secret"}}]})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["plugins"][0]["config"]["fields"], "/secret");
    gw.post_event("a.b", r#"{"secret":1,"keep":2}"#).await;
    let got = rx.wait_for("/n", 1, Duration::from_secs(20)).await;
    assert_eq!(json_body(&got[0]), json!({"keep": 2}));
    gw.stop().await;

    // `hookgate check` loads the plugins and reports a bad plugin config
    // with the position of its entry.
    let bad = dir.path().join("bad.toml");
    let src = format!(
        "[api]\ntokens = [\"abcdefgh12\"]\n[store]\nbackend = \"redis\"\n{}[[webhooks]]\nid = \"w\"\nurl = \"https://e.com\"\nevents = [\"*\"]\nsecret = \"0123456789\"\n{}",
        plugins_section(&dir),
        plugin(&p.event_filter, "field = \"/x\", op = \"bogus\"", "")
    );
    std::fs::write(&bad, src).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.starts_with(&format!("{}:13:1: webhook \"w\": plugin", bad.display())),
        "{text}"
    );
    assert!(text.contains("bogus"), "{text}");
}

on_both_backends!(
    example_plugins_transform_and_the_signature_covers_what_is_sent,
    hostile_plugins_fail_their_attempt_while_a_healthy_webhook_keeps_delivering,
    hot_reload_swaps_a_plugin_under_load_without_a_failed_delivery,
    plugin_configs_are_validated_on_registration_and_by_check,
);
