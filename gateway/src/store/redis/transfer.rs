//! Export and import for the Redis store (see `store::transfer`); imports
//! of events and deliveries are one `import.lua` call per batch.

use std::collections::BTreeSet;

use ::redis::Value;
use async_trait::async_trait;
use bytes::Bytes;

use super::decode::{as_int, field_map};
use super::history::record_from_fields;
use super::{RedisStore, unavailable};
use crate::store::transfer::{
    DeliveryLine, EventLine, ImportBatch, ImportStats, Transfer, payload_base64, payload_bytes,
};
use crate::store::{AttemptRecord, StoreError};

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

#[async_trait]
impl Transfer for RedisStore {
    async fn export_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut pipe = ::redis::pipe();
        for key in ["q:first", "q:retry", "leases", "dead"] {
            pipe.cmd("ZRANGE").arg(self.key(key)).arg(0).arg(-1);
        }
        let lists: Vec<Vec<String>> = pipe.query_async(&mut self.conn.clone()).await.map_err(unavailable)?;
        Ok(lists
            .into_iter()
            .flatten()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect())
    }

    async fn export_deliveries(&self, ids: &[String]) -> Result<Vec<DeliveryLine>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for id in ids {
            pipe.cmd("HGETALL").arg(self.key(&format!("dlv:{id}")));
        }
        let rows: Vec<Value> = pipe.query_async(&mut self.conn.clone()).await.map_err(unavailable)?;
        let mut out = Vec::with_capacity(ids.len());
        for (id, row) in ids.iter().zip(rows) {
            let f = field_map(row);
            let Some(rec) = record_from_fields(id, &f) else {
                continue;
            };
            let log = f.get("att").map(Vec::as_slice).unwrap_or_default();
            let attempts = log
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_slice::<AttemptRecord>(l).map_err(|e| corrupt("attempt record", e)))
                .collect::<Result<Vec<_>, _>>()?;
            let retry_base = f
                .get("retryBase")
                .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                .unwrap_or(0);
            out.push(DeliveryLine {
                id: id.clone(),
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
                payload_base64: f.get("payload").map(|p| payload_base64(p)),
                attempts,
            });
        }
        Ok(out)
    }

    async fn export_events(&self, ids: &[String]) -> Result<Vec<EventLine>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for id in ids {
            pipe.cmd("HMGET")
                .arg(self.key(&format!("evt:{id}")))
                .arg(&["type", "data", "test", "createdAt"][..]);
        }
        let rows: Vec<Vec<Option<Vec<u8>>>> = pipe.query_async(&mut self.conn.clone()).await.map_err(unavailable)?;
        let text = |v: &Option<Vec<u8>>| v.as_deref().map(|b| String::from_utf8_lossy(b).into_owned());
        Ok(ids
            .iter()
            .zip(rows)
            .filter_map(|(id, row)| {
                let data = text(row.get(1)?)?;
                Some(EventLine {
                    id: id.clone(),
                    event_type: text(row.first()?).unwrap_or_default(),
                    data,
                    test: text(row.get(2)?).as_deref() == Some("1"),
                    created_at: text(row.get(3)?).and_then(|t| t.parse().ok()).unwrap_or(0),
                })
            })
            .collect())
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
        let mut inv = self.scripts.import.prepare_invoke();
        inv.arg(&self.prefix).arg(self.retention_ms).arg(batch.events.len());
        for e in &batch.events {
            inv.arg(&e.id)
                .arg(&e.event_type)
                .arg(e.data.as_bytes())
                .arg(if e.test { "1" } else { "0" })
                .arg(e.created_at);
        }
        inv.arg(batch.deliveries.len());
        for d in &batch.deliveries {
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
        stats.events = n(0);
        stats.deliveries = n(1);
        stats.skipped = n(2);
        Ok(stats)
    }
}
