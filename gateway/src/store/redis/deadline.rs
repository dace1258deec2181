//! How long ingest waits for Redis, and the shards it stops asking for a
//! moment after one did not answer.
//!
//! While a Redis Cluster fails a master over (seconds), the cluster client
//! keeps retrying a request for that master's slots. Ingest does not wait
//! that out: each batch carries a deadline in Redis's clock, the script
//! writes nothing if it runs after it (`LATE`), and the gateway stops
//! waiting a little after the deadline and answers 503 with
//! `Retry-After`. A write that reaches Redis later, after a retry, is
//! refused by the script, so an event answered 503 is never stored behind
//! the producer's back. The shard is then marked down for
//! [`DOWN_FOR`]: events for it are answered 503 at once, without asking,
//! until the next batch finds it again.
//!
//! The deadline is in Redis's clock: each batch's answer carries Redis's
//! time, and [`Deadlines::learn`] keeps an estimate of how far Redis's
//! clock is from ours that is never above the truth (it is taken at the
//! answer's arrival, after Redis read its clock), so a deadline never
//! lasts longer than [`DEADLINE`] plus [`GRACE`] of our time. Until the
//! first answer, batches have no deadline (and are waited for as long as
//! the client waits).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::store::now_ms;

/// How long after it is sent a batch may still be written.
pub(crate) const DEADLINE: Duration = Duration::from_millis(1_000);
/// How much longer than the deadline the gateway waits for the answer
/// (covers the error of the clock estimate and the way back).
pub(crate) const GRACE: Duration = Duration::from_millis(500);
/// How long a shard that did not answer is not asked again.
pub(crate) const DOWN_FOR: Duration = Duration::from_millis(1_000);

/// Not learned yet.
const UNKNOWN: i64 = i64::MIN;

pub(crate) struct Deadlines {
    /// Redis's clock minus ours (ms), an estimate never above the truth.
    offset_ms: AtomicI64,
    /// Per shard: until when (our ms) it is not asked.
    down_until_ms: Vec<AtomicU64>,
}

impl Deadlines {
    pub(crate) fn new(shards: usize) -> Self {
        Deadlines {
            offset_ms: AtomicI64::new(UNKNOWN),
            down_until_ms: (0..shards).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The time in Redis's clock (ms) after which a batch sent now must
    /// not be written; `None` while Redis's clock is not known.
    pub(crate) fn not_after(&self) -> Option<u64> {
        let offset = self.offset_ms.load(Ordering::Relaxed);
        if offset == UNKNOWN {
            return None;
        }
        let at = now_ms() as i64 + offset + DEADLINE.as_millis() as i64;
        Some(at.max(1) as u64)
    }

    /// Takes in Redis's time `redis_ms` from an answer that arrived now.
    /// Every such sample is at most the true offset; the estimate follows
    /// the highest, and slowly comes down to lower ones (a clock set back).
    pub(crate) fn learn(&self, redis_ms: u64) {
        let sample = redis_ms as i64 - now_ms() as i64;
        let _ = self
            .offset_ms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == UNKNOWN || sample >= old {
                    sample
                } else {
                    old - (old - sample) / 16
                })
            });
    }

    /// Whether `shard` is not to be asked now.
    pub(crate) fn is_down(&self, shard: usize) -> bool {
        self.down_until_ms
            .get(shard)
            .is_some_and(|t| now_ms() < t.load(Ordering::Relaxed))
    }

    /// `shard` did not answer in time (or failed): not asked for a moment.
    pub(crate) fn mark_down(&self, shard: usize) {
        if let Some(t) = self.down_until_ms.get(shard) {
            t.store(now_ms() + DOWN_FOR.as_millis() as u64, Ordering::Relaxed);
        }
    }

    /// For tests: sets the estimate of Redis's clock minus ours.
    #[cfg(test)]
    pub(crate) fn set_offset(&self, offset_ms: i64) {
        self.offset_ms.store(offset_ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_deadline_until_redis_answered_then_one_in_its_clock() {
        let d = Deadlines::new(2);
        assert_eq!(d.not_after(), None);
        d.learn(now_ms() + 60_000);
        let at = d.not_after().unwrap();
        let expected = now_ms() + 60_000 + DEADLINE.as_millis() as u64;
        assert!(at.abs_diff(expected) < 1_000, "{at} {expected}");
    }

    #[test]
    fn the_estimate_follows_the_highest_sample_and_comes_down_slowly() {
        let d = Deadlines::new(1);
        d.set_offset(1_000);
        d.learn(now_ms() + 5_000);
        assert!(d.offset_ms.load(Ordering::Relaxed) >= 4_900);
        d.learn(now_ms() - 10_000);
        let after_one = d.offset_ms.load(Ordering::Relaxed);
        assert!((3_900..5_000).contains(&after_one), "{after_one}");
        for _ in 0..200 {
            d.learn(now_ms() - 10_000);
        }
        assert!(d.offset_ms.load(Ordering::Relaxed) < -9_000);
    }

    #[test]
    fn a_shard_marked_down_is_down_for_a_moment_only_itself() {
        let d = Deadlines::new(3);
        assert!(!d.is_down(1));
        d.mark_down(1);
        assert!(d.is_down(1) && !d.is_down(0) && !d.is_down(2));
        d.down_until_ms[1].store(now_ms().saturating_sub(1), Ordering::Relaxed);
        assert!(!d.is_down(1), "asked again once the moment passed");
        assert!(!d.is_down(7), "a shard out of range is never down");
    }
}
