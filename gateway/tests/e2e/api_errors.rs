//! Whatever the framework rejects under `/api` answers in the API error
//! shape, and error messages name the field and what is expected, never the
//! value sent (it may be a secret) nor an internal type name.

use hookgate_testkit::{Receiver, RedisServer};
use serde_json::{Value, json};

use crate::common::*;

/// Sends a raw request with the token; returns (status, content type, body).
async fn raw(gw: &Gateway, method: &str, path_and_query: &str, body: Option<&str>) -> (u16, String, Value) {
    let mut req = gw
        .http
        .request(method.parse().unwrap(), gw.url(path_and_query))
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_owned());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {path_and_query}: not JSON: {text:?}"));
    (status, ct, body)
}

fn assert_error(what: &str, got: &(u16, String, Value), status: u16, code: &str, mentions: &[&str]) {
    let (s, ct, body) = got;
    assert_eq!(*s, status, "{what}: {body}");
    assert!(ct.starts_with("application/json"), "{what}: content type {ct}");
    assert_eq!(body["error"]["code"], code, "{what}: {body}");
    let msg = body["error"]["message"].as_str().unwrap();
    for m in mentions {
        assert!(msg.contains(m), "{what}: {msg:?} should mention {m:?}");
    }
    for internal in [
        "Failed to deserialize",
        "Invalid URL",
        "struct",
        "EventIn",
        "WebhookInput",
    ] {
        assert!(!msg.contains(internal), "{what}: {msg:?} shows {internal:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framework_rejections_answer_in_the_api_error_shape() {
    let redis = RedisServer::start();
    let (toml, _) = config_toml(&redis, FAST_DELIVERY, "");
    let gw = Gateway::start(&toml).await;

    let dup = raw(&gw, "GET", "/api/deliveries?status=dead&status=pending", None).await;
    assert_error(
        "duplicate query field",
        &dup,
        422,
        "validation_failed",
        &["status", "once"],
    );
    let dup = raw(&gw, "GET", "/api/dead-letters?limit=5&limit=6", None).await;
    assert_error("duplicate limit", &dup, 422, "validation_failed", &["limit"]);
    let bad = raw(&gw, "GET", "/api/deliveries?status=%ff%fe", None).await;
    assert_error("status not UTF-8", &bad, 422, "validation_failed", &["status"]);
    for path in [
        "/api/webhooks/%ff%fe",
        "/api/deliveries/%ff%fe",
        "/api/webhooks/%ff/test",
        "/api/deliveries/%C3%28/retry",
    ] {
        let method = if path.ends_with("test") || path.ends_with("retry") {
            "POST"
        } else {
            "GET"
        };
        let got = raw(&gw, method, path, None).await;
        assert_error(path, &got, 404, "not_found", &["UTF-8"]);
    }
    for (method, path) in [("GET", "/api/nope"), ("POST", "/api/webhooks/a/b/c"), ("GET", "/api/")] {
        let got = raw(&gw, method, path, None).await;
        assert_error(path, &got, 404, "not_found", &[]);
    }
    for (method, path) in [
        ("DELETE", "/api/events"),
        ("PUT", "/api/webhooks"),
        ("GET", "/api/dead-letters/replay"),
    ] {
        let got = raw(&gw, method, path, None).await;
        assert_error(path, &got, 405, "method_not_allowed", &[]);
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_name_the_field_and_never_echo_values_or_type_names() {
    let redis = RedisServer::start();
    let rx = Receiver::start().await;
    let (toml, _) = config_toml(&redis, FAST_DELIVERY, "");
    let gw = Gateway::start(&toml).await;

    let got = raw(&gw, "POST", "/api/events", Some(r#""just a string""#)).await;
    assert_error("string body", &got, 422, "validation_failed", &["body", "object"]);
    let got = raw(
        &gw,
        "POST",
        "/api/events",
        Some(r#"{"type": "a.b", "data": {}, "test": 12345}"#),
    )
    .await;
    assert_error("test as a number", &got, 422, "validation_failed", &["test"]);
    let url = rx.url("/h");
    let secret = json!({"name": "n", "url": url, "events": ["*"], "secret": 98765432}).to_string();
    let got = raw(&gw, "POST", "/api/webhooks", Some(&secret)).await;
    assert_error("numeric secret", &got, 422, "validation_failed", &["secret", "string"]);
    assert!(
        !got.2.to_string().contains("98765432"),
        "the secret is echoed: {}",
        got.2
    );
    let big = json!({"name": "n", "url": url, "events": ["*"], "maxRetries": 5_000_000_000u64}).to_string();
    let got = raw(&gw, "POST", "/api/webhooks", Some(&big)).await;
    assert_error("huge maxRetries", &got, 422, "validation_failed", &["maxRetries"]);

    let got = raw(&gw, "GET", "/api/deliveries?limit=0", None).await;
    assert_error("limit=0", &got, 422, "validation_failed", &["limit", "1 to 500"]);
    let got = raw(&gw, "GET", "/api/dead-letters?webhookId=a%20b", None).await;
    assert_error("bad webhookId filter", &got, 422, "validation_failed", &["webhookId"]);
    let both = json!({"ids": ["dlv_x"], "webhookId": "w"}).to_string();
    let got = raw(&gw, "POST", "/api/dead-letters/replay", Some(&both)).await;
    assert_error(
        "ids and webhookId",
        &got,
        422,
        "validation_failed",
        &["ids", "webhookId"],
    );

    // An empty query parameter is the same as an absent one.
    let (status, _, page) = raw(&gw, "GET", "/api/deliveries?status=&webhookId=&limit=", None).await;
    assert_eq!(status, 200, "{page}");
    let (status, _, hook) = raw(
        &gw,
        "POST",
        "/api/webhooks",
        Some(&json!({"name": "t", "url": url, "events": ["*"]}).to_string()),
    )
    .await;
    assert_eq!(status, 201, "{hook}");
    let id = hook["id"].as_str().unwrap();
    let (status, _, answer) = raw(&gw, "POST", &format!("/api/webhooks/{id}/test?type="), Some("{}")).await;
    assert_eq!(status, 202, "{answer}");
    let delivery = answer["deliveryId"].as_str().unwrap();
    let (_, _, d) = raw(&gw, "GET", &format!("/api/deliveries/{delivery}"), None).await;
    assert_eq!(d["eventType"], "webhook.test", "{d}");
    // The replay body is optional: none is the same as {}.
    let (status, _, answer) = raw(&gw, "POST", "/api/dead-letters/replay", None).await;
    assert_eq!((status, answer["replayed"].clone()), (202, Value::from(0)), "{answer}");
    gw.stop().await;
}
