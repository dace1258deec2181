//! Webhook checks: stored and read by id, the change log every gateway
//! follows (each change once, in order, as it is now; a resync when the
//! log cannot reach a cursor), circuit breakers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hookgate::circuit::{BreakerPolicy, Circuit};
use hookgate::store::*;
use hookgate::webhooks::{StoredWebhook, WebhookSpec};

pub fn sample_webhook(id: &str) -> StoredWebhook {
    StoredWebhook {
        id: id.into(),
        spec: WebhookSpec {
            name: id.into(),
            url: "https://e.com/h".into(),
            events: vec!["*".into()],
            test_mode: false,
            enabled: true,
            rate_limit_per_minute: None,
            max_retries: Some(2),
            timeout_ms: None,
            headers: Default::default(),
            client_identity: None,
            plugins: Vec::new(),
        },
        secrets: vec![hookgate::webhooks::StoredSecret {
            secret: "secret-123456".into(),
            expires_at: None,
        }],
        created_at: 1,
        updated_at: 1,
    }
}

fn policy() -> BreakerPolicy {
    BreakerPolicy {
        failures: 3,
        cooldown: Duration::from_secs(10),
        max_cooldown: Duration::from_secs(60),
        disable_after: Duration::from_secs(3600),
    }
}

/// The changes after `since` (asking for `max`), which must be readable.
async fn changes(s: &Arc<dyn Store>, since: &ChangeCursor, max: usize) -> (Vec<WebhookEntry>, ChangeCursor, bool) {
    match s.webhook_changes(since, max).await.unwrap() {
        WebhookChanges::Changed { entries, cursor, more } => (entries, cursor, more),
        WebhookChanges::Resync => panic!("the log should reach seq {}", since.seq),
    }
}

fn ids(entries: &[WebhookEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.id.as_str()).collect()
}

pub async fn webhooks_are_stored_by_id_and_deletable(s: Arc<dyn Store>) {
    assert!(s.load_webhooks().await.unwrap().webhooks.is_empty());
    let w = sample_webhook("wh_1");
    assert!(s.insert_webhook(&w).await.unwrap());
    assert!(!s.insert_webhook(&w).await.unwrap(), "ids are unique");
    assert_eq!(s.webhook("wh_1").await.unwrap(), Some(w.clone()));
    assert_eq!(s.webhook("wh_2").await.unwrap(), None);
    let mut changed = w.clone();
    changed.spec.name = "renamed".into();
    assert!(s.replace_webhook(&changed, false).await.unwrap());
    assert_eq!(s.webhook("wh_1").await.unwrap(), Some(changed.clone()));
    assert_eq!(s.load_webhooks().await.unwrap().webhooks, [changed]);
    assert!(s.delete_webhook("wh_1").await.unwrap());
    assert!(!s.delete_webhook("wh_1").await.unwrap());
    assert!(
        !s.replace_webhook(&w, false).await.unwrap(),
        "no resurrection by replace"
    );
    assert_eq!(s.webhook("wh_1").await.unwrap(), None);
    assert!(s.load_webhooks().await.unwrap().webhooks.is_empty());
}

/// A follower that applies the change log ends where a full load is, and
/// reads only what changed: each changed webhook once, as it is now, with
/// its state and breaker.
pub async fn changes_arrive_once_each_in_order_as_they_are_now(s: Arc<dyn Store>) {
    let start = s.load_webhooks().await.unwrap();
    let mut follower: HashMap<String, StoredWebhook> = HashMap::new();
    let (none, same, more) = changes(&s, &start.cursor, 100).await;
    assert!(none.is_empty() && !more);
    assert_eq!(same, start.cursor, "nothing changed: the cursor stays");

    let (a, b) = (sample_webhook("a"), sample_webhook("b"));
    assert!(s.insert_webhook(&a).await.unwrap());
    assert!(s.insert_webhook(&b).await.unwrap());
    let mut renamed = a.clone();
    renamed.spec.name = "a, renamed".into();
    assert!(s.replace_webhook(&renamed, false).await.unwrap());
    let (entries, c1, more) = changes(&s, &start.cursor, 100).await;
    assert_eq!(ids(&entries), ["a", "b"], "each once, in log order");
    assert!(!more);
    assert_eq!(entries[0].webhook.as_ref(), Some(&renamed), "as it is now");
    assert_eq!(c1.seq, start.cursor.seq + 3, "one number per change");
    assert_eq!(s.load_webhooks().await.unwrap().cursor, c1, "a full load agrees");
    for e in entries {
        if let Some(w) = e.webhook {
            follower.insert(e.id, w);
        }
    }

    // States and breakers are changes too; so are ids with no stored
    // webhook (a config webhook's state); a delete leaves nothing.
    let open = Circuit::opened(1_000, &policy());
    s.disable_webhook("b", "https://e.com/h", "gone").await.unwrap();
    assert!(s.swap_circuit("a", None, Some(&open)).await.unwrap());
    s.disable_webhook("cfg", "https://cfg.example/h", "gone").await.unwrap();
    assert!(s.delete_webhook("b").await.unwrap());
    let (entries, c2, _) = changes(&s, &c1, 100).await;
    assert_eq!(ids(&entries), ["b", "a", "cfg"]);
    let by_id: HashMap<&str, &WebhookEntry> = entries.iter().map(|e| (e.id.as_str(), e)).collect();
    assert_eq!(by_id["a"].circuit, Some(open));
    assert_eq!(by_id["a"].webhook.as_ref(), Some(&renamed));
    assert_eq!(by_id["b"].webhook, None, "deleted");
    assert_eq!(by_id["b"].state, None, "its state went with it");
    assert_eq!(by_id["cfg"].webhook, None);
    assert_eq!(
        by_id["cfg"].state.as_ref().map(|st| st.url.as_str()),
        Some("https://cfg.example/h")
    );
    for e in entries {
        match e.webhook {
            Some(w) => follower.insert(e.id, w),
            None => follower.remove(&e.id),
        };
    }
    let full = s.load_webhooks().await.unwrap();
    let mut loaded: Vec<StoredWebhook> = full.webhooks;
    loaded.sort_by(|x, y| x.id.cmp(&y.id));
    let mut followed: Vec<StoredWebhook> = follower.into_values().collect();
    followed.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(followed, loaded, "following the log ends where a full load is");
    assert_eq!(full.cursor, c2);
    assert_eq!(full.circuits.get("a"), Some(&open));
    assert_eq!(full.states["cfg"].disabled_reason, "gone");

    // Failed changes log nothing.
    assert!(!s.insert_webhook(&renamed).await.unwrap());
    assert!(!s.delete_webhook("never").await.unwrap());
    assert!(!s.swap_circuit("a", None, Some(&open)).await.unwrap());
    assert!(changes(&s, &c2, 100).await.0.is_empty());

    // A long way behind: a page at a time.
    for id in ["c", "d", "e"] {
        assert!(s.insert_webhook(&sample_webhook(id)).await.unwrap());
    }
    let mut cursor = c2;
    let mut seen = Vec::new();
    loop {
        let (entries, next, more) = changes(&s, &cursor, 2).await;
        assert!(entries.len() <= 2);
        seen.extend(entries.into_iter().map(|e| e.id));
        cursor = next;
        if !more {
            break;
        }
    }
    assert_eq!(seen, ["c", "d", "e"]);
}

/// The log keeps its last `cap` entries: a cursor past them, from the
/// future, or from another history (a failover that lost changes and took
/// others under the same numbers) gets a resync, never a wrong answer.
pub async fn a_cursor_the_log_cannot_reach_means_resync(small: Arc<dyn Store>, a: Arc<dyn Store>, b: Arc<dyn Store>) {
    // `small` keeps 3 entries.
    let c0 = small.load_webhooks().await.unwrap().cursor;
    for i in 0..5 {
        assert!(small.insert_webhook(&sample_webhook(&format!("w{i}"))).await.unwrap());
    }
    assert_eq!(small.webhook_changes(&c0, 100).await.unwrap(), WebhookChanges::Resync);
    let c5 = small.load_webhooks().await.unwrap().cursor;
    assert_eq!(c5.seq, c0.seq + 5);
    for i in 5..7 {
        assert!(small.insert_webhook(&sample_webhook(&format!("w{i}"))).await.unwrap());
    }
    let (entries, _, _) = changes(&small, &c5, 100).await;
    assert_eq!(ids(&entries), ["w5", "w6"], "within the window the log still answers");
    assert!(small.delete_webhook("w0").await.unwrap());
    assert_eq!(
        small.webhook_changes(&c5, 100).await.unwrap(),
        WebhookChanges::Resync,
        "its entry was trimmed"
    );
    let ahead = ChangeCursor {
        seq: c5.seq + 100,
        mark: c5.mark.clone(),
    };
    assert_eq!(
        small.webhook_changes(&ahead, 100).await.unwrap(),
        WebhookChanges::Resync
    );

    // Two stores with the same numbers but other changes: a cursor from
    // one means nothing to the other.
    for id in ["x", "y"] {
        assert!(a.insert_webhook(&sample_webhook(id)).await.unwrap());
    }
    let seen = a.load_webhooks().await.unwrap().cursor;
    assert_eq!(
        b.webhook_changes(&seen, 100).await.unwrap(),
        WebhookChanges::Resync,
        "the other store is behind"
    );
    for id in ["x", "z", "q"] {
        assert!(b.insert_webhook(&sample_webhook(id)).await.unwrap());
    }
    assert_eq!(
        b.webhook_changes(&seen, 100).await.unwrap(),
        WebhookChanges::Resync,
        "the number was reused for another change"
    );
    // After a resync, a full load gives a cursor the log reaches.
    let fresh = b.load_webhooks().await.unwrap();
    assert_eq!(fresh.webhooks.len(), 3);
    assert!(changes(&b, &fresh.cursor, 100).await.0.is_empty());
}

/// Circuit breakers change only by compare-and-swap: one of two racing
/// gateways wins each transition; every change is logged; re-enabling or
/// deleting a webhook closes its breaker.
pub async fn circuit_breakers_swap_only_from_what_was_seen(s: Arc<dyn Store>) {
    let circuits = |s: Arc<dyn Store>| async move { s.load_webhooks().await.unwrap().circuits };
    assert!(circuits(s.clone()).await.is_empty());
    let c0 = s.load_webhooks().await.unwrap().cursor;
    let open = Circuit::opened(1_000, &policy());
    assert!(s.swap_circuit("w", None, Some(&open)).await.unwrap());
    assert!(!s.swap_circuit("w", None, Some(&open)).await.unwrap(), "already open");
    let (entries, _, _) = changes(&s, &c0, 100).await;
    assert_eq!(ids(&entries), ["w"]);
    assert_eq!(entries[0].circuit, Some(open));
    assert_eq!(circuits(s.clone()).await.get("w"), Some(&open));
    // Two gateways race for the probe: one wins.
    let probing = open.probing(11_000, Duration::from_secs(5));
    let (x, y) = tokio::join!(
        s.swap_circuit("w", Some(&open), Some(&probing)),
        s.swap_circuit("w", Some(&open), Some(&probing))
    );
    assert_eq!([x.unwrap(), y.unwrap()].iter().filter(|v| **v).count(), 1);
    assert!(
        !s.swap_circuit("w", Some(&open), None).await.unwrap(),
        "stale expectation"
    );
    assert!(s.swap_circuit("w", Some(&probing), None).await.unwrap());
    assert!(circuits(s.clone()).await.is_empty(), "closed is no entry");
    // A stored webhook's breaker goes with re-enabling and deleting it.
    let mut w = sample_webhook("wh_c");
    assert!(s.insert_webhook(&w).await.unwrap());
    assert!(s.swap_circuit("wh_c", None, Some(&open)).await.unwrap());
    w.spec.name = "again".into();
    assert!(s.replace_webhook(&w, true).await.unwrap());
    assert!(circuits(s.clone()).await.is_empty(), "re-enabling closes it");
    assert!(s.swap_circuit("wh_c", None, Some(&open)).await.unwrap());
    assert!(s.delete_webhook("wh_c").await.unwrap());
    assert!(circuits(s.clone()).await.is_empty(), "deleting removes it");
}
