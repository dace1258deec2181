//! What each webhook holds in this gateway: attempts running, and
//! deliveries parked to start the moment one of them ends.
//!
//! A webhook runs at most `per_webhook_cap` attempts at once (a quarter of
//! the concurrency). A delivery ready to start for a webhook at its cap,
//! handed off at ingest or claimed, is parked here with its slot instead of
//! being deferred in the store: when a running attempt of that webhook
//! ends, the oldest parked delivery starts at once, without a store round
//! trip or a deferral's wait. At most [`park_room`] deliveries park per
//! webhook; past that they are deferred as before. A webhook's load (what
//! the claim loop, ingest's handoff and the admission screen count) is its
//! running attempts plus its parked deliveries, up to [`load_limit`].
//!
//! A parked delivery waits for at most one attempt of its webhook per place
//! ahead of it in line, each bounded by the attempt timeout, so well within
//! its lease. It starts only if its webhook still takes attempts: one whose
//! breaker opened, or that was disabled or deleted, while it waited gets it
//! back in the store, due when the breaker lets the next one through (the
//! claim screens it again then). While the dispatcher stops, parked
//! deliveries are released (due again at once) instead of started.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use foldhash::HashMap;
use tokio::sync::OwnedSemaphorePermit;

use super::Shared;
use crate::circuit::{Circuit, Gate};
use crate::store::Job;
use crate::webhooks::Webhook;

/// One webhook's load.
#[derive(Default)]
pub(crate) struct Load {
    /// Attempts running plus deliveries parked.
    pub count: usize,
    parked: VecDeque<Parked>,
}

/// Every webhook's load, by webhook id (absent: none).
pub(crate) type Loads = HashMap<String, Load>;

/// A delivery ready to start, with its slots (its webhook is looked up
/// again when it starts).
struct Parked {
    job: Job,
    permit: OwnedSemaphorePermit,
    retry_permit: Option<OwnedSemaphorePermit>,
}

/// Deliveries that may park per webhook: half its cap (at least one).
pub(crate) fn park_room(shared: &Shared) -> usize {
    (shared.per_webhook_cap / 2).max(1)
}

/// The most load one webhook may have: its cap of running attempts plus
/// its parked deliveries.
pub(crate) fn load_limit(shared: &Shared) -> usize {
    shared.per_webhook_cap + park_room(shared)
}

/// The load of webhook `id` in `loads`.
pub(crate) fn load_of(loads: &Loads, id: &str) -> usize {
    loads.get(id).map_or(0, |l| l.count)
}

/// The webhooks of `recent` and those with a load, each with its room
/// under [`load_limit`] (empty: none of either).
pub(super) fn rooms(shared: &Shared, recent: &HashSet<String>) -> Vec<(String, usize)> {
    let limit = load_limit(shared);
    let loads = shared.in_flight.lock().unwrap_or_else(|e| e.into_inner());
    recent
        .iter()
        .chain(loads.keys().filter(|w| !recent.contains(*w)))
        .map(|id| (id.clone(), limit.saturating_sub(load_of(&loads, id))))
        .collect()
}

/// Takes `n` out of webhook `id`'s load (gone at zero).
fn leave(loads: &mut Loads, id: &str, n: usize) {
    if let Some(load) = loads.get_mut(id) {
        load.count -= n;
        if load.count == 0 {
            loads.remove(id);
        }
    }
}

/// Starts an attempt of `job` now if its webhook has room under its cap
/// (a breaker probe always starts), else parks it until a running attempt
/// of the webhook ends.
pub(super) fn start_or_park(
    shared: &Arc<Shared>,
    job: Job,
    hook: Arc<Webhook>,
    probe: Option<Circuit>,
    permit: OwnedSemaphorePermit,
    retry_permit: Option<OwnedSemaphorePermit>,
) {
    {
        let mut loads = shared.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let load = loads.entry(hook.id.clone()).or_default();
        let running = load.count - load.parked.len();
        load.count += 1;
        if running >= shared.per_webhook_cap && probe.is_none() {
            load.parked.push_back(Parked {
                job,
                permit,
                retry_permit,
            });
            return;
        }
    }
    let guard = InFlight {
        shared: shared.clone(),
        webhook_id: hook.id.clone(),
    };
    super::worker::spawn_attempt(shared, job, hook, probe, (permit, retry_permit, guard));
}

/// Whether `hook` takes attempts at `now_ms` (enabled, its breaker
/// closed); else how long until its breaker lets one through (zero for a
/// disabled webhook, or a probe, which is the claim loop's to send).
pub(super) fn takes_attempts(hook: &Webhook, now_ms: u64) -> Result<(), Duration> {
    if !hook.enabled {
        return Err(Duration::ZERO);
    }
    match crate::circuit::gate(hook.circuit.as_ref(), now_ms) {
        Gate::Pass => Ok(()),
        Gate::WaitUntil(at) => Err(Duration::from_millis(at.saturating_sub(now_ms))),
        Gate::Probe => Err(Duration::ZERO),
    }
}

/// Webhook `id` as it is now, if it takes attempts ([`takes_attempts`];
/// a webhook gone: zero, the claim settles it).
fn startable(shared: &Shared, id: &str) -> Result<Arc<Webhook>, Duration> {
    let hook = shared.registry.get(id).ok_or(Duration::ZERO)?;
    takes_attempts(&hook, crate::store::now_ms())?;
    Ok(hook)
}

/// A webhook's load went down: wakes the claim loop if it waits for room
/// (`Shared::awaiting_room`), and only then, so attempts ending while it
/// has nothing to claim cost nothing.
fn room_made(shared: &Shared) {
    if shared.awaiting_room.swap(false, Ordering::SeqCst) {
        shared.wake.notify_one();
    }
}

/// One running attempt, counted in its webhook's load while alive. When
/// it ends, the webhook's oldest parked delivery starts in its place.
pub(super) struct InFlight {
    shared: Arc<Shared>,
    webhook_id: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let shared = &self.shared;
        let stopping = shared.stopping.is_cancelled();
        let mut loads = shared.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let Some(load) = loads.get_mut(&self.webhook_id) else {
            return;
        };
        // Parked to running leaves the count as it is; released ones leave it.
        let (next, released): (Option<Parked>, Vec<Parked>) = if stopping {
            (None, load.parked.drain(..).collect())
        } else {
            (load.parked.pop_front(), Vec::new())
        };
        leave(&mut loads, &self.webhook_id, 1 + released.len());
        drop(loads);
        for p in released {
            drop((p.permit, p.retry_permit));
            super::handoff::release(shared, p.job);
        }
        if let Some(p) = next {
            match startable(shared, &self.webhook_id) {
                Ok(hook) => {
                    let guard = InFlight {
                        shared: shared.clone(),
                        webhook_id: self.webhook_id.clone(),
                    };
                    super::worker::spawn_attempt(shared, p.job, hook, None, (p.permit, p.retry_permit, guard));
                }
                Err(wait) => {
                    // Not started after all: out of the webhook's load.
                    leave(
                        &mut shared.in_flight.lock().unwrap_or_else(|e| e.into_inner()),
                        &self.webhook_id,
                        1,
                    );
                    drop((p.permit, p.retry_permit));
                    super::handoff::release_after(shared, p.job, wait);
                    room_made(shared);
                }
            }
        } else {
            room_made(shared);
        }
    }
}
