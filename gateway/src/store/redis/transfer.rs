//! Export and import for the Redis store (see `store::transfer`); imports
//! of events and deliveries are one `import.lua` call per batch.

use std::collections::BTreeSet;

use ::redis::Value;
use async_trait::async_trait;
use bytes::Bytes;

use super::decode::{as_int, chunked, field_map, record_data};
use super::history::{attempts_from_fields, record_from_fields};
use super::shards::Shard;
use super::{RedisStore, unavailable};
use crate::store::StoreError;
use crate::store::transfer::{
    DeliveryLine, EventLine, ImportBatch, ImportStats, Transfer, payload_base64, payload_bytes,
};

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

#[async_trait]
impl Transfer for RedisStore {
    async fn export_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut all = BTreeSet::new();
        for shard in self.shards.all() {
            let mut pipe = ::redis::pipe();
            for key in ["q:first", "q:retry", "leases", "dead"] {
                pipe.cmd("ZRANGE").arg(shard.key(key)).arg(0).arg(-1);
            }
            let lists: Vec<Vec<String>> = pipe.query_async(&mut self.conn.clone()).await.map_err(unavailable)?;
            all.extend(lists.into_iter().flatten());
        }
        Ok(all.into_iter().collect())
    }

    async fn export_deliveries(&self, ids: &[String]) -> Result<Vec<DeliveryLine>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for (shard, ids) in self.shards.group(ids, |id| id.as_str()) {
            let mut pipe = ::redis::pipe();
            for id in &ids {
                pipe.cmd("HGETALL").arg(shard.key(&format!("dlv:{id}")));
            }
            let rows: Vec<Value> = pipe.query_async(&mut self.conn.clone()).await.map_err(unavailable)?;
            for (id, row) in ids.iter().zip(rows) {
                let f = field_map(row);
                let Some(rec) = record_from_fields(id, &f) else {
                    continue;
                };
                let retry_base = f
                    .get("retryBase")
                    .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                    .unwrap_or(0);
                out.push(DeliveryLine {
                    id: (*id).clone(),
                    event_id: rec.event_id,
                    webhook_id: rec.webhook_id,
                    event_type: rec.event_type,
                    status: rec.status,
                    test: rec.test,
                    attempt_count: rec.attempt_count,
                    retry_base,
                    created_at: rec.created_at_ms,
                    updated_at: rec.updated_at_ms,
                    next_attempt_at: rec.next_attempt_at_ms,
                    payload_base64: chunked(&f, "payload", "p").map(|p| payload_base64(&p)),
                    attempts: attempts_from_fields(&f)?,
                });
            }
        }
        Ok(out)
    }

    async fn export_events(&self, ids: &[String]) -> Result<Vec<EventLine>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for (shard, ids) in self.shards.group(ids, |id| id.as_str()) {
            // An event's key, and the delivery that holds the data of an
            // event with one delivery (see `ids::delivery_ids`).
            let mut pipe = ::redis::pipe();
            let solos: Vec<String> = ids.iter().map(|id| crate::ids::solo_delivery_id(id)).collect();
            for (id, solo) in ids.iter().zip(&solos) {
                pipe.cmd("HGETALL").arg(shard.key(&format!("evt:{id}")));
                pipe.cmd("GET").arg(shard.key(&format!("dat:{id}")));
                pipe.cmd("HGETALL").arg(shard.key(&format!("dlv:{solo}")));
                pipe.cmd("GET").arg(shard.key(&format!("dat:{solo}")));
            }
            let rows: Vec<Value> = pipe.query_async(&mut self.conn.clone()).await.map_err(unavailable)?;
            let mut rows = rows.into_iter();
            let text = |f: &std::collections::HashMap<String, Vec<u8>>, k: &str| {
                f.get(k).map(|v| String::from_utf8_lossy(v).into_owned())
            };
            for (id, solo_id) in ids.iter().zip(&solos) {
                let (Some(event), Some(event_data), Some(solo), Some(solo_data)) =
                    (rows.next(), rows.next(), rows.next(), rows.next())
                else {
                    break;
                };
                let (event, solo) = (field_map(event), field_map(solo));
                // The event's own hash, or its only delivery, which holds
                // the data and names its event or leaves it to its id.
                let holds =
                    text(&solo, "solo").as_deref() == Some("1") && text(&solo, "event").is_none_or(|e| e == **id);
                let (row, data, created) = match record_data(&event, event_data) {
                    Some(data) => (&event, data, text(&event, "createdAt").and_then(|t| t.parse().ok())),
                    None if holds => {
                        let Some(data) = record_data(&solo, solo_data) else {
                            continue;
                        };
                        let created = text(&solo, "createdAt")
                            .and_then(|t| t.parse().ok())
                            .or_else(|| crate::ids::time_ms(solo_id));
                        (&solo, data, created)
                    }
                    None => continue,
                };
                out.push(EventLine {
                    id: (*id).clone(),
                    event_type: text(row, "type").unwrap_or_default(),
                    data: String::from_utf8_lossy(&data).into_owned(),
                    test: text(row, "test").as_deref() == Some("1"),
                    created_at: created.unwrap_or(0),
                });
            }
        }
        Ok(out)
    }

    async fn import(&self, batch: &ImportBatch) -> Result<ImportStats, StoreError> {
        let mut stats = ImportStats::default();
        if !batch.webhooks.is_empty() {
            let mut inv = self.scripts.import_webhooks.prepare_invoke();
            inv.arg(&self.prefix).arg(self.webhook_log_cap);
            for line in &batch.webhooks {
                let json = serde_json::to_string(&line.webhook).map_err(|e| corrupt("webhook", e))?;
                let state = match &line.disabled {
                    Some(d) => super::webhooks::state_json(&d.reason, &d.url)?,
                    None => String::new(),
                };
                inv.arg(&line.webhook.id).arg(json).arg(state);
            }
            let _: i64 = inv.invoke_async(&mut self.conn.clone()).await.map_err(unavailable)?;
            stats.webhooks = batch.webhooks.len();
        }
        if batch.events.is_empty() && batch.deliveries.is_empty() {
            return Ok(stats);
        }
        // Each shard gets its deliveries and the events they need (an
        // event whose id is in another shard is written to both: ids from
        // elsewhere need not share a bucket), and the events of its own.
        let events: std::collections::HashMap<&str, &EventLine> =
            batch.events.iter().map(|e| (e.id.as_str(), e)).collect();
        let mut per_shard: Vec<(Vec<&EventLine>, Vec<&DeliveryLine>)> =
            (0..self.shards.len()).map(|_| (Vec::new(), Vec::new())).collect();
        for e in &batch.events {
            per_shard[self.shards.index_of(&e.id)].0.push(e);
        }
        let mut copied = std::collections::HashSet::new();
        for d in &batch.deliveries {
            let i = self.shards.index_of(&d.id);
            if self.shards.index_of(&d.event_id) != i
                && let Some(e) = events.get(d.event_id.as_str())
                && copied.insert((i, e.id.as_str()))
            {
                per_shard[i].0.push(e);
            }
            per_shard[i].1.push(d);
        }
        for (shard, (events, deliveries)) in self.shards.all().iter().zip(per_shard) {
            if events.is_empty() && deliveries.is_empty() {
                continue;
            }
            let (e, d, skipped) = self.import_shard(shard, &events, &deliveries).await?;
            stats.events += e;
            stats.deliveries += d;
            stats.skipped += skipped;
        }
        Ok(stats)
    }
}

impl RedisStore {
    async fn import_shard(
        &self,
        shard: &Shard,
        events: &[&EventLine],
        deliveries: &[&DeliveryLine],
    ) -> Result<(usize, usize, usize), StoreError> {
        let mut inv = self.scripts.import.on(shard);
        inv.arg(self.retention_ms).arg(events.len());
        for e in events {
            inv.arg(&e.id)
                .arg(&e.event_type)
                .arg(e.data.as_bytes())
                .arg(if e.test { "1" } else { "0" })
                .arg(e.created_at);
        }
        inv.arg(deliveries.len());
        for d in deliveries {
            let mut att = Vec::new();
            for a in &d.attempts {
                if !att.is_empty() {
                    att.push(b'\n');
                }
                att.extend(serde_json::to_vec(a).map_err(|e| corrupt("attempt record", e))?);
            }
            inv.arg(&d.id)
                .arg(&d.event_id)
                .arg(&d.webhook_id)
                .arg(&d.event_type)
                .arg(d.status.as_str())
                .arg(if d.test { "1" } else { "0" })
                .arg(d.attempt_count)
                .arg(d.retry_base)
                .arg(d.created_at)
                .arg(d.updated_at)
                .arg(d.next_attempt_at.map(|t| t.to_string()).unwrap_or_default())
                .arg(att);
            match payload_bytes(d) {
                Some(p) => inv.arg("1").arg(Bytes::from(p).as_ref()),
                None => inv.arg("0").arg(""),
            };
        }
        let reply: Vec<Value> = inv.invoke_async(&mut self.conn.clone()).await.map_err(unavailable)?;
        let n = |i: usize| reply.get(i).and_then(as_int).unwrap_or(0).max(0) as usize;
        Ok((n(0), n(1), n(2)))
    }
}
