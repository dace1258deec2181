//! Redis goes away and comes back while the gateway runs.

use std::time::Duration;

use hookgate::store::Status;
use hookgate_testkit::{Receiver, RedisServer, Reply, wait_until};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_is_survived_without_a_gateway_restart() {
    let mut redis = RedisServer::start();
    let rx = Receiver::start().await;
    // The first attempt fails, so a retry is pending across the outage.
    rx.plan([Reply::status(500)]);
    let delivery = fast_delivery("retry_base = \"1500ms\"\n");
    let (toml, prefix) = config_toml(&redis, &delivery, &webhook("w", &rx.url("/hook"), &["*"], ""));
    let gw = Gateway::start(&toml).await;
    let pending = delivery_ids(&gw.post_event("a.b", r#"{"before":true}"#).await)[0].clone();
    rx.wait_for("/hook", 1, Duration::from_secs(5)).await;

    redis.kill();
    let health = gw.http.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 503);
    let (status, body) = gw.post_raw(r#"{"type":"a.b","data":{}}"#).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable");
    // The rest of the API answers 503 too (never a 500); /metrics still works.
    let (status, h, body) = gw.api("GET", "/api/deliveries", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("store_unavailable")),
        "{body}"
    );
    assert!(h.contains_key("retry-after"));
    let (status, _, _) = gw.api("GET", "/api/webhooks", None).await;
    assert_eq!(status, 503);
    assert!(gw.metrics().await.contains("hookgate_events_received_total"));
    tokio::time::sleep(Duration::from_secs(2)).await;

    redis.restart();
    wait_until(Duration::from_secs(15), "healthz to recover", || async {
        let r = gw.http.get(gw.url("/healthz")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    let after = delivery_ids(&gw.post_event("a.b", r#"{"after":true}"#).await)[0].clone();
    let store = store(&redis, &prefix);
    wait_status(&store, &pending, Status::Succeeded, Duration::from_secs(20)).await;
    wait_status(&store, &after, Status::Succeeded, Duration::from_secs(20)).await;
    let bodies: Vec<_> = rx.received().iter().map(|r| r.body.clone()).collect();
    assert!(bodies.iter().any(|b| b.as_ref() == br#"{"after":true}"#));
    assert_eq!(bodies.iter().filter(|b| b.as_ref() == br#"{"before":true}"#).count(), 2);
    gw.stop().await;
}

/// Events posted while Redis is down are refused, and the delivery slots
/// ingest set aside to start them at once (the handoff) come back: with a
/// single slot, one that leaked would stop every later delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_set_aside_for_refused_events_come_back() {
    let mut redis = RedisServer::start();
    let rx = Receiver::start().await;
    let delivery = fast_delivery("concurrency = 1\n");
    let (toml, _) = config_toml(&redis, &delivery, &webhook("w", &rx.url("/hook"), &["*"], ""));
    let gw = Gateway::start(&toml).await;
    // Delivered and claimed up to date: the next events may be handed off.
    gw.post_event("a.b", r#"{"n":0}"#).await;
    rx.wait_for("/hook", 1, Duration::from_secs(5)).await;

    redis.kill();
    let bodies: Vec<String> = (1..=3)
        .map(|n| format!(r#"{{"type":"a.b","data":{{"n":{n}}}}}"#))
        .collect();
    let refused = futures_util::future::join_all(bodies.iter().map(|b| gw.post_raw(b))).await;
    for (status, body) in refused {
        assert_eq!(status, 503, "{body}");
    }

    redis.restart();
    // As a producer would: again after each 503 until accepted.
    wait_until(Duration::from_secs(15), "an event to be accepted again", || async {
        let (status, _) = gw.post_raw(r#"{"type":"a.b","data":{"n":4}}"#).await;
        (status == 202).then_some(())
    })
    .await;
    let got = rx.wait_for("/hook", 2, Duration::from_secs(10)).await;
    let bodies: Vec<&[u8]> = got.iter().map(|r| r.body.as_ref()).collect();
    assert_eq!(bodies, [br#"{"n":0}"#.as_slice(), br#"{"n":4}"#.as_slice()]);
    gw.stop().await;
}
