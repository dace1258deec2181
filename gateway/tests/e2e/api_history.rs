//! History, dead letters and replay, idempotent ingest.

use std::time::Duration;

use hookgate::store::Status;
use hookgate_testkit::{Receiver, RedisServer, Reply};
use serde_json::{Value, json};

use crate::common::*;

async fn history_filters_and_paginates_across_three_pages(backend: Backend) {
    let db = TestStore::start(backend);
    let rx = Receiver::start().await;
    let hooks = [
        webhook("a", &rx.url("/a"), &["*"], ""),
        webhook("b", &rx.url("/b"), &["only.b"], ""),
    ]
    .concat();
    let (toml, prefix) = config_toml(&db, FAST_DELIVERY, &hooks);
    let gw = Gateway::start(&toml).await;
    let mut to_a = Vec::new();
    for i in 0..7 {
        let answer = gw
            .post_event(if i % 2 == 0 { "only.b" } else { "x.y" }, &format!("{{\"i\":{i}}}"))
            .await;
        for d in answer["deliveries"].as_array().unwrap() {
            if d["webhookId"] == "a" {
                to_a.push(d["id"].as_str().unwrap().to_owned());
            }
        }
    }
    let store = store(&db, &prefix);
    for id in &to_a {
        wait_status(&store, id, Status::Succeeded, Duration::from_secs(10)).await;
    }
    // Three pages of 3, 3 and 1 for webhook a, newest first.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/deliveries?webhookId=a&limit=3&cursor={c}"),
            None => "/api/deliveries?webhookId=a&limit=3".to_owned(),
        };
        let (status, _, page) = gw.api("GET", &path, None).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        for d in page["data"].as_array().unwrap() {
            assert_eq!(d["webhookId"], "a");
            assert_eq!(d["status"], "succeeded");
            assert_eq!(d["attemptCount"], 1);
            seen.push(d["id"].as_str().unwrap().to_owned());
        }
        // New deliveries arriving mid-pagination don't disturb the pages.
        if pages == 1 {
            gw.post_event("x.y", "{}").await;
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut expected = to_a.clone();
    expected.reverse();
    assert_eq!(seen, expected);

    let (_, _, only_b) = gw
        .api("GET", "/api/deliveries?eventType=only.b&webhookId=b", None)
        .await;
    assert_eq!(only_b["data"].as_array().unwrap().len(), 4);
    let (_, _, pending) = gw.api("GET", "/api/deliveries?status=dead", None).await;
    assert!(pending["data"].as_array().unwrap().is_empty());
    let (status, _, bad) = gw.api("GET", "/api/deliveries?status=nope", None).await;
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (422, Some("validation_failed"))
    );
    assert!(bad["error"]["message"].as_str().unwrap().starts_with("status"));
    let (status, _, _) = gw.api("GET", "/api/deliveries?limit=0", None).await;
    assert_eq!(status, 422);

    let (status, _, one) = gw.api("GET", &format!("/api/deliveries/{}", to_a[0]), None).await;
    assert_eq!(status, 200);
    assert_eq!(one["payload"], json!({"i": 0}));
    assert_eq!(one["attempts"][0]["statusCode"], 200);
    assert_eq!(one["attempts"][0]["attempt"], 1);
    assert!(one["attempts"][0]["startedAt"].is_string());
    gw.stop().await;
}

async fn dead_letter_replayed_after_the_receiver_recovers_succeeds_with_all_attempts(backend: Backend) {
    let db = TestStore::start(backend);
    let rx = Receiver::start().await;
    rx.set_default(Reply::status(500).body("down"));
    let delivery = fast_delivery("max_retries = 1\nretry_base = \"100ms\"");
    let (toml, prefix) = config_toml(&db, &delivery, &webhook("w", &rx.url("/w"), &["*"], ""));
    let gw = Gateway::start(&toml).await;
    let first = delivery_ids(&gw.post_event("a.b", r#"{"n":1}"#).await)[0].clone();
    let second = delivery_ids(&gw.post_event("a.b", r#"{"n":2}"#).await)[0].clone();
    let store = store(&db, &prefix);
    wait_status(&store, &first, Status::Dead, Duration::from_secs(10)).await;
    wait_status(&store, &second, Status::Dead, Duration::from_secs(10)).await;

    let (_, _, dead) = gw.api("GET", "/api/dead-letters?webhookId=w", None).await;
    let ids: Vec<&str> = dead["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second.as_str(), first.as_str()]);

    rx.set_default(Reply::status(200));
    let (status, _, _) = gw.api("POST", &format!("/api/deliveries/{first}/retry"), None).await;
    assert_eq!(status, 202);
    let (status, _, replay) = gw
        .api("POST", "/api/dead-letters/replay", Some(json!({"webhookId": "w"})))
        .await;
    assert_eq!(status, 202);
    assert!(replay["replayed"].as_u64().unwrap() <= 1);
    for id in [&first, &second] {
        wait_status(&store, id, Status::Succeeded, Duration::from_secs(10)).await;
    }
    let (_, _, one) = gw.api("GET", &format!("/api/deliveries/{first}"), None).await;
    let codes: Vec<Value> = one["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["statusCode"].clone())
        .collect();
    assert_eq!(
        codes,
        [json!(500), json!(500), json!(200)],
        "history continues across the replay"
    );
    let attempts: Vec<String> = rx
        .received()
        .iter()
        .filter(|r| r.header("x-delivery-id") == Some(first.as_str()))
        .map(|r| r.header("x-delivery-attempt").unwrap().to_owned())
        .collect();
    assert_eq!(attempts, ["1", "2", "3"], "same id, attempts count on");
    let (status, _, body) = gw.api("POST", &format!("/api/deliveries/{first}/retry"), None).await;
    assert_eq!(status, 202, "a succeeded delivery can be sent again: {body}");
    let (status, _, _) = gw.api("POST", "/api/deliveries/dlv_nope/retry", None).await;
    assert_eq!(status, 404);
    let (_, _, dead) = gw.api("GET", "/api/dead-letters", None).await;
    assert!(dead["data"].as_array().unwrap().is_empty());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_ingest_creates_one_event_under_concurrent_requests_in_two_gateways() {
    let redis = RedisServer::start();
    let rx = Receiver::start().await;
    let (toml, _) = config_toml(&redis, FAST_DELIVERY, &webhook("w", &rx.url("/w"), &["*"], ""));
    let a = Gateway::start(&toml).await;
    let b = Gateway::start(&toml).await;
    let body = r#"{"type":"order.created","data":{"order":7}}"#;
    let send = |gw: &Gateway, body: &'static str| {
        gw.http
            .post(gw.url("/api/events"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .header("idempotency-key", "order-7-created")
            .body(body)
            .send()
    };
    let (ra, rb) = tokio::join!(send(&a, body), send(&b, body));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!((ra.status().as_u16(), rb.status().as_u16()), (202, 202));
    let (ja, jb): (Value, Value) = (ra.json().await.unwrap(), rb.json().await.unwrap());
    assert_eq!(ja, jb, "both get the first answer");
    rx.wait_for("/w", 1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.received().len(), 1, "one event, one delivery");
    let again = send(&a, body).await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let other = send(&b, r#"{"type":"order.created","data":{"order":8}}"#)
        .await
        .unwrap();
    assert_eq!(other.status(), 409, "same key, different request");
    let (_, _, list) = a.api("GET", "/api/deliveries", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    a.stop().await;
    b.stop().await;
}

on_both_backends!(
    history_filters_and_paginates_across_three_pages,
    dead_letter_replayed_after_the_receiver_recovers_succeeds_with_all_attempts,
);
