//! Delivery records, history pages, the dead-letter queue and requeueing.
//!
//! History indexes are sorted sets with every score 0, so Redis orders them
//! by member: delivery ids are time-sortable, so `ZREVRANGEBYLEX` from a
//! cursor id gives stable pages newest first even while new deliveries
//! arrive (they sort above every cursor). Filters on status and event type
//! are applied to pipelined reads of each page.

use std::collections::HashMap;
use std::time::Duration;

use ::redis::Value;
use async_trait::async_trait;
use bytes::Bytes;

use super::decode::{as_int, as_string, field_map};
use super::{RedisStore, unavailable};
use crate::store::*;

/// Ids read per round trip while filling a page.
const SCAN_BATCH: usize = 200;
/// Ids examined at most for one page; past that the page ends early with a
/// cursor, so a rare filter never makes one request scan all of history.
const SCAN_LIMIT: usize = 5_000;
/// The fields a history page shows: not the payload or the attempt log,
/// which only the single-delivery view reads.
const LIST_FIELDS: [&str; 9] = [
    "event",
    "webhook",
    "type",
    "status",
    "test",
    "attempts",
    "createdAt",
    "updatedAt",
    "due",
];

pub(super) fn record_from_fields(id: &str, f: &HashMap<String, Vec<u8>>) -> Option<DeliveryRecord> {
    let get = |k: &str| {
        f.get(k)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    let num = |k: &str| get(k).parse::<u64>().ok();
    let status = Status::parse(&get("status"))?;
    Some(DeliveryRecord {
        id: id.to_owned(),
        event_id: get("event"),
        webhook_id: get("webhook"),
        event_type: get("type"),
        status,
        test: get("test") == "1",
        attempt_count: num("attempts").unwrap_or(0) as u32,
        attempts: Vec::new(),
        created_at_ms: num("createdAt").unwrap_or(0),
        updated_at_ms: num("updatedAt").unwrap_or(0),
        next_attempt_at_ms: match status {
            Status::Pending | Status::Failed => num("due"),
            _ => None,
        },
        payload: f.get("payload").map(|p| Bytes::from(p.clone())).unwrap_or_default(),
    })
}

impl RedisStore {
    /// Pages through an index newest first, keeping records `keep` accepts.
    async fn page(
        &self,
        index: &str,
        limit: usize,
        cursor: Option<&str>,
        keep: impl Fn(&DeliveryRecord) -> bool + Send,
    ) -> Result<Page<DeliveryRecord>, StoreError> {
        let limit = limit.clamp(1, 1000);
        let mut items = Vec::new();
        let mut from = cursor.map_or_else(|| "+".to_owned(), |c| format!("({c}"));
        let mut scanned = 0;
        loop {
            let ids: Vec<String> = ::redis::cmd("ZREVRANGEBYLEX")
                .arg(index)
                .arg(&from)
                .arg("-")
                .arg("LIMIT")
                .arg(0)
                .arg(SCAN_BATCH)
                .query_async(&mut self.conn.clone())
                .await
                .map_err(unavailable)?;
            if ids.is_empty() {
                return Ok(Page {
                    items,
                    next_cursor: None,
                });
            }
            let mut pipe = ::redis::pipe();
            for id in &ids {
                pipe.cmd("HMGET")
                    .arg(self.key(&format!("dlv:{id}")))
                    .arg(&LIST_FIELDS[..]);
            }
            let rows: Vec<Vec<Option<Vec<u8>>>> =
                pipe.query_async(&mut self.conn.clone()).await.map_err(unavailable)?;
            for (id, row) in ids.iter().zip(rows) {
                scanned += 1;
                let fields: HashMap<String, Vec<u8>> = LIST_FIELDS
                    .iter()
                    .zip(row)
                    .filter_map(|(k, v)| Some(((*k).to_owned(), v?)))
                    .collect();
                // Records past retention are gone (every field nil); their
                // index entries are trimmed by purge_history.
                if let Some(rec) = record_from_fields(id, &fields)
                    && keep(&rec)
                {
                    items.push(rec);
                    if items.len() == limit {
                        return Ok(Page {
                            items,
                            next_cursor: Some(id.clone()),
                        });
                    }
                }
            }
            let last = ids.last().cloned().unwrap_or_default();
            if ids.len() < SCAN_BATCH {
                return Ok(Page {
                    items,
                    next_cursor: None,
                });
            }
            if scanned >= SCAN_LIMIT {
                return Ok(Page {
                    items,
                    next_cursor: Some(last),
                });
            }
            from = format!("({last}");
        }
    }
}

#[async_trait]
impl Records for RedisStore {
    async fn delivery(&self, id: &str) -> Result<Option<DeliveryRecord>, StoreError> {
        let fields: Value = ::redis::cmd("HGETALL")
            .arg(self.key(&format!("dlv:{id}")))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        let f = field_map(fields);
        if f.is_empty() {
            return Ok(None);
        }
        let mut rec = record_from_fields(id, &f)
            .ok_or_else(|| StoreError::Corrupt(format!("delivery {id}: unreadable record")))?;
        if !f.contains_key("payload") {
            let data: Option<Vec<u8>> = ::redis::cmd("HGET")
                .arg(self.key(&format!("evt:{}", rec.event_id)))
                .arg("data")
                .query_async(&mut self.conn.clone())
                .await
                .map_err(unavailable)?;
            rec.payload = Bytes::from(data.unwrap_or_default());
        }
        let log = f.get("att").map(Vec::as_slice).unwrap_or_default();
        rec.attempts = log
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|a| serde_json::from_slice(a).map_err(|e| StoreError::Corrupt(format!("attempt record: {e}"))))
            .collect::<Result<Vec<AttemptRecord>, _>>()?;
        Ok(Some(rec))
    }

    async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<DeliveryRecord>, StoreError> {
        let index = match &filter.webhook_id {
            Some(w) => self.key(&format!("idx:wh:{w}")),
            None => self.key("idx:dlv"),
        };
        let filter = filter.clone();
        self.page(&index, limit, cursor, move |r| {
            filter.status.is_none_or(|s| s == r.status)
                && filter.event_type.as_ref().is_none_or(|t| *t == r.event_type)
                && filter.webhook_id.as_ref().is_none_or(|w| *w == r.webhook_id)
        })
        .await
    }

    async fn list_dead(
        &self,
        webhook_id: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<DeliveryRecord>, StoreError> {
        let webhook = webhook_id.map(str::to_owned);
        self.page(&self.key("dead"), limit, cursor, move |r| {
            r.status == Status::Dead && webhook.as_ref().is_none_or(|w| *w == r.webhook_id)
        })
        .await
    }

    async fn requeue(&self, ids: &[String], from: &[Status]) -> Result<Vec<Requeue>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let allowed: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        let mut inv = self.scripts.requeue.prepare_invoke();
        inv.arg(&self.prefix).arg(allowed.join(","));
        for id in ids {
            inv.arg(id);
        }
        let reply: Vec<Value> = inv.invoke_async(&mut self.conn.clone()).await.map_err(unavailable)?;
        Ok(reply
            .iter()
            .map(|v| match (as_int(v), as_string(v)) {
                (Some(1), _) => Requeue::Queued,
                (Some(-2), _) => Requeue::EventGone,
                (_, Some(s)) if Status::parse(&s).is_some() => {
                    Requeue::WrongStatus(Status::parse(&s).unwrap_or(Status::Pending))
                }
                _ => Requeue::Missing,
            })
            .collect())
    }

    async fn purge_history(&self, retention: Duration) -> Result<(), StoreError> {
        let cutoff = crate::store::now_ms().saturating_sub(retention.as_millis() as u64);
        let bound = format!("({}", crate::ids::id_floor("dlv", cutoff));
        let mut keys = vec![self.key("idx:dlv"), self.key("dead")];
        let pattern = self.key("idx:wh:*");
        keys.extend(self.conn.scan(&pattern, &self.route_key()).await.map_err(unavailable)?);
        let mut pipe = ::redis::pipe();
        for k in &keys {
            pipe.cmd("ZREMRANGEBYLEX").arg(k).arg("-").arg(&bound).ignore();
        }
        let () = pipe.query_async(&mut self.conn.clone()).await.map_err(unavailable)?;
        Ok(())
    }
}
