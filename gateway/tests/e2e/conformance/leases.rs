//! Lease and ordering checks: expired leases go to the next claimer, due
//! deliveries come out in due-time order, and concurrent claimers never
//! hold the same delivery.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use hookgate::store::*;

use super::*;

pub async fn expired_leases_are_claimed_again_by_anyone(s: Arc<dyn Store>) {
    s.enqueue(&event("e1"), &[delivery("d1", "w")], None, None)
        .await
        .unwrap();
    let held = s.claim(&claim_req("A", 10, 200)).await.unwrap().jobs;
    assert_eq!(held.len(), 1);
    let early = s.claim(&claim_req("B", 10, 60_000)).await.unwrap();
    assert!(early.jobs.is_empty(), "held under A's lease");
    let wait = early.next_due_in.expect("the lease expiry is due next");
    assert!(wait <= Duration::from_millis(200), "{wait:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = s.claim(&claim_req("B", 10, 60_000)).await.unwrap().jobs;
    assert_eq!(again.len(), 1, "the expired lease is handed out again");
    assert_eq!(
        (again[0].delivery_id.as_str(), again[0].attempts, again[0].data.as_ref()),
        ("d1", 0, br#"{"a": 1}"#.as_slice()),
        "same delivery, no attempt counted, data intact"
    );
    assert!(
        s.claim(&claim_req("C", 10, 60_000)).await.unwrap().jobs.is_empty(),
        "B holds it now"
    );
    let applied = s
        .complete(&[completion(&again[0], "B", Outcome::Succeeded, Some(1))])
        .await
        .unwrap();
    assert_eq!(applied, [true]);
    let late = s
        .complete(&[completion(&held[0], "A", Outcome::Retry(Duration::ZERO), Some(1))])
        .await
        .unwrap();
    assert_eq!(late, [false], "A's lease is gone");
    let rec = s.delivery("d1").await.unwrap().unwrap();
    assert_eq!(
        (rec.status, rec.attempt_count, rec.attempts.len()),
        (Status::Succeeded, 1, 2)
    );
    assert_eq!(
        s.queue_depths().await.unwrap(),
        QueueDepths::default(),
        "nothing left queued"
    );
}

pub async fn due_deliveries_come_out_in_due_time_order(s: Arc<dyn Store>) {
    let ids = ["d1", "d2", "d3", "d4"];
    let ds: Vec<NewDelivery> = ids.iter().map(|id| delivery(id, "w")).collect();
    s.enqueue(&event("e1"), &ds, None, None).await.unwrap();
    let jobs = s.claim(&claim_req("A", 10, 60_000)).await.unwrap().jobs;
    assert_eq!(jobs.len(), 4);
    // Retries due in an order unlike the claim order: d3, d1, d4, d2.
    let delay = |id: &str| {
        Duration::from_millis(match id {
            "d3" => 100,
            "d1" => 160,
            "d4" => 220,
            _ => 280,
        })
    };
    let outs: Vec<Completion> = jobs
        .iter()
        .map(|j| completion(j, "A", Outcome::Retry(delay(&j.delivery_id)), Some(1)))
        .collect();
    s.complete(&outs).await.unwrap();
    let first_due = s.claim(&claim_req("A", 10, 60_000)).await.unwrap();
    assert!(first_due.jobs.is_empty());
    assert!(first_due.next_due_in.unwrap() <= Duration::from_millis(100));
    tokio::time::sleep(Duration::from_millis(350)).await;
    let mut order = Vec::new();
    for _ in 0..4 {
        let jobs = s.claim(&claim_req("A", 1, 60_000)).await.unwrap().jobs;
        assert_eq!(jobs.len(), 1);
        order.push(jobs[0].delivery_id.clone());
    }
    assert_eq!(order, ["d3", "d1", "d4", "d2"], "earliest due first");
    // First attempts come out in the order they were queued.
    for i in 0..5 {
        s.enqueue(&event(&format!("f{i}")), &[delivery(&format!("f{i}"), "w")], None, None)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let mut firsts = Vec::new();
    for _ in 0..5 {
        firsts.extend(s.claim(&claim_split("A", 1, 0, 60_000)).await.unwrap().jobs);
    }
    let got: Vec<&str> = firsts.iter().map(|j| j.delivery_id.as_str()).collect();
    assert_eq!(got, ["f0", "f1", "f2", "f3", "f4"]);
}

pub async fn concurrent_claimers_never_hold_the_same_delivery(s: Arc<dyn Store>) {
    const N: usize = 400;
    for chunk in 0..N / 50 {
        let ds: Vec<NewDelivery> = (0..50)
            .map(|i| delivery(&format!("c{:04}", chunk * 50 + i), &format!("w{}", i % 3)))
            .collect();
        s.enqueue(&event(&format!("e{chunk}")), &ds, None, None).await.unwrap();
    }
    let deferred = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let mut claimers = tokio::task::JoinSet::new();
    for c in 0..4 {
        let s = s.clone();
        let deferred = deferred.clone();
        claimers.spawn(async move {
            let owner = format!("claimer-{c}");
            let mut mine = Vec::new();
            loop {
                let jobs = s.claim(&claim_req(&owner, 7, 60_000)).await.unwrap().jobs;
                if jobs.is_empty() {
                    return mine;
                }
                // Half are released once (deferred): they must come back to
                // exactly one claimer, never two at a time.
                let outs: Vec<Completion> = jobs
                    .iter()
                    .map(|j| {
                        let defer = j.delivery_id.ends_with(['0', '2', '4', '6', '8'])
                            && deferred.lock().unwrap().insert(j.delivery_id.clone());
                        let outcome = if defer {
                            Outcome::Defer(Duration::ZERO)
                        } else {
                            Outcome::Succeeded
                        };
                        completion(j, &owner, outcome, None)
                    })
                    .collect();
                let applied = s.complete(&outs).await.unwrap();
                assert!(applied.iter().all(|a| *a), "every lease held was current");
                for (o, j) in outs.iter().zip(&jobs) {
                    if o.outcome == Outcome::Succeeded {
                        mine.push(j.delivery_id.clone());
                    }
                }
            }
        });
    }
    let mut done: Vec<String> = claimers.join_all().await.into_iter().flatten().collect();
    let distinct: HashSet<&String> = done.iter().collect();
    assert_eq!(distinct.len(), done.len(), "no delivery completed by two claimers");
    done.sort();
    let want: Vec<String> = (0..N).map(|i| format!("c{i:04}")).collect();
    assert_eq!(done, want, "every delivery completed exactly once");
}

/// An event written with a lease (the accepting gateway starts it without
/// a claim) is not queued; its owner completes it like a claimed one; if
/// the owner never does, the lease expires and anyone can claim it.
pub async fn deliveries_leased_at_enqueue_skip_the_queue_until_the_lease_expires(s: Arc<dyn Store>) {
    let leased = |id: &str, ttl_ms: u64| NewEvent {
        lease: Some(LeaseTo {
            owner: "A".into(),
            ttl: Duration::from_millis(ttl_ms),
            limits: Vec::new(),
        }),
        ..event(id)
    };
    // Fan-out 1 (the delivery holds the data) and fan-out 2.
    s.enqueue(&leased("e1", 60_000), &[delivery("d1", "w")], None, None)
        .await
        .unwrap();
    s.enqueue(
        &leased("e2", 300),
        &[delivery("d2", "w"), delivery("d3", "v")],
        None,
        None,
    )
    .await
    .unwrap();
    let none = s.claim(&claim_req("B", 10, 60_000)).await.unwrap();
    assert!(none.jobs.is_empty(), "leased to A, not queued: {:?}", none.jobs);
    assert!(
        none.next_due_in.expect("a lease expiry is due next") <= Duration::from_millis(300),
        "{none:?}"
    );
    assert_eq!(s.delivery("d1").await.unwrap().unwrap().status, Status::Pending);
    // A completes d1 under the lease written at enqueue.
    let as_claimed = |id: &str, eid: &str, wid: &str| Job {
        delivery_id: id.into(),
        event_id: eid.into(),
        webhook_id: wid.into(),
        event_type: "t".into(),
        data: bytes::Bytes::from_static(br#"{"a": 1}"#),
        test: false,
        attempts: 0,
        retry_base: 0,
        created_at_ms: now_ms(),
        data_missing: false,
    };
    let done = s
        .complete(&[completion(
            &as_claimed("d1", "e1", "w"),
            "A",
            Outcome::Succeeded,
            Some(1),
        )])
        .await
        .unwrap();
    assert_eq!(done, [true], "A's lease from the enqueue is current");
    assert_eq!(s.delivery("d1").await.unwrap().unwrap().status, Status::Succeeded);
    // A never starts e2's deliveries: after the lease, B gets both, with data.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut again = s.claim(&claim_req("B", 10, 60_000)).await.unwrap().jobs;
    again.sort_by(|a, b| a.delivery_id.cmp(&b.delivery_id));
    let got: Vec<(&str, u32, &[u8])> = again
        .iter()
        .map(|j| (j.delivery_id.as_str(), j.attempts, j.data.as_ref()))
        .collect();
    assert_eq!(
        got,
        [
            ("d2", 0, br#"{"a": 1}"#.as_slice()),
            ("d3", 0, br#"{"a": 1}"#.as_slice())
        ]
    );
    let late = s
        .complete(&[completion(
            &as_claimed("d2", "e2", "w"),
            "A",
            Outcome::Succeeded,
            Some(1),
        )])
        .await
        .unwrap();
    assert_eq!(late, [false], "A's lease is gone");
    let outs: Vec<Completion> = again
        .iter()
        .map(|j| completion(j, "B", Outcome::Succeeded, Some(1)))
        .collect();
    assert_eq!(s.complete(&outs).await.unwrap(), [true, true]);
    assert_eq!(s.queue_depths().await.unwrap(), QueueDepths::default());
}

/// A leased event's rate limits are taken in its write, on the same state
/// as `acquire` (a store that cannot, a Redis Cluster, leaves them to the
/// owner: `inline` false).
pub async fn rate_limits_of_a_leased_event_are_taken_in_its_write(s: Arc<dyn Store>, inline: bool) {
    let limit = hookgate::ratelimit::Gcra::per_minute(600, 2); // one per 100 ms, bursts of 2
    let req = |w: &str| RateRequest {
        key: format!("wh:{w}"),
        limit,
    };
    let leased = |id: &str, hooks: &[&str]| NewEvent {
        lease: Some(LeaseTo {
            owner: "A".into(),
            ttl: Duration::from_secs(60),
            limits: hooks.iter().map(|w| req(w)).collect(),
        }),
        ..event(id)
    };
    // The limits a leased event's write took: one delivery per hook.
    let taken = async |id: &str, hooks: [(&str, &str); 2]| {
        let deliveries = hooks.map(|(d, w)| delivery(d, w));
        let webhooks = hooks.map(|(_, w)| w);
        s.enqueue(&leased(id, &webhooks), &deliveries, None, None)
            .await
            .unwrap()
            .taken
    };
    // Fan-out 2 to webhook w twice in one event, then one more for w and v.
    let e1 = taken("e1", [("d1", "w"), ("d2", "w")]).await;
    let e2 = taken("e2", [("d3", "w"), ("d4", "v")]).await;
    if !inline {
        assert_eq!((e1, e2), (None, None));
        return;
    }
    assert_eq!(e1, Some(vec![RateDecision::Allow, RateDecision::Allow]));
    let second = e2.expect("taken in the write");
    assert!(
        matches!(second[0], RateDecision::Wait(w) if w <= Duration::from_millis(100)),
        "w's burst of 2 is spent: {second:?}"
    );
    assert_eq!(second[1], RateDecision::Allow, "v has its own limit");
    // The same state as the limiter's own calls: w is still over.
    assert!(matches!(
        s.acquire(&[req("w")]).await.unwrap()[..],
        [RateDecision::Wait(_)]
    ));
}
