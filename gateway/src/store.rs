//! The store boundary: everything the gateway keeps lives behind these
//! traits, so business code never sees Redis commands: `redis` (shared by
//! several gateways) and `embedded` (one process, on disk) implement the
//! same contract. One conformance suite (`gateway/tests/e2e/conformance.rs`)
//! runs unchanged against both.
//!
//! The queue contract:
//!
//! * [`DeliveryQueue::enqueue`] writes an event and all its deliveries in one
//!   atomic step; they are due at once.
//! * [`DeliveryQueue::claim`] hands out due deliveries under a lease (an
//!   owner token and an expiry). Expired leases are handed out again: that
//!   is how work survives a `kill -9`.
//! * [`DeliveryQueue::complete`] applies outcomes in one batch. An outcome
//!   whose lease is no longer current (expired and re-claimed, or the
//!   delivery was dead-lettered meanwhile) only appends its attempt record.
//! * Rate limits and webhook state are shared by every gateway on the store.

pub mod changes;
pub mod embedded;
pub mod redis;
pub mod transfer;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::circuit::Circuit;
pub use crate::ids::now_ms;
use crate::ratelimit::Gcra;
use crate::stats;
use crate::webhooks::StoredWebhook;
pub use changes::{ChangeCursor, WEBHOOK_LOG_CAP, WebhookChanges, WebhookEntry, WebhookSet};

/// Why a store operation failed. Every variant but `Corrupt` means the
/// store is unavailable for now ([`StoreError::is_unavailable`]): callers
/// answer 503 and try again; the cause stays in the source chain.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store cannot take the request now (a full queue, a writer
    /// restarting), with why.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Redis failed (connection refused, timeout, a script error...).
    #[error("Redis: {0}")]
    Redis(#[source] std::sync::Arc<::redis::RedisError>),
    /// The embedded store's file failed (disk full, I/O error...).
    #[error("embedded store: {0}")]
    Disk(#[source] std::sync::Arc<redb::Error>),
    /// The store answered something this version does not understand.
    #[error("store data error: {0}")]
    Corrupt(String),
    /// The store was set up differently (its shard count), with what to do.
    #[error("store layout: {0}")]
    Layout(String),
}

impl StoreError {
    /// Whether this is an outage to wait out (not unreadable data).
    pub fn is_unavailable(&self) -> bool {
        !matches!(self, StoreError::Corrupt(_) | StoreError::Layout(_))
    }
}

/// An accepted event.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub event_type: String,
    /// The `data` JSON exactly as received.
    pub data: Bytes,
    pub test: bool,
    pub created_at_ms: u64,
    /// Lease every delivery to this claimer in the same write, instead of
    /// queueing them: the gateway that accepted the event starts their
    /// first attempts itself (`dispatch::handoff`). `None`: queued, due now.
    pub lease: Option<LeaseTo>,
}

/// A lease taken at enqueue: the owner and how long it holds.
#[derive(Debug, Clone)]
pub struct LeaseTo {
    pub owner: String,
    pub ttl: Duration,
    /// Each delivery's rate limit, in the order of the deliveries (or
    /// none). A store that can take them in the same write (the embedded
    /// store, a standalone Redis) does and answers its decisions in
    /// [`Stored::taken`]; otherwise the owner checks them itself.
    pub limits: Vec<RateRequest>,
}

/// One delivery of a new event to one webhook.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: String,
    pub webhook_id: String,
}

/// An event to store, with its deliveries, the caller's idempotency key and
/// rate limit (see [`DeliveryQueue::enqueue`]).
#[derive(Debug, Clone)]
pub struct Enqueue {
    pub event: NewEvent,
    pub deliveries: Vec<NewDelivery>,
    pub idempotency: Option<Idempotency>,
    pub limit: Option<RateRequest>,
}

/// How much to claim at once.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// First attempts wanted, at most.
    pub first: usize,
    /// Retries wanted, at most (they share the `first` budget).
    pub retry: usize,
    /// How long the claimer may hold each delivery.
    pub lease: Duration,
    /// The claimer's identity; completions must present it.
    pub owner: String,
    /// Rate limits of webhooks the store may take for the deliveries it
    /// hands out, in the same call ([`ClaimBatch::taken`]).
    pub limits: Vec<ClaimLimit>,
}

/// A webhook's rate limit for a claim to take: for at most `at_most` of
/// its deliveries (those the claimer can start; a limit taken for a
/// delivery that then waits would be spent for nothing).
#[derive(Debug, Clone)]
pub struct ClaimLimit {
    pub webhook_id: String,
    pub limit: RateRequest,
    pub at_most: usize,
}

/// A claimed delivery, with everything an attempt needs.
#[derive(Debug, Clone)]
pub struct Job {
    pub delivery_id: String,
    pub event_id: String,
    pub webhook_id: String,
    pub event_type: String,
    pub data: Bytes,
    pub test: bool,
    /// Attempts already made (the next one is `attempts + 1`).
    pub attempts: u32,
    /// `attempts` when the current retry budget started (a replay resets it).
    pub retry_base: u32,
    pub created_at_ms: u64,
    /// The event's data is gone from the store (it should never be while a
    /// delivery is pending); the dispatcher dead-letters such a job.
    pub data_missing: bool,
}

impl Job {
    /// The 1-based number of the retry the next attempt would be if this
    /// one fails.
    pub fn next_retry_number(&self) -> u32 {
        self.attempts + 1 - self.retry_base
    }
}

/// What a claim returned.
#[derive(Debug, Default)]
pub struct ClaimBatch {
    pub jobs: Vec<Job>,
    /// How long until the next delivery falls due or lease expires, if any.
    pub next_due_in: Option<Duration>,
    /// For each job, its webhook's rate limit if the store took it
    /// ([`ClaimRequest::limits`]); empty from a store that takes none.
    pub taken: Vec<Option<RateDecision>>,
}

/// One attempt, as recorded and shown by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptRecord {
    pub attempt: u32,
    pub started_at: u64,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub response_body: Option<String>,
    /// Why a plugin dropped the delivery (an outcome, not an error).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub filtered: Option<String>,
}

/// What to do with a claimed delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Delivered: final.
    Succeeded,
    /// Failed: try again after this long.
    Retry(Duration),
    /// Failed for the last time (or the webhook is gone): the dead-letter queue.
    Dead,
    /// A plugin dropped it: final.
    Filtered,
    /// Not attempted (rate limit, endpoint busy, shutting down): due again
    /// after this long, without using the retry budget.
    Defer(Duration),
}

/// The result of handling one claimed delivery.
#[derive(Debug, Clone)]
pub struct Completion {
    pub delivery_id: String,
    pub event_id: String,
    pub webhook_id: String,
    pub owner: String,
    pub outcome: Outcome,
    /// The attempt made, if one was (not for `Defer`).
    pub attempt: Option<AttemptRecord>,
    /// The body sent, when plugins made it differ from the event's data
    /// (kept as the delivery's "payload as last sent").
    pub payload: Option<Bytes>,
}

/// Delivery status as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Succeeded,
    Failed,
    Dead,
    Filtered,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Dead => "dead",
            Status::Filtered => "filtered",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "pending" => Status::Pending,
            "succeeded" => Status::Succeeded,
            "failed" => Status::Failed,
            "dead" => Status::Dead,
            "filtered" => Status::Filtered,
            _ => return None,
        })
    }
}

/// A delivery as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    pub id: String,
    pub event_id: String,
    pub webhook_id: String,
    pub event_type: String,
    pub status: Status,
    pub test: bool,
    /// Attempts made so far.
    pub attempt_count: u32,
    /// Every attempt, oldest first (filled by [`Records::delivery`] only;
    /// lists leave it empty).
    pub attempts: Vec<AttemptRecord>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// When the next attempt is due (pending and failed only).
    pub next_attempt_at_ms: Option<u64>,
    /// The payload as last sent (the event's data unless a plugin changed it).
    pub payload: Bytes,
}

/// What the store remembers about a webhook beyond its definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookState {
    /// Why it was disabled (a 410 Gone).
    pub disabled_reason: String,
    /// The URL that answered 410; the state only applies to that URL.
    pub url: String,
}

/// A rate-limit check: one request against `key` under `limit`.
#[derive(Debug, Clone)]
pub struct RateRequest {
    pub key: String,
    pub limit: Gcra,
}

/// The answer to one [`RateRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    Allow,
    /// Over the limit: the next slot is this far away.
    Wait(Duration),
}

impl RateDecision {
    /// From a wait in µs as the limiters report it (0 or less: admitted).
    pub fn from_wait_us(us: i64) -> Self {
        if us <= 0 {
            RateDecision::Allow
        } else {
            RateDecision::Wait(Duration::from_micros(us as u64))
        }
    }
}

/// The durable delivery queue.
#[async_trait]
pub trait DeliveryQueue: Send + Sync + 'static {
    /// Stores an event and its deliveries atomically; the deliveries are due
    /// now. With an idempotency key that was seen within its lifetime,
    /// nothing is written and the first request's answer comes back. With a
    /// `limit`, the caller's rate limit is checked (and taken) first, in the
    /// same step; over it, nothing is written. The limit's state comes back.
    /// With a lease (`NewEvent::lease`), the deliveries are leased instead
    /// of queued, and their rate limits may be taken in the same write.
    /// The store keeps what it is given, without a copy.
    async fn enqueue_owned(&self, input: Enqueue) -> Result<Stored, StoreError>;
    /// [`Self::enqueue_owned`] from borrowed parts, which it copies.
    async fn enqueue(
        &self,
        event: &NewEvent,
        deliveries: &[NewDelivery],
        idempotency: Option<&Idempotency>,
        limit: Option<&RateRequest>,
    ) -> Result<Stored, StoreError> {
        self.enqueue_owned(Enqueue {
            event: event.clone(),
            deliveries: deliveries.to_vec(),
            idempotency: idempotency.cloned(),
            limit: limit.cloned(),
        })
        .await
    }
    /// Claims due deliveries, first attempts before retries within the budget.
    async fn claim(&self, req: &ClaimRequest) -> Result<ClaimBatch, StoreError>;
    /// Applies outcomes; returns, per completion, whether its lease was
    /// still current (a stale one only had its attempt recorded).
    async fn complete(&self, batch: &[Completion]) -> Result<Vec<bool>, StoreError>;
    /// Round trip to the store.
    async fn ping(&self) -> Result<(), StoreError>;
    /// How many deliveries wait in each queue.
    async fn queue_depths(&self) -> Result<QueueDepths, StoreError>;
}

/// Delivery records, history and the dead-letter queue.
#[async_trait]
pub trait Records: Send + Sync + 'static {
    /// One delivery with every attempt.
    async fn delivery(&self, id: &str) -> Result<Option<DeliveryRecord>, StoreError>;
    /// Deliveries newest first, after `cursor` (a delivery id from a
    /// previous page). Stays correct while new deliveries arrive.
    async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<DeliveryRecord>, StoreError>;
    /// Dead deliveries, newest first.
    async fn list_dead(
        &self,
        webhook_id: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<DeliveryRecord>, StoreError>;
    /// Queues deliveries again (same id, fresh retry budget, attempt history
    /// kept) if their status is one of `from`.
    async fn requeue(&self, ids: &[String], from: &[Status]) -> Result<Vec<Requeue>, StoreError>;
    /// Drops history index entries older than the retention period (the
    /// records themselves expire on their own).
    async fn purge_history(&self, retention: Duration) -> Result<(), StoreError>;
    /// Removes the oldest finished history past the store's history bound
    /// (`[store] history_max`), if it has one; returns how many deliveries
    /// went. Waiting and dead deliveries are never removed.
    async fn enforce_history_bound(&self) -> Result<u64, StoreError> {
        Ok(0)
    }
}

/// API webhooks, and state about every webhook. Every change here (and
/// every breaker swap) appends to the webhook change log ([`changes`]), so
/// gateways apply only what changed. Each call costs the same however many
/// webhooks there are, except [`WebhookStore::load_webhooks`].
#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// Disables a webhook (the receiver answered 410 at `url`) and moves its
    /// pending deliveries to the dead-letter queue; returns how many moved.
    async fn disable_webhook(&self, webhook_id: &str, url: &str, reason: &str) -> Result<u64, StoreError>;
    /// Every API webhook, webhook state and breaker, and the change log
    /// position they reflect, in one consistent read.
    async fn load_webhooks(&self) -> Result<WebhookSet, StoreError>;
    /// The webhooks changed after `since` (at most `max` log entries), each
    /// as it is now, or [`WebhookChanges::Resync`] when the log cannot
    /// bring `since` up to date.
    async fn webhook_changes(&self, since: &ChangeCursor, max: usize) -> Result<WebhookChanges, StoreError>;
    /// One API webhook.
    async fn webhook(&self, id: &str) -> Result<Option<StoredWebhook>, StoreError>;
    /// Adds a webhook; `false` if the id is taken.
    async fn insert_webhook(&self, webhook: &StoredWebhook) -> Result<bool, StoreError>;
    /// Replaces a webhook, optionally clearing its state and breaker
    /// (re-enabled);
    /// `false` if there is none with that id.
    async fn replace_webhook(&self, webhook: &StoredWebhook, clear_state: bool) -> Result<bool, StoreError>;
    /// Removes a webhook and its state; `false` if there was none.
    async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError>;
}

/// Rate limits shared by every gateway on the store.
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Checks (and on `Allow`, takes) one slot per request, in order.
    async fn acquire(&self, reqs: &[RateRequest]) -> Result<Vec<RateDecision>, StoreError>;
    /// Checks one request and reports the limit's state, for API headers.
    async fn acquire_with_state(&self, req: &RateRequest) -> Result<RateState, StoreError>;
}

/// Circuit breakers, shared by every gateway on the store (loaded with the
/// webhooks: [`WebhookSet::circuits`], [`WebhookEntry::circuit`]).
#[async_trait]
pub trait CircuitStore: Send + Sync + 'static {
    /// Replaces a webhook's breaker with `new` (`None`: closed) if it is
    /// still `expected` (`None`: closed), logging the change; whether it
    /// swapped.
    async fn swap_circuit(
        &self,
        webhook_id: &str,
        expected: Option<&Circuit>,
        new: Option<&Circuit>,
    ) -> Result<bool, StoreError>;
}

/// Delivery statistics (`crate::stats`), added up by every gateway on the
/// store. Rows only ever grow by addition; old ones expire by themselves
/// (minute rows after [`stats::MINUTE_ROWS_KEPT`], hour rows after
/// [`stats::HOUR_ROWS_KEPT`]).
#[async_trait]
pub trait StatsStore: Send + Sync + 'static {
    /// Adds each row to its scope's minute row and hour row.
    async fn add_stats(&self, rows: &[stats::Row]) -> Result<(), StoreError>;
    /// One scope's rows (a webhook id or [`stats::FLEET`]) at `granularity`,
    /// buckets `from..=to`; buckets without a row are left out.
    async fn read_stats(
        &self,
        scope: &str,
        granularity: stats::Granularity,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, stats::Counters)>, StoreError>;
    /// Each webhook's rows summed over buckets `from..=to`, for the first
    /// `limit` webhooks (by id) with a row then; and whether more had one.
    async fn stats_by_webhook(
        &self,
        granularity: stats::Granularity,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<(Vec<(String, stats::Counters)>, bool), StoreError>;
}

/// Everything a backend provides.
pub trait Store:
    DeliveryQueue + Records + WebhookStore + RateLimiter + CircuitStore + StatsStore + transfer::Transfer
{
}
impl<T: DeliveryQueue + Records + WebhookStore + RateLimiter + CircuitStore + StatsStore + transfer::Transfer> Store
    for T
{
}

/// Queue sizes, for the `hookgate_queue_depth` gauge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepths {
    /// Waiting for their first attempt.
    pub pending: u64,
    /// Waiting for a retry.
    pub failed: u64,
    /// Claimed by a gateway right now.
    pub in_flight: u64,
    /// In the dead-letter queue.
    pub dead: u64,
}

/// An `Idempotency-Key` and what to remember under it.
#[derive(Debug, Clone)]
pub struct Idempotency {
    /// The key, already scoped (the API hashes the caller's key).
    pub key: String,
    /// A hash of the request, to detect a key reused for another request.
    pub fingerprint: String,
    /// The answer to give to repeats (JSON).
    pub answer: String,
    pub ttl: Duration,
}

/// What [`DeliveryQueue::enqueue`] answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub outcome: Enqueued,
    /// The caller's rate limit after the check, when one was given.
    pub rate: Option<RateState>,
    /// A created event's lease limits ([`LeaseTo::limits`]) taken in the
    /// same write, in order; `None` when the owner is to check them.
    pub taken: Option<Vec<RateDecision>>,
}

impl Stored {
    /// An answer with no lease limits taken.
    pub fn new(outcome: Enqueued, rate: Option<RateState>) -> Self {
        Stored {
            outcome,
            rate,
            taken: None,
        }
    }
}

/// What [`DeliveryQueue::enqueue`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    Created,
    /// The key was seen before: nothing was written.
    Repeated {
        fingerprint: String,
        answer: String,
    },
    /// Over the caller's rate limit: nothing was written.
    RateLimited,
}

/// Filters for [`Records::list_deliveries`].
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub webhook_id: Option<String>,
    pub status: Option<Status>,
    pub event_type: Option<String>,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass back to get the next page; `None` at the end.
    pub next_cursor: Option<String>,
}

/// What [`Records::requeue`] did with one id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requeue {
    Queued,
    /// Its status was not one of those allowed.
    WrongStatus(Status),
    Missing,
    /// Its event has expired from the store: nothing to deliver.
    EventGone,
}

/// A limit's state after a check, for `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateState {
    pub decision: RateDecision,
    /// The theoretical arrival time and the store's clock, in µs.
    pub tat_us: u64,
    pub now_us: u64,
}
