//! Export and import for the embedded store (see `store::transfer`).

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use redb::{ReadTransaction, ReadableTable};

use super::EmbeddedStore;
use super::codec::{DeliveryRec, EventRec, EventState, decode_attempt, encode_attempt, encode_state};
use super::tables::*;
use super::writer::Ctx;
use crate::store::transfer::{
    DeliveryLine, EventLine, ImportBatch, ImportStats, Transfer, payload_base64, payload_bytes,
};
use crate::store::{Status, StoreError};

fn export_ids(tx: &ReadTransaction) -> Result<Vec<String>, StoreError> {
    let mut ids = BTreeSet::new();
    for def in [DUE_FIRST, DUE_RETRY, LEASES] {
        for entry in tx.open_table(def).map_err(storage)?.iter().map_err(storage)? {
            ids.insert(entry.map_err(storage)?.0.value().1.to_owned());
        }
    }
    for entry in tx.open_table(DEAD).map_err(storage)?.iter().map_err(storage)? {
        ids.insert(entry.map_err(storage)?.0.value().to_owned());
    }
    Ok(ids.into_iter().collect())
}

fn export_deliveries(tx: &ReadTransaction, ids: &[String]) -> Result<Vec<DeliveryLine>, StoreError> {
    let deliveries = tx.open_table(DELIVERIES).map_err(storage)?;
    let attempts = tx.open_table(ATTEMPTS).map_err(storage)?;
    let payloads = tx.open_table(PAYLOADS).map_err(storage)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(v) = deliveries.get(id.as_str()).map_err(storage)? else {
            continue;
        };
        let rec = DeliveryRec::decode(v.value()).map_err(corrupt)?;
        if !rec.is_live() && rec.status != Status::Dead {
            continue;
        }
        let mut log = Vec::new();
        for entry in attempts
            .range((id.as_str(), 0u32)..=(id.as_str(), u32::MAX))
            .map_err(storage)?
        {
            log.push(decode_attempt(entry.map_err(storage)?.1.value()).map_err(corrupt)?);
        }
        let payload = match rec.custom_payload {
            true => payloads
                .get(id.as_str())
                .map_err(storage)?
                .map(|p| payload_base64(p.value())),
            false => None,
        };
        out.push(DeliveryLine {
            id: id.clone(),
            next_attempt_at: (rec.is_live() && rec.due != 0).then_some(rec.due),
            event_id: rec.event,
            webhook_id: rec.webhook,
            event_type: rec.event_type,
            status: rec.status,
            test: rec.test,
            attempt_count: rec.attempts,
            retry_base: rec.retry_base,
            created_at: rec.created_at,
            updated_at: rec.updated_at,
            payload_base64: payload,
            attempts: log,
        });
    }
    Ok(out)
}

fn export_events(tx: &ReadTransaction, ids: &[String]) -> Result<Vec<EventLine>, StoreError> {
    let events = tx.open_table(EVENTS).map_err(storage)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(v) = events.get(id.as_str()).map_err(storage)? {
            let e = EventRec::decode(v.value()).map_err(corrupt)?;
            out.push(EventLine {
                id: id.clone(),
                event_type: e.event_type,
                data: String::from_utf8_lossy(&e.data).into_owned(),
                test: e.test,
                created_at: e.created_at,
            });
        }
    }
    Ok(out)
}

fn import(w: &mut W<'_>, ctx: &Ctx, batch: &ImportBatch) -> Result<ImportStats, StoreError> {
    let mut stats = ImportStats::default();
    for line in &batch.webhooks {
        let id = line.webhook.id.as_str();
        let json = serde_json::to_vec(&line.webhook).map_err(corrupt)?;
        w.webhooks.insert(id, json.as_slice()).map_err(storage)?;
        match &line.disabled {
            Some(d) => w.webhook_state.insert(id, encode_state(&d.reason, &d.url).as_slice()),
            None => w.webhook_state.remove(id),
        }
        .map_err(storage)?;
        w.log_webhook_change(id, ctx)?;
        stats.webhooks += 1;
    }
    for e in &batch.events {
        if w.event_state(&e.id)?.is_none() {
            let rec = EventRec {
                event_type: e.event_type.clone(),
                data: e.data.as_bytes().to_vec(),
                test: e.test,
                created_at: e.created_at,
            };
            w.put_event(&e.id, &rec)?;
            w.put_event_state(&e.id, &EventState::default())?;
            stats.events += 1;
        }
    }
    let mut touched: HashMap<&str, EventState> = HashMap::new();
    for d in &batch.deliveries {
        let id = d.id.as_str();
        if w.delivery(id)?.is_some() {
            stats.skipped += 1;
            continue;
        }
        let mut rec = DeliveryRec {
            event: d.event_id.clone(),
            webhook: d.webhook_id.clone(),
            event_type: d.event_type.clone(),
            test: d.test,
            status: d.status,
            attempts: d.attempt_count,
            retry_base: d.retry_base,
            created_at: d.created_at,
            updated_at: d.updated_at,
            due: 0,
            lease: String::new(),
            lease_until: 0,
            log_len: 0,
            custom_payload: false,
            expires_at: 0,
        };
        for a in &d.attempts {
            w.log_attempt(id, &mut rec, &encode_attempt(a))?;
        }
        if let Some(p) = payload_bytes(d) {
            w.payloads.insert(id, p.as_slice()).map_err(storage)?;
            rec.custom_payload = true;
        }
        w.history_by_webhook
            .insert((d.webhook_id.as_str(), id), ())
            .map_err(storage)?;
        if rec.is_live() {
            w.queue(id, &mut rec, d.next_attempt_at.unwrap_or(ctx.now))?;
            w.pending.insert((d.webhook_id.as_str(), id), ()).map_err(storage)?;
            let event = match touched.remove(d.event_id.as_str()) {
                Some(e) => Some(e),
                None => w.event_state(&d.event_id)?,
            };
            if let Some(mut event) = event {
                event.pending += 1;
                touched.insert(d.event_id.as_str(), event);
            }
        } else {
            w.dead.insert(id, ()).map_err(storage)?;
            let at = ctx.now + ctx.retention_ms;
            w.schedule_expiry(EXP_DELIVERY, id, 0, at)?;
            rec.expires_at = at;
        }
        w.put_delivery(id, &rec)?;
        stats.deliveries += 1;
    }
    for (id, mut event) in touched {
        // Waiting deliveries keep their event.
        w.schedule_expiry(EXP_EVENT, id, event.expires_at, 0)?;
        event.expires_at = 0;
        w.put_event_state(id, &event)?;
    }
    // Events with no waiting delivery expire like finished ones.
    for e in &batch.events {
        if let Some(mut event) = w.event_state(&e.id)?
            && event.pending <= 0
            && event.expires_at == 0
        {
            event.expires_at = ctx.now + ctx.retention_ms;
            w.schedule_expiry(EXP_EVENT, &e.id, 0, event.expires_at)?;
            w.put_event_state(&e.id, &event)?;
        }
    }
    Ok(stats)
}

#[async_trait]
impl Transfer for EmbeddedStore {
    async fn export_ids(&self) -> Result<Vec<String>, StoreError> {
        self.read(export_ids).await
    }

    async fn export_deliveries(&self, ids: &[String]) -> Result<Vec<DeliveryLine>, StoreError> {
        let ids = ids.to_vec();
        self.read(move |tx| export_deliveries(tx, &ids)).await
    }

    async fn export_events(&self, ids: &[String]) -> Result<Vec<EventLine>, StoreError> {
        let ids = ids.to_vec();
        self.read(move |tx| export_events(tx, &ids)).await
    }

    async fn import(&self, batch: &ImportBatch) -> Result<ImportStats, StoreError> {
        let batch = batch.clone();
        let weight = batch.events.iter().map(|e| e.data.len()).sum();
        self.write(true, weight, move |w, ctx| import(w, ctx, &batch)).await
    }
}
