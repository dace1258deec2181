//! Delivery statistics on Redis (`stats.lua` adds, pipelines read).
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:st:m:{minute}:{scope}` | hash | a minute row (field names from `stats::field_name`); expires after a day |
//! | `P:st:h:{hour}:{scope}` | hash | an hour row; expires after a week |
//! | `P:st:ids:{hour}` | set | webhooks with a row in that hour |

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;

use super::{RedisStore, unavailable};
use crate::stats::{self, Counters, FIELDS, Granularity, Row};
use crate::store::{StatsStore, StoreError};

/// Row reads per pipeline at most.
const READ_CHUNK: usize = 2_000;

fn row_key(prefix: &str, g: Granularity, bucket: u64, scope: &str) -> String {
    let kind = match g {
        Granularity::Minute => "m",
        Granularity::Hour => "h",
    };
    format!("{prefix}:st:{kind}:{bucket}:{scope}")
}

fn decode(fields: HashMap<String, u64>) -> Option<Counters> {
    if fields.is_empty() {
        return None;
    }
    let mut c = Counters::default();
    for (name, v) in fields {
        if let Some(i) = stats::field_index(&name) {
            c.0[i] = v;
        }
    }
    Some(c)
}

impl RedisStore {
    /// Reads rows by key, in pipelines of [`READ_CHUNK`].
    async fn read_rows(&self, keys: &[String]) -> Result<Vec<Option<Counters>>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(READ_CHUNK) {
            let mut pipe = ::redis::pipe();
            for k in chunk {
                pipe.cmd("HGETALL").arg(k);
            }
            let rows: Vec<HashMap<String, u64>> =
                pipe.query_async(&mut self.conn.clone()).await.map_err(unavailable)?;
            out.extend(rows.into_iter().map(decode));
        }
        Ok(out)
    }
}

#[async_trait]
impl StatsStore for RedisStore {
    async fn add_stats(&self, rows: &[Row]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut inv = self.scripts.stats.prepare_invoke();
        inv.arg(&self.prefix)
            .arg(stats::MINUTE_ROWS_KEPT.as_secs())
            .arg(stats::HOUR_ROWS_KEPT.as_secs())
            .arg(FIELDS);
        for i in 0..FIELDS {
            inv.arg(stats::field_name(i));
        }
        inv.arg(rows.len());
        for r in rows {
            inv.arg(&r.scope).arg(r.minute);
            for v in r.counters.0 {
                inv.arg(v);
            }
        }
        let _: i64 = inv.invoke_async(&mut self.conn.clone()).await.map_err(unavailable)?;
        Ok(())
    }

    async fn read_stats(
        &self,
        scope: &str,
        granularity: Granularity,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, Counters)>, StoreError> {
        let buckets: Vec<u64> = (from..=to).collect();
        let keys: Vec<String> = buckets
            .iter()
            .map(|&b| row_key(&self.prefix, granularity, b, scope))
            .collect();
        let rows = self.read_rows(&keys).await?;
        Ok(buckets
            .into_iter()
            .zip(rows)
            .filter_map(|(b, r)| r.map(|c| (b, c)))
            .collect())
    }

    async fn stats_by_webhook(
        &self,
        granularity: Granularity,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<(Vec<(String, Counters)>, bool), StoreError> {
        let hours = match granularity {
            Granularity::Minute => from / 60..=to / 60,
            Granularity::Hour => from..=to,
        };
        let mut pipe = ::redis::pipe();
        for h in hours {
            pipe.cmd("SMEMBERS").arg(self.key(&format!("st:ids:{h}")));
        }
        let sets: Vec<Vec<String>> = pipe.query_async(&mut self.conn.clone()).await.map_err(unavailable)?;
        let ids: BTreeSet<String> = sets.into_iter().flatten().collect();
        let more = ids.len() > limit;
        let ids: Vec<String> = ids.into_iter().take(limit).collect();
        let span = (to - from + 1) as usize;
        let keys: Vec<String> = ids
            .iter()
            .flat_map(|id| (from..=to).map(move |b| (id, b)))
            .map(|(id, b)| row_key(&self.prefix, granularity, b, id))
            .collect();
        let rows = self.read_rows(&keys).await?;
        let mut out = Vec::with_capacity(ids.len());
        for (id, rows) in ids.into_iter().zip(rows.chunks(span)) {
            let mut sum = Counters::default();
            for r in rows.iter().flatten() {
                sum.add(r);
            }
            if !sum.is_zero() {
                out.push((id, sum));
            }
        }
        Ok((out, more))
    }
}
