//! Rate-limit math: the generic cell rate algorithm (GCRA), pure.
//!
//! A limit of `rate` per minute with a burst of `burst` is an emission
//! interval `T = 60 s / rate` and a tolerance `tau = (burst - 1) * T`. The
//! only state is the theoretical arrival time `tat`. A request at `now` is
//! admitted when `tat - now <= tau` (with `tat` taken as at least `now`), and
//! then `tat` moves to `max(tat, now) + T`; otherwise it must wait
//! `tat - tau - now`. Over any window of length `w` at most
//! `burst + w / T` requests are admitted, so the steady rate never exceeds
//! the limit.
//!
//! Times are microseconds so that high limits (60,000/min = one per ms) keep
//! their precision. The shared limiter (all gateway processes on one store)
//! runs this same math inside the store: Redis runs it in `gcra.lua`, which
//! mirrors [`Gcra::check`] line for line.

use std::time::Duration;

/// A GCRA limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// Emission interval `T`, in microseconds.
    pub interval_us: u64,
    /// Burst tolerance `tau`, in microseconds.
    pub tolerance_us: u64,
}

/// The result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Admitted; store `new_tat`.
    Allow { new_tat: u64 },
    /// Refused; try again after this long. The state is unchanged.
    Wait { wait_us: u64 },
}

impl Gcra {
    /// `per_minute` requests a minute, up to `burst` at once (both at least 1).
    pub fn per_minute(per_minute: u32, burst: u32) -> Self {
        let interval_us = (60_000_000 / u64::from(per_minute.max(1))).max(1);
        Gcra {
            interval_us,
            tolerance_us: interval_us * u64::from(burst.max(1) - 1),
        }
    }

    /// Checks one request at `now_us` against the stored `tat` (`None`: no
    /// state yet).
    pub fn check(&self, tat: Option<u64>, now_us: u64) -> Decision {
        let tat = tat.unwrap_or(now_us).max(now_us);
        if tat - now_us <= self.tolerance_us {
            Decision::Allow {
                new_tat: tat + self.interval_us,
            }
        } else {
            Decision::Wait {
                wait_us: tat - self.tolerance_us - now_us,
            }
        }
    }

    /// Requests left right now given `tat`, for `X-RateLimit-Remaining`.
    pub fn remaining(&self, tat: Option<u64>, now_us: u64) -> u64 {
        let tat = tat.unwrap_or(now_us).max(now_us);
        let headroom = (self.tolerance_us + self.interval_us).saturating_sub(tat - now_us);
        headroom / self.interval_us
    }

    /// How long until the bucket is full again, for `X-RateLimit-Reset`.
    pub fn reset_after(&self, tat: Option<u64>, now_us: u64) -> Duration {
        Duration::from_micros(tat.unwrap_or(now_us).saturating_sub(now_us))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Admits greedily at the given request times, returning admitted times.
    fn admit_all(g: &Gcra, times: impl IntoIterator<Item = u64>) -> Vec<u64> {
        let mut tat = None;
        let mut admitted = Vec::new();
        for now in times {
            if let Decision::Allow { new_tat } = g.check(tat, now) {
                tat = Some(new_tat);
                admitted.push(now);
            }
        }
        admitted
    }

    #[test]
    fn burst_then_steady_rate() {
        let g = Gcra::per_minute(60, 10); // one per second, ten at once
        let admitted = admit_all(&g, std::iter::repeat_n(0, 50));
        assert_eq!(admitted.len(), 10);
        // The eleventh waits exactly one interval.
        let mut tat = None;
        for _ in 0..10 {
            match g.check(tat, 0) {
                Decision::Allow { new_tat } => tat = Some(new_tat),
                Decision::Wait { .. } => panic!("burst refused"),
            }
        }
        assert_eq!(g.check(tat, 0), Decision::Wait { wait_us: 1_000_000 });
        assert!(matches!(g.check(tat, 1_000_000), Decision::Allow { .. }));
    }

    #[test]
    fn never_admits_more_than_burst_plus_rate_over_any_window() {
        let g = Gcra::per_minute(600, 5); // 10/s
        // A request every millisecond for 10 seconds.
        let admitted = admit_all(&g, (0..10_000).map(|ms| ms * 1000));
        for (i, &start) in admitted.iter().enumerate() {
            for (j, &end) in admitted.iter().enumerate().skip(i) {
                let window = end - start;
                let allowed = 5 + window / g.interval_us;
                assert!(
                    (j - i + 1) as u64 <= allowed,
                    "window {window}us admitted {}",
                    j - i + 1
                );
            }
        }
        // And it does use the rate: about 5 + 10 s * 10/s.
        assert!(admitted.len() >= 100 && admitted.len() <= 105, "{}", admitted.len());
    }

    #[test]
    fn waiting_the_advised_time_is_always_enough() {
        let g = Gcra::per_minute(7, 3);
        let mut tat = None;
        let mut now = 0;
        for _ in 0..100 {
            match g.check(tat, now) {
                Decision::Allow { new_tat } => tat = Some(new_tat),
                Decision::Wait { wait_us } => {
                    now += wait_us;
                    assert!(matches!(g.check(tat, now), Decision::Allow { .. }));
                }
            }
        }
    }

    #[test]
    fn remaining_counts_down_and_refills() {
        let g = Gcra::per_minute(60, 3);
        assert_eq!(g.remaining(None, 0), 3);
        let Decision::Allow { new_tat } = g.check(None, 0) else {
            panic!()
        };
        assert_eq!(g.remaining(Some(new_tat), 0), 2);
        assert_eq!(g.remaining(Some(new_tat), 1_000_000), 3);
        assert_eq!(g.reset_after(Some(new_tat), 0), Duration::from_secs(1));
    }

    #[test]
    fn extreme_limits_do_not_overflow_or_divide_by_zero() {
        let g = Gcra::per_minute(0, 0);
        assert_eq!(g.interval_us, 60_000_000);
        assert_eq!(g.tolerance_us, 0);
        let g = Gcra::per_minute(u32::MAX, u32::MAX);
        assert_eq!(g.interval_us, 1);
        assert!(matches!(
            g.check(Some(u64::MAX / 2), 0),
            Decision::Allow { .. } | Decision::Wait { .. }
        ));
    }
}
