//! Fan-out, exact headers, byte-for-byte bodies, verifiable signatures.

use std::time::Duration;

use hookgate::store::Status;
use hookgate_testkit::{Receiver, Reply};
use sha2::{Digest, Sha256};

use crate::common::*;

/// HMAC-SHA256 written out from the RFC 2104 definition over plain SHA-256,
/// independent of the `hmac` crate the gateway signs with.
fn independent_hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new().chain_update(&ipad).chain_update(msg).finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// The webhook ids of a 202 answer, sorted.
fn targets(answer: &serde_json::Value) -> Vec<String> {
    let mut ids: Vec<String> = answer["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["webhookId"].as_str().unwrap().to_owned())
        .collect();
    ids.sort_unstable();
    ids
}

async fn fans_out_by_pattern_and_honours_test_mode(backend: Backend) {
    let db = TestStore::start(backend);
    let rx = Receiver::start().await;
    let hooks = [
        webhook("orders", &rx.url("/orders"), &["order.created"], ""),
        webhook("tasks", &rx.url("/tasks"), &["task.*"], ""),
        webhook("all", &rx.url("/all"), &["*"], ""),
        webhook("sandbox", &rx.url("/sandbox"), &["*"], "test_mode = true"),
    ]
    .concat();
    let (toml, _) = config_toml(&db, FAST_DELIVERY, &hooks);
    let gw = Gateway::start(&toml).await;

    let a = gw.post_event("task.completed", r#"{"n":1}"#).await;
    assert_eq!(targets(&a), ["all", "tasks"]);
    assert!(a["id"].as_str().unwrap().starts_with("evt_"));

    let b = gw.post_event("order.created", r#"{"n":2}"#).await;
    assert_eq!(targets(&b), ["all", "orders"]);

    let none = gw.post_event("user.signed_up", r#"{"n":3}"#).await;
    assert_eq!(
        none["deliveries"].as_array().unwrap().len(),
        1,
        "only `all` matches: {none}"
    );

    let (status, t) = gw
        .post_raw(r#"{"type":"task.completed","data":{"n":4},"test":true}"#)
        .await;
    assert_eq!(status, 202);
    assert_eq!(targets(&t), ["sandbox"], "test events go only to test-mode webhooks");

    rx.wait_for("/all", 3, Duration::from_secs(10)).await;
    rx.wait_for("/tasks", 1, Duration::from_secs(10)).await;
    rx.wait_for("/orders", 1, Duration::from_secs(10)).await;
    let sandbox = rx.wait_for("/sandbox", 1, Duration::from_secs(10)).await;
    assert_eq!(sandbox[0].header("x-webhook-test"), Some("true"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rx.received_on("/all").len(),
        3,
        "no duplicates, and no test event to a normal webhook"
    );
    assert_eq!(rx.received_on("/tasks").len(), 1);
    assert_eq!(rx.received_on("/sandbox").len(), 1);
    gw.stop().await;
}

async fn delivers_exact_headers_body_bytes_and_verifiable_signatures(backend: Backend) {
    let db = TestStore::start(backend);
    let rx = Receiver::start().await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let hook = format!(
        "[[webhooks]]\nid = \"billing\"\nurl = \"{}\"\nevents = [\"invoice.paid\"]\nsecret = \"{secret}\"\nheaders = {{ \"X-Team\" = \"billing\" }}\n",
        rx.url("/hook")
    );
    let (toml, prefix) = config_toml(&db, FAST_DELIVERY, &hook);
    let gw = Gateway::start(&toml).await;
    // Odd spacing, key order and unicode must survive byte for byte.
    let data = "{\"z\": 1,   \"a\" : [1, 2.50, \"\\u00e9\u{e9}\"], \"nested\":{\"k\":null}}";
    let (status, answer) = gw
        .post_raw(&format!("{{\"type\":\"invoice.paid\",\"data\":{data}}}"))
        .await;
    assert_eq!(status, 202, "{answer}");
    let delivery_id = delivery_ids(&answer)[0].clone();
    let got = rx.wait_for("/hook", 1, Duration::from_secs(10)).await.remove(0);

    assert_eq!(got.body.as_ref(), data.as_bytes(), "body is the data exactly as posted");
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(got.header("x-webhook-id"), Some("billing"));
    assert_eq!(got.header("x-delivery-id"), Some(delivery_id.as_str()));
    assert_eq!(got.header("x-delivery-attempt"), Some("1"));
    assert_eq!(got.header("x-event-type"), Some("invoice.paid"));
    assert_eq!(got.header("x-team"), Some("billing"));
    assert_eq!(
        got.header("user-agent"),
        Some(concat!("hookgate/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(got.header("x-webhook-test"), None);
    let ts: i64 = got.header("x-webhook-timestamp").unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - ts).abs() < 30, "timestamp {ts} vs now {now}");

    // X-Hub-Signature: HMAC of the exact body keyed with the secret's UTF-8 bytes.
    let expected = format!(
        "sha256={}",
        hex::encode(independent_hmac_sha256(secret.as_bytes(), &got.body))
    );
    assert_eq!(got.header("x-hub-signature"), Some(expected.as_str()));

    // Standard Webhooks: id = delivery id, key = decoded whsec_ bytes.
    assert_eq!(got.header("webhook-id"), Some(delivery_id.as_str()));
    assert_eq!(got.header("webhook-timestamp"), Some(ts.to_string().as_str()));
    let key = base64_decode(secret.strip_prefix("whsec_").unwrap());
    let signed = [delivery_id.as_bytes(), b".", ts.to_string().as_bytes(), b".", &got.body].concat();
    let expected = format!("v1,{}", base64_encode(&independent_hmac_sha256(&key, &signed)));
    assert_eq!(got.header("webhook-signature"), Some(expected.as_str()));
    assert!(hookgate::signing::verify_standard(
        secret,
        &delivery_id,
        ts,
        &got.body,
        got.header("webhook-signature").unwrap()
    ));

    let store = store(&db, &prefix);
    let rec = wait_status(&store, &delivery_id, Status::Succeeded, Duration::from_secs(5)).await;
    assert_eq!(rec.attempts.len(), 1);
    assert_eq!(rec.attempts[0].status_code, Some(200));
    assert_eq!(rec.payload.as_ref(), data.as_bytes());
    gw.stop().await;
}

async fn hub_only_signature_config_and_redirects_fail(backend: Backend) {
    let db = TestStore::start(backend);
    let rx = Receiver::start().await;
    rx.plan([Reply::status(302).header("location", "http://127.0.0.1:1/elsewhere")]);
    let delivery = fast_delivery("signature_headers = [\"hub\"]\nmax_retries = 1\n");
    let (toml, prefix) = config_toml(&db, &delivery, &webhook("w", &rx.url("/hook"), &["*"], ""));
    let gw = Gateway::start(&toml).await;
    let answer = gw.post_event("a.b", "[1,2,3]").await;
    let id = delivery_ids(&answer)[0].clone();
    let got = rx.wait_for("/hook", 2, Duration::from_secs(10)).await;
    assert_eq!(got[0].header("webhook-signature"), None);
    assert!(got[0].header("x-hub-signature").is_some());
    assert_eq!(
        got[1].header("x-delivery-attempt"),
        Some("2"),
        "a redirect fails the attempt"
    );
    let rec = wait_status(&store(&db, &prefix), &id, Status::Succeeded, Duration::from_secs(5)).await;
    assert_eq!(rec.attempts[0].status_code, Some(302));
    assert!(
        rec.attempts[0]
            .error
            .as_deref()
            .unwrap()
            .contains("redirects are not followed")
    );
    gw.stop().await;
}

async fn ssrf_guard_refuses_loopback_unless_allowed(backend: Backend) {
    let db = TestStore::start(backend);
    let rx = Receiver::start().await;
    let delivery = "retry_jitter = 0.0\nretry_base = \"100ms\"\nmax_retries = 1\n";
    let named = rx.url("/named").replace("127.0.0.1", "localhost");
    let hooks = [
        webhook("ip", &rx.url("/ip"), &["*"], ""),
        webhook("named", &named, &["*"], ""),
    ]
    .concat();
    let (toml, prefix) = config_toml(&db, delivery, &hooks);
    let gw = Gateway::start(&toml).await;
    let answer = gw.post_event("a.b", "{}").await;
    let store = store(&db, &prefix);
    for id in delivery_ids(&answer) {
        let rec = wait_status(&store, &id, Status::Dead, Duration::from_secs(10)).await;
        assert_eq!(rec.attempts.len(), 2);
        for a in &rec.attempts {
            let err = a.error.as_deref().unwrap();
            assert!(err.contains("destination refused") && err.contains("loopback"), "{err}");
            assert_eq!(a.status_code, None);
        }
    }
    assert!(rx.received().is_empty(), "nothing reached the loopback receiver");
    gw.stop().await;
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

async fn metrics_count_events_attempts_outcomes_and_queues(backend: Backend) {
    let db = TestStore::start(backend);
    // Metric labels are process-wide: names of their own for each backend.
    let t = backend.tag();
    let rx = Receiver::start().await;
    rx.plan([Reply::status(503)]);
    let delivery = fast_delivery("max_retries = 1\nretry_base = \"50ms\"");
    let hooks = [
        webhook(
            &format!("metrics_flaky_{t}"),
            &rx.url("/flaky"),
            &[&format!("metrics{t}.*")],
            "",
        ),
        webhook(
            &format!("metrics_ok_{t}"),
            &rx.url("/ok"),
            &[&format!("metrics{t}.ok")],
            "",
        ),
    ]
    .concat();
    let (toml, prefix) = config_toml(&db, &delivery, &hooks);
    let gw = Gateway::start(&toml).await;
    let flaky = delivery_ids(&gw.post_event(&format!("metrics{t}.flaky"), "{}").await);
    // The planned 503 answers whichever request comes first: the second
    // event waits until it has gone to /flaky.
    rx.wait_for("/flaky", 1, Duration::from_secs(10)).await;
    let both = delivery_ids(&gw.post_event(&format!("metrics{t}.ok"), "{}").await);
    let store = store(&db, &prefix);
    for id in flaky.iter().chain(&both) {
        wait_status(&store, id, Status::Succeeded, Duration::from_secs(10)).await;
    }
    let text = gw.metrics().await;
    for line in [
        format!("hookgate_events_received_total{{type=\"metrics{t}.flaky\"}} 1"),
        format!("hookgate_events_received_total{{type=\"metrics{t}.ok\"}} 1"),
        format!("hookgate_delivery_attempts_total{{webhook=\"metrics_flaky_{t}\",result=\"http_5xx\"}} 1"),
        format!("hookgate_delivery_attempts_total{{webhook=\"metrics_flaky_{t}\",result=\"success\"}} 2"),
        format!("hookgate_deliveries_total{{webhook=\"metrics_flaky_{t}\",outcome=\"succeeded\"}} 2"),
        format!("hookgate_deliveries_total{{webhook=\"metrics_ok_{t}\",outcome=\"succeeded\"}} 1"),
        format!("hookgate_retries_total{{webhook=\"metrics_flaky_{t}\"}} 1"),
        format!("hookgate_delivery_duration_seconds_count{{webhook=\"metrics_ok_{t}\"}} 1"),
        "hookgate_queue_depth{status=\"pending\"} 0".into(),
        "hookgate_queue_depth{status=\"dead\"} 0".into(),
        "# TYPE hookgate_delivery_duration_seconds histogram".into(),
    ] {
        assert!(text.contains(&line), "missing {line:?} in:\n{text}");
    }
    gw.stop().await;
}

async fn a_slow_endpoint_does_not_stall_the_others(backend: Backend) {
    let db = TestStore::start(backend);
    let slow = Receiver::start().await;
    slow.set_default(Reply::status(200).delay(Duration::from_millis(1500)));
    let fast = Receiver::start().await;
    let delivery = fast_delivery("concurrency = 8\ntimeout = \"5s\"");
    let hooks = [
        webhook("slow", &slow.url("/slow"), &["slow.*"], ""),
        webhook("fast", &fast.url("/fast"), &["fast.*"], ""),
    ]
    .concat();
    let (toml, _) = config_toml(&db, &delivery, &hooks);
    let gw = Gateway::start(&toml).await;
    // A backlog for the slow endpoint: 30 deliveries at 1.5 s each.
    for i in 0..30 {
        gw.post_event("slow.x", &format!("{{\"i\":{i}}}")).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let posted = std::time::Instant::now();
    for i in 0..5 {
        gw.post_event("fast.x", &format!("{{\"i\":{i}}}")).await;
    }
    fast.wait_for("/fast", 5, Duration::from_secs(10)).await;
    let took = posted.elapsed();
    assert!(
        took < Duration::from_millis(3000),
        "the fast endpoint waited {took:?} behind the slow one"
    );
    assert!(slow.received().len() < 30, "the slow backlog is still draining");
    gw.stop().await;
}

on_both_backends!(
    fans_out_by_pattern_and_honours_test_mode,
    delivers_exact_headers_body_bytes_and_verifiable_signatures,
    hub_only_signature_config_and_redirects_fail,
    ssrf_guard_refuses_loopback_unless_allowed,
    metrics_count_events_attempts_outcomes_and_queues,
    a_slow_endpoint_does_not_stall_the_others,
);
