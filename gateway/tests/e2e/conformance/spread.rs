//! Work spread over every bucket: what a sharded store must still do as
//! one store (ids made as the API makes them, so they land in all shards).

use std::collections::HashSet;
use std::sync::Arc;

use hookgate::ids;
use hookgate::store::*;

use super::*;

pub async fn work_in_every_bucket_is_claimed_once_listed_in_order_and_dead_lettered(s: Arc<dyn Store>) {
    let mut all = Vec::new();
    for i in 0..40u16 {
        let mut e = event("");
        e.id = ids::new_id_in("evt", i * 131 % ids::BUCKETS);
        let fan_out = 1 + usize::from(i % 3 == 0);
        let webhooks = ["gone", "kept"];
        let ds: Vec<NewDelivery> = ids::delivery_ids(&e.id, fan_out)
            .into_iter()
            .zip(webhooks)
            .map(|(id, w)| delivery(&id, w))
            .collect();
        all.extend(ds.iter().map(|d| d.id.clone()));
        s.enqueue(&e, &ds, None, None).await.unwrap();
    }
    assert_eq!(s.queue_depths().await.unwrap().pending, all.len() as u64);
    // A few small claims, then what is left: each delivery exactly once,
    // every job with its event's data.
    let mut claimed = Vec::new();
    for _ in 0..3 {
        claimed.extend(s.claim(&claim_req("A", 5, 60_000)).await.unwrap().jobs);
    }
    assert_eq!(
        claimed.len(),
        15,
        "small claims are filled from whichever shards hold work"
    );
    loop {
        let jobs = s.claim(&claim_req("A", 16, 60_000)).await.unwrap().jobs;
        if jobs.is_empty() {
            break;
        }
        claimed.extend(jobs);
    }
    let ids_claimed: HashSet<&str> = claimed.iter().map(|j| j.delivery_id.as_str()).collect();
    assert_eq!((claimed.len(), ids_claimed.len()), (all.len(), all.len()));
    assert!(
        claimed
            .iter()
            .all(|j| j.data.as_ref() == br#"{"a": 1}"# && !j.data_missing)
    );
    // "kept" deliveries succeed; "gone" ones stay leased, then are disabled.
    let done: Vec<Completion> = claimed
        .iter()
        .filter(|j| j.webhook_id == "kept")
        .map(|j| completion(j, "A", Outcome::Succeeded, Some(1)))
        .collect();
    let applied = s.complete(&done).await.unwrap();
    assert!(applied.iter().all(|a| *a), "{applied:?}");
    let gone = claimed.len() - done.len();
    let moved = s.disable_webhook("gone", "https://e.com/h", "gone").await.unwrap();
    assert_eq!(
        moved as usize, gone,
        "every shard's waiting deliveries are dead-lettered"
    );
    let depths = s.queue_depths().await.unwrap();
    assert_eq!((depths.pending, depths.in_flight, depths.dead), (0, 0, gone as u64));
    // History: every delivery, newest (highest id) first, across pages.
    let mut listed = Vec::new();
    let mut cursor = None;
    loop {
        let page = s
            .list_deliveries(&DeliveryFilter::default(), 7, cursor.as_deref())
            .await
            .unwrap();
        listed.extend(page.items.into_iter().map(|d| d.id));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    let mut expected = all.clone();
    expected.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(listed, expected);
    let dead = s.list_dead(None, 1000, None).await.unwrap();
    assert_eq!(dead.items.len(), gone);
    assert!(
        dead.items
            .iter()
            .all(|d| d.status == Status::Dead && d.webhook_id == "gone")
    );
    // Replay puts them back in their own shards.
    let replay: Vec<String> = dead.items.iter().map(|d| d.id.clone()).collect();
    let answers = s.requeue(&replay, &[Status::Dead]).await.unwrap();
    assert!(answers.iter().all(|a| *a == Requeue::Queued), "{answers:?}");
    assert_eq!(s.queue_depths().await.unwrap().pending, gone as u64);
}
