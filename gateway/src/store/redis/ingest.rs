//! Group commit for ingest: events accepted at the same time are written by
//! one `enqueue.lua` call.
//!
//! Each call to [`RedisStore::enqueue`](super::RedisStore) queues its event
//! and waits for its own answer. At most [`MAX_IN_FLIGHT`] scripts run at
//! once; while they do, new events wait in the queue, and the next script
//! takes all of them (up to [`MAX_BATCH`] events or [`MAX_BATCH_BYTES`] of
//! data). A lone event is written at once, so this adds no latency at low
//! load, and under load Redis runs one script (one `TIME`, one read and one
//! write of each caller's rate-limit state) per batch instead of per event.
//!
//! Batches run on their own tasks, so a caller that goes away (its client
//! disconnected) never strands the others; its event is still written, as it
//! would be if it had disconnected just after the write.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::redis::Value;
use tokio::sync::oneshot;

use super::conn::Conn;
use super::decode::{self, as_int};
use super::{RoutedScript, unavailable};
use crate::store::{Enqueued, Idempotency, NewDelivery, NewEvent, RateDecision, RateRequest, RateState, StoreError};

/// Scripts running at once; more events wait and go in the next batch.
pub const MAX_IN_FLIGHT: usize = 4;
/// Events per script at most.
pub const MAX_BATCH: usize = 128;
/// Event data per script at most (a batch always takes at least one event).
pub const MAX_BATCH_BYTES: usize = 1 << 20;
/// Events waiting at most; past this, callers are told the store is busy.
pub const MAX_WAITING: usize = 16_384;

type Answer = Result<(Enqueued, Option<RateState>), StoreError>;

/// One event to write, owned, and where its answer goes.
struct Item {
    event: NewEvent,
    deliveries: Vec<NewDelivery>,
    idempotency: Option<Idempotency>,
    limit: Option<RateRequest>,
    reply: oneshot::Sender<Answer>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Item>,
    in_flight: usize,
}

/// The shared queue of events waiting for a script.
pub(crate) struct Ingest {
    conn: Conn,
    script: RoutedScript,
    prefix: String,
    retention_ms: u64,
    queue: Mutex<Queue>,
}

impl Ingest {
    pub(crate) fn new(conn: Conn, prefix: String, route_key: &str, retention_ms: u64) -> Arc<Self> {
        Arc::new(Ingest {
            conn,
            script: RoutedScript::new(include_str!("lua/enqueue.lua"), route_key),
            prefix,
            retention_ms,
            queue: Mutex::new(Queue::default()),
        })
    }

    /// Writes one event with its deliveries (see `DeliveryQueue::enqueue`).
    pub(crate) async fn enqueue(
        self: &Arc<Self>,
        event: &NewEvent,
        deliveries: &[NewDelivery],
        idempotency: Option<&Idempotency>,
        limit: Option<&RateRequest>,
    ) -> Answer {
        let (reply, answer) = oneshot::channel();
        let item = Item {
            event: event.clone(),
            deliveries: deliveries.to_vec(),
            idempotency: idempotency.cloned(),
            limit: limit.cloned(),
            reply,
        };
        let start = {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            if q.waiting.len() >= MAX_WAITING {
                return Err(StoreError::Unavailable("too many events waiting to be stored".into()));
            }
            q.waiting.push(item);
            if q.in_flight < MAX_IN_FLIGHT {
                q.in_flight += 1;
                true
            } else {
                false
            }
        };
        if start {
            let this = self.clone();
            tokio::spawn(async move { this.drain().await });
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("the ingest writer stopped".into())))
    }

    /// Runs batches until the queue is empty, then gives up its slot (also
    /// if this task is dropped or unwinds, so the queue is never left
    /// without a writer while it counts one as running).
    async fn drain(&self) {
        struct Slot<'a>(&'a Ingest, bool);
        impl Drop for Slot<'_> {
            fn drop(&mut self) {
                if self.1 {
                    return; // released in the normal way
                }
                let mut q = self.0.queue.lock().unwrap_or_else(|p| p.into_inner());
                q.in_flight -= 1;
                let orphans = if q.in_flight == 0 {
                    std::mem::take(&mut q.waiting)
                } else {
                    Vec::new()
                };
                drop(q);
                // Only when the last writer ends abnormally: nobody else
                // would take these, so answer them instead of leaving them
                // waiting forever.
                for it in orphans {
                    let _ = it
                        .reply
                        .send(Err(StoreError::Unavailable("the ingest writer stopped".into())));
                }
            }
        }
        let mut slot = Slot(self, false);
        loop {
            let batch = {
                let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                if q.waiting.is_empty() {
                    // Under the same lock as the check, so an event queued
                    // just after it sees the free slot and starts a writer.
                    q.in_flight -= 1;
                    slot.1 = true;
                    return;
                }
                take_batch(&mut q.waiting)
            };
            self.write(batch).await;
        }
    }

    async fn write(&self, batch: Vec<Item>) {
        let mut inv = self.script.prepare_invoke();
        inv.arg(&self.prefix).arg(self.retention_ms).arg(batch.len());
        for it in &batch {
            let e = &it.event;
            inv.arg(&e.id)
                .arg(&e.event_type)
                .arg(e.data.as_ref())
                .arg(if e.test { "1" } else { "0" });
            match &it.idempotency {
                Some(i) => inv
                    .arg(&i.key)
                    .arg(&i.fingerprint)
                    .arg(&i.answer)
                    .arg(i.ttl.as_millis() as u64),
                None => inv.arg("").arg("").arg("").arg(0),
            };
            match &it.limit {
                Some(l) => inv.arg(&l.key).arg(l.limit.interval_us).arg(l.limit.tolerance_us),
                None => inv.arg("").arg(0).arg(0),
            };
            inv.arg(it.deliveries.len());
            for d in &it.deliveries {
                inv.arg(&d.id).arg(&d.webhook_id);
            }
        }
        match inv.invoke_async::<Vec<Value>>(&mut self.conn.clone()).await {
            Ok(replies) if replies.len() == batch.len() => {
                for (it, reply) in batch.into_iter().zip(replies) {
                    let answer = decode_one(reply, it.limit.is_some());
                    let _ = it.reply.send(answer);
                }
            }
            Ok(replies) => {
                let e = StoreError::Corrupt(format!("enqueue: {} answers for {} events", replies.len(), batch.len()));
                for it in batch {
                    let _ = it.reply.send(Err(e.clone()));
                }
            }
            Err(e) => {
                let e = unavailable(e);
                for it in batch {
                    let _ = it.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Takes the oldest waiting events that fit in one script.
fn take_batch(waiting: &mut Vec<Item>) -> Vec<Item> {
    let mut n = 0;
    let mut bytes = 0;
    for it in waiting.iter() {
        if n == MAX_BATCH || (n > 0 && bytes + it.event.data.len() > MAX_BATCH_BYTES) {
            break;
        }
        n += 1;
        bytes += it.event.data.len();
    }
    let rest = waiting.split_off(n);
    std::mem::replace(waiting, rest)
}

/// One event's answer from the script's reply.
fn decode_one(reply: Value, limited: bool) -> Answer {
    let Value::Array(reply) = reply else {
        return Err(StoreError::Corrupt(format!("enqueue: unexpected reply {reply:?}")));
    };
    let num = |i: usize| reply.get(i).and_then(as_int).unwrap_or(0).max(0) as u64;
    let state = |decision: RateDecision, at: usize| {
        limited.then(|| RateState {
            decision,
            tat_us: num(at),
            now_us: num(at + 1),
        })
    };
    match reply.first().and_then(as_int) {
        Some(1) => Ok((Enqueued::Created, state(RateDecision::Allow, 1))),
        Some(2) => Ok((
            Enqueued::RateLimited,
            state(RateDecision::Wait(Duration::from_micros(num(1))), 2),
        )),
        Some(0) => {
            let seen = reply.get(1).and_then(decode::as_string).unwrap_or_default();
            let (fingerprint, answer) = seen.split_once('\n').unwrap_or(("", &seen));
            let repeated = Enqueued::Repeated {
                fingerprint: fingerprint.to_owned(),
                answer: answer.to_owned(),
            };
            Ok((repeated, state(RateDecision::Allow, 2)))
        }
        _ => Err(StoreError::Corrupt(format!("enqueue: unexpected reply {reply:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
    use bytes::Bytes;

    use super::*;

    /// An `Ingest` on a Redis address that takes connections and never
    /// answers: every script it runs hangs (until a minute passes).
    fn silent_ingest() -> (Arc<Ingest>, std::net::TcpListener) {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("redis://{}", silent.local_addr().unwrap());
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(60)))
            .set_response_timeout(Some(Duration::from_secs(60)));
        let conn =
            ConnectionManager::new_lazy_with_config(::redis::Client::open(url.as_str()).unwrap(), config).unwrap();
        (Ingest::new(Conn::Single(conn), "t".into(), "t:q:first", 1000), silent)
    }

    fn waiting_item() -> (Item, oneshot::Receiver<Answer>) {
        let (reply, answer) = oneshot::channel();
        (Item { reply, ..item(8) }, answer)
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once() {
        let (ingest, _silent) = silent_ingest();
        {
            let mut q = ingest.queue.lock().unwrap();
            q.in_flight = MAX_IN_FLIGHT;
            q.waiting = (0..MAX_WAITING).map(|_| item(8)).collect();
        }
        let it = item(8);
        let err = ingest.enqueue(&it.event, &[], None, None).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Unavailable(m) if m.contains("too many events")),
            "{err:?}"
        );
        assert_eq!(
            ingest.queue.lock().unwrap().waiting.len(),
            MAX_WAITING,
            "nothing was queued"
        );
    }

    #[tokio::test]
    async fn a_writer_that_is_dropped_answers_every_caller_and_frees_its_slot() {
        let (ingest, _silent) = silent_ingest();
        // Three events taken into a batch whose script never returns...
        let (in_batch, batch_answers): (Vec<_>, Vec<_>) = (0..3).map(|_| waiting_item()).unzip();
        {
            let mut q = ingest.queue.lock().unwrap();
            q.in_flight = 1;
            q.waiting = in_batch;
        }
        let writer = {
            let ingest = ingest.clone();
            tokio::spawn(async move { ingest.drain().await })
        };
        hookgate_testkit::wait_until(Duration::from_secs(5), "the writer to take the batch", || {
            let taken = ingest.queue.lock().unwrap().waiting.is_empty();
            async move { taken.then_some(()) }
        })
        .await;
        // ...and two more queued behind it, with no other writer to take them.
        let (behind, behind_answers): (Vec<_>, Vec<_>) = (0..2).map(|_| waiting_item()).unzip();
        ingest.queue.lock().unwrap().waiting.extend(behind);
        writer.abort();
        assert!(writer.await.unwrap_err().is_cancelled());
        for answer in batch_answers {
            assert!(answer.await.is_err(), "the batch's callers see their answer dropped");
        }
        for answer in behind_answers {
            let err = answer.await.unwrap().unwrap_err();
            assert!(
                matches!(&err, StoreError::Unavailable(m) if m.contains("writer stopped")),
                "{err:?}"
            );
        }
        let q = ingest.queue.lock().unwrap();
        assert_eq!(
            (q.in_flight, q.waiting.len()),
            (0, 0),
            "the slot is free for the next event"
        );
    }

    fn item(size: usize) -> Item {
        Item {
            event: NewEvent {
                id: "evt".into(),
                event_type: "t".into(),
                data: Bytes::from(vec![b'x'; size]),
                test: false,
                created_at_ms: 0,
            },
            deliveries: Vec::new(),
            idempotency: None,
            limit: None,
            reply: oneshot::channel().0,
        }
    }

    #[test]
    fn a_batch_is_bounded_by_count_and_bytes_but_takes_at_least_one() {
        let mut waiting: Vec<Item> = (0..MAX_BATCH + 5).map(|_| item(10)).collect();
        assert_eq!(take_batch(&mut waiting).len(), MAX_BATCH);
        assert_eq!(waiting.len(), 5);

        let mut waiting: Vec<Item> = (0..4).map(|_| item(MAX_BATCH_BYTES / 2)).collect();
        assert_eq!(take_batch(&mut waiting).len(), 2);
        assert_eq!(waiting.len(), 2);

        let mut waiting = vec![item(MAX_BATCH_BYTES * 2), item(1)];
        assert_eq!(take_batch(&mut waiting).len(), 1);
        assert_eq!(waiting.len(), 1);
    }
}
