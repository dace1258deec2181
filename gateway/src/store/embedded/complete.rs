//! Outcomes, dead-lettering on 410 and requeueing: the same transitions as
//! the Redis backend's `complete.lua`, `disable.lua` and `requeue.lua`.

use redb::ReadableTable;

use super::codec::{encode_attempt, encode_state};
use super::tables::{EXP_DELIVERY, EXP_EVENT, W, storage};
use super::writer::Ctx;
use crate::store::{Completion, Outcome, Requeue, Status, StoreError};

/// Applies one outcome; `true` if its lease was current (else only its
/// attempt and payload are recorded).
pub fn complete_one(w: &mut W<'_>, ctx: &Ctx, c: &Completion) -> Result<bool, StoreError> {
    let id = c.delivery_id.as_str();
    let Some(mut rec) = w.delivery(id)? else {
        return Ok(false);
    };
    if let Some(a) = &c.attempt {
        w.log_attempt(id, &mut rec, &encode_attempt(a))?;
    }
    if let Some(p) = &c.payload {
        w.payloads.insert(id, p.as_ref()).map_err(storage)?;
        rec.custom_payload = true;
    }
    let applied = rec.is_live() && (rec.lease == c.owner || rec.lease.is_empty());
    if applied {
        // Held under our lease: it is in the lease table only. Not leased
        // (the lease expired and it was put back): it is in a due queue.
        if rec.lease == c.owner {
            w.unlease(id, &rec)?;
        } else {
            w.unqueue(id, &rec)?;
        }
        if c.attempt.is_some() {
            rec.attempts += 1;
        }
        match &c.outcome {
            Outcome::Retry(delay) | Outcome::Defer(delay) => {
                if matches!(c.outcome, Outcome::Retry(_)) {
                    rec.status = Status::Failed;
                }
                rec.lease.clear();
                rec.lease_until = 0;
                rec.updated_at = ctx.now;
                w.queue(id, &mut rec, ctx.now + delay.as_millis() as u64)?;
            }
            final_outcome => {
                rec.status = match final_outcome {
                    Outcome::Succeeded => Status::Succeeded,
                    Outcome::Filtered => Status::Filtered,
                    _ => Status::Dead,
                };
                w.finish(id, &mut rec, ctx.now, ctx.retention_ms)?;
            }
        }
    }
    w.put_delivery(id, &rec)?;
    Ok(applied)
}

/// Disables a webhook (410 Gone) and dead-letters every delivery of it not
/// final yet; returns how many.
pub fn disable(w: &mut W<'_>, ctx: &Ctx, webhook_id: &str, url: &str, reason: &str) -> Result<u64, StoreError> {
    w.webhook_state
        .insert(webhook_id, encode_state(reason, url).as_slice())
        .map_err(storage)?;
    w.log_webhook_change(webhook_id, ctx)?;
    let mut ids = Vec::new();
    for entry in w.pending.range((webhook_id, "")..).map_err(storage)? {
        let (k, _) = entry.map_err(storage)?;
        let (wid, id) = k.value();
        if wid != webhook_id {
            break;
        }
        ids.push(id.to_owned());
    }
    for id in &ids {
        w.pending.remove((webhook_id, id.as_str())).map_err(storage)?;
        if let Some(mut rec) = w.delivery(id)? {
            w.unlease(id, &rec)?;
            w.unqueue(id, &rec)?;
            rec.status = Status::Dead;
            w.finish(id, &mut rec, ctx.now, ctx.retention_ms)?;
            w.put_delivery(id, &rec)?;
        }
    }
    Ok(ids.len() as u64)
}

/// Queues a delivery again (same id, fresh retry budget, history kept) if
/// its status is one of `from`.
pub fn requeue_one(w: &mut W<'_>, ctx: &Ctx, id: &str, from: &[Status]) -> Result<Requeue, StoreError> {
    let Some(mut rec) = w.delivery(id)? else {
        return Ok(Requeue::Missing);
    };
    if !from.contains(&rec.status) {
        return Ok(Requeue::WrongStatus(rec.status));
    }
    let Some(mut event) = w.event_state(&rec.event)? else {
        return Ok(Requeue::EventGone);
    };
    let was_live = rec.is_live();
    if was_live {
        w.unlease(id, &rec)?;
        w.unqueue(id, &rec)?;
    }
    rec.status = Status::Pending;
    rec.retry_base = rec.attempts;
    rec.lease.clear();
    rec.lease_until = 0;
    rec.updated_at = ctx.now;
    w.schedule_expiry(EXP_DELIVERY, id, rec.expires_at, 0)?;
    rec.expires_at = 0;
    w.queue(id, &mut rec, ctx.now)?;
    w.dead.remove(id).map_err(storage)?;
    if !was_live {
        w.pending.insert((rec.webhook.as_str(), id), ()).map_err(storage)?;
        event.pending += 1;
        w.schedule_expiry(EXP_EVENT, &rec.event, event.expires_at, 0)?;
        event.expires_at = 0;
        w.put_event_state(&rec.event, &event)?;
    }
    w.put_delivery(id, &rec)?;
    Ok(Requeue::Queued)
}
