//! Delivery: claim due deliveries, rate-limit, attempt, record the outcome.
//!
//! * `worker.rs`: the claim loop. It holds semaphore permits before it
//!   claims (so it never claims more than it can start), claims in batches,
//!   checks the per-webhook in-flight cap and the shared rate limits for the
//!   whole batch at once (on a standalone Redis the claim itself takes the
//!   limits of the webhooks it expects to hand out), and starts one task per
//!   attempt. Deliveries it cannot start yet are deferred in the store
//!   without using their retry budget. It sleeps until the next due time, a
//!   local wake-up (ingest, a committed retry, or an attempt ending that
//!   leaves room under a webhook's cap) or at most [`IDLE_POLL`], never in a
//!   busy loop.
//! * `inflight.rs`: each webhook's running attempts and the deliveries
//!   parked to start when one of them ends.
//! * `handoff.rs`: first attempts of events this gateway accepted, leased
//!   in the write that stored them and started without a claim while the
//!   gateway keeps up with its queue.
//! * `attempt.rs`: one signed POST and its verdict.
//! * `retry.rs`: the pure retry schedule.
//! * `committer.rs`: outcomes go to the store in batches; while the store is
//!   down they are kept (bounded) and retried with backoff.
//! * `client.rs`: the outbound client (TLS, identities, proxy, timeouts);
//!   `pool.rs` its keep-alive connections, `connector.rs` how one is made,
//!   `ssrf.rs` the guard on destinations.
//! * `tally.rs`: delivery statistics, added up here and flushed to the
//!   store every second (`crate::stats`).
//!
//! Fairness: a quarter of the concurrency is kept for first attempts (retries
//! may use at most three quarters), and one webhook may run at most a
//! quarter of it at once, so a slow or dead endpoint cannot stall the others
//! (up to an eighth more of its deliveries wait locally for a place:
//! `inflight.rs`). The
//! claim loop claims only as much as the webhooks it has seen lately can
//! start (plus a small periodic probe), so a saturated webhook's backlog is
//! not claimed and deferred over and over.

mod admission;
mod attempt;
mod breaker;
mod client;
mod committer;
mod connector;
mod handoff;
mod inflight;
#[cfg(test)]
mod keepalive_tests;
mod pool;
mod ssrf;
mod tally;
mod transform;
mod worker;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use foldhash::{HashMap, HashMapExt};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use attempt::{USER_AGENT_VALUE, Verdict, build_headers, parse_retry_after};
pub use client::{Outbound, OutboundError, RESPONSE_BODY_LIMIT, SendError};
pub use handoff::Reservation;
pub use ssrf::is_public;

use crate::config::Config;
use crate::health::StoreHealth;
use crate::plugin::PluginRuntime;
use crate::registry::Registry;
use crate::store::{Completion, Store};
use crate::telemetry::Telemetry;

/// Longest idle sleep between claims (picks up expired leases and work
/// enqueued by other gateways).
pub const IDLE_POLL: Duration = Duration::from_millis(500);
/// Most deliveries claimed in one round trip.
const CLAIM_BATCH: usize = 256;
/// Completions buffered for the committer (bounded: attempts wait when full).
const COMMIT_BUFFER: usize = 8192;

/// Everything the dispatch tasks share.
pub(crate) struct Shared {
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    pub outbound: Outbound,
    pub config: Arc<Config>,
    pub health: Arc<StoreHealth>,
    /// Identifies this gateway's leases.
    pub owner: String,
    pub lease: Duration,
    /// All in-flight attempts.
    pub total: Arc<Semaphore>,
    /// In-flight retries (three quarters of `total`).
    pub retries: Arc<Semaphore>,
    /// Most in-flight attempts one webhook may hold (a quarter of `total`).
    pub per_webhook_cap: usize,
    /// Each webhook's attempts running and deliveries parked (`inflight`).
    pub in_flight: Mutex<inflight::Loads>,
    /// Smoothed attempt duration per webhook (pacing for busy webhooks).
    pub durations: Mutex<HashMap<String, Duration>>,
    /// Consecutive failed attempts per webhook seen by this gateway (the
    /// circuit breaker's count).
    pub failures: Mutex<HashMap<String, u32>>,
    /// Wakes the claim loop: new work, or a retry was scheduled.
    pub wake: Arc<Notify>,
    /// The claim loop waits for room under the webhooks' limits: an attempt
    /// that ends and leaves some wakes it (`inflight`).
    pub awaiting_room: AtomicBool,
    pub commits: mpsc::Sender<Completion>,
    /// Deliveries leased at ingest, on their way to `handoff::run`.
    pub handoff: mpsc::Sender<handoff::Handed>,
    /// The last claim came back short: nothing older waits in the queue,
    /// so new events may skip it (`handoff`).
    pub caught_up: AtomicBool,
    /// One batch is routed at a time (claimed or handed off), so the
    /// in-flight caps it checks hold.
    pub routing: tokio::sync::Mutex<()>,
    /// The plugin runtime (started on first use).
    pub plugins: Arc<PluginRuntime>,
    /// Statistics not yet flushed to the store.
    pub tally: Arc<tally::Tally>,
    /// Trace export, if `[telemetry]` is set.
    pub telemetry: Option<Arc<Telemetry>>,
    /// Every attempt task.
    pub attempts: TaskTracker,
    /// Cancelled when the dispatcher stops taking work.
    pub stopping: CancellationToken,
    /// Cuts running attempts short (shutdown past its grace).
    pub hard_stop: CancellationToken,
}

impl Shared {
    /// Folds one attempt's duration into the webhook's moving average.
    pub(crate) fn note_duration(&self, webhook: &str, took: Duration) {
        let mut d = self.durations.lock().unwrap_or_else(|e| e.into_inner());
        match d.get_mut(webhook) {
            Some(avg) => *avg = avg.mul_f64(0.8) + took.mul_f64(0.2),
            None => {
                d.insert(webhook.to_owned(), took);
            }
        }
    }

    /// The webhook's typical attempt duration (10 ms until measured).
    pub(crate) fn typical_duration(&self, webhook: &str) -> Duration {
        let d = self.durations.lock().unwrap_or_else(|e| e.into_inner());
        d.get(webhook).copied().unwrap_or(Duration::from_millis(10))
    }
}

/// The running dispatcher.
pub struct Dispatcher {
    shared: Arc<Shared>,
    stop_claiming: CancellationToken,
    hard_stop: CancellationToken,
    attempts: TaskTracker,
    loops: TaskTracker,
    committer_done: CancellationToken,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("owner", &self.shared.owner)
            .finish_non_exhaustive()
    }
}

/// Ingest's handle on the dispatcher: wakes the claim loop after an
/// enqueue, or reserves slots to start an event's deliveries at once.
#[derive(Clone)]
pub struct Waker(Arc<Shared>);

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waker").finish_non_exhaustive()
    }
}

impl Waker {
    pub fn wake(&self) {
        self.0.wake.notify_one();
    }

    /// Slots to start a delivery to each of `hooks` without a claim, and
    /// the lease to write with the event, if this gateway can start them now
    /// (`handoff`); `None`: queue the event and [`Self::wake`].
    pub fn reserve(&self, hooks: &[Arc<crate::webhooks::Webhook>]) -> Option<(Reservation, crate::store::LeaseTo)> {
        handoff::reserve(&self.0, hooks)
    }
}

impl Dispatcher {
    /// Starts the claim loop and the committer.
    pub fn start(
        config: Arc<Config>,
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        health: Arc<StoreHealth>,
        plugins: Arc<PluginRuntime>,
        telemetry: Option<Arc<Telemetry>>,
    ) -> Result<Self, OutboundError> {
        let concurrency = config.delivery.concurrency;
        let outbound = Outbound::new(&config.delivery, concurrency)?;
        let (tx, rx) = mpsc::channel(COMMIT_BUFFER);
        // As many as there are slots: each handed delivery holds one.
        let (handoff_tx, handoff_rx) = mpsc::channel(concurrency.max(1));
        let lease = (config.max_attempt_time() + config.max_plugin_time()) * 2 + Duration::from_secs(5);
        let owner = format!("{}-{:016x}", std::process::id(), rand::random::<u64>());
        let shared = Arc::new(Shared {
            store,
            registry,
            outbound,
            health,
            owner,
            lease,
            total: Arc::new(Semaphore::new(concurrency)),
            retries: Arc::new(Semaphore::new((concurrency * 3 / 4).max(1))),
            per_webhook_cap: (concurrency / 4).max(1),
            in_flight: Mutex::new(inflight::Loads::new()),
            durations: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            wake: Arc::new(Notify::new()),
            awaiting_room: AtomicBool::new(false),
            commits: tx,
            handoff: handoff_tx,
            caught_up: AtomicBool::new(false),
            routing: tokio::sync::Mutex::new(()),
            plugins,
            config,
            tally: Arc::new(tally::Tally::default()),
            telemetry,
            attempts: TaskTracker::new(),
            stopping: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
        });
        let d = Dispatcher {
            stop_claiming: shared.stopping.clone(),
            hard_stop: shared.hard_stop.clone(),
            attempts: shared.attempts.clone(),
            shared,
            loops: TaskTracker::new(),
            committer_done: CancellationToken::new(),
        };
        d.loops
            .spawn(committer::run(d.shared.clone(), rx, d.committer_done.clone()));
        d.loops.spawn(tally::run(
            d.shared.tally.clone(),
            d.shared.store.clone(),
            d.committer_done.clone(),
        ));
        d.loops
            .spawn(handoff::run(d.shared.clone(), handoff_rx, d.stop_claiming.clone()));
        d.loops.spawn(worker::run(d.shared.clone(), d.stop_claiming.clone()));
        Ok(d)
    }

    /// A handle to wake the claim loop.
    pub fn waker(&self) -> Waker {
        Waker(self.shared.clone())
    }

    /// Stops claiming, gives in-flight attempts up to `grace` to finish,
    /// cuts the rest short and releases them (due again at once, for this
    /// or another gateway), and flushes outcomes to the store (bounded).
    pub async fn shutdown(self, grace: Duration) {
        self.stop_claiming.cancel();
        self.attempts.close();
        if tokio::time::timeout(grace, self.attempts.wait()).await.is_err() {
            tracing::info!("in-flight attempts still running after {grace:?}; releasing them");
            self.hard_stop.cancel();
            self.attempts.wait().await;
        }
        self.committer_done.cancel();
        self.loops.close();
        if tokio::time::timeout(Duration::from_secs(10), self.loops.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "could not record every outcome before exit; their leases will expire and they will be retried"
            );
        }
    }
}
