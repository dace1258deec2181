//! The webhooks API: CRUD, read-only config webhooks, changes across
//! gateways without restart, test deliveries and test mode, rotation.

use std::time::Duration;

use hookgate::signing::{verify_hub, verify_standard};
use hookgate_testkit::{Receiver, RedisServer};
use serde_json::{Value, json};

use crate::common::*;

async fn crud_round_trip_with_generated_secret_shown_once(backend: Backend) {
    let db = TestStore::start(backend);
    let rx = Receiver::start().await;
    let (toml, _) = config_toml(&db, FAST_DELIVERY, &webhook("cfg", &rx.url("/cfg"), &["x.*"], ""));
    let gw = Gateway::start(&toml).await;

    let (status, _, created) = gw
        .api("POST", "/api/webhooks", Some(json!({"name": "Orders", "url": rx.url("/orders"), "events": ["order.*"], "maxRetries": 2, "headers": {"X-Team": "a"}})))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(created["source"], "api");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["testMode"], false);
    assert!(created["createdAt"].as_str().unwrap().ends_with('Z'));

    let (status, _, got) = gw.api("GET", &format!("/api/webhooks/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(got["secret"], Value::Null, "the secret is shown only once");
    assert_eq!(got["maxRetries"], 2);
    let (_, _, list) = gw.api("GET", "/api/webhooks", None).await;
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["cfg", id.as_str()]);
    assert_eq!(list["data"][0]["source"], "config");
    assert!(!list.to_string().contains(&secret) && !list.to_string().contains("secret-cfg"));

    // It receives events, signed with the generated secret.
    let answer = gw.post_event("order.paid", r#"{"o":1}"#).await;
    assert_eq!(delivery_ids(&answer).len(), 1);
    let got = rx.wait_for("/orders", 1, Duration::from_secs(10)).await.remove(0);
    assert!(verify_hub(&secret, &got.body, got.header("x-hub-signature").unwrap()));
    assert_eq!(got.header("x-team"), Some("a"));

    let (status, _, patched) = gw
        .api(
            "PATCH",
            &format!("/api/webhooks/{id}"),
            Some(json!({"name": "Orders v2", "maxRetries": null, "url": rx.url("/v2")})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["name"], "Orders v2");
    assert_eq!(patched["maxRetries"], Value::Null);
    assert_eq!(patched["events"], json!(["order.*"]), "untouched fields stay");
    gw.post_event("order.paid", r#"{"o":2}"#).await;
    rx.wait_for("/v2", 1, Duration::from_secs(10)).await;

    let (status, _, _) = gw.api("DELETE", &format!("/api/webhooks/{id}"), None).await;
    assert_eq!(status, 204);
    let (status, _, body) = gw.api("GET", &format!("/api/webhooks/{id}"), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
    let (status, _, _) = gw.api("DELETE", &format!("/api/webhooks/{id}"), None).await;
    assert_eq!(status, 404);
    assert!(
        gw.post_event("order.paid", "{}").await["deliveries"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    gw.stop().await;
}

async fn config_webhooks_are_read_only(backend: Backend) {
    let db = TestStore::start(backend);
    let (toml, _) = config_toml(&db, FAST_DELIVERY, &webhook("cfg", "http://127.0.0.1:9/x", &["*"], ""));
    let gw = Gateway::start(&toml).await;
    for (method, path, body) in [
        ("PATCH", "/api/webhooks/cfg", Some(json!({"name": "x"}))),
        ("DELETE", "/api/webhooks/cfg", None),
        ("POST", "/api/webhooks/cfg/rotate-secret", Some(json!({}))),
    ] {
        let (status, _, body) = gw.api(method, path, body).await;
        assert_eq!(status, 409, "{method} {path}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("config.toml"));
    }
    let (status, _, got) = gw.api("GET", "/api/webhooks/cfg", None).await;
    assert_eq!((status, got["source"].as_str()), (200, Some("config")));
    assert_eq!(got["secret"], Value::Null);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_another_gateway_without_restart_and_disabled_gets_nothing() {
    let redis = RedisServer::start();
    let rx = Receiver::start().await;
    let (toml, _) = config_toml(&redis, FAST_DELIVERY, "");
    let a = Gateway::start(&toml).await;
    let b = Gateway::start(&toml).await;
    let (_, _, created) = a
        .api(
            "POST",
            "/api/webhooks",
            Some(json!({"name": "n", "url": rx.url("/one"), "events": ["*"], "secret": "s3cret-value"})),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();

    // Gateway b learns of it within its refresh interval, no restart.
    let fanned = hookgate_testkit::wait_until(Duration::from_secs(5), "gateway b to see the new webhook", || async {
        let answer = b.post_event("a.b", "{}").await;
        (!answer["deliveries"].as_array().unwrap().is_empty()).then_some(answer)
    })
    .await;
    assert_eq!(fanned["deliveries"][0]["webhookId"], id.as_str());

    let (status, _, _) = a
        .api("PATCH", &format!("/api/webhooks/{id}"), Some(json!({"enabled": false})))
        .await;
    assert_eq!(status, 200);
    hookgate_testkit::wait_until(Duration::from_secs(5), "gateway b to see it disabled", || async {
        let answer = b.post_event("a.b", "{}").await;
        answer["deliveries"].as_array().unwrap().is_empty().then_some(())
    })
    .await;
    let before = rx.received().len();
    for _ in 0..3 {
        assert!(
            a.post_event("a.b", "{}").await["deliveries"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.received().len(), before, "a disabled webhook gets nothing");
    let (_, _, got) = b.api("GET", &format!("/api/webhooks/{id}"), None).await;
    assert_eq!(got["enabled"], false);
    a.stop().await;
    b.stop().await;
}

async fn test_endpoint_and_test_mode_routing_both_ways(backend: Backend) {
    let db = TestStore::start(backend);
    let rx = Receiver::start().await;
    let hooks = [
        webhook("live", &rx.url("/live"), &["order.*"], ""),
        webhook("sandbox", &rx.url("/sandbox"), &["order.*"], "test_mode = true"),
    ]
    .concat();
    let (toml, _) = config_toml(&db, FAST_DELIVERY, &hooks);
    let gw = Gateway::start(&toml).await;

    // The test endpoint reaches a webhook whatever its filter and mode.
    let (status, _, answer) = gw
        .api(
            "POST",
            "/api/webhooks/live/test?type=ping.check",
            Some(json!({"hello": "world"})),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["deliveryId"].as_str().unwrap().to_owned();
    let got = rx.wait_for("/live", 1, Duration::from_secs(10)).await.remove(0);
    assert_eq!(got.header("x-webhook-test"), Some("true"));
    assert_eq!(got.header("x-event-type"), Some("ping.check"));
    assert_eq!(got.header("x-delivery-id"), Some(id.as_str()));
    assert_eq!(got.body.as_ref(), br#"{"hello":"world"}"#);
    let (status, _, _) = gw.api("POST", "/api/webhooks/sandbox/test", Some(json!([1]))).await;
    assert_eq!(status, 202);
    let got = rx.wait_for("/sandbox", 1, Duration::from_secs(10)).await.remove(0);
    assert_eq!(got.header("x-event-type"), Some("webhook.test"));

    // Normal events skip test-mode webhooks; test events reach only them.
    let normal = gw.post_event("order.created", "{}").await;
    assert_eq!(normal["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(normal["deliveries"][0]["webhookId"], "live");
    let (_, test) = gw.post_raw(r#"{"type":"order.created","data":{},"test":true}"#).await;
    assert_eq!(test["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(test["deliveries"][0]["webhookId"], "sandbox");
    rx.wait_for("/sandbox", 2, Duration::from_secs(10)).await;
    rx.wait_for("/live", 2, Duration::from_secs(10)).await;

    let (status, _, _) = gw.api("POST", "/api/webhooks/nope/test", Some(json!({}))).await;
    assert_eq!(status, 404);
    gw.stop().await;
}

async fn rotation_signs_with_both_secrets_during_grace_then_only_the_new(backend: Backend) {
    let db = TestStore::start(backend);
    let rx = Receiver::start().await;
    let (toml, _) = config_toml(&db, FAST_DELIVERY, "");
    let gw = Gateway::start(&toml).await;
    let old = "old-secret-value-1";
    let (_, _, created) = gw
        .api(
            "POST",
            "/api/webhooks",
            Some(json!({"name": "r", "url": rx.url("/r"), "events": ["*"], "secret": old})),
        )
        .await;
    assert_eq!(created["secret"], Value::Null, "a given secret is never returned");
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, _, rotated) = gw
        .api(
            "POST",
            &format!("/api/webhooks/{id}/rotate-secret"),
            Some(json!({"graceSeconds": 2})),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("whsec_"));

    gw.post_event("a.b", r#"{"during":1}"#).await;
    let during = rx.wait_for("/r", 1, Duration::from_secs(10)).await.remove(0);
    let (id_h, ts) = (
        during.header("webhook-id").unwrap(),
        during.header("webhook-timestamp").unwrap().parse().unwrap(),
    );
    let sig = during.header("webhook-signature").unwrap();
    assert_eq!(sig.split(' ').count(), 2, "{sig}");
    assert!(verify_standard(&new, id_h, ts, &during.body, sig));
    assert!(verify_standard(old, id_h, ts, &during.body, sig));
    assert!(
        verify_hub(&new, &during.body, during.header("x-hub-signature").unwrap()),
        "hub uses the newest"
    );

    tokio::time::sleep(Duration::from_millis(2100)).await;
    gw.post_event("a.b", r#"{"after":1}"#).await;
    let after = rx.wait_for("/r", 2, Duration::from_secs(10)).await.remove(1);
    let (id_h, ts) = (
        after.header("webhook-id").unwrap(),
        after.header("webhook-timestamp").unwrap().parse().unwrap(),
    );
    let sig = after.header("webhook-signature").unwrap();
    assert_eq!(sig.split(' ').count(), 1);
    assert!(verify_standard(&new, id_h, ts, &after.body, sig));
    assert!(
        !verify_standard(old, id_h, ts, &after.body, sig),
        "the old secret expired with its grace period"
    );
    gw.stop().await;
}

async fn deleting_a_webhook_dead_letters_its_pending_retries_with_a_reason(backend: Backend) {
    let db = TestStore::start(backend);
    let rx = Receiver::start().await;
    rx.set_default(hookgate_testkit::Reply::status(500));
    let (toml, prefix) = config_toml(&db, &fast_delivery("retry_base = \"1s\""), "");
    let gw = Gateway::start(&toml).await;
    let (_, _, created) = gw
        .api(
            "POST",
            "/api/webhooks",
            Some(json!({"name": "n", "url": rx.url("/n"), "events": ["*"]})),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let delivery = delivery_ids(&gw.post_event("a.b", "{}").await)[0].clone();
    let store = store(&db, &prefix);
    wait_status(
        &store,
        &delivery,
        hookgate::store::Status::Failed,
        Duration::from_secs(5),
    )
    .await;
    let (status, _, _) = gw.api("DELETE", &format!("/api/webhooks/{id}"), None).await;
    assert_eq!(status, 204);
    let rec = wait_status(
        &store,
        &delivery,
        hookgate::store::Status::Dead,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(rec.attempts.len(), 2);
    assert_eq!(
        rec.attempts[1].error.as_deref(),
        Some("not sent: webhook no longer exists")
    );
    assert_eq!(rx.received().len(), 1);
    gw.stop().await;
}

on_both_backends!(
    crud_round_trip_with_generated_secret_shown_once,
    config_webhooks_are_read_only,
    test_endpoint_and_test_mode_routing_both_ways,
    rotation_signs_with_both_secrets_during_grace_then_only_the_new,
    deleting_a_webhook_dead_letters_its_pending_retries_with_a_reason,
);
