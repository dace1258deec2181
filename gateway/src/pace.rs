//! When a group-commit writer should wait a moment for company.
//!
//! Ingest and the outcome writer both write whatever has queued up in one
//! store call. Under heavy load the queue fills while the previous call
//! runs, so batches form by themselves; at a moderate rate the writer is
//! idle when each item arrives and writes it alone, one store call (one
//! Redis script) per item, which costs Redis and the gateway far more CPU
//! per item than at full load. So a writer that would start from idle
//! waits [`WAIT`] first, but only while items are arriving less than
//! [`WINDOW`] apart: an item that arrives on its own (low rate) is never
//! held back, and under full load the wait is not reached.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a writer waits for more items before writing one alone.
pub const WAIT: Duration = Duration::from_millis(1);
/// Items closer together than this are a stream worth waiting for.
pub const WINDOW: Duration = Duration::from_millis(1);

/// Remembers when the last item arrived (shared by concurrent callers).
#[derive(Debug)]
pub struct Pacer {
    base: Instant,
    /// Microseconds after `base` plus one of the last arrival; 0 for none.
    last_us: AtomicU64,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer {
            base: Instant::now(),
            last_us: AtomicU64::new(0),
        }
    }
}

impl Pacer {
    /// Notes an item arriving at `now`; whether it came less than
    /// [`WINDOW`] after the one before (concurrent callers may note their
    /// items slightly out of order, which only makes a gap read as zero).
    pub fn arrived(&self, now: Instant) -> bool {
        let at = now.saturating_duration_since(self.base).as_micros() as u64 + 1;
        let before = self.last_us.swap(at, Ordering::Relaxed);
        before != 0 && at.saturating_sub(before) < WINDOW.as_micros() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_item_close_behind_another_is_part_of_a_stream() {
        let pace = Pacer::default();
        let t0 = pace.base + Duration::from_secs(1);
        assert!(!pace.arrived(t0), "the first item has nothing before it");
        assert!(pace.arrived(t0 + Duration::from_micros(150)));
        assert!(pace.arrived(t0 + Duration::from_micros(900)));
        assert!(
            !pace.arrived(t0 + Duration::from_micros(900) + WINDOW),
            "a gap of a whole window"
        );
        assert!(!pace.arrived(t0 + Duration::from_secs(1)), "a lone item at a low rate");
        // Noted out of order by concurrent callers: still close.
        assert!(pace.arrived(t0 + Duration::from_millis(999)));
    }

    #[test]
    fn an_item_at_the_very_start_counts() {
        let pace = Pacer::default();
        // At `base` itself (stored as 1, not as "none yet").
        assert!(!pace.arrived(pace.base));
        assert!(pace.arrived(pace.base + Duration::from_micros(10)));
    }
}
