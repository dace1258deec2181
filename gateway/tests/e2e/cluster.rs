//! The gateway on a real Redis Cluster (three masters, three replicas):
//! delivery end to end with every key in one hash slot, and a failover of
//! the master holding that slot under load.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookgate::store::Status;
use hookgate_testkit::{Receiver, RedisCluster, wait_until};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_on_redis_cluster_delivers_with_its_shards_on_every_master() {
    let cluster = tokio::task::spawn_blocking(RedisCluster::shared).await.unwrap();
    let rx = Receiver::start().await;
    let hooks = [
        webhook("orders", &rx.url("/orders"), &["order.*"], ""),
        webhook("all", &rx.url("/all"), &["*"], ""),
    ]
    .concat();
    let (toml, prefix) = config_toml(&*cluster, FAST_DELIVERY, &hooks);
    let gw = Gateway::start(&toml).await;

    let mut ids = BTreeSet::new();
    for n in 0..20 {
        let answer = gw.post_event("order.created", &format!(r#"{{"n":{n}}}"#)).await;
        ids.extend(delivery_ids(&answer));
    }
    assert_eq!(ids.len(), 40);
    rx.wait_for("/orders", 20, Duration::from_secs(15)).await;
    rx.wait_for("/all", 20, Duration::from_secs(15)).await;
    let received: BTreeSet<String> = rx
        .received()
        .iter()
        .filter_map(|r| r.header("x-delivery-id").map(str::to_owned))
        .collect();
    assert_eq!(received, ids, "each delivery arrived, under its own X-Delivery-ID");
    let store = store(&*cluster, &prefix);
    for id in &ids {
        wait_status(&store, id, Status::Succeeded, Duration::from_secs(10)).await;
    }

    // API webhooks (transactions on the cluster) and history pages.
    let (status, _, created) = gw
        .api(
            "POST",
            "/api/webhooks",
            Some(json!({"name": "from the API", "url": rx.url("/api"), "events": ["*"]})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    wait_until(Duration::from_secs(10), "the API webhook to get events", || async {
        let answer = gw.post_event("order.shipped", "{}").await;
        let to: Vec<&str> = answer["deliveries"]
            .as_array()?
            .iter()
            .filter_map(|d| d["webhookId"].as_str())
            .collect();
        to.contains(&created["id"].as_str()?).then_some(())
    })
    .await;
    rx.wait_for("/api", 1, Duration::from_secs(10)).await;
    let (status, _, page) = gw.api("GET", "/api/deliveries?webhookId=orders&limit=5", None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"].as_array().map(Vec::len), Some(5), "{page}");
    assert!(page["nextCursor"].is_string(), "{page}");

    // The store-wide keys are on the master of `{prefix}`'s slot; the
    // shards' keys (`{prefix:i:salt}:...`) are spread over every master;
    // none is named the standalone way.
    let tagged = format!("{{{prefix}}}");
    let sharded = format!("{{{prefix}:");
    let c = cluster.clone();
    let (store_wide, shards, master, untagged) = tokio::task::spawn_blocking(move || {
        let on = |pattern: &str| -> Vec<(u16, u64)> {
            c.keys_per_master(pattern).into_iter().filter(|(_, n)| *n > 0).collect()
        };
        let untagged: u64 = c.keys_per_master(&format!("{prefix}:*")).iter().map(|(_, n)| n).sum();
        (
            on(&format!("{tagged}:*")),
            on(&format!("{sharded}*")),
            c.master_of(&tagged),
            untagged,
        )
    })
    .await
    .unwrap();
    assert_eq!(
        store_wide.len(),
        1,
        "one master holds the store-wide keys: {store_wide:?}"
    );
    assert_eq!(store_wide[0].0, master);
    assert_eq!(shards.len(), 3, "every master holds shards: {shards:?}");
    assert!(
        shards.iter().map(|(_, n)| n).sum::<u64>() > 40,
        "deliveries, queues and indexes: {shards:?}"
    );
    assert_eq!(untagged, 0);
    gw.stop().await;
}

/// What the producer saw: accepted event number -> delivery id, every
/// refusal `(status, error code)`, and the slowest answer.
type Produced = (BTreeMap<u64, String>, Vec<(u16, String)>, Duration);

/// Posts `{"n": N}` events (N counting up from `first`) one after the
/// other, 10 ms apart, until `stop`.
async fn produce(gw_http: reqwest::Client, url: String, first: u64, stop: CancellationToken) -> Produced {
    let (mut accepted, mut refused, mut slowest) = (BTreeMap::new(), Vec::new(), Duration::ZERO);
    let mut n = first;
    while !stop.is_cancelled() {
        let started = Instant::now();
        let resp = gw_http
            .post(&url)
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(format!(r#"{{"type":"load.tick","data":{{"n":{n}}}}}"#))
            .send()
            .await
            .expect("the gateway answers (the client waits 10 s at most)");
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        slowest = slowest.max(started.elapsed());
        if status == 202 {
            accepted.insert(n, delivery_ids(&body)[0].clone());
        } else {
            refused.push((status, body["error"]["code"].as_str().unwrap_or_default().to_owned()));
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (accepted, refused, slowest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_failover_under_load_loses_no_accepted_event_and_never_hangs_the_api() {
    // A cluster of its own: this test kills a node.
    let cluster = Arc::new(tokio::task::spawn_blocking(RedisCluster::start).await.unwrap());
    let rx = Receiver::start().await;
    let (toml, prefix) = config_toml(&*cluster, FAST_DELIVERY, &webhook("w", &rx.url("/hook"), &["*"], ""));
    let gw = Gateway::start(&toml).await;
    let stop = CancellationToken::new();
    // Four producers, so requests keep arriving while some wait on the store.
    let producers: Vec<_> = (0..4)
        .map(|p| {
            tokio::spawn(produce(
                gw.http.clone(),
                gw.url("/api/events"),
                p * 1_000_000,
                stop.clone(),
            ))
        })
        .collect();
    rx.wait_for("/hook", 40, Duration::from_secs(10)).await;

    let c = cluster.clone();
    let tag = format!("{{{prefix}}}");
    let killed_at = Instant::now();
    let killed = tokio::task::spawn_blocking(move || c.kill_master_of(&tag))
        .await
        .unwrap();
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.wait_healthy(Duration::from_secs(30)))
        .await
        .unwrap();
    let promoted_after = killed_at.elapsed();
    wait_until(Duration::from_secs(15), "/healthz to answer 200 again", || async {
        let r = gw.http.get(gw.url("/healthz")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    let back_after = killed_at.elapsed();
    let before = rx.received().len();
    rx.wait_for("/hook", before + 40, Duration::from_secs(15)).await;
    stop.cancel();
    let (mut accepted, mut refused, mut slowest) = (BTreeMap::new(), Vec::new(), Duration::ZERO);
    for p in producers {
        let (a, r, s) = p.await.unwrap();
        accepted.extend(a);
        refused.extend(r);
        slowest = slowest.max(s);
    }

    assert!(
        slowest < Duration::from_secs(7),
        "an answer took {slowest:?}: the API must answer (202 or 503) within the store's 5 s bound"
    );
    for (status, code) in &refused {
        assert_eq!((*status, code.as_str()), (503, "store_unavailable"));
    }
    wait_until(
        Duration::from_secs(40),
        "every accepted event to be delivered",
        || async {
            let got: BTreeSet<String> = rx
                .received()
                .iter()
                .filter_map(|r| r.header("x-delivery-id").map(str::to_owned))
                .collect();
            accepted.values().all(|id| got.contains(id)).then_some(())
        },
    )
    .await;
    // At least once: a repeat carries the same X-Delivery-ID as the first.
    let mut ids_by_event: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    let mut requests = 0;
    for r in rx.received() {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let n = body["n"].as_u64().unwrap();
        let id = r.header("x-delivery-id").unwrap().to_owned();
        if let Some(want) = accepted.get(&n) {
            assert_eq!(&id, want, "event {n} arrived under another delivery id");
        }
        ids_by_event.entry(n).or_default().insert(id);
        requests += 1;
    }
    assert!(
        ids_by_event.values().all(|ids| ids.len() == 1),
        "an event was delivered under two delivery ids"
    );
    eprintln!(
        "failover of master {killed}: promoted after {promoted_after:?}, /healthz 200 after {back_after:?}; \
         {} accepted, {} refused with 503, slowest answer {slowest:?}; {requests} requests for {} events",
        accepted.len(),
        refused.len(),
        ids_by_event.len()
    );
    gw.stop().await;
}

/// An API token's rate limit lives on one master (its key is a hash slot
/// of its own). With that master down, events get `503 store_unavailable`
/// with `Retry-After` by ingest's deadline and the next ones at once, never
/// after the cluster client's own 5 s; once the replica has taken over,
/// events are accepted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_rate_limit_master_down_events_get_503_by_the_deadline_then_at_once() {
    use sha2::{Digest, Sha256};
    // A cluster of its own: this test kills a node.
    let cluster = Arc::new(tokio::task::spawn_blocking(RedisCluster::start).await.unwrap());
    let rx = Receiver::start().await;
    let (toml, prefix) = config_toml(&*cluster, FAST_DELIVERY, &webhook("w", &rx.url("/hook"), &["*"], ""));
    let gw = Gateway::start(&toml).await;
    // Accepted first: the gateway learns Redis's clock, the limit its key.
    gw.post_event("load.tick", "{}").await;
    let digest = hookgate::signing::digest_hex(&Sha256::digest(TOKEN.as_bytes()).into());
    let key = format!("{{{prefix}:rl:api:tok:{}}}", &digest[..24]);
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.kill_master_of(&key))
        .await
        .unwrap();

    let post = || async {
        let started = Instant::now();
        let resp = gw
            .http
            .post(gw.url("/api/events"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(r#"{"type":"load.tick","data":{}}"#)
            .send()
            .await
            .expect("the gateway answers");
        let status = resp.status().as_u16();
        let retry_after = resp.headers().contains_key("retry-after");
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let code = body["error"]["code"].as_str().unwrap_or_default().to_owned();
        (status, retry_after, code, started.elapsed())
    };
    let (status, retry_after, code, took) = post().await;
    assert_eq!((status, code.as_str(), retry_after), (503, "store_unavailable", true));
    assert!(took < Duration::from_secs(3), "answered by the deadline, took {took:?}");
    let (status, retry_after, code, took) = post().await;
    assert_eq!((status, code.as_str(), retry_after), (503, "store_unavailable", true));
    assert!(
        took < Duration::from_millis(500),
        "the limit is not asked again for a moment, took {took:?}"
    );

    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.wait_healthy(Duration::from_secs(30)))
        .await
        .unwrap();
    wait_until(Duration::from_secs(20), "events to be accepted again", || async {
        (post().await.0 == 202).then_some(())
    })
    .await;
    gw.stop().await;
}
