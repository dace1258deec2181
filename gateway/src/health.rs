//! Store reachability as the gateway sees it: one place that logs the
//! transitions (once each way, never a flood) and paces retries with
//! exponential backoff.

use std::sync::Mutex;
use std::time::Duration;

use crate::store::StoreError;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Shared by the loops that talk to the store.
#[derive(Debug, Default)]
pub struct StoreHealth {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    down: bool,
    backoff: Duration,
}

impl StoreHealth {
    /// Records a success; logs the recovery if the store was down.
    pub fn ok(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.down {
            tracing::info!("store reachable again; resuming");
        }
        s.down = false;
        s.backoff = Duration::ZERO;
    }

    /// Records a failure and returns how long to wait before trying again.
    pub fn failed(&self, what: &str, err: &StoreError) -> Duration {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !s.down {
            tracing::warn!(error = %err, "{what} failed; store unreachable, retrying with backoff");
        }
        s.down = true;
        s.backoff = (s.backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
        s.backoff
    }

    /// Whether the last store call failed.
    pub fn is_down(&self) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).down
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap_and_resets() {
        let h = StoreHealth::default();
        let e = StoreError::Unavailable("x".into());
        assert_eq!(h.failed("claim", &e), MIN_BACKOFF);
        assert_eq!(h.failed("claim", &e), MIN_BACKOFF * 2);
        for _ in 0..20 {
            h.failed("claim", &e);
        }
        assert_eq!(h.failed("claim", &e), MAX_BACKOFF);
        assert!(h.is_down());
        h.ok();
        assert!(!h.is_down());
        assert_eq!(h.failed("claim", &e), MIN_BACKOFF);
    }
}
