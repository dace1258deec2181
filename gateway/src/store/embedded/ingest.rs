//! Ingest and rate limits: the same rules as the Redis backend's
//! `enqueue.lua` and `gcra.lua`. The caller's API rate limit is checked
//! (and taken) first, then its idempotency key; only then are the event and
//! its deliveries written, all in the caller's slot of a group commit.

use std::time::Duration;

use redb::ReadableTable;

use super::codec::{
    DeliveryRec, EventRec, EventState, decode_idempotency, decode_rate, encode_idempotency, encode_rate,
};
use super::tables::{EXP_EVENT, EXP_IDEMPOTENCY, W, corrupt, storage};
use super::writer::Ctx;
use crate::ratelimit::Gcra;
use crate::store::{Enqueue, Enqueued, RateDecision, RateState, Status, StoreError, Stored};

/// The store's clock in µs (what GCRA states are measured against).
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Checks one request against `key`'s limit at `now_us`; on `Allow`, takes
/// the slot. Returns the state after the check.
pub fn gcra(w: &mut W<'_>, key: &str, limit: &Gcra, now_us: u64) -> Result<RateState, StoreError> {
    let stored = match w.rate.get(key).map_err(storage)? {
        Some(v) => Some(decode_rate(v.value()).map_err(corrupt)?.0),
        None => None,
    };
    let tat = stored.unwrap_or(now_us).max(now_us);
    if tat - now_us <= limit.tolerance_us {
        let tat = tat + limit.interval_us;
        // Kept while it matters: until the bucket is full again, plus a second.
        let expires_ms = now_us / 1000 + (tat - now_us).div_ceil(1000) + 1000;
        w.rate
            .insert(key, encode_rate(tat, expires_ms).as_slice())
            .map_err(storage)?;
        Ok(RateState {
            decision: RateDecision::Allow,
            tat_us: tat,
            now_us,
        })
    } else {
        Ok(RateState {
            decision: RateDecision::Wait(Duration::from_micros(tat - limit.tolerance_us - now_us)),
            tat_us: tat,
            now_us,
        })
    }
}

pub fn enqueue(w: &mut W<'_>, ctx: &Ctx, input: &Enqueue) -> Result<Stored, StoreError> {
    let now_us = now_us();
    let now = ctx.now;
    let mut state = None;
    if let Some(l) = &input.limit {
        let st = gcra(w, &l.key, &l.limit, now_us)?;
        state = Some(st);
        if st.decision != RateDecision::Allow {
            return Ok(Stored::new(Enqueued::RateLimited, state));
        }
    }
    if let Some(i) = &input.idempotency {
        let seen = match w.idempotency.get(i.key.as_str()).map_err(storage)? {
            Some(v) => Some(decode_idempotency(v.value()).map_err(corrupt)?),
            None => None,
        };
        if let Some((expires_at, fingerprint, answer)) = seen
            && expires_at > now
        {
            return Ok(Stored::new(Enqueued::Repeated { fingerprint, answer }, state));
        }
    }
    let e = &input.event;
    let n = input.deliveries.len();
    let event = EventRec {
        event_type: e.event_type.clone(),
        data: e.data.to_vec(),
        test: e.test,
        created_at: now,
    };
    let mut event_state = EventState {
        pending: n as i64,
        expires_at: 0,
    };
    if n == 0 {
        event_state.expires_at = now + ctx.retention_ms;
        w.schedule_expiry(EXP_EVENT, &e.id, 0, event_state.expires_at)?;
    }
    w.put_event(&e.id, &event)?;
    w.put_event_state(&e.id, &event_state)?;
    for d in &input.deliveries {
        let id = d.id.as_str();
        let mut rec = DeliveryRec {
            event: e.id.clone(),
            webhook: d.webhook_id.clone(),
            event_type: e.event_type.clone(),
            test: e.test,
            status: Status::Pending,
            attempts: 0,
            retry_base: 0,
            created_at: now,
            updated_at: now,
            due: now,
            lease: String::new(),
            lease_until: 0,
            log_len: 0,
            custom_payload: false,
            expires_at: 0,
        };
        match &e.lease {
            // Leased to the accepting gateway as a claim would (claim.rs).
            Some(l) => {
                rec.lease_until = now + l.ttl.as_millis() as u64;
                rec.lease = l.owner.clone();
                w.leases.insert((rec.lease_until, id), ()).map_err(storage)?;
            }
            None => w.queue(id, &mut rec, now)?,
        }
        w.put_delivery(id, &rec)?;
        w.pending.insert((d.webhook_id.as_str(), id), ()).map_err(storage)?;
        w.history_by_webhook
            .insert((d.webhook_id.as_str(), id), ())
            .map_err(storage)?;
    }
    let mut stored = Stored::new(Enqueued::Created, state);
    if let Some(l) = &e.lease
        && !l.limits.is_empty()
    {
        // The deliveries' rate limits, taken in the same write.
        let taken = l
            .limits
            .iter()
            .map(|r| gcra(w, &r.key, &r.limit, now_us).map(|s| s.decision))
            .collect::<Result<Vec<_>, _>>()?;
        stored.taken = Some(taken);
    }
    if let Some(i) = &input.idempotency {
        let expires_at = now + i.ttl.as_millis() as u64;
        let old = match w.idempotency.get(i.key.as_str()).map_err(storage)? {
            Some(v) => decode_idempotency(v.value()).map_or(0, |(at, _, _)| at),
            None => 0,
        };
        w.idempotency
            .insert(
                i.key.as_str(),
                encode_idempotency(expires_at, &i.fingerprint, &i.answer).as_slice(),
            )
            .map_err(storage)?;
        w.schedule_expiry(EXP_IDEMPOTENCY, &i.key, old, expires_at)?;
    }
    Ok(stored)
}
