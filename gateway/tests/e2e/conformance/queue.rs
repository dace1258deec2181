//! Queue checks: enqueue, claim, leases, outcomes, retries, budgets,
//! rate limits and idempotency.

use std::sync::Arc;
use std::time::Duration;

use hookgate::ratelimit::Gcra;
use hookgate::store::*;

use super::*;

pub async fn enqueue_then_claim_hands_out_each_delivery_once(s: Arc<dyn Store>) {
    s.enqueue(&event("e1"), &[delivery("d1", "w1"), delivery("d2", "w2")], None, None)
        .await
        .unwrap();
    s.enqueue(&event("e2"), &[], None, None).await.unwrap();
    let batch = s.claim(&claim_req("A", 10, 60_000)).await.unwrap();
    let mut ids: Vec<_> = batch.jobs.iter().map(|j| j.delivery_id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["d1", "d2"]);
    for j in &batch.jobs {
        assert_eq!(
            j.data.as_ref(),
            br#"{"a": 1}"#,
            "every job of an event carries its data"
        );
        assert!(!j.data_missing);
        assert_eq!(
            (j.attempts, j.event_id.as_str(), j.event_type.as_str()),
            (0, "e1", "order.created")
        );
    }
    let again = s.claim(&claim_req("B", 10, 60_000)).await.unwrap();
    assert!(again.jobs.is_empty(), "leased deliveries are not handed out twice");
    assert!(again.next_due_in.is_some(), "the lease expiry is the next thing due");
    let rec = s.delivery("d1").await.unwrap().unwrap();
    assert_eq!((rec.status, rec.webhook_id.as_str()), (Status::Pending, "w1"));
    assert_eq!(rec.payload.as_ref(), br#"{"a": 1}"#);
    assert!(s.delivery("nope").await.unwrap().is_none());
}

pub async fn outcomes_apply_and_stale_leases_only_record(s: Arc<dyn Store>) {
    s.enqueue(&event("e1"), &[delivery("d1", "w"), delivery("d2", "w")], None, None)
        .await
        .unwrap();
    let jobs = s.claim(&claim_req("A", 10, 150)).await.unwrap().jobs;
    assert_eq!(jobs.len(), 2);
    let d1 = jobs.iter().find(|j| j.delivery_id == "d1").unwrap();
    let d2 = jobs.iter().find(|j| j.delivery_id == "d2").unwrap();
    let applied = s
        .complete(&[completion(d1, "A", Outcome::Succeeded, Some(1))])
        .await
        .unwrap();
    assert_eq!(applied, [true]);
    let rec = s.delivery("d1").await.unwrap().unwrap();
    assert_eq!(rec.status, Status::Succeeded);
    assert_eq!(rec.attempts.len(), 1);
    assert_eq!(rec.next_attempt_at_ms, None);

    // d2's lease expires; B re-claims it; A's late outcome is stale.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let reclaimed = s.claim(&claim_req("B", 10, 60_000)).await.unwrap().jobs;
    assert_eq!(reclaimed.len(), 1);
    assert_eq!(reclaimed[0].delivery_id, "d2");
    let applied = s
        .complete(&[completion(d2, "A", Outcome::Dead, Some(1))])
        .await
        .unwrap();
    assert_eq!(
        applied,
        [false],
        "a lease that expired and was re-claimed is not A's any more"
    );
    let rec = s.delivery("d2").await.unwrap().unwrap();
    assert_eq!(rec.status, Status::Pending);
    assert_eq!(rec.attempts.len(), 1, "the stale attempt is still on record");
    let applied = s
        .complete(&[completion(&reclaimed[0], "B", Outcome::Filtered, None)])
        .await
        .unwrap();
    assert_eq!(applied, [true]);
    assert_eq!(s.delivery("d2").await.unwrap().unwrap().status, Status::Filtered);
}

pub async fn retries_wait_and_defers_keep_the_budget(s: Arc<dyn Store>) {
    s.enqueue(&event("e1"), &[delivery("d1", "w")], None, None)
        .await
        .unwrap();
    let job = s.claim(&claim_req("A", 10, 60_000)).await.unwrap().jobs.remove(0);
    s.complete(&[completion(
        &job,
        "A",
        Outcome::Retry(Duration::from_millis(300)),
        Some(1),
    )])
    .await
    .unwrap();
    let rec = s.delivery("d1").await.unwrap().unwrap();
    assert_eq!(rec.status, Status::Failed);
    assert!(rec.next_attempt_at_ms.is_some());
    let early = s.claim(&claim_req("A", 10, 60_000)).await.unwrap();
    assert!(early.jobs.is_empty(), "not due yet");
    let wait = early.next_due_in.unwrap();
    assert!(wait <= Duration::from_millis(300), "{wait:?}");
    tokio::time::sleep(Duration::from_millis(350)).await;
    let job = s.claim(&claim_req("A", 10, 60_000)).await.unwrap().jobs.remove(0);
    assert_eq!((job.attempts, job.next_retry_number()), (1, 2));

    s.complete(&[completion(&job, "A", Outcome::Defer(Duration::from_millis(50)), None)])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let job = s.claim(&claim_req("A", 10, 60_000)).await.unwrap().jobs.remove(0);
    assert_eq!(job.attempts, 1, "a defer is not an attempt");
    assert_eq!(s.delivery("d1").await.unwrap().unwrap().status, Status::Failed);
    s.complete(&[completion(&job, "A", Outcome::Dead, Some(2))])
        .await
        .unwrap();
    let rec = s.delivery("d1").await.unwrap().unwrap();
    assert_eq!((rec.status, rec.attempts.len()), (Status::Dead, 2));
}

pub async fn claim_budget_keeps_room_for_first_attempts(s: Arc<dyn Store>) {
    // Eight deliveries become retries, then eight fresh first attempts arrive.
    let retry_ids: Vec<String> = (0..8).map(|i| format!("r{i}")).collect();
    let ds: Vec<NewDelivery> = retry_ids.iter().map(|id| delivery(id, "w")).collect();
    s.enqueue(&event("e1"), &ds, None, None).await.unwrap();
    let jobs = s.claim(&claim_req("A", 100, 60_000)).await.unwrap().jobs;
    let outs: Vec<Completion> = jobs
        .iter()
        .map(|j| completion(j, "A", Outcome::Retry(Duration::ZERO), Some(1)))
        .collect();
    s.complete(&outs).await.unwrap();
    let firsts: Vec<NewDelivery> = (0..8).map(|i| delivery(&format!("f{i}"), "w")).collect();
    s.enqueue(&event("e2"), &firsts, None, None).await.unwrap();

    // Budget 4, at most 4 retries: a quarter (1) is kept for retries, the
    // rest goes to first attempts.
    let jobs = s.claim(&claim_split("A", 4, 4, 60_000)).await.unwrap().jobs;
    let retries = jobs.iter().filter(|j| j.attempts > 0).count();
    assert_eq!((jobs.len(), retries), (4, 1));
    // No retry capacity: only first attempts.
    let jobs = s.claim(&claim_split("A", 8, 0, 60_000)).await.unwrap().jobs;
    assert!(jobs.iter().all(|j| j.attempts == 0));
    assert_eq!(jobs.len(), 5);
    // Only retries left: they get the whole budget.
    let jobs = s.claim(&claim_req("A", 100, 60_000)).await.unwrap().jobs;
    assert_eq!(jobs.len(), 7);
    assert!(jobs.iter().all(|j| j.attempts == 1));
}

pub async fn disabling_a_webhook_dead_letters_its_pending_deliveries(s: Arc<dyn Store>) {
    s.enqueue(
        &event("e1"),
        &[delivery("d1", "gone"), delivery("d2", "gone"), delivery("d3", "kept")],
        None,
        None,
    )
    .await
    .unwrap();
    let jobs = s.claim(&claim_req("A", 1, 60_000)).await.unwrap().jobs;
    assert_eq!(jobs.len(), 1);
    let moved = s
        .disable_webhook("gone", "https://e.com/h", "receiver answered 410 Gone")
        .await
        .unwrap();
    assert_eq!(moved, 2);
    for id in ["d1", "d2"] {
        assert_eq!(s.delivery(id).await.unwrap().unwrap().status, Status::Dead);
    }
    assert_ne!(s.delivery("d3").await.unwrap().unwrap().status, Status::Dead);
    let states = s.load_webhooks().await.unwrap().states;
    assert_eq!(states["gone"].url, "https://e.com/h");
    let left = s.claim(&claim_req("B", 10, 60_000)).await.unwrap().jobs;
    assert!(left.iter().all(|j| j.webhook_id == "kept"));
}

pub async fn rate_limiter_admits_burst_then_steady_rate(s: Arc<dyn Store>) {
    let limit = Gcra::per_minute(600, 3); // one per 100 ms, bursts of 3
    let reqs: Vec<RateRequest> = (0..5)
        .map(|_| RateRequest {
            key: "wh:x".into(),
            limit,
        })
        .collect();
    let got = s.acquire(&reqs).await.unwrap();
    assert_eq!(&got[..3], [RateDecision::Allow; 3]);
    match got[3] {
        RateDecision::Wait(w) => assert!(
            w > Duration::from_millis(50) && w <= Duration::from_millis(100),
            "{w:?}"
        ),
        RateDecision::Allow => panic!("fourth request admitted"),
    }
    let other = s
        .acquire(&[RateRequest {
            key: "wh:y".into(),
            limit,
        }])
        .await
        .unwrap();
    assert_eq!(other, [RateDecision::Allow], "keys are independent");
    tokio::time::sleep(Duration::from_millis(110)).await;
    assert_eq!(s.acquire(&reqs[..1]).await.unwrap(), [RateDecision::Allow]);
    // One call over many keys (on a cluster, many slots): each answer in
    // its request's place, each key counted on its own.
    let tight = Gcra::per_minute(60, 1); // one per second, no burst
    let mixed: Vec<RateRequest> = (0..12)
        .map(|i| RateRequest {
            key: format!("wh:m{}", i % 6),
            limit: tight,
        })
        .collect();
    let got = s.acquire(&mixed).await.unwrap();
    assert!(got[..6].iter().all(|d| *d == RateDecision::Allow), "{got:?}");
    assert!(got[6..].iter().all(|d| matches!(d, RateDecision::Wait(_))), "{got:?}");
}

pub async fn idempotent_enqueue_writes_once(s: Arc<dyn Store>) {
    let idem = |answer: &str| Idempotency {
        key: "k1".into(),
        fingerprint: "f1".into(),
        answer: answer.into(),
        ttl: Duration::from_secs(60),
    };
    let first = s
        .enqueue(&event("e1"), &[delivery("d1", "w")], Some(&idem("A1")), None)
        .await
        .unwrap();
    assert_eq!(first.outcome, Enqueued::Created);
    let again = s
        .enqueue(&event("e2"), &[delivery("d2", "w")], Some(&idem("A2")), None)
        .await
        .unwrap();
    assert_eq!(
        again.outcome,
        Enqueued::Repeated {
            fingerprint: "f1".into(),
            answer: "A1".into()
        }
    );
    assert!(s.delivery("d2").await.unwrap().is_none(), "a repeat writes nothing");
    // With a rate limit, the check happens in the same step: over it,
    // nothing is written.
    let limit = RateRequest {
        key: "api:t".into(),
        limit: Gcra::per_minute(1, 1),
    };
    let Stored {
        outcome: done,
        rate: st,
        ..
    } = s
        .enqueue(&event("e3"), &[delivery("d3", "w")], None, Some(&limit))
        .await
        .unwrap();
    assert_eq!(done, Enqueued::Created);
    assert_eq!(st.unwrap().decision, RateDecision::Allow);
    let Stored {
        outcome: done,
        rate: st,
        ..
    } = s
        .enqueue(&event("e4"), &[delivery("d4", "w")], None, Some(&limit))
        .await
        .unwrap();
    assert_eq!(done, Enqueued::RateLimited);
    assert!(matches!(st.unwrap().decision, RateDecision::Wait(w) if w > Duration::from_secs(50)));
    assert!(s.delivery("d4").await.unwrap().is_none());
    let jobs = s.claim(&claim_req("A", 10, 60_000)).await.unwrap().jobs;
    assert_eq!(jobs.len(), 2);
}

/// Many events at once (a backend may write them in batches): each caller
/// gets its own answer, idempotency keys and a shared rate limit hold across
/// the events of one batch, and every created delivery is claimable once.
pub async fn concurrent_enqueues_each_get_their_own_answer(s: Arc<dyn Store>) {
    const N: usize = 600;
    // Burst of 30, then one per minute: exactly 30 of the limited events
    // get in.
    let limit = RateRequest {
        key: "api:burst".into(),
        limit: Gcra::per_minute(1, 30),
    };
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..N {
        let s = s.clone();
        let limit = limit.clone();
        calls.spawn(async move {
            // Every third event shares one of five idempotency keys; of the
            // others, every fifth is rate limited; the rest are plain.
            let idem = (i % 3 == 0).then(|| Idempotency {
                key: format!("k{}", i % 5),
                fingerprint: "f".into(),
                answer: format!("first {i}"),
                ttl: Duration::from_secs(60),
            });
            let limited = (i % 5 == 1 && i % 3 != 0).then_some(&limit);
            let did = format!("d{i:04}");
            let got = s
                .enqueue(&event(&format!("e{i}")), &[delivery(&did, "w")], idem.as_ref(), limited)
                .await
                .unwrap();
            (i, did, got.outcome)
        });
    }
    let results = calls.join_all().await;
    let created: Vec<&String> = results
        .iter()
        .filter(|(_, _, r)| *r == Enqueued::Created)
        .map(|(_, d, _)| d)
        .collect();
    let repeated = results
        .iter()
        .filter(|(_, _, r)| matches!(r, Enqueued::Repeated { .. }))
        .count();
    let limited = results.iter().filter(|(_, _, r)| *r == Enqueued::RateLimited).count();
    let keyed = (0..N).filter(|i| i % 3 == 0).count();
    let distinct_keys = (0..N)
        .filter(|i| i % 3 == 0)
        .map(|i| i % 5)
        .collect::<std::collections::HashSet<_>>();
    assert_eq!(repeated, keyed - distinct_keys.len(), "one event per idempotency key");
    let rate_limited_calls = (0..N).filter(|i| i % 5 == 1 && i % 3 != 0).count();
    assert_eq!(limited, rate_limited_calls - 30, "the burst admits 30");
    assert_eq!(created.len(), N - repeated - limited);
    for (i, did, r) in &results {
        if let Enqueued::Repeated { answer, .. } = r {
            let first: usize = answer.trim_start_matches("first ").parse().unwrap();
            assert_eq!(first % 5, i % 5, "a repeat answers with its own key's first answer");
        }
        if *r != Enqueued::Created {
            assert!(s.delivery(did).await.unwrap().is_none(), "{did} must not be written");
        }
    }
    let mut claimed = Vec::new();
    loop {
        let jobs = s.claim(&claim_req("A", 256, 60_000)).await.unwrap().jobs;
        if jobs.is_empty() {
            break;
        }
        claimed.extend(jobs.into_iter().map(|j| j.delivery_id));
    }
    claimed.sort();
    let mut want: Vec<String> = created.into_iter().cloned().collect();
    want.sort();
    assert_eq!(claimed, want);
}
