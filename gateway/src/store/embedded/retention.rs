//! Retention: final deliveries (with their attempt log, custom payload and
//! index entries), finished events and idempotency keys are removed once
//! their time in the `expiry` schedule has come; idle rate-limit states and
//! statistics rows past their time go too. Each sweep does bounded work in one transaction, so ingest never
//! waits long behind it; `purge_history` runs sweeps until none is left
//! (or a bound is reached).
//!
//! A history entry lives exactly as long as its delivery record (the Redis
//! backend trims its indexes by age instead; the result is the same for
//! final deliveries, and a delivery still pending after the retention
//! period stays listed here).

use redb::ReadableTable;

use super::codec::{decode_idempotency, decode_rate};
use super::tables::{EXP_DELIVERY, EXP_EVENT, EXP_IDEMPOTENCY, W, corrupt, storage};

/// Scheduled removals per sweep at most.
pub const SWEEP_BATCH: usize = 2_000;
/// Rate-limit entries examined per sweep at most.
const RATE_SCAN: usize = 1_000;

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub removed: usize,
    /// Due removals are left for the next sweep.
    pub more: bool,
}

/// Removes what has expired by `now` (at most [`SWEEP_BATCH`] schedule
/// entries), and idle rate-limit states from `rate_cursor` on.
pub fn sweep(w: &mut W<'_>, now: u64, rate_cursor: &mut Option<String>) -> Result<Swept, crate::store::StoreError> {
    let mut due = Vec::new();
    for entry in w
        .expiry
        .range((0u64, 0u8, "")..(now.saturating_add(1), 0u8, ""))
        .map_err(storage)?
    {
        let (k, _) = entry.map_err(storage)?;
        let (at, kind, id) = k.value();
        due.push((at, kind, id.to_owned()));
        if due.len() > SWEEP_BATCH {
            break;
        }
    }
    let more = due.len() > SWEEP_BATCH;
    due.truncate(SWEEP_BATCH);
    let mut removed = 0;
    for (at, kind, id) in &due {
        w.expiry.remove((*at, *kind, id.as_str())).map_err(storage)?;
        let id = id.as_str();
        match *kind {
            EXP_DELIVERY => {
                let Some(rec) = w.delivery(id)? else { continue };
                // Requeued since (its schedule was cleared or moved): kept.
                if rec.expires_at != *at || rec.is_live() {
                    continue;
                }
                w.deliveries.remove(id).map_err(storage)?;
                w.payloads.remove(id).map_err(storage)?;
                w.attempts
                    .extract_from_if((id, 0u32)..=(id, u32::MAX), |_, _| true)
                    .map_err(storage)?
                    .for_each(drop);
                w.history_by_webhook
                    .remove((rec.webhook.as_str(), id))
                    .map_err(storage)?;
                w.dead.remove(id).map_err(storage)?;
                removed += 1;
            }
            EXP_EVENT
                if w.event_state(id)?
                    .is_some_and(|e| e.expires_at == *at && e.pending <= 0) =>
            {
                w.events.remove(id).map_err(storage)?;
                w.event_state.remove(id).map_err(storage)?;
                removed += 1;
            }
            EXP_IDEMPOTENCY => {
                let expired = match w.idempotency.get(id).map_err(storage)? {
                    Some(v) => decode_idempotency(v.value()).map_err(corrupt)?.0 <= now,
                    None => false,
                };
                if expired {
                    w.idempotency.remove(id).map_err(storage)?;
                    removed += 1;
                }
            }
            _ => {}
        }
    }
    removed += sweep_rates(w, now, rate_cursor)?;
    let (stats_removed, stats_more) = super::stats::sweep(w, now)?;
    Ok(Swept {
        removed: removed + stats_removed,
        more: more || stats_more,
    })
}

/// Removes idle rate-limit states, scanning [`RATE_SCAN`] entries from
/// the cursor and wrapping around.
fn sweep_rates(w: &mut W<'_>, now: u64, cursor: &mut Option<String>) -> Result<usize, crate::store::StoreError> {
    let mut idle = Vec::new();
    let mut last = None;
    let mut seen = 0;
    {
        let range = match cursor.as_deref() {
            Some(c) => w.rate.range::<&str>(c..),
            None => w.rate.range::<&str>(..),
        }
        .map_err(storage)?;
        for (n, entry) in range.enumerate() {
            if n == RATE_SCAN {
                break;
            }
            seen += 1;
            let (k, v) = entry.map_err(storage)?;
            let key = k.value().to_owned();
            if decode_rate(v.value()).map_or(true, |(_, expires)| expires <= now) {
                idle.push(key.clone());
            }
            last = Some(key);
        }
    }
    for key in &idle {
        w.rate.remove(key.as_str()).map_err(storage)?;
    }
    // Start after the last key examined; from the start once past the end.
    *cursor = match last {
        Some(k) if seen == RATE_SCAN => Some(format!("{k}\0")),
        _ => None,
    };
    Ok(idle.len())
}
