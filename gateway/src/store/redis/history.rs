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
use futures_util::future::join_all;

use super::decode::{as_int, as_string, field_map};
use super::{RedisStore, unavailable};
use crate::store::*;

/// Ids read per round trip while filling a page.
const SCAN_BATCH: usize = 200;
/// Ids examined at most for one page; past that the page ends early with a
/// cursor, so a rare filter never makes one request scan all of history.
const SCAN_LIMIT: usize = 5_000;
/// Ids one history-bound call looks at, and calls per shard per round.
const TRIM_EXAMINE: usize = 2_000;
const TRIM_CALLS: usize = 50;
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

/// The attempt records among a delivery's fields (`a<n>`, `x<ms>.<i>`,
/// and the older `att` JSON lines), oldest first.
pub(super) fn attempts_from_fields(f: &HashMap<String, Vec<u8>>) -> Result<Vec<AttemptRecord>, StoreError> {
    let parse = |a: &[u8]| {
        serde_json::from_slice::<AttemptRecord>(a).map_err(|e| StoreError::Corrupt(format!("attempt record: {e}")))
    };
    let mut out = Vec::new();
    for (k, v) in f {
        let is_attempt = |p: &str| {
            k.strip_prefix(p)
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        };
        if k == "att" {
            for line in v.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                out.push(parse(line)?);
            }
        } else if is_attempt("a") || is_attempt("x") {
            out.push(parse(v)?);
        }
    }
    out.sort_by_key(|a| (a.started_at, a.attempt));
    Ok(out)
}

/// One shard's part of a history page: ids below the cursor, newest first.
struct Run {
    ids: Vec<String>,
    /// Whether the shard may hold more below the last id.
    more: bool,
}

impl RedisStore {
    /// Pages through an index (`index` names the key within each shard)
    /// newest first, keeping records `keep` accepts. Each shard's index is
    /// read in runs; the runs are merged by id (ids sort by creation time),
    /// taking only ids that no unread part of another shard can precede.
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
            let runs = join_all(self.shards.all().iter().map(|shard| {
                let key = shard.key(index);
                let from = from.clone();
                async move {
                    let ids: Vec<String> = ::redis::cmd("ZREVRANGEBYLEX")
                        .arg(key)
                        .arg(from)
                        .arg("-")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(SCAN_BATCH)
                        .query_async(&mut self.conn.clone())
                        .await?;
                    let more = ids.len() == SCAN_BATCH;
                    Ok::<_, ::redis::RedisError>(Run { ids, more })
                }
            }))
            .await
            .into_iter()
            .collect::<Result<Vec<Run>, _>>()
            .map_err(unavailable)?;
            // Below the highest last id of a shard with more to read, that
            // shard's unread ids could come first: stop there this round.
            let floor = runs
                .iter()
                .filter(|r| r.more)
                .filter_map(|r| r.ids.last())
                .max()
                .cloned();
            let any_more = floor.is_some();
            let mut ids: Vec<String> = runs
                .into_iter()
                .flat_map(|r| r.ids)
                .filter(|id| floor.as_ref().is_none_or(|f| id >= f))
                .collect();
            ids.sort_unstable_by(|a, b| b.cmp(a));
            if ids.is_empty() {
                return Ok(Page {
                    items,
                    next_cursor: None,
                });
            }
            let records = self.list_records(&ids).await?;
            for (id, rec) in ids.iter().zip(records) {
                scanned += 1;
                // Records past retention are gone; their index entries are
                // trimmed by purge_history.
                if let Some(rec) = rec
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
            if !any_more {
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

    /// The listed fields of deliveries, one pipeline per shard.
    async fn list_records(&self, ids: &[String]) -> Result<Vec<Option<DeliveryRecord>>, StoreError> {
        let positions: Vec<(usize, &String)> = ids.iter().enumerate().collect();
        let groups = self.shards.group(positions, |(_, id)| id.as_str());
        let answers = join_all(groups.iter().map(|(shard, items)| {
            let mut pipe = ::redis::pipe();
            for (_, id) in items {
                pipe.cmd("HMGET")
                    .arg(shard.key(&format!("dlv:{id}")))
                    .arg(&LIST_FIELDS[..]);
            }
            async move {
                pipe.query_async::<Vec<Vec<Option<Vec<u8>>>>>(&mut self.conn.clone())
                    .await
            }
        }))
        .await;
        let mut out: Vec<Option<DeliveryRecord>> = vec![None; ids.len()];
        for ((_, items), rows) in groups.iter().zip(answers) {
            for ((pos, id), row) in items.iter().zip(rows.map_err(unavailable)?) {
                let fields: HashMap<String, Vec<u8>> = LIST_FIELDS
                    .iter()
                    .zip(row)
                    .filter_map(|(k, v)| Some(((*k).to_owned(), v?)))
                    .collect();
                out[*pos] = record_from_fields(id, &fields);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Records for RedisStore {
    async fn delivery(&self, id: &str) -> Result<Option<DeliveryRecord>, StoreError> {
        let shard = self.shards.of(id);
        let fields: Value = ::redis::cmd("HGETALL")
            .arg(shard.key(&format!("dlv:{id}")))
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
            let data: Option<Vec<u8>> = match f.get("data") {
                Some(d) => Some(d.clone()),
                None => ::redis::cmd("HGET")
                    .arg(shard.key(&format!("evt:{}", rec.event_id)))
                    .arg("data")
                    .query_async(&mut self.conn.clone())
                    .await
                    .map_err(unavailable)?,
            };
            rec.payload = Bytes::from(data.unwrap_or_default());
        }
        rec.attempts = attempts_from_fields(&f)?;
        Ok(Some(rec))
    }

    async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<DeliveryRecord>, StoreError> {
        let index = match &filter.webhook_id {
            Some(w) => format!("idx:wh:{w}"),
            None => "idx:dlv".to_owned(),
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
        self.page("dead", limit, cursor, move |r| {
            r.status == Status::Dead && webhook.as_ref().is_none_or(|w| *w == r.webhook_id)
        })
        .await
    }

    async fn requeue(&self, ids: &[String], from: &[Status]) -> Result<Vec<Requeue>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let allowed = from.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
        let positions: Vec<(usize, &String)> = ids.iter().enumerate().collect();
        let groups = self.shards.group(positions, |(_, id)| id.as_str());
        let answers = join_all(groups.iter().map(|(shard, items)| {
            let mut inv = self.scripts.requeue.on(shard);
            inv.arg(&allowed);
            for (_, id) in items {
                inv.arg(*id);
            }
            async move { inv.invoke_async::<Vec<Value>>(&mut self.conn.clone()).await }
        }))
        .await;
        let mut out = vec![Requeue::Missing; ids.len()];
        for ((_, items), reply) in groups.iter().zip(answers) {
            for ((pos, _), v) in items.iter().zip(reply.map_err(unavailable)?) {
                out[*pos] = match (as_int(&v), as_string(&v)) {
                    (Some(1), _) => Requeue::Queued,
                    (Some(-2), _) => Requeue::EventGone,
                    (_, Some(s)) if Status::parse(&s).is_some() => {
                        Requeue::WrongStatus(Status::parse(&s).unwrap_or(Status::Pending))
                    }
                    _ => Requeue::Missing,
                };
            }
        }
        Ok(out)
    }

    async fn enforce_history_bound(&self) -> Result<u64, StoreError> {
        if self.history_max == 0 {
            return Ok(0);
        }
        let cap = self.history_max.div_ceil(self.shards.len() as u64);
        let mut removed = 0;
        for shard in self.shards.all() {
            // Bounded calls (TRIM_EXAMINE ids each), oldest first, passing
            // over waiting and dead deliveries, until under the cap or at
            // the end of the index.
            let mut offset = 0;
            for _ in 0..TRIM_CALLS {
                let (gone, examined, kept): (u64, u64, u64) = self
                    .scripts
                    .trim
                    .on(shard)
                    .arg(cap)
                    .arg(TRIM_EXAMINE)
                    .arg(offset)
                    .invoke_async(&mut self.conn.clone())
                    .await
                    .map_err(unavailable)?;
                removed += gone;
                offset += kept;
                if examined < TRIM_EXAMINE as u64 {
                    break;
                }
            }
        }
        Ok(removed)
    }

    async fn purge_history(&self, retention: Duration) -> Result<(), StoreError> {
        let cutoff = crate::store::now_ms().saturating_sub(retention.as_millis() as u64);
        let bound = format!("({}", crate::ids::id_floor("dlv", cutoff));
        for shard in self.shards.all() {
            let mut keys = vec![shard.key("idx:dlv"), shard.key("dead")];
            let pattern = shard.key("idx:wh:*");
            keys.extend(self.conn.scan(&pattern, &shard.route).await.map_err(unavailable)?);
            let mut pipe = ::redis::pipe();
            for k in &keys {
                pipe.cmd("ZREMRANGEBYLEX").arg(k).arg("-").arg(&bound).ignore();
            }
            let () = pipe.query_async(&mut self.conn.clone()).await.map_err(unavailable)?;
        }
        Ok(())
    }
}
