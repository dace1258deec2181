//! One monotonic time origin for the whole run, so that a driver timestamp
//! (event accepted) and a receiver timestamp (delivery arrived) compare
//! directly. Times are microseconds since the origin.

use std::time::{Duration, Instant};

/// The run's time origin; cheap to copy.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Self {
        Clock { origin: Instant::now() }
    }

    /// Microseconds since the origin.
    pub fn now_us(&self) -> u64 {
        self.us_at(Instant::now())
    }

    /// Microseconds from the origin to `t` (0 if `t` is earlier).
    pub fn us_at(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.origin).as_micros()).unwrap_or(u64::MAX)
    }

    /// The instant `us` microseconds after the origin.
    pub fn at(&self, us: u64) -> Instant {
        self.origin + Duration::from_micros(us)
    }
}
