//! kill -9 loses nothing; SIGTERM drains and exits 0.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use hookgate::store::Status;
use hookgate_testkit::{Receiver, RedisServer, Reply, TempDir};

use crate::common::*;

/// A receiver that answers 200 after `ms`.
async fn receiver_answering_after(ms: u64) -> Receiver {
    let rx = Receiver::start().await;
    rx.set_default(Reply::status(200).delay(Duration::from_millis(ms)));
    rx
}

async fn post(client: &reqwest::Client, url: &str, i: usize) -> Vec<String> {
    post_event_to(
        client,
        url,
        &serde_json::json!({"type": "order.created", "data": {"i": i}}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_deliveries_pending_then_restart_delivers_everything() {
    let redis = RedisServer::start();
    let rx = receiver_answering_after(150).await;
    let delivery = fast_delivery("concurrency = 4\ntimeout = \"1s\"\n");
    let hooks = [
        webhook("a", &rx.url("/a"), &["order.*"], ""),
        webhook("b", &rx.url("/b"), &["*"], ""),
    ]
    .concat();
    let (toml, prefix) = config_toml(&redis, &delivery, &hooks);
    let dir = Arc::new(TempDir::new("crash"));
    let mut gw = GatewayProcess::spawn(&toml, dir.clone()).await;
    let client = http();
    let mut accepted = Vec::new();
    for i in 0..30 {
        accepted.extend(post(&client, &gw.url("/api/events"), i).await);
    }
    // Let some deliveries start (and some be in flight), then kill -9.
    rx.wait_for("/a", 3, Duration::from_secs(10)).await;
    gw.kill9();
    let before = rx.received().len();
    assert!(
        before < accepted.len(),
        "the crash must leave work pending ({before} of {})",
        accepted.len()
    );

    let restarted = GatewayProcess::spawn(&toml, dir.clone()).await;
    let store = store(&redis, &prefix);
    for id in &accepted {
        wait_status(&store, id, Status::Succeeded, Duration::from_secs(30)).await;
    }
    let seen: HashSet<String> = rx
        .received()
        .iter()
        .map(|r| r.header("x-delivery-id").unwrap().to_owned())
        .collect();
    for id in &accepted {
        assert!(seen.contains(id), "delivery {id} never arrived");
    }
    drop(restarted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_attempts_and_exits_zero() {
    let redis = RedisServer::start();
    let rx = receiver_answering_after(800).await;
    let (toml, prefix) = config_toml(&redis, FAST_DELIVERY, &webhook("w", &rx.url("/hook"), &["*"], ""));
    let dir = Arc::new(TempDir::new("sigterm"));
    let mut gw = GatewayProcess::spawn(&toml, dir).await;
    let client = http();
    let ids = post(&client, &gw.url("/api/events"), 1).await;
    rx.wait_for("/hook", 1, Duration::from_secs(5)).await;
    let status = gw.terminate(Duration::from_secs(15));
    assert!(status.success(), "exit status {status:?}; log:\n{}", gw.log_text());
    let rec = store(&redis, &prefix).delivery(&ids[0]).await.unwrap().unwrap();
    assert_eq!(
        rec.status,
        Status::Succeeded,
        "the in-flight attempt finished and was recorded"
    );
    assert!(gw.log_text().contains("shutdown complete"));
}

/// A delivery waiting in the gateway for its webhook's cap (one attempt at
/// a time here: concurrency 4) is released on SIGTERM, not started and not
/// lost, and the next gateway delivers it, as it does the one still queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_deliveries_waiting_for_their_webhooks_cap() {
    let redis = RedisServer::start();
    let rx = receiver_answering_after(800).await;
    let delivery = fast_delivery("concurrency = 4\n");
    let (toml, prefix) = config_toml(&redis, &delivery, &webhook("w", &rx.url("/hook"), &["*"], ""));
    let dir = Arc::new(TempDir::new("parked"));
    let mut gw = GatewayProcess::spawn(&toml, dir.clone()).await;
    let client = http();
    let first = post(&client, &gw.url("/api/events"), 1).await;
    rx.wait_for("/hook", 1, Duration::from_secs(5)).await;
    // The webhook is at its cap: the next one waits in the gateway, the
    // one after that in the store.
    let mut waiting = post(&client, &gw.url("/api/events"), 2).await;
    waiting.extend(post(&client, &gw.url("/api/events"), 3).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = gw.terminate(Duration::from_secs(15));
    assert!(status.success(), "exit status {status:?}; log:\n{}", gw.log_text());
    assert_eq!(rx.received().len(), 1, "nothing started after the stop began");
    let store = store(&redis, &prefix);
    assert_eq!(
        store.delivery(&first[0]).await.unwrap().unwrap().status,
        Status::Succeeded
    );
    for id in &waiting {
        let rec = store.delivery(id).await.unwrap().expect("still stored");
        assert_eq!((rec.status, rec.attempt_count), (Status::Pending, 0), "{id}");
    }

    let restarted = GatewayProcess::spawn(&toml, dir).await;
    for id in &waiting {
        wait_status(&store, id, Status::Succeeded, Duration::from_secs(30)).await;
    }
    let mut seen: Vec<String> = rx
        .received()
        .iter()
        .map(|r| r.header("x-delivery-id").unwrap().to_owned())
        .collect();
    seen.sort();
    let mut all: Vec<String> = first.iter().chain(&waiting).cloned().collect();
    all.sort();
    assert_eq!(seen, all, "each delivered once");
    drop(restarted);
}
