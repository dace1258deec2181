//! Group commit for ingest: events accepted at the same time are written by
//! one `enqueue.lua` call per shard.
//!
//! Each call to [`RedisStore::enqueue`](super::RedisStore) queues its event
//! and waits for its own answer. At most [`MAX_IN_FLIGHT`] scripts run at
//! once; while they do, new events wait in the queue, and the next script
//! takes all of them (up to [`MAX_BATCH`] events or [`MAX_BATCH_BYTES`] of
//! data). Under load Redis runs one script per shard (one `TIME`, one
//! variadic write per queue and index) per batch instead of per event. At a
//! moderate rate no script would be running when an event arrives, so each
//! would get a script of its own: a writer that starts from idle while
//! events arrive less than a millisecond apart waits [`pace::WAIT`] first,
//! gathering the next few (`crate::pace`). A lone event is written at once,
//! so this adds no latency at a low rate.
//! Callers' API rate limits are taken first: on a standalone Redis by the
//! same script, before it writes each event; on a cluster, where each
//! limit's state is in a slot of its own, for the whole batch with one
//! `gcra.lua` call per slot (each state read and written once) before the
//! write. Events over their limit are answered and not written.
//!
//! Batches run on their own tasks, so a caller that goes away (its client
//! disconnected) never strands the others; its event is still written, as it
//! would be if it had disconnected just after the write.
//!
//! A batch is not waited for longer than its deadline, and a shard that did
//! not answer is answered for at once for a moment (`deadline.rs`), so
//! producers get 503 with `Retry-After` instead of waiting while a Redis
//! Cluster fails over.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use ::redis::Value;
use tokio::sync::oneshot;

use futures_util::future::join_all;

use super::conn::Conn;
use super::deadline::{DEADLINE, Deadlines, GRACE};
use super::decode::{self, as_int};
use super::limits::{Limiter, rate_states};
use super::shards::{Shard, Shards};
use super::{RoutedScript, unavailable, wait_for_replicas};
use crate::pace::{self, Pacer};
use crate::store::{
    Enqueue, Enqueued, Idempotency, NewDelivery, NewEvent, RateDecision, RateRequest, RateState, StoreError, Stored,
};

/// Scripts running at once; more events wait and go in the next batch.
pub const MAX_IN_FLIGHT: usize = 4;
/// Events per script at most.
pub const MAX_BATCH: usize = 128;
/// Event data per script at most (a batch always takes at least one event).
pub const MAX_BATCH_BYTES: usize = 1 << 20;
/// Events waiting at most; past this, callers are told the store is busy.
pub const MAX_WAITING: usize = 16_384;

type Answer = Result<Stored, StoreError>;

/// One event to write, owned, and where its answer goes.
struct Item {
    event: NewEvent,
    deliveries: Vec<NewDelivery>,
    idempotency: Option<Idempotency>,
    limit: Option<RateRequest>,
    reply: oneshot::Sender<Answer>,
    /// When it was queued: an event that waited past [`DEADLINE`] +
    /// [`GRACE`] for a script is answered 503 instead of waiting on.
    queued: Instant,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Item>,
    in_flight: usize,
    /// A writer is waiting for more events before its first batch: new
    /// events join the queue without starting another writer (unless a
    /// whole batch is waiting).
    pacing: bool,
}

/// The shared queue of events waiting for a script.
pub(crate) struct Ingest {
    conn: Conn,
    shards: Arc<Shards>,
    script: RoutedScript,
    limiter: Arc<Limiter>,
    retention_ms: u64,
    wait_replicas: u32,
    deadlines: Deadlines,
    queue: Mutex<Queue>,
    /// When events arrive, to tell a stream from lone events.
    pace: Pacer,
}

impl Ingest {
    pub(crate) fn new(
        conn: Conn,
        shards: Arc<Shards>,
        limiter: Arc<Limiter>,
        route_key: &str,
        retention_ms: u64,
        wait_replicas: u32,
    ) -> Arc<Self> {
        Arc::new(Ingest {
            conn,
            shards: shards.clone(),
            script: RoutedScript::new(
                &super::records_script(&super::rate_script(include_str!("lua/enqueue.lua"))),
                route_key,
            ),
            limiter,
            retention_ms,
            wait_replicas,
            // One gate per shard, and one for the API rate limits.
            deadlines: Deadlines::new(shards.len() + 1),
            queue: Mutex::new(Queue::default()),
            pace: Pacer::default(),
        })
    }

    /// Writes one event with its deliveries (see `DeliveryQueue::enqueue`).
    pub(crate) async fn enqueue(self: &Arc<Self>, input: Enqueue) -> Answer {
        let Enqueue {
            event,
            deliveries,
            idempotency,
            limit,
        } = input;
        let shard = self.shards.index_of(&event.id);
        if let Some(d) = deliveries.iter().find(|d| self.shards.index_of(&d.id) != shard) {
            return Err(StoreError::Corrupt(format!(
                "delivery {} is not in the bucket of its event {} (make ids with ids::delivery_ids)",
                d.id, event.id
            )));
        }
        if self.deadlines.is_down(shard) {
            return Err(StoreError::Unavailable(format!(
                "shard {shard} of the store did not answer in time; try again shortly"
            )));
        }
        if limit.is_some() && self.deadlines.is_down(self.limits_gate()) {
            return Err(StoreError::Unavailable(
                "the API rate limit's state did not answer in time; try again shortly".into(),
            ));
        }
        let (reply, answer) = oneshot::channel();
        let queued = Instant::now();
        let streaming = self.pace.arrived(queued);
        let item = Item {
            event,
            deliveries,
            idempotency,
            limit,
            reply,
            queued,
        };
        let start = {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            if q.waiting.len() >= MAX_WAITING {
                return Err(StoreError::Unavailable("too many events waiting to be stored".into()));
            }
            q.waiting.push(item);
            if q.in_flight < MAX_IN_FLIGHT && (!q.pacing || q.waiting.len() >= MAX_BATCH) {
                // From idle, in a stream: wait for the next few first.
                let wait = streaming && q.in_flight == 0;
                q.in_flight += 1;
                q.pacing |= wait;
                Some(wait)
            } else {
                None
            }
        };
        if let Some(wait) = start {
            let this = self.clone();
            tokio::spawn(async move { this.drain(wait).await });
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("the ingest writer stopped".into())))
    }

    /// Runs batches until the queue is empty, then gives up its slot (also
    /// if this task is dropped or unwinds, so the queue is never left
    /// without a writer while it counts one as running). With `wait` (it
    /// set `pacing`), it first waits [`pace::WAIT`] for more events.
    async fn drain(&self, wait: bool) {
        /// This writer's place among the running ones.
        struct Slot<'a> {
            ingest: &'a Ingest,
            /// Given back in the normal way (nothing left for `drop`).
            released: bool,
            /// This writer still holds `pacing`.
            pacing: bool,
        }
        impl Drop for Slot<'_> {
            fn drop(&mut self) {
                if self.released {
                    return;
                }
                let mut q = self.ingest.queue.lock().unwrap_or_else(|p| p.into_inner());
                q.in_flight -= 1;
                if self.pacing {
                    q.pacing = false;
                }
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
        let mut slot = Slot {
            ingest: self,
            released: false,
            pacing: wait,
        };
        if wait {
            tokio::time::sleep(pace::WAIT).await;
        }
        loop {
            let batch = {
                let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                if slot.pacing {
                    q.pacing = false;
                    slot.pacing = false;
                }
                if q.waiting.is_empty() {
                    // Under the same lock as the check, so an event queued
                    // just after it sees the free slot and starts a writer.
                    q.in_flight -= 1;
                    slot.released = true;
                    return;
                }
                take_batch(&mut q.waiting)
            };
            let batch = answer_overdue(batch);
            if !batch.is_empty() {
                self.write(batch).await;
            }
        }
    }

    /// The deliveries' rate limits the script takes itself: those of a
    /// leased event, on a standalone Redis (see `lua/enqueue.lua`).
    fn inline_limits<'e>(&self, event: &'e NewEvent) -> &'e [RateRequest] {
        match &event.lease {
            Some(l) if self.limiter.shared_slot() => &l.limits,
            _ => &[],
        }
    }

    /// The caller's API rate limit of `it` if the script takes it itself:
    /// on a standalone Redis (see `lua/enqueue.lua`).
    fn inline_api_limit<'i>(&self, it: &'i Item) -> Option<&'i RateRequest> {
        it.limit.as_ref().filter(|_| self.limiter.shared_slot())
    }

    /// The gate of the API rate limits in [`Deadlines`] (after the shards').
    fn limits_gate(&self) -> usize {
        self.shards.len()
    }

    async fn write(&self, batch: Vec<Item>) {
        // API rate limits first: over-limit events are answered here, or
        // by the script where it takes them itself.
        let batch = if self.limiter.shared_slot() {
            batch.into_iter().map(|it| (it, None)).collect()
        } else {
            self.limit(batch).await
        };
        let groups = self.shards.group(batch, |(it, _)| it.event.id.as_str());
        join_all(groups.into_iter().map(|(shard, items)| self.write_shard(shard, items))).await;
    }

    /// Takes the API rate limit of every limited event in `batch` and
    /// answers those over it (and all of them if the limiter failed);
    /// returns the others with their limit state.
    async fn limit(&self, batch: Vec<Item>) -> Vec<(Item, Option<RateState>)> {
        let limited: Vec<&RateRequest> = batch.iter().filter_map(|it| it.limit.as_ref()).collect();
        if limited.is_empty() {
            return batch.into_iter().map(|it| (it, None)).collect();
        }
        // Bounded like the write: a rate-limit slot on a master that is
        // down must not hold every limited caller (taking a limit late only
        // spends it, so no deadline is needed in Redis).
        let checked = tokio::time::timeout(DEADLINE + GRACE, self.limiter.check(&self.conn, &limited))
            .await
            .unwrap_or_else(|_| Err(too_late("the API rate limit's state did not answer")));
        let mut states = match checked {
            // One state per limited event, in order (`Limiter::check`).
            Ok(states) => states.into_iter(),
            Err(e) => {
                if e.is_unavailable() {
                    self.deadlines.mark_down(self.limits_gate());
                }
                for it in batch {
                    let _ = it.reply.send(Err(e.clone()));
                }
                return Vec::new();
            }
        };
        let mut allowed = Vec::with_capacity(batch.len());
        for it in batch {
            match it.limit.as_ref().and_then(|_| states.next()) {
                None => allowed.push((it, None)),
                Some(state) if state.decision == RateDecision::Allow => allowed.push((it, Some(state))),
                Some(state) => {
                    let _ = it.reply.send(Ok(Stored::new(Enqueued::RateLimited, Some(state))));
                }
            }
        }
        allowed
    }

    async fn write_shard(&self, shard: &Shard, batch: Vec<(Item, Option<RateState>)>) {
        let not_after = self.deadlines.not_after();
        // Per event: its data, the ids and fields below (about 200 bytes),
        // two arguments per delivery and three per rate limit.
        let (args, bytes) = batch.iter().fold((0, 0), |(a, b), (it, _)| {
            let d = it.deliveries.len();
            (a + 20 + 5 * d, b + it.event.data.len() + 200 + 100 * d)
        });
        let mut inv = self.script.on_sized(shard, args, bytes);
        inv.arg(self.retention_ms).arg(not_after.unwrap_or(0)).arg(batch.len());
        for (it, _) in &batch {
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
            match &e.lease {
                Some(l) => inv.arg(&l.owner).arg(l.ttl.as_millis() as u64),
                None => inv.arg("").arg(0),
            };
            match self.inline_api_limit(it) {
                Some(l) => inv
                    .arg(self.limiter.key(&l.key))
                    .arg(l.limit.interval_us)
                    .arg(l.limit.tolerance_us),
                None => inv.arg("").arg(0).arg(0),
            };
            inv.arg(it.deliveries.len());
            for d in &it.deliveries {
                inv.arg(&d.id).arg(&d.webhook_id);
            }
            let limits = self.inline_limits(e);
            inv.arg(limits.len());
            for l in limits {
                inv.arg(self.limiter.key(&l.key))
                    .arg(l.limit.interval_us)
                    .arg(l.limit.tolerance_us);
            }
        }
        let mut conn = self.conn.clone();
        let call = inv.invoke_async::<Vec<Value>>(&mut conn);
        let answered = match not_after {
            // The script refuses to write after its deadline, so giving up
            // a little later can never leave an event written unannounced.
            Some(_) => tokio::time::timeout(DEADLINE + GRACE, call)
                .await
                .map_err(|_| too_late(&format!("shard {} of the store did not answer", shard.index))),
            None => Ok(call.await),
        };
        let written = match answered {
            Ok(Ok(mut replies)) if replies.len() == batch.len() + 1 => {
                if let Some(redis_ms) = replies.pop().as_ref().and_then(as_int) {
                    self.deadlines.learn(redis_ms as u64);
                }
                match wait_for_replicas(&self.conn, &shard.route, self.wait_replicas).await {
                    Ok(()) => Ok(replies),
                    Err(e) => Err(e),
                }
            }
            Ok(Ok(replies)) => Err(StoreError::Corrupt(format!(
                "enqueue: {} answers for {} events",
                replies.len(),
                batch.len()
            ))),
            Ok(Err(e)) => Err(unavailable(e)),
            Err(timed_out) => Err(timed_out),
        };
        match written {
            Ok(replies) => {
                for ((it, state), reply) in batch.into_iter().zip(replies) {
                    let taken = self.inline_limits(&it.event).len();
                    let api = self.inline_api_limit(&it).is_some();
                    let _ = it.reply.send(decode_one(reply, state, taken, api));
                }
            }
            Err(e) => {
                if e.is_unavailable() {
                    self.deadlines.mark_down(shard.index);
                }
                for (it, _) in batch {
                    let _ = it.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Answers the events of `batch` that waited too long for a script (the
/// store is slower than the events come: their callers get a 503 in time
/// and send again, instead of a queue that only grows); returns the rest.
fn answer_overdue(batch: Vec<Item>) -> Vec<Item> {
    let (overdue, fresh): (Vec<Item>, Vec<Item>) = batch
        .into_iter()
        .partition(|it| it.queued.elapsed() >= DEADLINE + GRACE);
    for it in overdue {
        let _ = it.reply.send(Err(too_late("the store did not take the event")));
    }
    fresh
}

/// `what` happened not within ingest's wait ([`DEADLINE`] + [`GRACE`]).
fn too_late(what: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "{what} within {} ms; try again shortly",
        (DEADLINE + GRACE).as_millis()
    ))
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

/// One event's answer from the script's reply; a created event's answer
/// ends with the decisions on the `taken` rate limits it was given. With
/// `api` (the script took the caller's API rate limit), an event over it
/// is answered rate-limited, and the others' answers end with the limit's
/// state.
fn decode_one(reply: Value, state: Option<RateState>, taken: usize, api: bool) -> Answer {
    let Value::Array(mut reply) = reply else {
        return Err(StoreError::Corrupt(format!("enqueue: unexpected reply {reply:?}")));
    };
    let state = if api {
        // The API rate limit's state ends the answer, as `gcra.lua` gives it.
        let at = reply.len().checked_sub(3).filter(|at| *at >= 1);
        let flat: Option<Vec<i64>> = at.and_then(|at| reply[at..].iter().map(as_int).collect());
        let (Some(at), Some(flat)) = (at, flat) else {
            return Err(StoreError::Corrupt(format!("enqueue: unexpected reply {reply:?}")));
        };
        reply.truncate(at);
        rate_states(&flat).next()
    } else {
        state
    };
    match reply.first().and_then(as_int) {
        Some(2) if api => Ok(Stored::new(Enqueued::RateLimited, state)),
        Some(1) => {
            let mut stored = Stored::new(Enqueued::Created, state);
            if taken > 0 {
                let waits: Option<Vec<RateDecision>> = reply[1..]
                    .iter()
                    .map(|w| as_int(w).map(RateDecision::from_wait_us))
                    .collect();
                match waits {
                    Some(d) if d.len() == taken => stored.taken = Some(d),
                    _ => return Err(StoreError::Corrupt(format!("enqueue: unexpected reply {reply:?}"))),
                }
            }
            Ok(stored)
        }
        Some(0) => {
            let seen = reply.get(1).and_then(decode::as_string).unwrap_or_default();
            let (fingerprint, answer) = seen.split_once('\n').unwrap_or(("", &seen));
            let repeated = Enqueued::Repeated {
                fingerprint: fingerprint.to_owned(),
                answer: answer.to_owned(),
            };
            Ok(Stored::new(repeated, state))
        }
        _ => Err(StoreError::Corrupt(format!("enqueue: unexpected reply {reply:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
    use bytes::Bytes;

    use super::*;

    /// An `Ingest` on a Redis address that takes connections and never
    /// answers: every script it runs hangs (until a minute passes).
    fn silent_ingest() -> (Arc<Ingest>, std::net::TcpListener) {
        silent_ingest_with(false)
    }

    /// [`silent_ingest`], its rate limits kept as on a cluster (`true`:
    /// taken by a call of their own before the write) or not.
    fn silent_ingest_with(cluster_limits: bool) -> (Arc<Ingest>, std::net::TcpListener) {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("redis://{}", silent.local_addr().unwrap());
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(60)))
            .set_response_timeout(Some(Duration::from_secs(60)));
        let conn =
            ConnectionManager::new_lazy_with_config(::redis::Client::open(url.as_str()).unwrap(), config).unwrap();
        let shards = Arc::new(Shards::new("t", "t", 1));
        let limiter = Arc::new(Limiter::new("t", "t", cluster_limits));
        (
            Ingest::new(Conn::Single(conn), shards, limiter, "t:q:first", 1000, 0),
            silent,
        )
    }

    fn input(event: &NewEvent, deliveries: &[NewDelivery], limit: Option<&RateRequest>) -> Enqueue {
        Enqueue {
            event: event.clone(),
            deliveries: deliveries.to_vec(),
            idempotency: None,
            limit: limit.cloned(),
        }
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
        let err = ingest.enqueue(input(&it.event, &[], None)).await.unwrap_err();
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
            tokio::spawn(async move { ingest.drain(false).await })
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

    #[tokio::test]
    async fn a_shard_that_does_not_answer_gets_503_after_the_deadline_then_at_once() {
        let (ingest, _silent) = silent_ingest();
        ingest.deadlines.set_offset(0);
        let it = item(8);
        // The silent Redis would hold the script for a minute; the deadline
        // answers long before (the bound here only keeps a broken build
        // from hanging the suite).
        let first = tokio::time::timeout(Duration::from_secs(20), ingest.enqueue(input(&it.event, &[], None)))
            .await
            .expect("an answer before the client's own timeout")
            .unwrap_err();
        assert!(
            matches!(&first, StoreError::Unavailable(m) if m.contains("did not answer within")),
            "{first:?}"
        );
        assert!(first.is_unavailable());
        let second = ingest.enqueue(input(&it.event, &[], None)).await.unwrap_err();
        assert!(
            matches!(&second, StoreError::Unavailable(m) if m.contains("did not answer in time")),
            "the shard is not asked again for a moment: {second:?}"
        );
    }

    /// An `Ingest` on a real Redis, its keys under `prefix`.
    fn real_ingest(redis: &hookgate_testkit::RedisServer, prefix: &str) -> (Conn, Arc<Ingest>) {
        let conn = Conn::single(&redis.url()).unwrap();
        let shards = Arc::new(Shards::new(prefix, prefix, 1));
        let limiter = Arc::new(Limiter::new(prefix, prefix, false));
        let route = format!("{prefix}:q:first");
        (conn.clone(), Ingest::new(conn, shards, limiter, &route, 60_000, 0))
    }

    /// A small event with no lease.
    fn event(id: &str) -> NewEvent {
        NewEvent {
            id: id.into(),
            event_type: "t".into(),
            data: Bytes::from_static(b"{}"),
            test: false,
            created_at_ms: 0,
            lease: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_that_reaches_redis_after_its_deadline_writes_nothing() {
        let redis = hookgate_testkit::RedisServer::start();
        let (conn, ingest) = real_ingest(&redis, "late");
        let delivery = |id: &str| NewDelivery {
            id: id.into(),
            webhook_id: "w".into(),
        };
        // Redis's clock is learned from the first answer.
        assert!(ingest.deadlines.not_after().is_none());
        let answer = ingest
            .enqueue(input(&event("e1"), &[delivery("d1")], None))
            .await
            .unwrap();
        assert_eq!(answer.outcome, Enqueued::Created);
        assert!(ingest.deadlines.not_after().is_some());
        // A deadline already past in Redis's clock: as if the script ran
        // after the gateway stopped waiting.
        ingest.deadlines.set_offset(-3_600_000);
        let err = ingest
            .enqueue(input(&event("e2"), &[delivery("d2")], None))
            .await
            .unwrap_err();
        assert!(err.is_unavailable() && err.to_string().contains("LATE"), "{err}");
        let mut c = conn.clone();
        let keys: Vec<String> = ::redis::cmd("KEYS").arg("late:*d2*").query_async(&mut c).await.unwrap();
        assert!(keys.is_empty(), "nothing of the late event was written: {keys:?}");
        let queued: Vec<String> = ::redis::cmd("ZRANGE")
            .arg("late:q:first")
            .arg(0)
            .arg(-1)
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(queued, ["d1"]);
    }

    /// Scripts Redis has run since its statistics were last reset.
    async fn scripts_run(conn: &Conn) -> u64 {
        let mut c = conn.clone();
        let info: String = ::redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut c)
            .await
            .unwrap();
        info.lines()
            .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
            .filter_map(|l| l.split("calls=").nth(1)?.split(',').next()?.parse::<u64>().ok())
            .sum()
    }

    /// A writer that starts from idle in a stream of events waits for the
    /// next ones: an event arriving just after the writer started shares
    /// its script (without the wait it would get a script of its own). A
    /// lone event starts its writer without waiting.
    #[tokio::test]
    async fn events_in_a_stream_share_a_script_and_a_lone_event_does_not_wait() {
        let redis = hookgate_testkit::RedisServer::start();
        let (conn, ingest) = real_ingest(&redis, "pace");
        // The script loaded, and the statistics reset after it.
        ingest.enqueue(input(&event("e0"), &[], None)).await.unwrap();
        let mut c = conn.clone();
        let () = ::redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut c)
            .await
            .unwrap();

        // An event just before: e1 is part of a stream.
        ingest.pace.arrived(Instant::now());
        let second = async {
            // Let e1's writer start (it would take e1 and run its script
            // now if it did not wait), then send e2.
            tokio::task::yield_now().await;
            ingest.enqueue(input(&event("e2"), &[], None)).await
        };
        let (first, second) = tokio::join!(ingest.enqueue(input(&event("e1"), &[], None)), second);
        assert_eq!(first.unwrap().outcome, Enqueued::Created);
        assert_eq!(second.unwrap().outcome, Enqueued::Created);
        assert_eq!(scripts_run(&conn).await, 1, "e1 and e2 went in one script");

        // Long after the last event: e3 is alone and its writer starts at once.
        tokio::time::sleep(pace::WINDOW * 5).await;
        let check = async {
            let q = ingest.queue.lock().unwrap();
            assert_eq!(q.in_flight, 1, "e3's writer is started");
            assert!(!q.pacing, "and does not wait for company");
        };
        let (third, ()) = tokio::join!(ingest.enqueue(input(&event("e3"), &[], None)), check);
        assert_eq!(third.unwrap().outcome, Enqueued::Created);
        assert!(!ingest.queue.lock().unwrap().pacing);
    }

    fn item(size: usize) -> Item {
        Item {
            event: NewEvent {
                id: "evt".into(),
                event_type: "t".into(),
                data: Bytes::from(vec![b'x'; size]),
                test: false,
                created_at_ms: 0,
                lease: None,
            },
            deliveries: Vec::new(),
            idempotency: None,
            limit: None,
            reply: oneshot::channel().0,
            queued: Instant::now(),
        }
    }

    #[test]
    fn events_that_waited_past_the_deadline_are_answered_not_written() {
        let (fresh, mut fresh_answer) = waiting_item();
        let (mut old, mut old_answer) = waiting_item();
        old.queued = Instant::now() - (DEADLINE + GRACE);
        let left = answer_overdue(vec![old, fresh]);
        assert_eq!(left.len(), 1);
        let err = old_answer.try_recv().unwrap().unwrap_err();
        assert!(
            err.is_unavailable() && err.to_string().contains("did not take the event"),
            "{err}"
        );
        assert!(fresh_answer.try_recv().is_err(), "the fresh event is still waiting");
        drop(left);
    }

    #[tokio::test]
    async fn a_rate_limit_that_does_not_answer_gets_503_after_the_deadline_then_at_once() {
        // Limits taken apart from the write, as on a cluster.
        let (ingest, _silent) = silent_ingest_with(true);
        let limit = RateRequest {
            key: "api:token".into(),
            limit: crate::ratelimit::Gcra::per_minute(600, 10),
        };
        let it = item(8);
        let first = tokio::time::timeout(
            Duration::from_secs(20),
            ingest.enqueue(input(&it.event, &[], Some(&limit))),
        )
        .await
        .expect("an answer before the client's own timeout")
        .unwrap_err();
        assert!(
            matches!(&first, StoreError::Unavailable(m) if m.contains("rate limit's state did not answer within")),
            "{first:?}"
        );
        let second = ingest.enqueue(input(&it.event, &[], Some(&limit))).await.unwrap_err();
        assert!(
            matches!(&second, StoreError::Unavailable(m) if m.contains("rate limit's state did not answer in time")),
            "the limits are not asked again for a moment: {second:?}"
        );
    }

    /// With the API rate limit taken in the script, every answer ends with
    /// its state; an event over it is answered rate-limited; an answer too
    /// short to hold the state is refused as corrupt, not misread.
    #[test]
    fn an_answer_with_the_api_limit_ends_with_its_state() {
        let ints = |v: &[i64]| Value::Array(v.iter().map(|i| Value::Int(*i)).collect());
        let limited = decode_one(ints(&[2, 500, 9_000, 8_000]), None, 0, true).unwrap();
        assert_eq!(limited.outcome, Enqueued::RateLimited);
        let state = limited.rate.expect("its state");
        assert_eq!(state.decision, RateDecision::Wait(Duration::from_micros(500)));
        let created = decode_one(ints(&[1, 0, 0, 9_000, 8_000]), None, 1, true).unwrap();
        assert_eq!(created.outcome, Enqueued::Created);
        assert_eq!(
            created.taken,
            Some(vec![RateDecision::Allow]),
            "the delivery's own limit"
        );
        let state = created.rate.expect("its state");
        assert_eq!(
            (state.decision, state.tat_us, state.now_us),
            (RateDecision::Allow, 9_000, 8_000)
        );
        assert!(matches!(
            decode_one(ints(&[1, 9_000, 8_000]), None, 0, true),
            Err(StoreError::Corrupt(_))
        ));
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
