//! Endpoints that keep failing: the circuit breaker holds their deliveries
//! (without using up retries), probes, and closes; one failing for
//! `disable_after` is disabled, with operational events to its owners.

use std::time::{Duration, Instant};

use hookgate::signing::verify_hub;
use hookgate_testkit::{Receiver, RedisServer, Reply, wait_until};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn the_breaker_opens_holds_deliveries_probes_and_closes() {
    let redis = RedisServer::start();
    let dead = Receiver::start().await;
    dead.set_default(Reply::status(503));
    let delivery = fast_delivery(
        "max_retries = 10\nretry_base = \"100ms\"\nretry_factor = 1\n\
         circuit_failures = 3\ncircuit_cooldown = \"1s\"\ncircuit_max_cooldown = \"2s\"",
    );
    let (toml, prefix) = config_toml(&redis, &delivery, &webhook("dead", &dead.url("/d"), &["order.*"], ""));
    let gw = Gateway::start(&toml).await;
    let mut ids = Vec::new();
    for n in 0..10 {
        ids.extend(delivery_ids(
            &gw.post_event("order.created", &format!("{{\"n\": {n}}}")).await,
        ));
    }

    // Without a breaker, 10 deliveries with 10 fast retries each would send
    // 110 requests in about a second. With it: a few, then probes.
    let (_, _, hook) = wait_until(Duration::from_secs(10), "the circuit to open", || async {
        let answer = gw.api("GET", "/api/webhooks/dead", None).await;
        (answer.2["circuit"]["state"] == "open").then_some(answer)
    })
    .await;
    assert!(hook["circuit"]["nextProbeAt"].is_string(), "{hook}");
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sent = dead.received().len();
    assert!(sent < 30, "{sent} requests reached the dead receiver");
    assert!(started.elapsed() >= Duration::from_secs(3));
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("hookgate_circuit_transitions_total{webhook=\"dead\",to=\"open\"}"),
        "{metrics}"
    );
    let store = store(&redis, &prefix);
    for id in &ids {
        let d = store.delivery(id).await.unwrap().unwrap();
        assert_ne!(
            d.status,
            hookgate::store::Status::Dead,
            "waiting behind the breaker uses no retries"
        );
        assert!(d.attempt_count < 10, "{id}: {} attempts", d.attempt_count);
    }

    // The receiver recovers: the next probe closes the circuit and the held
    // deliveries go out.
    dead.set_default(Reply::status(200));
    for id in &ids {
        wait_status(&store, id, hookgate::store::Status::Succeeded, Duration::from_secs(20)).await;
    }
    let (_, _, hook) = gw.api("GET", "/api/webhooks/dead", None).await;
    assert_eq!(hook["circuit"], json!({"state": "closed"}));
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("hookgate_circuit_state{webhook=\"dead\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hookgate_circuit_transitions_total{webhook=\"dead\",to=\"closed\"} 1"),
        "{metrics}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_webhook_failing_for_disable_after_is_disabled_and_its_owners_are_told() {
    let redis = RedisServer::start();
    let dead = Receiver::start().await;
    dead.set_default(Reply::status(503));
    let ops = Receiver::start().await;
    let delivery = fast_delivery(
        "max_retries = 10\nretry_base = \"100ms\"\nretry_factor = 1\ncircuit_failures = 2\n\
         circuit_cooldown = \"300ms\"\ncircuit_max_cooldown = \"300ms\"\ndisable_after = \"1s\"",
    );
    let (toml, _) = config_toml(
        &redis,
        &delivery,
        &webhook("ops", &ops.url("/ops"), &["hookgate.*"], ""),
    );
    let gw = Gateway::start(&toml).await;
    let (status, _, created) = gw
        .api(
            "POST",
            "/api/webhooks",
            Some(json!({"name": "failing", "url": dead.url("/d"), "events": ["order.*"]})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    for n in 0..5 {
        gw.post_event("order.created", &format!("{{\"n\": {n}}}")).await;
    }

    let got = ops.wait_for("/ops", 1, Duration::from_secs(20)).await;
    let event = &got[0];
    assert_eq!(event.header("x-event-type"), Some("hookgate.webhook.disabled"));
    let body: serde_json::Value = serde_json::from_slice(&event.body).unwrap();
    assert_eq!(body, json!({"webhookId": id, "reason": "failing"}));
    assert!(verify_hub(
        "secret-ops-0123",
        &event.body,
        event.header("x-hub-signature").unwrap()
    ));
    let (_, _, hook) = gw.api("GET", &format!("/api/webhooks/{id}"), None).await;
    assert_eq!(
        (hook["enabled"].clone(), hook["disabledReason"].clone()),
        (json!(false), json!("failing"))
    );
    let (_, _, dead_letters) = gw.api("GET", &format!("/api/dead-letters?webhookId={id}"), None).await;
    assert_eq!(dead_letters["data"].as_array().unwrap().len(), 5, "{dead_letters}");

    // Re-enabled through the API: the owners hear of it, and the dead
    // letters can be replayed.
    dead.set_default(Reply::status(200));
    let (status, _, _) = gw
        .api("PATCH", &format!("/api/webhooks/{id}"), Some(json!({"enabled": true})))
        .await;
    assert_eq!(status, 200);
    let got = ops.wait_for("/ops", 2, Duration::from_secs(10)).await;
    let body: serde_json::Value = serde_json::from_slice(&got[1].body).unwrap();
    assert_eq!(got[1].header("x-event-type"), Some("hookgate.webhook.enabled"));
    assert_eq!(body, json!({"webhookId": id, "reason": "api"}));
    let (status, _, replayed) = gw
        .api("POST", "/api/dead-letters/replay", Some(json!({"webhookId": id})))
        .await;
    assert_eq!((status, replayed["replayed"].clone()), (202, json!(5)));
    let before = dead
        .received_on("/d")
        .iter()
        .filter(|r| r.header("x-delivery-attempt").is_some())
        .count();
    dead.wait_for("/d", before + 5, Duration::from_secs(10)).await;
    gw.stop().await;
}

/// A delivery waiting in the gateway for its webhook's one place (cap 1
/// at concurrency 4) is not sent when the attempt ahead of it opens the
/// breaker: it goes back to the store, due when the breaker lets the next
/// one through, with no attempt used.
#[tokio::test]
async fn a_delivery_waiting_for_its_webhook_is_held_when_the_breaker_opens() {
    let redis = RedisServer::start();
    let dead = Receiver::start().await;
    dead.set_default(Reply::status(503).delay(Duration::from_millis(500)));
    let delivery = fast_delivery(
        "concurrency = 4\nmax_retries = 10\nretry_base = \"100ms\"\n\
         circuit_failures = 1\ncircuit_cooldown = \"60s\"\ncircuit_max_cooldown = \"60s\"",
    );
    let (toml, prefix) = config_toml(&redis, &delivery, &webhook("dead", &dead.url("/d"), &["order.*"], ""));
    let gw = Gateway::start(&toml).await;
    gw.post_event("order.created", "{\"n\": 1}").await;
    dead.wait_for("/d", 1, Duration::from_secs(5)).await;
    // The first attempt is on its way (and will fail): this one waits.
    let waiting = delivery_ids(&gw.post_event("order.created", "{\"n\": 2}").await).remove(0);
    let store = store(&redis, &prefix);
    let due = wait_until(Duration::from_secs(10), "the waiting delivery to be held", || async {
        let d = store.delivery(&waiting).await.unwrap().unwrap();
        d.next_attempt_at_ms
            .filter(|at| *at > hookgate::store::now_ms() + 30_000)
            .map(|at| (at, d.attempt_count))
    })
    .await;
    assert_eq!(due.1, 0, "no attempt was made or counted");
    assert_eq!(
        dead.received().len(),
        1,
        "only the attempt that opened the breaker was sent"
    );
    gw.stop().await;
}
