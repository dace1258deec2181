//! A Redis that speaks TLS only (`rediss://`): the gateway stores and
//! delivers through it when it trusts the server's certificate, and does
//! not talk to it when it does not.

use std::sync::Arc;
use std::time::Duration;

use hookgate_testkit::certs::TestCa;
use hookgate_testkit::{Receiver, RedisServer, TempDir, wait_until};

use crate::common::*;

fn config(redis: &RedisServer, receiver: &Receiver) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[api]
tokens = ["{TOKEN}"]

[store]
backend = "redis"
url = "{}"
prefix = "tls"

[delivery]
{FAST_DELIVERY}

{}"#,
        redis.url(),
        webhook("orders", &receiver.url("/orders"), &["order.*"], "")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_stored_in_a_redis_over_tls_and_delivered() {
    let dir = Arc::new(TempDir::new("redis-tls"));
    let ca = TestCa::new("redis test CA");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let cert = ca.server(dir.path(), "redis");
    let redis = RedisServer::start_tls(&cert, &ca_file);
    assert!(redis.url().starts_with("rediss://"));
    let rx = Receiver::start().await;
    // The CA is private: the gateway trusts it through SSL_CERT_FILE.
    let gw = GatewayProcess::spawn_with_env(&config(&redis, &rx), dir, &[("SSL_CERT_FILE", ca_file.as_path())]).await;
    let client = http();
    let ids = post_event_to(
        &client,
        &gw.url("/api/events"),
        &serde_json::json!({"type": "order.created", "data": {"n": 1}}),
    )
    .await;
    assert_eq!(ids.len(), 1);
    let got = rx.wait_for("/orders", 1, Duration::from_secs(10)).await;
    assert!(got[0].header("webhook-signature").is_some(), "signed");
    let status = wait_until(Duration::from_secs(10), "the delivery to be recorded", || {
        let url = gw.url(&format!("/api/deliveries/{}", ids[0]));
        let client = client.clone();
        async move {
            let v: serde_json::Value = client
                .get(url)
                .bearer_auth(TOKEN)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (v["status"] == "succeeded").then_some(v)
        }
    })
    .await;
    assert_eq!(status["attempts"][0]["statusCode"], 200, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_whose_certificate_is_not_trusted_is_not_used() {
    let dir = TempDir::new("redis-tls-untrusted");
    let ca = TestCa::new("unknown CA");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let cert = ca.server(dir.path(), "redis");
    let redis = RedisServer::start_tls(&cert, &ca_file);
    let rx = Receiver::start().await;
    // In this process, without SSL_CERT_FILE: only the system's roots.
    let gw = Gateway::start(&config(&redis, &rx)).await;
    let health = wait_until(Duration::from_secs(10), "the gateway to answer /healthz", || async {
        let r = gw.http.get(gw.url("/healthz")).send().await.ok()?;
        Some(r.status().as_u16())
    })
    .await;
    assert_eq!(health, 503, "the store is unreachable, not trusted");
    let event = serde_json::json!({"type": "order.created", "data": {}});
    let (status, headers, body) = gw.api("POST", "/api/events", Some(event)).await;
    assert_eq!(status, 503);
    assert!(headers.contains_key("retry-after"));
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    assert!(rx.received().is_empty());
    gw.stop().await;
}
