//! Percentiles and the join of the driver's accepts with the receiver's
//! arrivals: delivery lag, end-to-end throughput, peak pending deliveries.

use std::collections::HashMap;

use serde::Serialize;

use crate::driver::Accepted;

/// Distribution of a sample (µs for latencies), nearest-rank percentiles.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Summary {
    pub count: u64,
    pub mean: f64,
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Summary {
    pub fn of(mut values: Vec<u64>) -> Self {
        if values.is_empty() {
            return Summary::default();
        }
        values.sort_unstable();
        let sum: u128 = values.iter().map(|&v| u128::from(v)).sum();
        Summary {
            count: values.len() as u64,
            mean: sum as f64 / values.len() as f64,
            p50: percentile(&values, 0.50),
            p99: percentile(&values, 0.99),
            p999: percentile(&values, 0.999),
            max: values[values.len() - 1],
        }
    }
}

/// Nearest-rank percentile `q` (0..=1) of sorted, non-empty `sorted`.
pub fn percentile(sorted: &[u64], q: f64) -> u64 {
    let n = sorted.len();
    let rank = (q * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// Accepted deliveries joined with their arrivals.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeliveryJoin {
    pub accepted: u64,
    pub delivered: u64,
    /// Accepted but never received (within the drain timeout).
    pub missing: u64,
    /// Received before the driver had read the 202 (lag counted as 0).
    pub arrived_before_accept: u64,
    /// Accept (202 read) to first successful arrival, µs.
    pub lag_us: Summary,
    pub first_accept_us: u64,
    pub last_arrival_us: u64,
    /// Delivered / (last arrival - first accept).
    pub deliveries_per_sec: f64,
    /// Most deliveries accepted and not yet received at any moment.
    pub peak_pending: u64,
}

pub fn join(accepted: &[Accepted], arrivals: &HashMap<String, u64>) -> DeliveryJoin {
    let mut lags = Vec::with_capacity(accepted.len());
    let mut accepts: Vec<u64> = Vec::with_capacity(accepted.len());
    let mut arrived: Vec<u64> = Vec::with_capacity(accepted.len());
    let mut early = 0;
    for a in accepted {
        accepts.push(a.accepted_us);
        if let Some(&t) = arrivals.get(&a.delivery_id) {
            arrived.push(t);
            if t < a.accepted_us {
                early += 1;
            }
            lags.push(t.saturating_sub(a.accepted_us));
        }
    }
    let first_accept_us = accepts.iter().copied().min().unwrap_or(0);
    let last_arrival_us = arrived.iter().copied().max().unwrap_or(0);
    let span = last_arrival_us.saturating_sub(first_accept_us);
    let delivered = arrived.len() as u64;
    DeliveryJoin {
        accepted: accepted.len() as u64,
        delivered,
        missing: accepted.len() as u64 - delivered,
        arrived_before_accept: early,
        lag_us: Summary::of(lags),
        first_accept_us,
        last_arrival_us,
        deliveries_per_sec: if span == 0 {
            0.0
        } else {
            delivered as f64 * 1e6 / span as f64
        },
        peak_pending: peak_pending(accepts, arrived),
    }
}

/// The most `accepts` not yet matched by `arrivals` at any moment (an
/// arrival at the same µs as an accept counts after it).
pub fn peak_pending(mut accepts: Vec<u64>, mut arrivals: Vec<u64>) -> u64 {
    accepts.sort_unstable();
    arrivals.sort_unstable();
    let (mut i, mut j, mut now, mut peak) = (0, 0, 0i64, 0i64);
    while i < accepts.len() {
        if j < arrivals.len() && arrivals[j] < accepts[i] {
            now -= 1;
            j += 1;
        } else {
            now += 1;
            i += 1;
            peak = peak.max(now);
        }
    }
    u64::try_from(peak).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s = Summary::of((1..=1000).rev().collect());
        assert_eq!((s.p50, s.p99, s.p999, s.max, s.count), (500, 990, 999, 1000, 1000));
        assert_eq!(Summary::of(vec![7]).p999, 7);
        assert_eq!(Summary::of(Vec::new()).count, 0);
    }

    #[test]
    fn join_counts_lag_missing_and_pending() {
        let acc = |id: &str, t| Accepted {
            delivery_id: id.into(),
            accepted_us: t,
        };
        let accepted = vec![acc("a", 100), acc("b", 200), acc("c", 300), acc("d", 400)];
        let arrivals = HashMap::from([("a".into(), 150), ("b".into(), 190), ("c".into(), 1_000_100)]);
        let j = join(&accepted, &arrivals);
        assert_eq!(
            (j.accepted, j.delivered, j.missing, j.arrived_before_accept),
            (4, 3, 1, 1)
        );
        assert_eq!(j.lag_us.max, 999_800);
        assert_eq!(j.first_accept_us, 100);
        assert_eq!(j.last_arrival_us, 1_000_100);
        assert!((j.deliveries_per_sec - 3.0).abs() < 1e-9);
        // b arrives before its 202 is read, so at most a, c... c and d are pending together.
        assert_eq!(peak_pending(vec![100, 200, 300, 400], vec![150, 190, 1_000_100]), 2);
    }
}
