//! Delivery records, history pages, the dead-letter queue and requeueing.
//!
//! History indexes keep delivery ids in strings per time slice, listed in a
//! directory (`lua/index.lua`); the dead-letter queue is a sorted set with
//! every score 0 (ordered by member). Delivery ids are time-sortable, so
//! reading slices (or the set) down from a cursor id gives stable pages
//! newest first even while new deliveries arrive (they sort above every
//! cursor). Filters on status and event type are applied to pipelined
//! reads of each page.

use std::collections::HashMap;
use std::time::Duration;

use ::redis::Value;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::join_all;

use super::attempt_text;
use super::decode::{as_int, as_string, chunked, field_map, record_data};
use super::shards::Shard;
use super::{RedisStore, unavailable};
use crate::store::*;

/// Ids read per shard and round while filling a page.
const SCAN_BATCH: usize = 200;
/// Index slices read per round trip.
const SLICES_PER_READ: usize = 8;
/// Ids examined at most for one page; past that the page ends early with a
/// cursor, so a rare filter never makes one request scan all of history.
const SCAN_LIMIT: usize = 5_000;
/// Index slices one history-bound call looks at, and calls per shard per
/// round.
const TRIM_SLICES: usize = 4;
const TRIM_CALLS: usize = 50;
/// Index slices one retention call drops, and old-index entries one
/// migration call moves.
const PURGE_SLICES: usize = 500;
const MIGRATE_BATCH: usize = 5_000;
/// The fields a history page shows: not the payload or the attempt log,
/// which only the single-delivery view reads.
const LIST_FIELDS: [&str; 10] = [
    "solo",
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
    // Records leave out what their id tells (`lua/enqueue.lua`): the event
    // of an event's only delivery, and the creation time.
    let event_id = match f.get("event") {
        Some(e) => String::from_utf8_lossy(e).into_owned(),
        None if get("solo") == "1" => crate::ids::solo_event_id(id),
        None => String::new(),
    };
    Some(DeliveryRecord {
        id: id.to_owned(),
        event_id,
        webhook_id: get("webhook"),
        event_type: get("type"),
        status,
        test: get("test") == "1",
        attempt_count: num("attempts").unwrap_or(0) as u32,
        attempts: Vec::new(),
        created_at_ms: num("createdAt").or_else(|| crate::ids::time_ms(id)).unwrap_or(0),
        updated_at_ms: num("updatedAt").unwrap_or(0),
        next_attempt_at_ms: match status {
            Status::Pending | Status::Failed => num("due"),
            _ => None,
        },
        payload: chunked(f, "payload", "p").map(Bytes::from).unwrap_or_default(),
    })
}

/// The attempt records among a delivery's fields (`a<n>`, `x<ms>.<i>`,
/// and the older `att` JSON lines), oldest first.
pub(super) fn attempts_from_fields(f: &HashMap<String, Vec<u8>>) -> Result<Vec<AttemptRecord>, StoreError> {
    let parse = |a: &[u8]| attempt_text::decode(a).map_err(|e| StoreError::Corrupt(format!("attempt record: {e}")));
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

/// The time slice of an id in a history index (`lua/index.lua`): the
/// first 8 characters of a time-sortable delivery id's body, `~` for
/// other ids.
fn slice_of(id: &str) -> &str {
    match id.strip_prefix("dlv_") {
        Some(body) if body.len() == 26 && body.is_ascii() => &body[..8],
        _ => "~",
    }
}

/// The ids slice `slice` of an index holds, from its string (each id
/// without its slice, or whole in slice `~`).
fn slice_ids(slice: &str, text: &str) -> Vec<String> {
    let entries = text.split(' ').filter(|e| !e.is_empty());
    if slice == "~" {
        entries.map(str::to_owned).collect()
    } else {
        entries.map(|e| format!("dlv_{slice}{e}")).collect()
    }
}

/// Where a history page reads ids from.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// A sliced index (`ix` or `ix:wh:<webhook>`), ordered by (slice, id).
    Sliced(&'a str),
    /// A sorted set with every score 0, ordered by id.
    Set(&'a str),
}

impl Source<'_> {
    /// The order of ids within the source.
    fn key<'i>(&self, id: &'i str) -> (&'i str, &'i str) {
        match self {
            Source::Sliced(_) => (slice_of(id), id),
            Source::Set(_) => ("", id),
        }
    }
}

/// One shard's part of a history page: ids below the cursor, newest first.
struct Run {
    ids: Vec<String>,
    /// Whether the shard may hold more below the last id.
    more: bool,
}

impl RedisStore {
    /// Pages through an index newest first, keeping records `keep`
    /// accepts. Each shard's index is read in runs; the runs are merged in
    /// the index's order (ids sort by creation time), taking only ids that
    /// no unread part of another shard can precede.
    async fn page(
        &self,
        source: Source<'_>,
        limit: usize,
        cursor: Option<&str>,
        keep: impl Fn(&DeliveryRecord) -> bool + Send,
    ) -> Result<Page<DeliveryRecord>, StoreError> {
        let limit = limit.clamp(1, 1000);
        let mut items = Vec::new();
        let mut from: Option<String> = cursor.map(str::to_owned);
        let mut scanned = 0;
        loop {
            let runs = join_all(
                self.shards
                    .all()
                    .iter()
                    .map(|shard| self.run(shard, source, from.as_deref())),
            )
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
                .max_by(|a, b| source.key(a).cmp(&source.key(b)))
                .cloned();
            let any_more = floor.is_some();
            let mut ids: Vec<String> = runs
                .into_iter()
                .flat_map(|r| r.ids)
                .filter(|id| floor.as_ref().is_none_or(|f| source.key(id) >= source.key(f)))
                .collect();
            ids.sort_unstable_by(|a, b| source.key(b).cmp(&source.key(a)));
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
                // dropped by purge_history.
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
            from = Some(last);
        }
    }

    /// Up to [`SCAN_BATCH`] ids of one shard's part of `source` below
    /// `from` (all when `None`), newest first.
    async fn run(&self, shard: &Shard, source: Source<'_>, from: Option<&str>) -> Result<Run, ::redis::RedisError> {
        let mut conn = self.conn.clone();
        let base = match source {
            Source::Set(key) => {
                let upper = from.map_or_else(|| "+".to_owned(), |c| format!("({c}"));
                let ids: Vec<String> = ::redis::cmd("ZREVRANGEBYLEX")
                    .arg(shard.key(key))
                    .arg(upper)
                    .arg("-")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(SCAN_BATCH)
                    .query_async(&mut conn)
                    .await?;
                let more = ids.len() == SCAN_BATCH;
                return Ok(Run { ids, more });
            }
            Source::Sliced(base) => shard.key(base),
        };
        let from_key = from.map(|c| source.key(c));
        // Slices from the cursor's own down (it may hold ids below it).
        let mut upper = from_key.map_or_else(|| "+".to_owned(), |(s, _)| format!("[{s}"));
        let mut ids = Vec::new();
        loop {
            let slices: Vec<String> = ::redis::cmd("ZREVRANGEBYLEX")
                .arg(format!("{base}:dir"))
                .arg(&upper)
                .arg("-")
                .arg("LIMIT")
                .arg(0)
                .arg(SLICES_PER_READ)
                .query_async(&mut conn)
                .await?;
            let Some(lowest) = slices.last() else {
                return Ok(Run { ids, more: false });
            };
            let texts: Vec<Option<String>> = ::redis::cmd("MGET")
                .arg(slices.iter().map(|s| format!("{base}:{s}")).collect::<Vec<_>>())
                .query_async(&mut conn)
                .await?;
            for (slice, text) in slices.iter().zip(&texts) {
                let Some(text) = text else { continue };
                let mut part: Vec<String> = slice_ids(slice, text)
                    .into_iter()
                    .filter(|id| from_key.is_none_or(|f| source.key(id) < f))
                    .collect();
                part.sort_unstable_by(|a, b| b.cmp(a));
                ids.extend(part);
                if ids.len() >= SCAN_BATCH {
                    ids.truncate(SCAN_BATCH);
                    return Ok(Run { ids, more: true });
                }
            }
            if slices.len() < SLICES_PER_READ {
                return Ok(Run { ids, more: false });
            }
            upper = format!("({lowest}");
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
        // The record and, if it holds its event's data, the data's key.
        let (fields, data_key): (Value, Value) = ::redis::pipe()
            .cmd("HGETALL")
            .arg(shard.key(&format!("dlv:{id}")))
            .cmd("GET")
            .arg(shard.key(&format!("dat:{id}")))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        let f = field_map(fields);
        if f.is_empty() {
            return Ok(None);
        }
        let mut rec = record_from_fields(id, &f)
            .ok_or_else(|| StoreError::Corrupt(format!("delivery {id}: unreadable record")))?;
        if !f.contains_key("pn") && !f.contains_key("payload") {
            // Not transformed: the event's data, held by the delivery when
            // it is the event's only one.
            let data = match record_data(&f, data_key) {
                Some(d) => Some(d),
                None => {
                    let (event, data_key): (Value, Value) = ::redis::pipe()
                        .cmd("HGETALL")
                        .arg(shard.key(&format!("evt:{}", rec.event_id)))
                        .cmd("GET")
                        .arg(shard.key(&format!("dat:{}", rec.event_id)))
                        .query_async(&mut self.conn.clone())
                        .await
                        .map_err(unavailable)?;
                    record_data(&field_map(event), data_key)
                }
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
            Some(w) => format!("ix:wh:{w}"),
            None => "ix".to_owned(),
        };
        let filter = filter.clone();
        self.page(Source::Sliced(&index), limit, cursor, move |r| {
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
        self.page(Source::Set("dead"), limit, cursor, move |r| {
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
            // Bounded calls (TRIM_SLICES index slices each), oldest first,
            // passing over waiting and dead deliveries, until under the cap
            // or at the end of the index.
            let mut after = String::new();
            for _ in 0..TRIM_CALLS {
                let (gone, next): (u64, String) = self
                    .scripts
                    .trim
                    .on(shard)
                    .arg(cap)
                    .arg(TRIM_SLICES)
                    .arg(&after)
                    .invoke_async(&mut self.conn.clone())
                    .await
                    .map_err(unavailable)?;
                removed += gone;
                if next.is_empty() {
                    break;
                }
                after = next;
            }
        }
        Ok(removed)
    }

    async fn purge_history(&self, retention: Duration) -> Result<(), StoreError> {
        self.migrate_indexes().await?;
        let cutoff = crate::store::now_ms().saturating_sub(retention.as_millis() as u64);
        let floor = crate::ids::id_floor("dlv", cutoff);
        let cutoff_slice = slice_of(&floor).to_owned();
        for shard in self.shards.all() {
            let mut bases = vec![shard.key("ix")];
            let pattern = shard.key("ix:wh:*:dir");
            for dir in self.conn.scan(&pattern, &shard.route).await.map_err(unavailable)? {
                if let Some(base) = dir.strip_suffix(":dir") {
                    bases.push(base.to_owned());
                }
            }
            for base in &bases {
                loop {
                    let dropped: usize = self
                        .scripts
                        .purge
                        .on(shard)
                        .arg(base)
                        .arg(&cutoff_slice)
                        .arg(PURGE_SLICES)
                        .invoke_async(&mut self.conn.clone())
                        .await
                        .map_err(unavailable)?;
                    if dropped < PURGE_SLICES {
                        break;
                    }
                }
            }
            let () = ::redis::cmd("ZREMRANGEBYLEX")
                .arg(shard.key("dead"))
                .arg("-")
                .arg(format!("({floor}"))
                .query_async(&mut self.conn.clone())
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }
}

impl RedisStore {
    /// Moves the history indexes of an earlier version (sorted sets
    /// `idx:dlv` and `idx:wh:<webhook>`) into the sliced ones, in bounded
    /// calls. Runs at start and with each retention pass (so entries a
    /// gateway of the earlier version wrote during an upgrade move too).
    pub async fn migrate_indexes(&self) -> Result<u64, StoreError> {
        let mut moved = 0;
        for shard in self.shards.all() {
            let mut old = vec![(shard.key("idx:dlv"), shard.key("ix"))];
            let pattern = shard.key("idx:wh:*");
            for key in self.conn.scan(&pattern, &shard.route).await.map_err(unavailable)? {
                if let Some(webhook) = key.strip_prefix(&shard.key("idx:wh:")) {
                    let base = shard.key(&format!("ix:wh:{webhook}"));
                    old.push((key, base));
                }
            }
            for (key, base) in &old {
                loop {
                    let n: u64 = self
                        .scripts
                        .migrate_index
                        .on(shard)
                        .arg(key)
                        .arg(base)
                        .arg(MIGRATE_BATCH)
                        .invoke_async(&mut self.conn.clone())
                        .await
                        .map_err(unavailable)?;
                    moved += n;
                    if n < MIGRATE_BATCH as u64 {
                        break;
                    }
                }
            }
        }
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_holds_its_ids_without_the_slice() {
        let id = "dlv_01KBHX3M7QZ4W5V6T8R9P0N1M2";
        assert_eq!(slice_of(id), "01KBHX3M");
        assert_eq!(
            slice_ids("01KBHX3M", "7QZ4W5V6T8R9P0N1M2 7QZ4W5V6T8R9P0N1M3 "),
            [id.to_owned(), "dlv_01KBHX3M7QZ4W5V6T8R9P0N1M3".to_owned()]
        );
        for other in ["d1", "evt_01KBHX3M7QZ4W5V6T8R9P0N1M2", "dlv_short"] {
            assert_eq!(slice_of(other), "~", "{other}");
        }
        assert_eq!(slice_ids("~", "d1 d2 "), ["d1", "d2"]);
        assert!(slice_ids("~", "").is_empty());
    }
}
