//! The retry schedule: data from config plus one pure function.

use std::time::Duration;

/// When to try again after a failed attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0..=10).
    pub max_retries: u32,
    /// Wait before retry 1.
    pub base: Duration,
    /// Each further retry waits `factor` times longer.
    pub factor: u32,
    /// No single wait is longer than this.
    pub max_delay: Duration,
    /// Each wait is randomised by +-`jitter` (a fraction, 0..1).
    pub jitter: f64,
}

impl RetryPolicy {
    /// The nominal wait before retry `n` (1-based), before jitter and cap:
    /// `base * factor^(n-1)`, saturating.
    pub fn nominal(&self, n: u32) -> Duration {
        let mult = u64::from(self.factor).saturating_pow(n.saturating_sub(1));
        let nanos = self.base.as_nanos().saturating_mul(u128::from(mult));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The wait before retry `n` (1-based), or `None` when the budget is
    /// spent and the delivery is dead.
    ///
    /// `retry_after` is what the receiver asked for (429/502/503/504 with
    /// `Retry-After`): the wait is never shorter than it. `unit` is a random
    /// number in `[-1, 1]` that spreads the wait by +-`jitter`. The cap
    /// applies last, so no wait exceeds `max_delay`.
    pub fn next_delay(&self, n: u32, retry_after: Option<Duration>, unit: f64) -> Option<Duration> {
        if n == 0 || n > self.max_retries {
            return None;
        }
        let nominal = self.nominal(n).min(self.max_delay);
        let spread = 1.0 + self.jitter.clamp(0.0, 1.0) * unit.clamp(-1.0, 1.0);
        let jittered = Duration::try_from_secs_f64(nominal.as_secs_f64() * spread).unwrap_or(self.max_delay);
        let wait = match retry_after {
            Some(asked) => jittered.max(asked),
            None => jittered,
        };
        Some(wait.min(self.max_delay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            base: Duration::from_secs(5),
            factor: 5,
            max_delay: Duration::from_secs(36_000),
            jitter: 0.1,
        }
    }

    #[test]
    fn default_schedule_is_5s_25s_125s_then_dead() {
        let p = policy();
        assert_eq!(p.next_delay(1, None, 0.0), Some(Duration::from_secs(5)));
        assert_eq!(p.next_delay(2, None, 0.0), Some(Duration::from_secs(25)));
        assert_eq!(p.next_delay(3, None, 0.0), Some(Duration::from_secs(125)));
        assert_eq!(p.next_delay(4, None, 0.0), None);
        assert_eq!(p.next_delay(0, None, 0.0), None);
    }

    #[test]
    fn jitter_stays_within_bounds_and_cap() {
        let p = policy();
        for n in 1..=3 {
            for i in 0..=200 {
                let unit = f64::from(i) / 100.0 - 1.0;
                let d = p.next_delay(n, None, unit).unwrap().as_secs_f64();
                let nominal = p.nominal(n).as_secs_f64();
                assert!(d >= nominal * 0.9 - 1e-9 && d <= nominal * 1.1 + 1e-9, "{n} {unit} {d}");
            }
        }
        let capped = RetryPolicy {
            max_retries: 10,
            max_delay: Duration::from_secs(60),
            ..p
        };
        for n in 1..=10 {
            assert!(capped.next_delay(n, None, 1.0).unwrap() <= Duration::from_secs(60));
        }
    }

    #[test]
    fn retry_after_is_a_floor_but_the_cap_wins() {
        let p = policy();
        assert_eq!(
            p.next_delay(1, Some(Duration::from_secs(90)), 0.0),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            p.next_delay(2, Some(Duration::from_secs(1)), 0.0),
            Some(Duration::from_secs(25))
        );
        let small_cap = RetryPolicy {
            max_delay: Duration::from_secs(30),
            ..p
        };
        assert_eq!(
            small_cap.next_delay(1, Some(Duration::from_secs(999)), 0.0),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn huge_exponents_saturate() {
        let p = RetryPolicy {
            max_retries: 10,
            factor: u32::MAX,
            ..policy()
        };
        assert_eq!(p.next_delay(10, None, 1.0), Some(Duration::from_secs(36_000)));
    }
}
