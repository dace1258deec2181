//! The read side: delivery records, history pages, webhooks and queue
//! sizes, each from one redb read transaction (a consistent snapshot that
//! never waits for the writer). Callers run these on the blocking pool.

use bytes::Bytes;
use redb::{ReadOnlyTable, ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::codec::{DeliveryRec, decode_attempt, decode_state};
use super::tables::*;
use crate::circuit::Circuit;
use crate::store::changes::{Judged, LogRead, judge};
use crate::store::{
    ChangeCursor, DeliveryFilter, DeliveryRecord, Page, QueueDepths, Status, StoreError, WebhookChanges, WebhookEntry,
    WebhookSet, WebhookState,
};
use crate::webhooks::StoredWebhook;

/// Index entries examined at most for one page; past that the page ends
/// early with a cursor, so a rare filter never scans all of history.
const SCAN_LIMIT: usize = 5_000;

fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
    tx: &ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<ReadOnlyTable<K, V>, StoreError> {
    tx.open_table(def).map_err(storage)
}

/// A record as a history row (no payload or attempt log).
fn row(id: &str, rec: DeliveryRec) -> DeliveryRecord {
    DeliveryRecord {
        id: id.to_owned(),
        event_id: rec.event,
        webhook_id: rec.webhook,
        event_type: rec.event_type,
        status: rec.status,
        test: rec.test,
        attempt_count: rec.attempts,
        attempts: Vec::new(),
        created_at_ms: rec.created_at,
        updated_at_ms: rec.updated_at,
        next_attempt_at_ms: match rec.status {
            Status::Pending | Status::Failed if rec.due != 0 => Some(rec.due),
            _ => None,
        },
        payload: Bytes::new(),
    }
}

fn get_delivery(t: &ReadOnlyTable<&'static str, &'static [u8]>, id: &str) -> Result<Option<DeliveryRec>, StoreError> {
    match t.get(id).map_err(storage)? {
        Some(v) => DeliveryRec::decode(v.value()).map(Some).map_err(corrupt),
        None => Ok(None),
    }
}

/// One delivery with its payload and every attempt.
pub fn delivery(tx: &ReadTransaction, id: &str) -> Result<Option<DeliveryRecord>, StoreError> {
    let Some(rec) = get_delivery(&table(tx, DELIVERIES)?, id)? else {
        return Ok(None);
    };
    let payload = if rec.custom_payload {
        table(tx, PAYLOADS)?
            .get(id)
            .map_err(storage)?
            .map(|v| v.value().to_vec())
    } else {
        match table(tx, EVENTS)?.get(rec.event.as_str()).map_err(storage)? {
            Some(v) => Some(super::codec::EventRec::decode(v.value()).map_err(corrupt)?.data),
            None => None,
        }
    };
    let mut attempts = Vec::with_capacity(rec.log_len as usize);
    for entry in table(tx, ATTEMPTS)?
        .range((id, 0u32)..=(id, u32::MAX))
        .map_err(storage)?
    {
        let (_, v) = entry.map_err(storage)?;
        attempts.push(decode_attempt(v.value()).map_err(corrupt)?);
    }
    let mut out = row(id, rec);
    out.payload = Bytes::from(payload.unwrap_or_default());
    out.attempts = attempts;
    Ok(Some(out))
}

/// Pages newest first through ids yielded by `ids`, keeping records `keep`
/// accepts.
fn page(
    deliveries: &ReadOnlyTable<&'static str, &'static [u8]>,
    ids: impl Iterator<Item = Result<String, StoreError>>,
    limit: usize,
    keep: impl Fn(&DeliveryRecord) -> bool,
) -> Result<Page<DeliveryRecord>, StoreError> {
    let limit = limit.clamp(1, 1000);
    let mut items = Vec::new();
    let mut last = None;
    for (scanned, id) in ids.enumerate() {
        let id = id?;
        if scanned >= SCAN_LIMIT {
            return Ok(Page {
                items,
                next_cursor: last,
            });
        }
        if let Some(rec) = get_delivery(deliveries, &id)? {
            let r = row(&id, rec);
            if keep(&r) {
                items.push(r);
                if items.len() == limit {
                    return Ok(Page {
                        items,
                        next_cursor: Some(id),
                    });
                }
            }
        }
        last = Some(id);
    }
    Ok(Page {
        items,
        next_cursor: None,
    })
}

pub fn list_deliveries(
    tx: &ReadTransaction,
    filter: &DeliveryFilter,
    limit: usize,
    cursor: Option<&str>,
) -> Result<Page<DeliveryRecord>, StoreError> {
    let deliveries = table(tx, DELIVERIES)?;
    let keep = |r: &DeliveryRecord| {
        filter.status.is_none_or(|s| s == r.status) && filter.event_type.as_ref().is_none_or(|t| *t == r.event_type)
    };
    match &filter.webhook_id {
        Some(w) => {
            let index = table(tx, HISTORY_BY_WEBHOOK)?;
            let w = w.as_str();
            // Every key of webhook `w` sorts below (w + "\0", ""): no
            // string lies between `w` and `w + "\0"`.
            let next = format!("{w}\0");
            let range = match cursor {
                Some(c) => index.range((w, "")..(w, c)),
                None => index.range((w, "")..(next.as_str(), "")),
            }
            .map_err(storage)?;
            let ids = range
                .rev()
                .map(|e| e.map(|(k, _)| k.value().1.to_owned()).map_err(storage));
            page(&deliveries, ids, limit, |r| keep(r) && r.webhook_id == w)
        }
        None => {
            // Delivery ids sort by time: the table is its own history.
            let range = match cursor {
                Some(c) => deliveries.range(..c),
                None => deliveries.range::<&str>(..),
            }
            .map_err(storage)?;
            let ids = range
                .rev()
                .map(|e| e.map(|(k, _)| k.value().to_owned()).map_err(storage));
            page(&deliveries, ids, limit, keep)
        }
    }
}

pub fn list_dead(
    tx: &ReadTransaction,
    webhook_id: Option<&str>,
    limit: usize,
    cursor: Option<&str>,
) -> Result<Page<DeliveryRecord>, StoreError> {
    let deliveries = table(tx, DELIVERIES)?;
    let index = table(tx, DEAD)?;
    let range = match cursor {
        Some(c) => index.range(..c),
        None => index.range::<&str>(..),
    }
    .map_err(storage)?;
    let ids = range
        .rev()
        .map(|e| e.map(|(k, _)| k.value().to_owned()).map_err(storage));
    page(&deliveries, ids, limit, |r| {
        r.status == Status::Dead && webhook_id.is_none_or(|w| w == r.webhook_id)
    })
}

pub fn queue_depths(tx: &ReadTransaction) -> Result<QueueDepths, StoreError> {
    Ok(QueueDepths {
        pending: table(tx, DUE_FIRST)?.len().map_err(storage)?,
        failed: table(tx, DUE_RETRY)?.len().map_err(storage)?,
        in_flight: table(tx, LEASES)?.len().map_err(storage)?,
        dead: table(tx, DEAD)?.len().map_err(storage)?,
    })
}

fn webhooks_version(tx: &ReadTransaction) -> Result<u64, StoreError> {
    let meta = table(tx, META)?;
    Ok(read_u64(
        meta.get(WEBHOOKS_VERSION).map_err(storage)?.map(|v| v.value().to_vec()),
    ))
}

/// The log entry numbered `seq` ("" if there is none).
fn log_entry(tx: &ReadTransaction, seq: u64) -> Result<Option<String>, StoreError> {
    Ok(table(tx, WEBHOOK_LOG)?
        .get(seq)
        .map_err(storage)?
        .map(|v| v.value().to_owned()))
}

fn read_webhook(id: &str, json: &[u8]) -> Option<StoredWebhook> {
    serde_json::from_slice(json)
        .map_err(|e| tracing::warn!(webhook_id = %id, error = %e, "unreadable stored webhook"))
        .ok()
}

fn read_state(bytes: &[u8]) -> Option<WebhookState> {
    let (reason, url) = decode_state(bytes).ok()?;
    Some(WebhookState {
        disabled_reason: reason,
        url,
    })
}

fn read_circuit(id: &str, json: &[u8]) -> Option<Circuit> {
    serde_json::from_slice(json)
        .map_err(|e| tracing::warn!(webhook_id = %id, error = %e, "unreadable circuit breaker state"))
        .ok()
}

pub fn load_webhooks(tx: &ReadTransaction) -> Result<WebhookSet, StoreError> {
    let seq = webhooks_version(tx)?;
    let mut set = WebhookSet {
        cursor: ChangeCursor {
            seq,
            mark: log_entry(tx, seq)?.unwrap_or_default(),
        },
        ..WebhookSet::default()
    };
    for entry in table(tx, WEBHOOKS)?.iter().map_err(storage)? {
        let (k, v) = entry.map_err(storage)?;
        set.webhooks.extend(read_webhook(k.value(), v.value()));
    }
    for entry in table(tx, WEBHOOK_STATE)?.iter().map_err(storage)? {
        let (k, v) = entry.map_err(storage)?;
        if let Some(state) = read_state(v.value()) {
            set.states.insert(k.value().to_owned(), state);
        }
    }
    for entry in table(tx, CIRCUITS)?.iter().map_err(storage)? {
        let (k, v) = entry.map_err(storage)?;
        if let Some(c) = read_circuit(k.value(), v.value()) {
            set.circuits.insert(k.value().to_owned(), c);
        }
    }
    Ok(set)
}

pub fn webhook(tx: &ReadTransaction, id: &str) -> Result<Option<StoredWebhook>, StoreError> {
    Ok(table(tx, WEBHOOKS)?
        .get(id)
        .map_err(storage)?
        .and_then(|v| read_webhook(id, v.value())))
}

pub fn webhook_changes(tx: &ReadTransaction, since: &ChangeCursor, max: usize) -> Result<WebhookChanges, StoreError> {
    let max = max.max(1);
    let log = table(tx, WEBHOOK_LOG)?;
    let mut after = Vec::new();
    for entry in log.range(since.seq.saturating_add(1)..).map_err(storage)?.take(max) {
        let (k, v) = entry.map_err(storage)?;
        after.push((k.value(), v.value().to_owned()));
    }
    let read = LogRead {
        current: webhooks_version(tx)?,
        anchor: log_entry(tx, since.seq)?.into_iter().collect(),
        after,
    };
    let (ids, cursor, more) = match judge(since, read, max) {
        Judged::Resync => return Ok(WebhookChanges::Resync),
        Judged::Apply { ids, cursor, more } => (ids, cursor, more),
    };
    let (hooks, states, circuits) = (table(tx, WEBHOOKS)?, table(tx, WEBHOOK_STATE)?, table(tx, CIRCUITS)?);
    let mut entries = Vec::with_capacity(ids.len());
    for id in ids {
        let key = id.as_str();
        entries.push(WebhookEntry {
            webhook: hooks
                .get(key)
                .map_err(storage)?
                .and_then(|v| read_webhook(key, v.value())),
            state: states.get(key).map_err(storage)?.and_then(|v| read_state(v.value())),
            circuit: circuits
                .get(key)
                .map_err(storage)?
                .and_then(|v| read_circuit(key, v.value())),
            id,
        });
    }
    Ok(WebhookChanges::Changed { entries, cursor, more })
}
