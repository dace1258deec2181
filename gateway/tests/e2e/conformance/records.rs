//! Records checks: history pages, requeue and dead letters, retention.

use std::sync::Arc;
use std::time::Duration;

use hookgate::store::*;

use super::*;

pub async fn history_pages_newest_first_with_filters(s: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for i in 0..7 {
        let id = hookgate::ids::new_id_in("dlv", 0);
        let webhook = if i % 2 == 0 { "even" } else { "odd" };
        s.enqueue(&event(&format!("e{i}")), &[delivery(&id, webhook)], None, None)
            .await
            .unwrap();
        ids.push(id);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let all = DeliveryFilter::default();
    let p1 = s.list_deliveries(&all, 3, None).await.unwrap();
    let p2 = s.list_deliveries(&all, 3, p1.next_cursor.as_deref()).await.unwrap();
    // A new delivery arriving between pages does not disturb them.
    s.enqueue(
        &event("late"),
        &[delivery(&hookgate::ids::new_id_in("dlv", 0), "odd")],
        None,
        None,
    )
    .await
    .unwrap();
    let p3 = s.list_deliveries(&all, 3, p2.next_cursor.as_deref()).await.unwrap();
    let got: Vec<String> = [p1.items, p2.items, p3.items]
        .concat()
        .into_iter()
        .map(|d| d.id)
        .collect();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(got, newest_first);
    assert_eq!(p3.next_cursor, None);
    let even = s
        .list_deliveries(
            &DeliveryFilter {
                webhook_id: Some("even".into()),
                ..Default::default()
            },
            10,
            None,
        )
        .await
        .unwrap();
    assert_eq!(even.items.len(), 4);
    let job = s.claim(&claim_req("A", 1, 60_000)).await.unwrap().jobs.remove(0);
    s.complete(&[completion(&job, "A", Outcome::Dead, Some(1))])
        .await
        .unwrap();
    let dead = s
        .list_deliveries(
            &DeliveryFilter {
                status: Some(Status::Dead),
                ..Default::default()
            },
            10,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        dead.items.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        [job.delivery_id.as_str()]
    );
    assert_eq!(dead.items[0].attempt_count, 1);
    let dl = s.list_dead(None, 10, None).await.unwrap();
    assert_eq!(dl.items.len(), 1);
    s.purge_history(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(
        s.list_deliveries(&all, 100, None).await.unwrap().items.len(),
        8,
        "recent history is kept"
    );
}

pub async fn requeue_gives_a_fresh_budget_and_keeps_history(s: Arc<dyn Store>) {
    s.enqueue(&event("e1"), &[delivery("d1", "w")], None, None)
        .await
        .unwrap();
    let job = s.claim(&claim_req("A", 1, 60_000)).await.unwrap().jobs.remove(0);
    assert_eq!(
        s.requeue(&["d1".into()], &[Status::Dead]).await.unwrap(),
        [Requeue::WrongStatus(Status::Pending)]
    );
    s.complete(&[completion(&job, "A", Outcome::Dead, Some(1))])
        .await
        .unwrap();
    let r = s.requeue(&["d1".into(), "nope".into()], &[Status::Dead]).await.unwrap();
    assert_eq!(r, [Requeue::Queued, Requeue::Missing]);
    assert!(
        s.list_dead(None, 10, None).await.unwrap().items.is_empty(),
        "no longer a dead letter"
    );
    let job = s.claim(&claim_req("A", 1, 60_000)).await.unwrap().jobs.remove(0);
    assert_eq!(
        (job.delivery_id.as_str(), job.attempts, job.next_retry_number()),
        ("d1", 1, 1)
    );
    assert_eq!(job.data.as_ref(), br#"{"a": 1}"#);
    s.complete(&[completion(&job, "A", Outcome::Succeeded, Some(2))])
        .await
        .unwrap();
    let rec = s.delivery("d1").await.unwrap().unwrap();
    assert_eq!((rec.status, rec.attempts.len()), (Status::Succeeded, 2));
}

pub async fn history_pages_per_webhook_and_dead_letters(s: Arc<dyn Store>) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..9 {
        let id = hookgate::ids::new_id_in("dlv", 0);
        let webhook = if i % 2 == 0 { "a" } else { "b" };
        s.enqueue(&event(&format!("e{i}")), &[delivery(&id, webhook)], None, None)
            .await
            .unwrap();
        if webhook == "a" { a.push(id) } else { b.push(id) }
    }
    let only_a = DeliveryFilter {
        webhook_id: Some("a".into()),
        ..Default::default()
    };
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let p = s.list_deliveries(&only_a, 2, cursor.as_deref()).await.unwrap();
        pages.push(p.items.iter().map(|d| d.id.clone()).collect::<Vec<_>>());
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    let mut newest_first = a.clone();
    newest_first.reverse();
    assert_eq!(pages.concat(), newest_first);

    // b's deliveries die, a's succeed.
    let jobs = s.claim(&claim_req("A", 100, 60_000)).await.unwrap().jobs;
    let outs: Vec<Completion> = jobs
        .iter()
        .map(|j| {
            let outcome = if j.webhook_id == "b" {
                Outcome::Dead
            } else {
                Outcome::Succeeded
            };
            completion(j, "A", outcome, Some(1))
        })
        .collect();
    s.complete(&outs).await.unwrap();
    let p1 = s.list_dead(Some("b"), 3, None).await.unwrap();
    let p2 = s.list_dead(Some("b"), 3, p1.next_cursor.as_deref()).await.unwrap();
    assert_eq!(p2.next_cursor, None);
    let mut dead_newest_first = b.clone();
    dead_newest_first.reverse();
    let got: Vec<String> = [p1.items, p2.items].concat().into_iter().map(|d| d.id).collect();
    assert_eq!(got, dead_newest_first);
    assert!(s.list_dead(Some("a"), 10, None).await.unwrap().items.is_empty());
    let dead_b = DeliveryFilter {
        webhook_id: Some("b".into()),
        status: Some(Status::Dead),
        event_type: Some("order.created".into()),
    };
    assert_eq!(s.list_deliveries(&dead_b, 10, None).await.unwrap().items.len(), 4);
    let other_type = DeliveryFilter {
        event_type: Some("order.paid".into()),
        ..Default::default()
    };
    assert!(s.list_deliveries(&other_type, 10, None).await.unwrap().items.is_empty());
}

pub async fn dead_letters_replay_and_leave_the_queue(s: Arc<dyn Store>) {
    let ds: Vec<NewDelivery> = (0..3).map(|i| delivery(&format!("d{i}"), "w")).collect();
    s.enqueue(&event("e1"), &ds, None, None).await.unwrap();
    let jobs = s.claim(&claim_req("A", 10, 60_000)).await.unwrap().jobs;
    let outs: Vec<Completion> = jobs
        .iter()
        .map(|j| completion(j, "A", Outcome::Dead, Some(1)))
        .collect();
    s.complete(&outs).await.unwrap();
    assert_eq!(s.queue_depths().await.unwrap().dead, 3);
    assert_eq!(s.list_dead(None, 10, None).await.unwrap().items.len(), 3);
    let ids: Vec<String> = (0..3).map(|i| format!("d{i}")).collect();
    let r = s.requeue(&ids, &[Status::Dead]).await.unwrap();
    assert_eq!(r, [Requeue::Queued, Requeue::Queued, Requeue::Queued]);
    let depths = s.queue_depths().await.unwrap();
    assert_eq!((depths.dead, depths.failed, depths.pending), (0, 3, 0), "{depths:?}");
    assert!(s.list_dead(None, 10, None).await.unwrap().items.is_empty());
    let jobs = s.claim(&claim_req("B", 10, 60_000)).await.unwrap().jobs;
    assert_eq!(jobs.len(), 3);
    assert!(jobs.iter().all(|j| j.attempts == 1 && j.next_retry_number() == 1));
    let outs: Vec<Completion> = jobs
        .iter()
        .map(|j| completion(j, "B", Outcome::Succeeded, Some(2)))
        .collect();
    assert_eq!(s.complete(&outs).await.unwrap(), [true, true, true]);
    let rec = s.delivery("d0").await.unwrap().unwrap();
    assert_eq!(
        (rec.status, rec.attempt_count, rec.attempts.len()),
        (Status::Succeeded, 2, 2)
    );
    assert_eq!(
        s.requeue(&ids[..1], &[Status::Dead]).await.unwrap(),
        [Requeue::WrongStatus(Status::Succeeded)]
    );
    assert_eq!(s.queue_depths().await.unwrap(), QueueDepths::default());
}

/// With a 300 ms retention: final deliveries (with their attempts) and
/// expired idempotency keys go; pending work and the events it needs stay.
pub async fn retention_removes_what_is_final_and_keeps_what_is_pending(s: Arc<dyn Store>) {
    let idem = Idempotency {
        key: "k".into(),
        fingerprint: "f".into(),
        answer: "first".into(),
        ttl: Duration::from_millis(200),
    };
    let ds = [delivery("d1", "w"), delivery("d2", "w"), delivery("d3", "w")];
    s.enqueue(&event("e1"), &ds, Some(&idem), None).await.unwrap();
    s.enqueue(&event("e0"), &[], None, None).await.unwrap();
    let jobs = s.claim(&claim_req("A", 10, 60_000)).await.unwrap().jobs;
    let outs: Vec<Completion> = jobs
        .iter()
        .map(|j| {
            let outcome = match j.delivery_id.as_str() {
                "d1" => Outcome::Succeeded,
                "d2" => Outcome::Dead,
                _ => Outcome::Retry(Duration::ZERO),
            };
            completion(j, "A", outcome, Some(1))
        })
        .collect();
    s.complete(&outs).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    s.purge_history(Duration::from_millis(300)).await.unwrap();
    for id in ["d1", "d2"] {
        assert!(s.delivery(id).await.unwrap().is_none(), "{id} is past retention");
    }
    assert_eq!(
        s.requeue(&["d2".into()], &[Status::Dead]).await.unwrap(),
        [Requeue::Missing]
    );
    assert!(s.list_dead(None, 10, None).await.unwrap().items.is_empty());
    let listed: Vec<String> = s
        .list_deliveries(&DeliveryFilter::default(), 10, None)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert!(!listed.iter().any(|id| id == "d1" || id == "d2"), "{listed:?}");
    let kept = s.delivery("d3").await.unwrap().expect("a pending delivery is kept");
    assert_eq!((kept.status, kept.attempts.len()), (Status::Failed, 1));
    let job = s.claim(&claim_req("A", 10, 60_000)).await.unwrap().jobs.remove(0);
    assert_eq!(job.delivery_id, "d3");
    assert!(!job.data_missing, "the event of a pending delivery is kept");
    // The idempotency key has expired: the same key creates a new event.
    let again = s
        .enqueue(&event("e2"), &[delivery("d4", "w")], Some(&idem), None)
        .await
        .unwrap();
    assert_eq!(again.outcome, Enqueued::Created);
    // Once final, d3 goes too.
    s.complete(&[completion(&job, "A", Outcome::Succeeded, Some(2))])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    s.purge_history(Duration::from_millis(300)).await.unwrap();
    assert!(s.delivery("d3").await.unwrap().is_none());
    assert_eq!(
        s.requeue(&["d3".into()], &[Status::Succeeded]).await.unwrap(),
        [Requeue::Missing]
    );
}
