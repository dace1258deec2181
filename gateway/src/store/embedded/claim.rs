//! Claiming due deliveries under a lease; the same rules as the Redis
//! backend's `claim.lua`: expired leases are due again first, first
//! attempts get the budget less a quarter kept for retries, unused shares
//! go to the other kind.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use redb::{ReadableTable, Table};

use super::tables::{W, storage};
use crate::store::{ClaimBatch, ClaimRequest, Job, StoreError};

/// Expired leases put back per claim at most.
const EXPIRED_PER_CLAIM: usize = 500;

type Queue<'t> = Table<'t, (u64, &'static str), ()>;

/// Up to `n` keys of `q` due at `now` or earlier, skipping the first `skip`.
fn due_keys(q: &Queue<'_>, now: u64, skip: usize, n: usize) -> Result<Vec<(u64, String)>, StoreError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(n);
    for entry in q
        .range((0u64, "")..(now.saturating_add(1), ""))
        .map_err(storage)?
        .skip(skip)
    {
        let (k, _) = entry.map_err(storage)?;
        let (due, id) = k.value();
        out.push((due, id.to_owned()));
        if out.len() == n {
            break;
        }
    }
    Ok(out)
}

/// Puts deliveries whose lease expired at or before `until` back in their
/// due queue, due at `now`; at most `limit`. Returns how many.
fn release_leases(w: &mut W<'_>, now: u64, until: u64, limit: usize) -> Result<usize, StoreError> {
    let expired = due_keys(&w.leases, until, 0, limit)?;
    for (at, id) in &expired {
        w.leases.remove((*at, id.as_str())).map_err(storage)?;
        if let Some(mut rec) = w.delivery(id)?
            && rec.is_live()
        {
            rec.lease.clear();
            rec.lease_until = 0;
            w.queue(id, &mut rec, now)?;
            w.put_delivery(id, &rec)?;
        }
    }
    Ok(expired.len())
}

/// At open: the previous owner of the folder is gone, so all its leases
/// are released at once (no need to wait for them to expire).
pub fn release_all_leases(w: &mut W<'_>, now: u64) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let n = release_leases(w, now, u64::MAX - 1, 10_000)?;
        total += n;
        if n == 0 {
            return Ok(total);
        }
    }
}

fn head(q: &Queue<'_>) -> Result<Option<u64>, StoreError> {
    Ok(q.first().map_err(storage)?.map(|(k, _)| k.value().0))
}

pub fn claim(w: &mut W<'_>, now: u64, req: &ClaimRequest) -> Result<ClaimBatch, StoreError> {
    let budget = req.first.max(req.retry);
    let max_retry = req.retry.min(budget);
    let lease_ms = req.lease.as_millis() as u64;
    release_leases(w, now, now, EXPIRED_PER_CLAIM)?;

    let quota = if budget > 0 {
        max_retry.min((budget / 4).max(1))
    } else {
        0
    };
    let mut firsts = due_keys(&w.due_first, now, 0, budget - quota)?;
    let retry_limit = max_retry.min(budget - firsts.len());
    let retries = due_keys(&w.due_retry, now, 0, retry_limit)?;
    if firsts.len() == budget - quota && firsts.len() + retries.len() < budget {
        let more = due_keys(&w.due_first, now, firsts.len(), budget - firsts.len() - retries.len())?;
        firsts.extend(more);
    }

    let mut data: HashMap<String, Option<Bytes>> = HashMap::new();
    let mut jobs = Vec::with_capacity(firsts.len() + retries.len());
    let until = now + lease_ms;
    for (retry, (due, id)) in firsts
        .iter()
        .map(|k| (false, k))
        .chain(retries.iter().map(|k| (true, k)))
    {
        let q = if retry { &mut w.due_retry } else { &mut w.due_first };
        q.remove((*due, id.as_str())).map_err(storage)?;
        let Some(mut rec) = w.delivery(id)? else { continue };
        if !rec.is_live() {
            continue;
        }
        w.leases.insert((until, id.as_str()), ()).map_err(storage)?;
        rec.lease = req.owner.clone();
        rec.lease_until = until;
        w.put_delivery(id, &rec)?;
        if !data.contains_key(&rec.event) {
            let d = w.event(&rec.event)?.map(|e| Bytes::from(e.data));
            data.insert(rec.event.clone(), d);
        }
        let d = data.get(&rec.event).cloned().flatten();
        jobs.push(Job {
            delivery_id: id.clone(),
            data_missing: d.is_none(),
            data: d.unwrap_or_default(),
            event_id: rec.event,
            webhook_id: rec.webhook,
            event_type: rec.event_type,
            test: rec.test,
            attempts: rec.attempts,
            retry_base: rec.retry_base,
            created_at_ms: rec.created_at,
        });
    }

    let next = [head(&w.due_first)?, head(&w.due_retry)?, head(&w.leases)?]
        .into_iter()
        .flatten()
        .min();
    // Rate limits stay with the caller: the embedded limiter answers
    // without a round trip.
    Ok(ClaimBatch {
        jobs,
        next_due_in: next.map(|at| Duration::from_millis(at.saturating_sub(now))),
        taken: Vec::new(),
    })
}
