//! Retry schedule, Retry-After, dead letters, 410 Gone.

use std::time::Duration;

use hookgate::store::Status;
use hookgate_testkit::{Receiver, Reply};

use crate::common::*;

async fn retries_keep_the_delivery_id_follow_the_schedule_then_dead_letter(backend: Backend) {
    let db = TestStore::start(backend);
    let rx = Receiver::start().await;
    rx.set_default(Reply::status(500).body("boom"));
    // retry n waits 200ms * 2^(n-1): 200, 400, 800 ms, no jitter.
    let delivery = fast_delivery("max_retries = 3\n");
    let (toml, prefix) = config_toml(&db, &delivery, &webhook("w", &rx.url("/hook"), &["*"], ""));
    let gw = Gateway::start(&toml).await;
    let answer = gw.post_event("job.failed", r#"{"x":1}"#).await;
    let id = delivery_ids(&answer)[0].clone();

    let got = rx.wait_for("/hook", 4, Duration::from_secs(15)).await;
    let store = store(&db, &prefix);
    let rec = wait_status(&store, &id, Status::Dead, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(rx.received().len(), 4, "first attempt + max_retries, then nothing");

    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.header("x-delivery-id"), Some(id.as_str()));
        assert_eq!(r.header("x-delivery-attempt"), Some((i + 1).to_string().as_str()));
        assert_eq!(r.body.as_ref(), br#"{"x":1}"#);
    }
    for (n, pair) in got.windows(2).enumerate() {
        let gap = pair[1].at - pair[0].at;
        let nominal = Duration::from_millis(200 << n);
        assert!(
            gap + Duration::from_millis(30) >= nominal && gap <= nominal + Duration::from_millis(1000),
            "retry {} came after {gap:?}, expected about {nominal:?}",
            n + 1
        );
    }
    assert_eq!(rec.attempts.len(), 4);
    for (i, a) in rec.attempts.iter().enumerate() {
        assert_eq!(a.attempt, i as u32 + 1);
        assert_eq!(a.status_code, Some(500));
        assert_eq!(a.error.as_deref(), Some("HTTP 500"));
        assert_eq!(a.response_body.as_deref(), Some("boom"));
    }
    gw.stop().await;
}

async fn retry_after_is_honoured_in_seconds_and_http_dates(backend: Backend) {
    let db = TestStore::start(backend);
    let rx = Receiver::start().await;
    let date = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3));
    rx.plan([
        Reply::status(429).header("retry-after", "2"),
        Reply::status(503).header("retry-after", &date),
        Reply::status(200),
    ]);
    let delivery = fast_delivery("max_retries = 5\nretry_base = \"50ms\"\n");
    let (toml, prefix) = config_toml(&db, &delivery, &webhook("w", &rx.url("/hook"), &["*"], ""));
    let gw = Gateway::start(&toml).await;
    let id = delivery_ids(&gw.post_event("a.b", "{}").await)[0].clone();
    let got = rx.wait_for("/hook", 3, Duration::from_secs(15)).await;
    let first_gap = got[1].at - got[0].at;
    assert!(
        first_gap >= Duration::from_millis(1950),
        "Retry-After: 2 honoured, waited {first_gap:?}"
    );
    // Upper bounds are loose: these shared machines stall under load.
    assert!(first_gap < Duration::from_millis(4500), "{first_gap:?}");
    // The date was ~3 s after the first request; allow for its 1 s resolution.
    let to_third = got[2].at - got[0].at;
    assert!(
        to_third >= Duration::from_millis(1900),
        "HTTP-date Retry-After honoured, {to_third:?}"
    );
    wait_status(&store(&db, &prefix), &id, Status::Succeeded, Duration::from_secs(5)).await;
    gw.stop().await;
}

async fn gone_disables_the_webhook_and_dead_letters_its_pending_deliveries(backend: Backend) {
    let db = TestStore::start(backend);
    let rx = Receiver::start().await;
    // The first delivery fails (retry in 5 s), the second gets 410.
    rx.plan([Reply::status(500), Reply::status(410)]);
    let delivery = fast_delivery("retry_base = \"5s\"\nconcurrency = 1\n");
    let hooks = [
        webhook("gone", &rx.url("/gone"), &["*"], ""),
        webhook("other", &rx.url("/other"), &["other.*"], ""),
    ]
    .concat();
    let (toml, prefix) = config_toml(&db, &delivery, &hooks);
    let gw = Gateway::start(&toml).await;
    let store = store(&db, &prefix);
    let first = delivery_ids(&gw.post_event("a.b", "1").await)[0].clone();
    wait_status(&store, &first, Status::Failed, Duration::from_secs(5)).await;
    let second = delivery_ids(&gw.post_event("a.b", "2").await)[0].clone();

    let rec = wait_status(&store, &second, Status::Dead, Duration::from_secs(5)).await;
    assert_eq!(rec.attempts[0].status_code, Some(410));
    let rec = wait_status(&store, &first, Status::Dead, Duration::from_secs(5)).await;
    assert_eq!(
        rec.attempts.len(),
        1,
        "the pending retry went to the dead-letter queue unattempted"
    );

    let states = store.load_webhooks().await.unwrap().states;
    assert_eq!(states["gone"].disabled_reason, "gone");
    let later = gw.post_event("a.b", "3").await;
    assert!(
        later["deliveries"].as_array().unwrap().is_empty(),
        "a disabled webhook gets nothing: {later}"
    );
    let other = gw.post_event("other.x", "4").await;
    assert_eq!(delivery_ids(&other).len(), 1);
    rx.wait_for("/other", 1, Duration::from_secs(5)).await;
    assert_eq!(rx.received_on("/gone").len(), 2);
    gw.stop().await;
}

on_both_backends!(
    retries_keep_the_delivery_id_follow_the_schedule_then_dead_letter,
    retry_after_is_honoured_in_seconds_and_http_dates,
    gone_disables_the_webhook_and_dead_letters_its_pending_deliveries,
);
