//! First attempts without a claim.
//!
//! The gateway that accepts an event already holds everything its first
//! attempts need. When this gateway has caught up with its queue (its last
//! claim came back short, so nothing older is waiting) and has a free
//! in-flight slot for every delivery, ingest reserves the slots
//! ([`Reservation`]), the store leases the deliveries to this gateway in
//! the same write that stores the event (`NewEvent::lease`), and the
//! deliveries come here instead of going through the queue and a claim.
//! From here they take the same road as claimed ones (`worker::route`):
//! breaker, in-flight caps and rate limits all apply. Where the store can,
//! it takes the deliveries' rate limits in that same write (`LeaseTo`), so
//! a handed delivery costs no rate-limit call of its own.
//!
//! Nothing can be lost on the way: the lease is in the store before ingest
//! answers, so a gateway that dies before or during the attempt leaves a
//! lease that expires, and a claim hands the delivery out again, as for any
//! claimed delivery. Otherwise (a backlog, no free slot, a webhook at its
//! cap or with an open breaker) the event is queued as before and the claim
//! loop is woken.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_util::sync::CancellationToken;

use super::{CLAIM_BATCH, Shared};
use crate::store::{Job, LeaseTo, NewDelivery, NewEvent, Outcome, RateDecision};
use crate::webhooks::Webhook;

/// A delivery leased at enqueue, with the in-flight slot reserved for it.
pub(crate) struct Handed {
    job: Job,
    /// Its rate limit, if the store took it in the enqueue write.
    taken: Option<RateDecision>,
    permit: OwnedSemaphorePermit,
}

/// In-flight slots reserved by ingest for one event's deliveries. Dropped
/// unused (the event was not written, or was a repeat), they are free
/// again.
pub struct Reservation {
    shared: Arc<Shared>,
    permits: Vec<OwnedSemaphorePermit>,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("slots", &self.permits.len())
            .finish_non_exhaustive()
    }
}

/// Reserves a slot for a delivery to each of `hooks`, with the lease to
/// write with the event; `None` when the event should be queued instead
/// (see the module doc).
pub(crate) fn reserve(shared: &Arc<Shared>, hooks: &[Arc<Webhook>]) -> Option<(Reservation, LeaseTo)> {
    if hooks.is_empty() || shared.handoff.is_closed() || !shared.caught_up.load(Ordering::Relaxed) {
        return None;
    }
    let now = crate::store::now_ms();
    {
        let in_flight = shared.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let startable = |h: &Arc<Webhook>| {
            super::inflight::takes_attempts(h, now).is_ok()
                && super::inflight::load_of(&in_flight, &h.id) < super::inflight::load_limit(shared)
        };
        if !hooks.iter().all(startable) {
            return None;
        }
    }
    let mut permits = Vec::with_capacity(hooks.len());
    for _ in hooks {
        match shared.total.clone().try_acquire_owned() {
            Ok(p) => permits.push(p),
            Err(_) => {
                // Full: this event waits in the queue, so the queue is no
                // longer empty; claims go first until it is again.
                shared.caught_up.store(false, Ordering::Relaxed);
                return None;
            }
        }
    }
    let lease = LeaseTo {
        owner: shared.owner.clone(),
        ttl: shared.lease,
        limits: hooks.iter().map(|h| super::worker::rate_request(shared, h)).collect(),
    };
    Some((
        Reservation {
            shared: shared.clone(),
            permits,
        },
        lease,
    ))
}

impl Reservation {
    /// The first attempts of `event`'s deliveries, to [`Self::start`] once
    /// the store has them (made before, since the write takes the event).
    pub fn jobs(event: &NewEvent, deliveries: &[NewDelivery]) -> Vec<Job> {
        deliveries
            .iter()
            .map(|d| Job {
                delivery_id: d.id.clone(),
                event_id: event.id.clone(),
                webhook_id: d.webhook_id.clone(),
                event_type: event.event_type.clone(),
                data: event.data.clone(),
                test: event.test,
                attempts: 0,
                retry_base: 0,
                created_at_ms: event.created_at_ms,
                data_missing: false,
            })
            .collect()
    }

    /// Starts `jobs` ([`Self::jobs`]), written with the reservation's lease;
    /// `taken`: their rate limits, if the store took them in that write.
    pub fn start(mut self, jobs: Vec<Job>, taken: Option<Vec<RateDecision>>) {
        let mut taken = taken.map(Vec::into_iter);
        for job in jobs {
            let decision = taken.as_mut().and_then(Iterator::next);
            let Some(permit) = self.permits.pop() else {
                release(&self.shared, job);
                continue;
            };
            // Never full: it holds as many items as there are slots.
            if let Err(e) = self.shared.handoff.try_send(Handed {
                job,
                taken: decision,
                permit,
            }) {
                let handed = match e {
                    mpsc::error::TrySendError::Full(h) | mpsc::error::TrySendError::Closed(h) => h,
                };
                release(&self.shared, handed.job);
            }
        }
    }
}

/// A leased delivery that will not be started here (the dispatcher is
/// stopping): due again at once, for this or another gateway. If even that
/// cannot be recorded, its lease expires and a claim hands it out.
pub(super) fn release(shared: &Shared, job: Job) {
    release_after(shared, job, Duration::ZERO);
}

/// [`release`], due again after `wait`.
pub(super) fn release_after(shared: &Shared, job: Job, wait: Duration) {
    let c = super::worker::completion(shared, job, Outcome::Defer(wait), None, None);
    let _ = shared.commits.try_send(c);
}

/// Routes handed deliveries in batches of what has arrived, one batch at a
/// time with the claim loop's batches. On stop, whatever is left is
/// released.
pub(super) async fn run(shared: Arc<Shared>, mut handed: mpsc::Receiver<Handed>, stop: CancellationToken) {
    let mut buf = Vec::with_capacity(CLAIM_BATCH);
    loop {
        let n = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            n = handed.recv_many(&mut buf, CLAIM_BATCH) => n,
        };
        if n == 0 {
            return;
        }
        let (jobs, permits): (Vec<(Job, Option<RateDecision>)>, Vec<OwnedSemaphorePermit>) =
            buf.drain(..).map(|h| ((h.job, h.taken), h.permit)).unzip();
        let _turn = shared.routing.lock().await;
        super::worker::route(&shared, jobs, permits).await;
    }
    handed.close();
    while let Ok(h) = handed.try_recv() {
        drop(h.permit);
        release(&shared, h.job);
    }
}
