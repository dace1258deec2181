//! The store contract, as ONE suite every backend runs unchanged:
//! `redis_store_conforms` against a real Redis (and
//! `sharded_redis_store_conforms` with its queues split into five shards),
//! `redis_cluster_store_conforms` against a real Redis Cluster (three
//! masters, three replicas), `embedded_store_conforms` against the embedded
//! store in a fresh folder per check.

mod leases;
mod queue;
mod records;
mod spread;
mod stats;
mod webhooks;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hookgate::store::*;
use hookgate_testkit::{RedisCluster, RedisServer, TempDir, unique};

/// Retention of the stores the checks get (one check asks for a short one).
const RETENTION: Duration = Duration::from_secs(60);

pub fn event(id: &str) -> NewEvent {
    NewEvent {
        id: id.into(),
        event_type: "order.created".into(),
        data: Bytes::from_static(br#"{"a": 1}"#),
        test: false,
        created_at_ms: now_ms(),
        lease: None,
    }
}

pub fn delivery(id: &str, webhook: &str) -> NewDelivery {
    NewDelivery {
        id: id.into(),
        webhook_id: webhook.into(),
    }
}

pub fn claim_req(owner: &str, n: usize, lease_ms: u64) -> ClaimRequest {
    claim_split(owner, n, n, lease_ms)
}

pub fn claim_split(owner: &str, first: usize, retry: usize, lease_ms: u64) -> ClaimRequest {
    ClaimRequest {
        first,
        retry,
        lease: Duration::from_millis(lease_ms),
        owner: owner.into(),
        limits: Vec::new(),
    }
}

pub fn completion(job: &Job, owner: &str, outcome: Outcome, attempt: Option<u32>) -> Completion {
    Completion {
        delivery_id: job.delivery_id.clone(),
        event_id: job.event_id.clone(),
        webhook_id: job.webhook_id.clone(),
        owner: owner.into(),
        outcome,
        attempt: attempt.map(|n| AttemptRecord {
            attempt: n,
            started_at: now_ms(),
            duration_ms: 3,
            status_code: Some(500),
            error: Some("HTTP 500".into()),
            response_body: None,
            filtered: None,
        }),
        payload: None,
    }
}

/// Runs every contract check against stores made by `make` (each call a
/// fresh, empty store with the given retention and webhook change log
/// length).
/// `inline`: the store takes a leased event's rate limits in its write.
pub async fn run_suite(make: impl Fn(Duration, u64) -> Arc<dyn Store>, inline: bool) {
    let fresh = || make(RETENTION, WEBHOOK_LOG_CAP);
    leases::rate_limits_of_a_leased_event_are_taken_in_its_write(fresh(), inline).await;
    queue::enqueue_then_claim_hands_out_each_delivery_once(fresh()).await;
    queue::outcomes_apply_and_stale_leases_only_record(fresh()).await;
    leases::expired_leases_are_claimed_again_by_anyone(fresh()).await;
    leases::deliveries_leased_at_enqueue_skip_the_queue_until_the_lease_expires(fresh()).await;
    queue::retries_wait_and_defers_keep_the_budget(fresh()).await;
    leases::due_deliveries_come_out_in_due_time_order(fresh()).await;
    queue::claim_budget_keeps_room_for_first_attempts(fresh()).await;
    leases::concurrent_claimers_never_hold_the_same_delivery(fresh()).await;
    queue::disabling_a_webhook_dead_letters_its_pending_deliveries(fresh()).await;
    queue::rate_limiter_admits_burst_then_steady_rate(fresh()).await;
    queue::idempotent_enqueue_writes_once(fresh()).await;
    queue::concurrent_enqueues_each_get_their_own_answer(fresh()).await;
    records::history_pages_newest_first_with_filters(fresh()).await;
    records::history_pages_per_webhook_and_dead_letters(fresh()).await;
    records::requeue_gives_a_fresh_budget_and_keeps_history(fresh()).await;
    records::dead_letters_replay_and_leave_the_queue(fresh()).await;
    webhooks::webhooks_are_stored_by_id_and_deletable(fresh()).await;
    webhooks::changes_arrive_once_each_in_order_as_they_are_now(fresh()).await;
    webhooks::a_cursor_the_log_cannot_reach_means_resync(make(RETENTION, 3), fresh(), fresh()).await;
    webhooks::circuit_breakers_swap_only_from_what_was_seen(fresh()).await;
    stats::statistics_add_up_per_minute_hour_and_webhook(fresh()).await;
    spread::work_in_every_bucket_is_claimed_once_listed_in_order_and_dead_lettered(fresh()).await;
    records::retention_removes_what_is_final_and_keeps_what_is_pending(make(
        Duration::from_millis(300),
        WEBHOOK_LOG_CAP,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_conforms() {
    let redis = RedisServer::start();
    let url = redis.url();
    run_suite(
        |retention, log_cap| {
            let store =
                hookgate::store::redis::RedisStore::open(&url, &format!("conf{}", unique()), retention).unwrap();
            Arc::new(store.with_webhook_log_cap(log_cap)) as Arc<dyn Store>
        },
        true,
    )
    .await;
}

/// The same suite on one Redis with its queues split into shards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_redis_store_conforms() {
    let redis = RedisServer::start();
    let url = redis.url();
    run_suite(
        |retention, log_cap| {
            let store =
                hookgate::store::redis::RedisStore::open(&url, &format!("conf{}", unique()), retention).unwrap();
            Arc::new(store.with_shards(5).with_webhook_log_cap(log_cap)) as Arc<dyn Store>
        },
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_store_conforms() {
    let cluster = tokio::task::spawn_blocking(RedisCluster::shared).await.unwrap();
    let nodes = cluster.urls();
    run_suite(
        |retention, log_cap| {
            let store =
                hookgate::store::redis::RedisStore::open_cluster(&nodes, &format!("conf{}", unique()), retention)
                    .unwrap();
            Arc::new(store.with_webhook_log_cap(log_cap)) as Arc<dyn Store>
        },
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_conforms() {
    let dirs = Mutex::new(Vec::new());
    run_suite(
        |retention, log_cap| {
            let dir = TempDir::new("conformance");
            let store =
                hookgate::store::embedded::EmbeddedStore::open_with_log(&dir.path().join("data"), retention, log_cap)
                    .unwrap();
            dirs.lock().unwrap().push(dir);
            store as Arc<dyn Store>
        },
        true,
    )
    .await;
}

/// A store remembers its shard count; a gateway set to another refuses to
/// start on it (its deliveries would not be found), saying what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_store_refuses_another_shard_count() {
    use hookgate::store::redis::RedisStore;
    let redis = RedisServer::start();
    let prefix = format!("layout{}", unique());
    let open = |n: usize| {
        RedisStore::open(&redis.url(), &prefix, RETENTION)
            .unwrap()
            .with_shards(n)
    };
    open(4).check_layout().await.unwrap();
    open(4).check_layout().await.unwrap();
    let err = open(1).check_layout().await.unwrap_err().to_string();
    assert!(err.contains("shards = 4") && err.contains("store export"), "{err}");
    // A store from before shard counts were recorded has one shard.
    let old = format!("old{}", unique());
    let one = RedisStore::open(&redis.url(), &old, RETENTION).unwrap();
    one.enqueue(&event("e1"), &[delivery("d1", "w")], None, None)
        .await
        .unwrap();
    let err = RedisStore::open(&redis.url(), &old, RETENTION)
        .unwrap()
        .with_shards(8)
        .check_layout()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("shards = 1"), "{err}");
    one.check_layout().await.unwrap();
}

/// `wait_replicas`: ingest is acknowledged only once replicas have it. A
/// Redis without replicas answers "unavailable" (the API's 503) instead of
/// acknowledging; the cluster's replicas confirm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_waits_for_replicas_when_asked() {
    use hookgate::store::redis::RedisStore;
    let redis = RedisServer::start();
    let alone = RedisStore::open(&redis.url(), &format!("wait{}", unique()), RETENTION)
        .unwrap()
        .with_wait_replicas(1);
    let err = alone
        .enqueue(&event("e1"), &[delivery("d1", "w")], None, None)
        .await
        .unwrap_err();
    assert!(
        err.is_unavailable() && err.to_string().contains("0 of 1 replicas"),
        "{err}"
    );

    let cluster = tokio::task::spawn_blocking(RedisCluster::shared).await.unwrap();
    let store = RedisStore::open_cluster(&cluster.urls(), &format!("wait{}", unique()), RETENTION)
        .unwrap()
        .with_wait_replicas(1);
    let e = hookgate::ids::new_event_id(None);
    let d = hookgate::ids::delivery_ids(&e, 1);
    let mut ev = event("");
    ev.id = e;
    let answer = store.enqueue(&ev, &[delivery(&d[0], "w")], None, None).await.unwrap();
    assert_eq!(answer.outcome, Enqueued::Created);
    let jobs = store.claim(&claim_req("A", 4, 60_000)).await.unwrap().jobs;
    assert_eq!(jobs.len(), 1);
    let applied = store
        .complete(&[completion(&jobs[0], "A", Outcome::Succeeded, Some(1))])
        .await
        .unwrap();
    assert_eq!(applied, [true]);
}

/// `[store] history_max`: past the bound the oldest finished deliveries go
/// (records and index entries), waiting and dead ones never do; on one
/// shard and on five.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_bound_removes_the_oldest_finished_deliveries_only() {
    use hookgate::ids;
    use hookgate::store::redis::RedisStore;
    let redis = RedisServer::start();
    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for (shards, bound) in [(1, 10), (1, 30), (5, 10)] {
        let name = format!("bound{}", unique());
        let s = RedisStore::open(&redis.url(), &name, RETENTION)
            .unwrap()
            .with_shards(shards)
            .with_history_max(bound);
        // 40 deliveries, oldest first: every 4th stays waiting, every 4th
        // (offset 1) dies, the rest succeed.
        let mut ids_made = Vec::new();
        for i in 0..40u16 {
            let mut e = event("");
            e.id = ids::new_id_in("evt", i * 97 % ids::BUCKETS);
            // Longer than 64 bytes: kept in a key of its own.
            e.data = Bytes::from(format!("{{\"note\":\"{}\"}}", "x".repeat(100)));
            let d = ids::delivery_ids(&e.id, 1).remove(0);
            s.enqueue(&e, &[delivery(&d, "w")], None, None).await.unwrap();
            ids_made.push(d);
        }
        let jobs = s.claim(&claim_req("A", 100, 60_000)).await.unwrap().jobs;
        assert_eq!(jobs.len(), 40);
        let position = |id: &str| ids_made.iter().position(|x| x == id).unwrap();
        let outcomes: Vec<Completion> = jobs
            .iter()
            .filter(|j| position(&j.delivery_id) % 4 != 0)
            .map(|j| {
                let outcome = if position(&j.delivery_id) % 4 == 1 {
                    Outcome::Dead
                } else {
                    Outcome::Succeeded
                };
                completion(j, "A", outcome, Some(1))
            })
            .collect();
        s.complete(&outcomes).await.unwrap();
        let removed = s.enforce_history_bound().await.unwrap();
        let mut left = Vec::new();
        for (i, id) in ids_made.iter().enumerate() {
            if let Some(rec) = s.delivery(id).await.unwrap() {
                left.push((i, rec.status));
            }
        }
        let kept_waiting_or_dead = left.iter().filter(|(i, _)| i % 4 <= 1).count();
        assert_eq!(
            kept_waiting_or_dead, 20,
            "{shards} shards: waiting and dead stay: {left:?}"
        );
        assert_eq!(removed as usize, 40 - left.len(), "{shards} shards");
        // Each shard keeps at most its share of the bound, or only what
        // may never go; what finished and stayed is the newest.
        let succeeded: Vec<usize> = left
            .iter()
            .filter(|(_, st)| *st == Status::Succeeded)
            .map(|(i, _)| *i)
            .collect();
        assert!(
            succeeded.len() < 20,
            "{shards} shards: some finished history went: {left:?}"
        );
        if shards == 1 {
            // 20 may never go: a bound of 10 takes every finished one, a
            // bound of 30 the 10 oldest finished ones. Oldest by id: ids
            // of different buckets made in one millisecond are not in the
            // order they were made.
            let mut finished: Vec<usize> = (0..40).filter(|i| i % 4 >= 2).collect();
            finished.sort_by(|a, b| ids_made[*a].cmp(&ids_made[*b]));
            let mut expected: Vec<usize> = finished.into_iter().skip(if bound == 10 { 20 } else { 10 }).collect();
            expected.sort_unstable();
            assert_eq!(succeeded, expected, "bound {bound}");
        }
        let listed = s
            .list_deliveries(&DeliveryFilter::default(), 1000, None)
            .await
            .unwrap()
            .items
            .len();
        assert_eq!(listed, left.len(), "the index lost the removed ones too");
        let mut data_keys = 0;
        for pattern in [format!("{name}:dat:*"), format!("{{{name}:*}}:dat:*")] {
            let keys: Vec<String> = ::redis::cmd("KEYS").arg(pattern).query_async(&mut conn).await.unwrap();
            data_keys += keys.len();
        }
        assert_eq!(data_keys, left.len(), "removed deliveries took their data with them");
        assert_eq!(s.enforce_history_bound().await.unwrap(), 0, "nothing more to remove");
    }
}

/// On a standalone Redis a claim takes the rate limits it is given for the
/// deliveries it hands out, in order as one call to the limiter would, only
/// for the webhooks named and for at most as many deliveries as it is told:
/// the limiter then sees them spent, and no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_takes_the_rate_limits_it_is_given() {
    use hookgate::ids;
    use hookgate::ratelimit::Gcra;
    let redis = RedisServer::start();
    let (s, _, _) = store_with_raw_conn(&redis, "claimlimits").await;
    // Four deliveries to "w" (limited: two at once, taken for three of
    // them), two to "v" (not given).
    for webhook in ["w", "w", "w", "w", "v", "v"] {
        let mut e = event("");
        e.id = ids::new_id("evt");
        let d = ids::delivery_ids(&e.id, 1).remove(0);
        s.enqueue(&e, &[delivery(&d, webhook)], None, None).await.unwrap();
    }
    let limit = RateRequest {
        key: format!("wh:w{}", unique()),
        limit: Gcra::per_minute(60, 2),
    };
    let mut req = claim_req("A", 10, 60_000);
    req.limits = vec![ClaimLimit {
        webhook_id: "w".into(),
        limit: limit.clone(),
        at_most: 3,
    }];
    let batch = s.claim(&req).await.unwrap();
    assert_eq!(batch.jobs.len(), 6);
    assert_eq!(batch.taken.len(), 6, "one per job");
    let (mut admitted, mut waits, mut not_taken) = (0, Vec::new(), 0);
    for (job, taken) in batch.jobs.iter().zip(&batch.taken) {
        match (job.webhook_id.as_str(), taken) {
            ("w", Some(RateDecision::Allow)) => admitted += 1,
            ("w", Some(RateDecision::Wait(wait))) => waits.push(*wait),
            ("w", None) => not_taken += 1,
            ("v", None) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        (admitted, waits.len(), not_taken),
        (2, 1, 1),
        "the burst, a wait, one left alone"
    );
    assert!(
        waits[0] > Duration::from_millis(500) && waits[0] <= Duration::from_secs(1),
        "{waits:?}"
    );
    // Two admitted: the limiter's next slot is a second away.
    let after = s.acquire(std::slice::from_ref(&limit)).await.unwrap();
    assert!(
        matches!(after[0], RateDecision::Wait(_)),
        "spent by the claim: {after:?}"
    );
}

/// Scripts are called by their hash: where Redis no longer has them (a
/// restart without persistence, `SCRIPT FLUSH`, a promoted replica) each
/// call loads its script again and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_redis_has_forgotten_are_loaded_again() {
    use hookgate::ids;
    let redis = RedisServer::start();
    let (s, mut conn, _) = store_with_raw_conn(&redis, "noscript").await;
    let mut deliveries = Vec::new();
    for _ in 0..2 {
        let () = ::redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut conn)
            .await
            .unwrap();
        let mut e = event("");
        e.id = ids::new_id("evt");
        let d = ids::delivery_ids(&e.id, 1).remove(0);
        s.enqueue(&e, &[delivery(&d, "w")], None, None).await.unwrap();
        deliveries.push(d);
    }
    let () = ::redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    let jobs = s.claim(&claim_req("A", 10, 60_000)).await.unwrap().jobs;
    assert_eq!(jobs.len(), 2);
    let () = ::redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    let done: Vec<_> = jobs
        .iter()
        .map(|j| completion(j, "A", Outcome::Succeeded, Some(1)))
        .collect();
    assert!(s.complete(&done).await.unwrap().iter().all(|applied| *applied));
    for id in &deliveries {
        assert_eq!(s.delivery(id).await.unwrap().unwrap().status, Status::Succeeded);
    }
}

/// A Redis store under a fresh prefix starting with `name` (returned),
/// its layout checked, and a plain connection to the same Redis: to look at
/// its keys, or write records as an earlier version did.
async fn store_with_raw_conn(
    redis: &RedisServer,
    name: &str,
) -> (
    hookgate::store::redis::RedisStore,
    ::redis::aio::MultiplexedConnection,
    String,
) {
    let prefix = format!("{name}{}", unique());
    let s = hookgate::store::redis::RedisStore::open(&redis.url(), &prefix, RETENTION).unwrap();
    s.check_layout().await.unwrap();
    let client = ::redis::Client::open(redis.url()).unwrap();
    let conn = client.get_multiplexed_async_connection().await.unwrap();
    (s, conn, prefix)
}

/// Records and history indexes written by an earlier version (JSON attempt
/// records, `createdAt` and `event` fields, event data in one field, the
/// index in sorted sets) still read, claim and list after an upgrade: the
/// gateway moves the old index into the sliced one when it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_and_indexes_of_an_earlier_version_read_after_an_upgrade() {
    use hookgate::ids;
    let redis = RedisServer::start();
    let (s, mut conn, prefix) = store_with_raw_conn(&redis, "old").await;
    let key = |rest: &str| format!("{prefix}:{rest}");
    let data = format!("{{\"note\":\"{}\"}}", "x".repeat(200));
    let now = ids::now_ms();
    // An event with two deliveries: one succeeded (a JSON attempt record),
    // one dead.
    let fanned = ids::new_id("evt");
    let two = ids::delivery_ids(&fanned, 2);
    let attempt = format!("{{\"attempt\":1,\"startedAt\":{now},\"durationMs\":3,\"statusCode\":200}}");
    let () = ::redis::cmd("HSET")
        .arg(key(&format!("evt:{fanned}")))
        .arg(&[
            ("type", "order.created"),
            ("data", &data),
            ("test", "0"),
            ("createdAt", &now.to_string()),
            ("pending", "0"),
        ])
        .query_async(&mut conn)
        .await
        .unwrap();
    for (id, status) in [(&two[0], "succeeded"), (&two[1], "dead")] {
        let () = ::redis::cmd("HSET")
            .arg(key(&format!("dlv:{id}")))
            .arg(&[
                ("event", fanned.as_str()),
                ("webhook", "w"),
                ("type", "order.created"),
                ("test", "0"),
                ("status", status),
                ("attempts", "1"),
                ("retryBase", "0"),
                ("createdAt", &now.to_string()),
                ("updatedAt", &(now + 5).to_string()),
                ("due", "0"),
                ("a1", &attempt),
            ])
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let () = ::redis::cmd("ZADD")
        .arg(key("dead"))
        .arg(0)
        .arg(&two[1])
        .query_async(&mut conn)
        .await
        .unwrap();
    // A solo delivery still waiting: its data in the delivery, in one field.
    let solo_event = ids::new_id("evt");
    let solo = ids::solo_delivery_id(&solo_event);
    let () = ::redis::cmd("HSET")
        .arg(key(&format!("dlv:{solo}")))
        .arg(&[
            ("event", solo_event.as_str()),
            ("webhook", "v"),
            ("type", "user.deleted"),
            ("test", "0"),
            ("status", "pending"),
            ("attempts", "0"),
            ("retryBase", "0"),
            ("createdAt", &now.to_string()),
            ("updatedAt", &now.to_string()),
            ("due", &now.to_string()),
            ("solo", "1"),
            ("data", &data),
        ])
        .query_async(&mut conn)
        .await
        .unwrap();
    let () = ::redis::cmd("ZADD")
        .arg(key("q:first"))
        .arg(now)
        .arg(&solo)
        .query_async(&mut conn)
        .await
        .unwrap();
    let () = ::redis::cmd("SADD")
        .arg(key("wh:v:pending"))
        .arg(&solo)
        .query_async(&mut conn)
        .await
        .unwrap();
    for id in [&two[0], &two[1], &solo] {
        let () = ::redis::cmd("ZADD")
            .arg(key("idx:dlv"))
            .arg(0)
            .arg(id)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    for (webhook, id) in [("w", &two[0]), ("w", &two[1]), ("v", &solo)] {
        let () = ::redis::cmd("ZADD")
            .arg(key(&format!("idx:wh:{webhook}")))
            .arg(0)
            .arg(id)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    // A delivery of this version beside them.
    let new_event = ids::new_id("evt");
    let new_id = ids::solo_delivery_id(&new_event);
    let mut e = event(&new_event);
    e.data = Bytes::from(data.clone());
    s.enqueue(&e, &[delivery(&new_id, "w")], None, None).await.unwrap();

    assert_eq!(s.migrate_indexes().await.unwrap(), 6);
    let exists: u64 = ::redis::cmd("EXISTS")
        .arg(&[key("idx:dlv"), key("idx:wh:w"), key("idx:wh:v")])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(exists, 0, "the old index is gone once moved");
    assert_eq!(s.migrate_indexes().await.unwrap(), 0, "moved once");

    let all = s.list_deliveries(&DeliveryFilter::default(), 10, None).await.unwrap();
    let listed: Vec<&str> = all.items.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(
        listed,
        [new_id.as_str(), solo.as_str(), two[1].as_str(), two[0].as_str()]
    );
    let only_w = DeliveryFilter {
        webhook_id: Some("w".into()),
        ..Default::default()
    };
    let w = s.list_deliveries(&only_w, 10, None).await.unwrap();
    let listed: Vec<&str> = w.items.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(listed, [new_id.as_str(), two[1].as_str(), two[0].as_str()]);
    // Paged one by one, the same order.
    let mut cursor = None;
    let mut paged = Vec::new();
    loop {
        let page = s
            .list_deliveries(&DeliveryFilter::default(), 1, cursor.as_deref())
            .await
            .unwrap();
        paged.extend(page.items.into_iter().map(|d| d.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(paged, [new_id.clone(), solo.clone(), two[1].clone(), two[0].clone()]);

    let done = s.delivery(&two[0]).await.unwrap().expect("the old record");
    assert_eq!(done.event_id, fanned);
    assert_eq!(done.status, Status::Succeeded);
    assert_eq!(done.created_at_ms, now);
    assert_eq!(done.attempts.len(), 1);
    assert_eq!(done.attempts[0].status_code, Some(200));
    assert_eq!(done.payload, Bytes::from(data.clone()));
    let dead = s.list_dead(None, 10, None).await.unwrap();
    assert_eq!(dead.items.len(), 1);
    assert_eq!(dead.items[0].id, two[1]);
    // The old waiting delivery and the new one are claimed with their data.
    let jobs = s.claim(&claim_req("A", 10, 60_000)).await.unwrap().jobs;
    let mut claimed: Vec<(String, String, Bytes)> = jobs
        .iter()
        .map(|j| (j.delivery_id.clone(), j.event_id.clone(), j.data.clone()))
        .collect();
    claimed.sort();
    let mut expected = vec![
        (solo.clone(), solo_event.clone(), Bytes::from(data.clone())),
        (new_id.clone(), new_event.clone(), Bytes::from(data.clone())),
    ];
    expected.sort();
    assert_eq!(claimed, expected);
}

/// While a cluster master is down (before its replica takes over), ingest
/// for its shards answers "unavailable" by the store's own deadline, not
/// after the cluster client's longer wait, and events for the other
/// masters' shards are still stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_on_a_cluster_with_a_master_down_answers_by_its_deadline() {
    use hookgate::ids;
    use hookgate::store::redis::RedisStore;
    let cluster = RedisCluster::start();
    let store = RedisStore::open_cluster(&cluster.urls(), &format!("down{}", unique()), RETENTION)
        .unwrap()
        .with_shards(16);
    let event_in = |bucket: u16| {
        let mut e = event("");
        e.id = ids::new_id_in("evt", bucket);
        let d = ids::delivery_ids(&e.id, 1).remove(0);
        (e, d)
    };
    // Answers teach the store Redis's clock.
    for bucket in 0..16 {
        let (e, d) = event_in(bucket);
        store.enqueue(&e, &[delivery(&d, "w")], None, None).await.unwrap();
    }
    cluster.kill_master_of("any-key");
    let (mut stored, mut refused) = (0, Vec::new());
    for bucket in 0..16 {
        let (e, d) = event_in(bucket);
        match store.enqueue(&e, &[delivery(&d, "w")], None, None).await {
            Ok(_) => stored += 1,
            Err(err) => refused.push(err.to_string()),
        }
    }
    assert!(stored > 0, "the other masters' shards still take events");
    assert!(!refused.is_empty(), "some shards are on the killed master");
    // Refused by the gateway's wait, or by the script when the cluster
    // client delivered it late: never the client's own longer timeout.
    for err in &refused {
        assert!(
            err.contains("did not answer") || err.contains("LATE"),
            "answered by the deadline: {refused:?}"
        );
    }
}

/// Event data on Redis: up to 64 bytes in its record, longer in a key of
/// its own that goes with the record. Data of every size around that edge,
/// of an event with one delivery (the delivery holds it) and of one with
/// two (the event's hash does), reads back byte for byte when claimed and
/// in the delivery's record; its key expires with the record once the
/// deliveries are final and is kept again when one is queued again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_data_of_any_size_reads_back_whole_and_expires_with_its_record() {
    use hookgate::ids;
    let redis = RedisServer::start();
    let (s, conn, prefix) = store_with_raw_conn(&redis, "data").await;
    let mut made = Vec::new();
    for size in [1, 62, 63, 64, 65, 1024, 64 * 64 + 1, 200 * 64 + 5] {
        for fan_out in [1, 2] {
            let body: String = (0..size).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            let mut e = event("");
            e.id = ids::new_id("evt");
            e.data = Bytes::from(format!("\"{body}\""));
            let ds: Vec<NewDelivery> = ids::delivery_ids(&e.id, fan_out)
                .iter()
                .map(|d| delivery(d, "w"))
                .collect();
            s.enqueue(&e, &ds, None, None).await.unwrap();
            // The record that holds the data: the only delivery, or the event.
            let holder = if fan_out == 1 { ds[0].id.clone() } else { e.id.clone() };
            made.push((e.id.clone(), holder, e.data.clone()));
        }
    }
    let jobs = s.claim(&claim_req("A", 100, 60_000)).await.unwrap().jobs;
    assert_eq!(
        jobs.len(),
        made.iter().map(|(e, h, _)| if e == h { 2 } else { 1 }).sum::<usize>()
    );
    for job in &jobs {
        let (_, _, data) = made.iter().find(|(e, _, _)| *e == job.event_id).expect("an event made");
        assert!(!job.data_missing, "{}", job.delivery_id);
        assert_eq!(&job.data, data, "{} claimed", job.delivery_id);
        let rec = s.delivery(&job.delivery_id).await.unwrap().expect("recorded");
        assert_eq!(&rec.payload, data, "{} read back", job.delivery_id);
    }
    let ttl = |holder: String| {
        let mut conn = conn.clone();
        let key = format!("{prefix}:dat:{holder}");
        async move {
            ::redis::cmd("PTTL")
                .arg(key)
                .query_async::<i64>(&mut conn)
                .await
                .unwrap()
        }
    };
    // Long data has a key of its own, kept while a delivery waits.
    for (_, holder, data) in &made {
        let want = if data.len() > 64 { -1 } else { -2 };
        assert_eq!(
            ttl(holder.clone()).await,
            want,
            "{holder} ({} bytes) while waiting",
            data.len()
        );
    }
    let done: Vec<Completion> = jobs
        .iter()
        .map(|j| completion(j, "A", Outcome::Succeeded, Some(1)))
        .collect();
    assert!(s.complete(&done).await.unwrap().iter().all(|applied| *applied));
    for (_, holder, data) in made.iter().filter(|(_, _, d)| d.len() > 64) {
        let left = ttl(holder.clone()).await;
        assert!(
            left > 0 && left <= RETENTION.as_millis() as i64,
            "{holder} ({} bytes) expires: {left}",
            data.len()
        );
    }
    // Queued again, the data is kept again; then delivered with it.
    let again: Vec<String> = jobs.iter().map(|j| j.delivery_id.clone()).collect();
    s.requeue(&again, &[Status::Succeeded]).await.unwrap();
    for (_, holder, data) in made.iter().filter(|(_, _, d)| d.len() > 64) {
        assert_eq!(ttl(holder.clone()).await, -1, "{holder} ({} bytes) kept", data.len());
    }
    let jobs = s.claim(&claim_req("A", 100, 60_000)).await.unwrap().jobs;
    assert_eq!(jobs.len(), again.len());
    for job in &jobs {
        let (_, _, data) = made.iter().find(|(e, _, _)| *e == job.event_id).expect("an event made");
        assert_eq!(&job.data, data, "{} claimed again", job.delivery_id);
    }
}

/// Event data an earlier version wrote in 64-byte chunks of its record
/// (`d0`, `d1`, ..., `dn`), of an event with one delivery and of one with
/// two, is claimed, read, exported and queued again whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_data_in_chunks_of_an_earlier_version_reads_back_whole() {
    use hookgate::ids;
    use hookgate::store::transfer::Transfer;
    let redis = RedisServer::start();
    let (s, mut conn, prefix) = store_with_raw_conn(&redis, "chunks").await;
    let key = |rest: &str| format!("{prefix}:{rest}");
    let data: String = format!("{{\"note\":\"{}\"}}", "chunked ".repeat(40));
    let mut chunks: Vec<(String, String)> = data
        .as_bytes()
        .chunks(64)
        .enumerate()
        .map(|(i, c)| (format!("d{i}"), String::from_utf8(c.to_vec()).unwrap()))
        .collect();
    chunks.push(("dn".into(), data.len().div_ceil(64).to_string()));
    let now = ids::now_ms().to_string();
    let record = |event: Option<&str>, webhook: &str| {
        let mut f: Vec<(String, String)> = [
            ("webhook", webhook),
            ("type", "order.created"),
            ("status", "pending"),
            ("attempts", "0"),
            ("updatedAt", now.as_str()),
            ("due", now.as_str()),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        match event {
            Some(e) => f.push(("event".into(), e.to_owned())),
            None => {
                f.push(("solo".into(), "1".into()));
                f.extend(chunks.iter().cloned());
            }
        }
        f
    };
    let solo_event = ids::new_id("evt");
    let solo = ids::solo_delivery_id(&solo_event);
    let fanned = ids::new_id("evt");
    let two = ids::delivery_ids(&fanned, 2);
    let mut event_fields: Vec<(String, String)> = vec![
        ("type".into(), "order.created".into()),
        ("test".into(), "0".into()),
        ("createdAt".into(), now.clone()),
        ("pending".into(), "2".into()),
    ];
    event_fields.extend(chunks.iter().cloned());
    let mut pipe = ::redis::pipe();
    pipe.cmd("HSET").arg(key(&format!("evt:{fanned}"))).arg(&event_fields);
    pipe.cmd("HSET").arg(key(&format!("dlv:{solo}"))).arg(record(None, "v"));
    for id in &two {
        pipe.cmd("HSET")
            .arg(key(&format!("dlv:{id}")))
            .arg(record(Some(&fanned), "w"));
    }
    for id in [&solo, &two[0], &two[1]] {
        pipe.cmd("ZADD").arg(key("q:first")).arg(&now).arg(id);
    }
    let () = pipe.query_async(&mut conn).await.unwrap();

    let jobs = s.claim(&claim_req("A", 10, 60_000)).await.unwrap().jobs;
    assert_eq!(jobs.len(), 3);
    for job in &jobs {
        assert!(!job.data_missing, "{}", job.delivery_id);
        assert_eq!(job.data, Bytes::from(data.clone()), "{} claimed", job.delivery_id);
        let rec = s.delivery(&job.delivery_id).await.unwrap().expect("recorded");
        assert_eq!(rec.payload, Bytes::from(data.clone()), "{} read back", job.delivery_id);
    }
    let exported = s.export_events(&[solo_event.clone(), fanned.clone()]).await.unwrap();
    assert_eq!(exported.len(), 2);
    assert!(exported.iter().all(|e| e.data == data), "exported whole");
    let done: Vec<Completion> = jobs
        .iter()
        .map(|j| completion(j, "A", Outcome::Succeeded, Some(1)))
        .collect();
    s.complete(&done).await.unwrap();
    let ids: Vec<String> = jobs.iter().map(|j| j.delivery_id.clone()).collect();
    let requeued = s.requeue(&ids, &[Status::Succeeded]).await.unwrap();
    assert!(requeued.iter().all(|r| matches!(r, Requeue::Queued)), "{requeued:?}");
    let jobs = s.claim(&claim_req("A", 10, 60_000)).await.unwrap().jobs;
    assert_eq!(jobs.len(), 3);
    assert!(jobs.iter().all(|j| j.data == data.as_bytes()), "claimed again whole");
}
