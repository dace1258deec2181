//! Delivery statistics in the embedded store: the `stats` table, keyed by
//! (granularity, bucket, scope), each value a row of little-endian u64
//! counters in `stats::field_name` order. Adds merge into the row; a
//! range scan by time reads a window; retention drops old rows in bounded
//! steps.

use std::collections::BTreeMap;

use redb::{ReadTransaction, ReadableTable};

use super::tables::{STATS, W, storage};
use crate::stats::{self, Counters, Granularity, Row};
use crate::store::StoreError;

/// Old rows removed per retention sweep at most.
const SWEEP_ROWS: usize = 2_000;

fn kind(g: Granularity) -> u8 {
    match g {
        Granularity::Minute => 0,
        Granularity::Hour => 1,
    }
}

fn encode(c: &Counters) -> Vec<u8> {
    c.0.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A stored row; a shorter value (written by an older version with fewer
/// counters) reads as zeros past its end.
fn decode(bytes: &[u8]) -> Counters {
    let mut c = Counters::default();
    for (slot, chunk) in c.0.iter_mut().zip(bytes.chunks_exact(8)) {
        *slot = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
    }
    c
}

fn merge(w: &mut W<'_>, g: Granularity, bucket: u64, scope: &str, add: &Counters) -> Result<(), StoreError> {
    let key = (kind(g), bucket, scope);
    let mut row = match w.stats.get(key).map_err(storage)? {
        Some(v) => decode(v.value()),
        None => Counters::default(),
    };
    row.add(add);
    w.stats.insert(key, encode(&row).as_slice()).map_err(storage)?;
    Ok(())
}

/// Adds rows to their minute and hour rows.
pub fn add(w: &mut W<'_>, rows: &[Row]) -> Result<(), StoreError> {
    for r in rows {
        merge(w, Granularity::Minute, r.minute, &r.scope, &r.counters)?;
        merge(w, Granularity::Hour, r.minute / 60, &r.scope, &r.counters)?;
    }
    Ok(())
}

/// One scope's rows in `from..=to`.
pub fn read(
    tx: &ReadTransaction,
    scope: &str,
    g: Granularity,
    from: u64,
    to: u64,
) -> Result<Vec<(u64, Counters)>, StoreError> {
    let t = tx.open_table(STATS).map_err(storage)?;
    let mut out = Vec::new();
    for bucket in from..=to {
        if let Some(v) = t.get((kind(g), bucket, scope)).map_err(storage)? {
            out.push((bucket, decode(v.value())));
        }
    }
    Ok(out)
}

/// Each webhook's rows summed over `from..=to` (the first `limit` by id).
pub fn by_webhook(
    tx: &ReadTransaction,
    g: Granularity,
    from: u64,
    to: u64,
    limit: usize,
) -> Result<(Vec<(String, Counters)>, bool), StoreError> {
    let t = tx.open_table(STATS).map_err(storage)?;
    let k = kind(g);
    let mut sums: BTreeMap<String, Counters> = BTreeMap::new();
    for entry in t.range((k, from, "")..(k, to.saturating_add(1), "")).map_err(storage)? {
        let (key, v) = entry.map_err(storage)?;
        let (_, _, scope) = key.value();
        if scope == stats::FLEET {
            continue;
        }
        sums.entry(scope.to_owned()).or_default().add(&decode(v.value()));
    }
    let more = sums.len() > limit;
    Ok((sums.into_iter().take(limit).collect(), more))
}

/// Removes rows older than they are kept (at most [`SWEEP_ROWS`]); whether
/// old rows are left.
pub fn sweep(w: &mut W<'_>, now_ms: u64) -> Result<(usize, bool), StoreError> {
    let mut removed = 0;
    let mut more = false;
    for (g, kept) in [
        (Granularity::Minute, stats::MINUTE_ROWS_KEPT),
        (Granularity::Hour, stats::HOUR_ROWS_KEPT),
    ] {
        let oldest_kept = g.bucket(now_ms.saturating_sub(kept.as_millis() as u64));
        let k = kind(g);
        let mut old = Vec::new();
        for entry in w.stats.range((k, 0, "")..(k, oldest_kept, "")).map_err(storage)? {
            let (key, _) = entry.map_err(storage)?;
            let (_, bucket, scope) = key.value();
            if old.len() + removed == SWEEP_ROWS {
                more = true;
                break;
            }
            old.push((bucket, scope.to_owned()));
        }
        for (bucket, scope) in &old {
            w.stats.remove((k, *bucket, scope.as_str())).map_err(storage)?;
        }
        removed += old.len();
    }
    Ok((removed, more))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::FIELDS;

    #[test]
    fn rows_round_trip_and_short_rows_read_as_zeros() {
        let mut c = Counters::default();
        c.0[0] = 7;
        c.0[FIELDS - 1] = u64::MAX;
        assert_eq!(decode(&encode(&c)), c);
        let short = decode(&7u64.to_le_bytes());
        assert_eq!(short.0[0], 7);
        assert_eq!(short.0[1..], [0; FIELDS - 1]);
    }
}
