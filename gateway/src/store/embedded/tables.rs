//! The redb tables of the embedded store and the write-side helpers that
//! keep them consistent with each other.
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | name | `format` (u32 LE), `webhooks_version` (u64 LE) |
//! | `events` | event id | [`EventRec`], written once |
//! | `event_state` | event id | [`EventState`]: its deliveries not final yet, its expiry |
//! | `deliveries` | delivery id | [`DeliveryRec`] |
//! | `payloads` | delivery id | the body as last sent, when a plugin changed it |
//! | `attempts` | (delivery id, n) | attempt record n, 0-based, oldest first |
//! | `due_first`, `due_retry` | (due ms, delivery id) | first attempts / retries waiting |
//! | `leases` | (expiry ms, delivery id) | claimed deliveries |
//! | `pending_by_webhook` | (webhook id, delivery id) | deliveries not final yet |
//! | `dead` | delivery id | the dead-letter queue, in id (= time) order |
//! | `history_by_webhook` | (webhook id, delivery id) | a webhook's history, newest first by id (the whole history is `deliveries` itself) |
//! | `expiry` | (ms, kind, id) | retention schedule of final deliveries, finished events, idempotency keys |
//! | `idempotency` | key | expiry, fingerprint, first answer |
//! | `rate` | limit key | GCRA theoretical arrival time (µs), expiry |
//! | `webhooks` | webhook id | `StoredWebhook` as JSON |
//! | `webhook_state` | webhook id | (reason, url) of a 410 |
//! | `circuits` | webhook id | its circuit breaker (JSON); no entry: closed |
//! | `webhook_log` | seq | the webhook change log: `seq:nonce:webhook id`, the last `webhook_log_cap` changes (`store::changes`); `meta` `webhooks_version` is the last seq |
//! | `stats` | (granularity, bucket, scope) | statistics row (`stats.rs`) |
//!
//! A delivery is in exactly one of `due_first`, `due_retry`, `leases` while
//! its status is `pending` or `failed` (the queue is chosen by whether it
//! has attempts, as in the Redis backend), and in none once final. Its
//! record holds the exact `due`/`lease_until` of its queue key, so it can be
//! taken out of any queue without a search.

use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};

use super::codec::{DeliveryRec, EventRec, EventState};
use super::writer::Ctx;
use crate::store::StoreError;
use crate::store::changes::mark;

pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub const EVENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("events");
/// event id -> [`EventState`] (store format 2; format 1 kept it in `events`).
pub const EVENT_STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("event_state");
pub const DELIVERIES: TableDefinition<&str, &[u8]> = TableDefinition::new("deliveries");
pub const PAYLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("payloads");
pub const ATTEMPTS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("attempts");
pub const DUE_FIRST: TableDefinition<(u64, &str), ()> = TableDefinition::new("due_first");
pub const DUE_RETRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("due_retry");
pub const LEASES: TableDefinition<(u64, &str), ()> = TableDefinition::new("leases");
pub const PENDING: TableDefinition<(&str, &str), ()> = TableDefinition::new("pending_by_webhook");
pub const DEAD: TableDefinition<&str, ()> = TableDefinition::new("dead");
/// Format 1 also kept every delivery id here, the same keys as `deliveries`;
/// it is dropped when a file is opened.
pub const OLD_HISTORY: TableDefinition<&str, ()> = TableDefinition::new("history");
pub const HISTORY_BY_WEBHOOK: TableDefinition<(&str, &str), ()> = TableDefinition::new("history_by_webhook");
pub const EXPIRY: TableDefinition<(u64, u8, &str), ()> = TableDefinition::new("expiry");
pub const IDEMPOTENCY: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");
pub const RATE: TableDefinition<&str, &[u8]> = TableDefinition::new("rate");
pub const WEBHOOKS: TableDefinition<&str, &[u8]> = TableDefinition::new("webhooks");
pub const WEBHOOK_STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("webhook_state");
/// webhook id -> its circuit breaker (JSON); no entry: closed.
pub const CIRCUITS: TableDefinition<&str, &[u8]> = TableDefinition::new("circuits");
pub const WEBHOOK_LOG: TableDefinition<u64, &str> = TableDefinition::new("webhook_log");
/// (granularity, bucket, scope) -> a statistics row (`embedded/stats.rs`).
pub const STATS: TableDefinition<(u8, u64, &str), &[u8]> = TableDefinition::new("stats");

/// `expiry` kinds.
pub const EXP_DELIVERY: u8 = 0;
pub const EXP_EVENT: u8 = 1;
pub const EXP_IDEMPOTENCY: u8 = 2;

/// The meta key of the webhooks' version counter.
pub const WEBHOOKS_VERSION: &str = "webhooks_version";

/// A storage error: the disk or the file failed, so the store is
/// unavailable until it works again.
pub fn storage(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Disk(std::sync::Arc::new(e.into()))
}

pub fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("embedded store: {e}"))
}

/// Every table, open in one write transaction.
pub struct W<'t> {
    pub meta: Table<'t, &'static str, &'static [u8]>,
    pub events: Table<'t, &'static str, &'static [u8]>,
    pub event_state: Table<'t, &'static str, &'static [u8]>,
    pub deliveries: Table<'t, &'static str, &'static [u8]>,
    pub payloads: Table<'t, &'static str, &'static [u8]>,
    pub attempts: Table<'t, (&'static str, u32), &'static [u8]>,
    pub due_first: Table<'t, (u64, &'static str), ()>,
    pub due_retry: Table<'t, (u64, &'static str), ()>,
    pub leases: Table<'t, (u64, &'static str), ()>,
    pub pending: Table<'t, (&'static str, &'static str), ()>,
    pub dead: Table<'t, &'static str, ()>,
    pub history_by_webhook: Table<'t, (&'static str, &'static str), ()>,
    pub expiry: Table<'t, (u64, u8, &'static str), ()>,
    pub idempotency: Table<'t, &'static str, &'static [u8]>,
    pub rate: Table<'t, &'static str, &'static [u8]>,
    pub webhooks: Table<'t, &'static str, &'static [u8]>,
    pub webhook_state: Table<'t, &'static str, &'static [u8]>,
    pub circuits: Table<'t, &'static str, &'static [u8]>,
    pub webhook_log: Table<'t, u64, &'static str>,
    pub stats: Table<'t, (u8, u64, &'static str), &'static [u8]>,
}

impl<'t> W<'t> {
    pub fn open(tx: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(W {
            meta: tx.open_table(META).map_err(storage)?,
            events: tx.open_table(EVENTS).map_err(storage)?,
            event_state: tx.open_table(EVENT_STATE).map_err(storage)?,
            deliveries: tx.open_table(DELIVERIES).map_err(storage)?,
            payloads: tx.open_table(PAYLOADS).map_err(storage)?,
            attempts: tx.open_table(ATTEMPTS).map_err(storage)?,
            due_first: tx.open_table(DUE_FIRST).map_err(storage)?,
            due_retry: tx.open_table(DUE_RETRY).map_err(storage)?,
            leases: tx.open_table(LEASES).map_err(storage)?,
            pending: tx.open_table(PENDING).map_err(storage)?,
            dead: tx.open_table(DEAD).map_err(storage)?,
            history_by_webhook: tx.open_table(HISTORY_BY_WEBHOOK).map_err(storage)?,
            expiry: tx.open_table(EXPIRY).map_err(storage)?,
            idempotency: tx.open_table(IDEMPOTENCY).map_err(storage)?,
            rate: tx.open_table(RATE).map_err(storage)?,
            webhooks: tx.open_table(WEBHOOKS).map_err(storage)?,
            webhook_state: tx.open_table(WEBHOOK_STATE).map_err(storage)?,
            circuits: tx.open_table(CIRCUITS).map_err(storage)?,
            webhook_log: tx.open_table(WEBHOOK_LOG).map_err(storage)?,
            stats: tx.open_table(STATS).map_err(storage)?,
        })
    }

    pub fn delivery(&self, id: &str) -> Result<Option<DeliveryRec>, StoreError> {
        match self.deliveries.get(id).map_err(storage)? {
            Some(v) => DeliveryRec::decode(v.value()).map(Some).map_err(corrupt),
            None => Ok(None),
        }
    }

    pub fn put_delivery(&mut self, id: &str, rec: &DeliveryRec) -> Result<(), StoreError> {
        self.deliveries.insert(id, rec.encode().as_slice()).map_err(storage)?;
        Ok(())
    }

    pub fn event(&self, id: &str) -> Result<Option<EventRec>, StoreError> {
        match self.events.get(id).map_err(storage)? {
            Some(v) => EventRec::decode(v.value()).map(Some).map_err(corrupt),
            None => Ok(None),
        }
    }

    pub fn put_event(&mut self, id: &str, rec: &EventRec) -> Result<(), StoreError> {
        self.events.insert(id, rec.encode().as_slice()).map_err(storage)?;
        Ok(())
    }

    /// An event's state; `None` when the event is not stored.
    pub fn event_state(&self, id: &str) -> Result<Option<EventState>, StoreError> {
        match self.event_state.get(id).map_err(storage)? {
            Some(v) => EventState::decode(v.value()).map(Some).map_err(corrupt),
            None => Ok(None),
        }
    }

    pub fn put_event_state(&mut self, id: &str, state: &EventState) -> Result<(), StoreError> {
        self.event_state
            .insert(id, state.encode().as_slice())
            .map_err(storage)?;
        Ok(())
    }

    /// Puts a live delivery in the due queue its attempts call for, due at
    /// `due` (and records that in `rec`).
    pub fn queue(&mut self, id: &str, rec: &mut DeliveryRec, due: u64) -> Result<(), StoreError> {
        rec.due = due;
        let q = if rec.attempts > 0 {
            &mut self.due_retry
        } else {
            &mut self.due_first
        };
        q.insert((due, id), ()).map_err(storage)?;
        Ok(())
    }

    /// Takes a delivery out of both due queues (it is in at most one).
    pub fn unqueue(&mut self, id: &str, rec: &DeliveryRec) -> Result<(), StoreError> {
        self.due_first.remove((rec.due, id)).map_err(storage)?;
        self.due_retry.remove((rec.due, id)).map_err(storage)?;
        Ok(())
    }

    pub fn unlease(&mut self, id: &str, rec: &DeliveryRec) -> Result<(), StoreError> {
        self.leases.remove((rec.lease_until, id)).map_err(storage)?;
        Ok(())
    }

    /// Appends an attempt record to a delivery's log.
    pub fn log_attempt(&mut self, id: &str, rec: &mut DeliveryRec, encoded: &[u8]) -> Result<(), StoreError> {
        self.attempts.insert((id, rec.log_len), encoded).map_err(storage)?;
        rec.log_len += 1;
        Ok(())
    }

    /// Schedules a record's removal by retention at `at`, replacing an
    /// earlier schedule.
    pub fn schedule_expiry(&mut self, kind: u8, id: &str, old: u64, at: u64) -> Result<(), StoreError> {
        if old != 0 {
            self.expiry.remove((old, kind, id)).map_err(storage)?;
        }
        if at != 0 {
            self.expiry.insert((at, kind, id), ()).map_err(storage)?;
        }
        Ok(())
    }

    /// One fewer delivery of `event_id` is pending; when none is, the event
    /// expires `retention_ms` from `now`.
    pub fn event_delivery_done(&mut self, event_id: &str, now: u64, retention_ms: u64) -> Result<(), StoreError> {
        if let Some(mut ev) = self.event_state(event_id)? {
            ev.pending -= 1;
            if ev.pending <= 0 {
                let at = now + retention_ms;
                self.schedule_expiry(EXP_EVENT, event_id, ev.expires_at, at)?;
                ev.expires_at = at;
            }
            self.put_event_state(event_id, &ev)?;
        }
        Ok(())
    }

    /// Makes a live delivery final (`succeeded`, `filtered` or `dead`): out
    /// of its webhook's pending set, into the dead-letter queue if dead,
    /// scheduled for retention, and its event one delivery closer to done.
    pub fn finish(&mut self, id: &str, rec: &mut DeliveryRec, now: u64, retention_ms: u64) -> Result<(), StoreError> {
        rec.lease.clear();
        rec.lease_until = 0;
        rec.due = 0;
        rec.updated_at = now;
        self.pending.remove((rec.webhook.as_str(), id)).map_err(storage)?;
        if rec.status == crate::store::Status::Dead {
            self.dead.insert(id, ()).map_err(storage)?;
        }
        let at = now + retention_ms;
        self.schedule_expiry(EXP_DELIVERY, id, rec.expires_at, at)?;
        rec.expires_at = at;
        self.event_delivery_done(&rec.event.clone(), now, retention_ms)
    }

    /// Logs a change of webhook `id` (its definition, state or breaker):
    /// the next number of the webhooks version, one log entry, and the
    /// oldest entry past `ctx.webhook_log_cap` dropped.
    pub fn log_webhook_change(&mut self, id: &str, ctx: &Ctx) -> Result<(), StoreError> {
        let seq = read_u64(
            self.meta
                .get(WEBHOOKS_VERSION)
                .map_err(storage)?
                .map(|g| g.value().to_vec()),
        ) + 1;
        self.meta
            .insert(WEBHOOKS_VERSION, seq.to_le_bytes().as_slice())
            .map_err(storage)?;
        let entry = mark(seq, super::ingest::now_us(), id);
        self.webhook_log.insert(seq, entry.as_str()).map_err(storage)?;
        // Numbers are dense, so one entry in, one out keeps the window;
        // a smaller cap than before trims the rest.
        if let Some(oldest) = seq.checked_sub(ctx.webhook_log_cap) {
            let first = self.webhook_log.first().map_err(storage)?.map(|(k, _)| k.value());
            if first.is_some_and(|f| f + 1 < oldest) {
                self.webhook_log.retain_in(..=oldest, |_, _| false).map_err(storage)?;
            } else {
                self.webhook_log.remove(oldest).map_err(storage)?;
            }
        }
        Ok(())
    }
}

/// A u64 meta value (0 when absent or malformed).
pub fn read_u64(v: Option<Vec<u8>>) -> u64 {
    v.and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map_or(0, u64::from_le_bytes)
}
