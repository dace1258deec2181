//! Upgrading data files written by earlier versions, when they are opened.
//!
//! Format 1 → 2: format 1 kept each event's state (its deliveries not final
//! yet, its expiry) at the end of the event's record, so finishing a
//! delivery rewrote the event with its data. Format 2 keeps the state in
//! `event_state`. The upgrade copies each state out; the records stay as
//! they are, since format-1 records still decode. Format 1 also kept every
//! delivery id in a `history` table, the same keys as `deliveries`, which
//! now serves as the history itself: that table is dropped.

use redb::ReadableTable;

use super::codec::EventRec;
use super::tables::{OLD_HISTORY, W, corrupt, storage};
use crate::store::StoreError;

/// Copies the state of every format-1 event record into `event_state`;
/// returns how many it copied.
pub fn from_format_1(w: &mut W<'_>) -> Result<u64, StoreError> {
    let mut moved = 0;
    for entry in w.events.iter().map_err(storage)? {
        let (id, value) = entry.map_err(storage)?;
        if let (_, Some(state)) = EventRec::decode_any(value.value()).map_err(corrupt)? {
            w.event_state
                .insert(id.value(), state.encode().as_slice())
                .map_err(storage)?;
            moved += 1;
        }
    }
    Ok(moved)
}

/// Drops the tables earlier formats had and this one does not (a no-op
/// when they are gone).
pub fn drop_old_tables(tx: &redb::WriteTransaction) -> Result<(), redb::TableError> {
    tx.delete_table(OLD_HISTORY)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use bytes::Bytes;
    use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

    use super::super::open::{lock_folder, open_database};
    use super::super::tables::{DELIVERIES, EVENT_STATE, EVENTS, META, OLD_HISTORY};
    use crate::store::embedded::EmbeddedStore;
    use crate::store::*;

    fn event(id: &str) -> NewEvent {
        NewEvent {
            id: id.into(),
            event_type: "order.created".into(),
            data: Bytes::from_static(br#"{"a": 1}"#),
            test: false,
            created_at_ms: now_ms(),
            lease: None,
        }
    }

    fn delivery(id: &str) -> NewDelivery {
        NewDelivery {
            id: id.into(),
            webhook_id: "w".into(),
        }
    }

    async fn claim_and_succeed(store: &EmbeddedStore, want: usize) -> Vec<Job> {
        let req = ClaimRequest {
            first: 10,
            retry: 10,
            lease: Duration::from_secs(60),
            owner: "A".into(),
            limits: Vec::new(),
        };
        let jobs = store.claim(&req).await.unwrap().jobs;
        assert_eq!(jobs.len(), want);
        let done: Vec<Completion> = jobs
            .iter()
            .map(|j| Completion {
                delivery_id: j.delivery_id.clone(),
                event_id: j.event_id.clone(),
                webhook_id: j.webhook_id.clone(),
                owner: "A".into(),
                outcome: Outcome::Succeeded,
                attempt: None,
                payload: None,
            })
            .collect();
        assert!(store.complete(&done).await.unwrap().iter().all(|ok| *ok));
        jobs
    }

    /// Waits until the store's writer has let go of the folder.
    async fn wait_released(folder: &Path) {
        for _ in 0..500 {
            if lock_folder(folder).is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the store did not close");
    }

    /// Rewrites a format-2 file as format 1 wrote it: each event's state
    /// appended to its record (version byte 1), no `event_state` table, and
    /// every delivery id in `history` too.
    fn downgrade_to_format_1(folder: &Path) {
        let db = open_database(folder).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let states: Vec<(String, Vec<u8>)> = tx
                .open_table(EVENT_STATE)
                .unwrap()
                .iter()
                .unwrap()
                .map(|e| {
                    let (k, v) = e.unwrap();
                    (k.value().to_owned(), v.value().to_vec())
                })
                .collect();
            let mut events = tx.open_table(EVENTS).unwrap();
            for (id, state) in &states {
                let v2 = events.get(id.as_str()).unwrap().unwrap().value().to_vec();
                assert_eq!((v2[0], state.len()), (2, 17));
                let mut v1 = vec![1u8];
                v1.extend_from_slice(&v2[1..]);
                v1.extend_from_slice(&state[1..]);
                events.insert(id.as_str(), v1.as_slice()).unwrap();
            }
            tx.open_table(META)
                .unwrap()
                .insert("format", 1u32.to_le_bytes().as_slice())
                .unwrap();
            let ids: Vec<String> = tx
                .open_table(DELIVERIES)
                .unwrap()
                .iter()
                .unwrap()
                .map(|e| e.unwrap().0.value().to_owned())
                .collect();
            let mut history = tx.open_table(OLD_HISTORY).unwrap();
            for id in &ids {
                history.insert(id.as_str(), ()).unwrap();
            }
        }
        tx.delete_table(EVENT_STATE).unwrap();
        tx.commit().unwrap();
    }

    /// (events, event states, deliveries) in the file; the format-1
    /// `history` table must be gone.
    fn counts(folder: &Path) -> (u64, u64, u64) {
        let db = open_database(folder).unwrap();
        let read = db.begin_read().unwrap();
        assert!(
            matches!(
                read.open_table(OLD_HISTORY),
                Err(redb::TableError::TableDoesNotExist(_))
            ),
            "the format-1 history table is dropped"
        );
        let n = |t: redb::ReadOnlyTable<&str, &[u8]>| t.len().unwrap();
        (
            n(read.open_table(EVENTS).unwrap()),
            n(read.open_table(EVENT_STATE).unwrap()),
            n(read.open_table(DELIVERIES).unwrap()),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_format_1_file_is_upgraded_and_its_events_still_finish_and_expire() {
        let dir = hookgate_testkit::TempDir::new("upgrade");
        let folder = dir.path().join("data");
        let retention = Duration::from_millis(300);
        {
            let store = EmbeddedStore::open(&folder, retention).unwrap();
            store
                .enqueue(&event("evt_a"), &[delivery("dl_a1"), delivery("dl_a2")], None, None)
                .await
                .unwrap();
            store
                .enqueue(&event("evt_b"), &[delivery("dl_b")], None, None)
                .await
                .unwrap();
            // All three are claimed; only dl_b finishes, evt_a's two stay
            // leased when the store closes.
            let req = ClaimRequest {
                first: 10,
                retry: 0,
                lease: Duration::from_secs(60),
                owner: "A".into(),
                limits: Vec::new(),
            };
            assert_eq!(store.claim(&req).await.unwrap().jobs.len(), 3);
            let done = Completion {
                delivery_id: "dl_b".into(),
                event_id: "evt_b".into(),
                webhook_id: "w".into(),
                owner: "A".into(),
                outcome: Outcome::Succeeded,
                attempt: None,
                payload: None,
            };
            assert_eq!(store.complete(&[done]).await.unwrap(), [true]);
        }
        wait_released(&folder).await;
        downgrade_to_format_1(&folder);

        let store = EmbeddedStore::open(&folder, retention).unwrap();
        let history = store
            .list_deliveries(&DeliveryFilter::default(), 10, None)
            .await
            .unwrap();
        let ids: Vec<&str> = history.items.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["dl_b", "dl_a2", "dl_a1"], "the whole history, newest id first");
        // The leases of the run before are released on open: both of
        // evt_a's deliveries are due, with the data of its format-1 record.
        let jobs = claim_and_succeed(&store, 2).await;
        assert!(
            jobs.iter()
                .all(|j| j.event_id == "evt_a" && j.data.as_ref() == br#"{"a": 1}"#)
        );
        tokio::time::sleep(retention + Duration::from_millis(100)).await;
        store.purge_history(retention).await.unwrap();
        drop(store);
        wait_released(&folder).await;
        assert_eq!(
            counts(&folder),
            (0, 0, 0),
            "both events expired: evt_b on the schedule it had before the upgrade, evt_a when its deliveries \
             finished after it"
        );
    }

    /// A format-1 record that does not decode stops the upgrade: the
    /// gateway refuses to start with the file named as damaged, and the
    /// file is left as it was (still format 1, nothing half-upgraded).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreadable_record_stops_the_upgrade_and_leaves_the_file_as_it_was() {
        let dir = hookgate_testkit::TempDir::new("upgrade-damaged");
        let folder = dir.path().join("data");
        {
            let store = EmbeddedStore::open(&folder, Duration::from_secs(60)).unwrap();
            store
                .enqueue(&event("evt_a"), &[delivery("dl_a")], None, None)
                .await
                .unwrap();
        }
        wait_released(&folder).await;
        downgrade_to_format_1(&folder);
        {
            let db = open_database(&folder).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut events = tx.open_table(EVENTS).unwrap();
                let v1 = events.get("evt_a").unwrap().unwrap().value().to_vec();
                events.insert("evt_a", &v1[..v1.len() - 3]).unwrap();
            }
            tx.commit().unwrap();
        }

        let err = EmbeddedStore::open(&folder, Duration::from_secs(60)).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, super::super::open::OpenError::Damaged { .. }) && msg.contains("unreadable event record"),
            "{msg}"
        );
        wait_released(&folder).await;
        let db = open_database(&folder).unwrap();
        let read = db.begin_read().unwrap();
        assert_eq!(
            read.open_table(META).unwrap().get("format").unwrap().unwrap().value(),
            1u32.to_le_bytes(),
            "still format 1"
        );
        assert!(
            matches!(
                read.open_table(EVENT_STATE),
                Err(redb::TableError::TableDoesNotExist(_))
            ),
            "nothing of the upgrade was committed"
        );
    }
}
