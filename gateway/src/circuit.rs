//! The circuit breaker, pure: an endpoint that keeps failing (connection
//! errors, timeouts, 5xx) gets no attempts for a cool-down that doubles
//! while it keeps failing; then one probe goes through (half-open); its
//! success closes the breaker. Deliveries waiting behind an open breaker are
//! deferred, never charged a retry.
//!
//! The state lives in the store (so every gateway honours it) and changes
//! only by compare-and-swap, so one gateway wins each transition and only
//! one probe runs at a time. A webhook whose breaker has been open, with
//! nothing but failed probes, for `disable_after` is disabled (reason
//! `failing`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where a breaker stands. No stored state means closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    Closed,
    /// No attempts until `next_probe_at_ms`.
    Open,
    /// One probe is on its way (until `next_probe_at_ms`, when another may
    /// go if it never reported).
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }

    /// The `hookgate_circuit_state` gauge: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> f64 {
        match self {
            CircuitState::Closed => 0.0,
            CircuitState::HalfOpen => 1.0,
            CircuitState::Open => 2.0,
        }
    }
}

/// A webhook's breaker, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Circuit {
    pub state: CircuitState,
    /// Unix ms when it entered this state.
    pub since_ms: u64,
    /// Unix ms when the next probe may go.
    pub next_probe_at_ms: u64,
    /// The current cool-down.
    pub cooldown_ms: u64,
    /// Unix ms when it first opened in this run of failures.
    pub failing_since_ms: u64,
}

/// The breaker's settings (`[delivery]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the breaker.
    pub failures: u32,
    /// The first cool-down.
    pub cooldown: Duration,
    /// The longest cool-down.
    pub max_cooldown: Duration,
    /// Open this long with only failures: the webhook is disabled.
    pub disable_after: Duration,
}

/// What the breaker lets a delivery do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Closed: go.
    Pass,
    /// Open (or a probe is out): wait until this unix ms.
    WaitUntil(u64),
    /// Time for a probe: one delivery may go if it wins the swap.
    Probe,
}

/// The gate for a webhook with breaker `c` at `now_ms`.
pub fn gate(c: Option<&Circuit>, now_ms: u64) -> Gate {
    match c {
        None => Gate::Pass,
        Some(c) if c.state == CircuitState::Closed => Gate::Pass,
        Some(c) if now_ms >= c.next_probe_at_ms => Gate::Probe,
        Some(c) => Gate::WaitUntil(c.next_probe_at_ms),
    }
}

impl Circuit {
    /// Opened now after the threshold of failures.
    pub fn opened(now_ms: u64, policy: &BreakerPolicy) -> Self {
        let cooldown = policy.cooldown.as_millis() as u64;
        Circuit {
            state: CircuitState::Open,
            since_ms: now_ms,
            next_probe_at_ms: now_ms + cooldown,
            cooldown_ms: cooldown,
            failing_since_ms: now_ms,
        }
    }

    /// A probe leaves now; another may go after `probe_timeout` if this one
    /// never reports (its gateway died).
    pub fn probing(&self, now_ms: u64, probe_timeout: Duration) -> Self {
        Circuit {
            state: CircuitState::HalfOpen,
            since_ms: now_ms,
            next_probe_at_ms: now_ms + probe_timeout.as_millis() as u64,
            ..*self
        }
    }

    /// The probe failed: open again, for twice as long (up to the cap).
    pub fn reopened(&self, now_ms: u64, policy: &BreakerPolicy) -> Self {
        let cooldown = (self.cooldown_ms.saturating_mul(2)).min(policy.max_cooldown.as_millis() as u64);
        Circuit {
            state: CircuitState::Open,
            since_ms: now_ms,
            next_probe_at_ms: now_ms + cooldown,
            cooldown_ms: cooldown,
            failing_since_ms: self.failing_since_ms,
        }
    }

    /// Failing for at least `disable_after`: time to disable the webhook.
    pub fn failing_too_long(&self, now_ms: u64, policy: &BreakerPolicy) -> bool {
        now_ms.saturating_sub(self.failing_since_ms) >= policy.disable_after.as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: BreakerPolicy = BreakerPolicy {
        failures: 5,
        cooldown: Duration::from_secs(10),
        max_cooldown: Duration::from_secs(35),
        disable_after: Duration::from_secs(100),
    };

    #[test]
    fn open_waits_then_lets_one_probe_through() {
        assert_eq!(gate(None, 0), Gate::Pass);
        let open = Circuit::opened(1_000, &POLICY);
        assert_eq!(gate(Some(&open), 1_000), Gate::WaitUntil(11_000));
        assert_eq!(gate(Some(&open), 10_999), Gate::WaitUntil(11_000));
        assert_eq!(gate(Some(&open), 11_000), Gate::Probe);
        let probing = open.probing(11_000, Duration::from_secs(3));
        assert_eq!(probing.state, CircuitState::HalfOpen);
        assert_eq!(
            gate(Some(&probing), 12_000),
            Gate::WaitUntil(14_000),
            "one probe at a time"
        );
        assert_eq!(gate(Some(&probing), 14_000), Gate::Probe, "a lost probe is replaced");
    }

    #[test]
    fn cooldown_doubles_up_to_the_cap_and_failing_time_accumulates() {
        let mut c = Circuit::opened(0, &POLICY);
        let mut cooldowns = vec![c.cooldown_ms];
        for step in 1..5 {
            c = c
                .probing(step * 50_000, Duration::from_secs(1))
                .reopened(step * 50_000, &POLICY);
            cooldowns.push(c.cooldown_ms);
        }
        assert_eq!(cooldowns, [10_000, 20_000, 35_000, 35_000, 35_000]);
        assert_eq!(c.failing_since_ms, 0);
        assert!(!c.failing_too_long(99_999, &POLICY));
        assert!(c.failing_too_long(100_000, &POLICY));
    }

    #[test]
    fn stored_form_is_stable_json() {
        let c = Circuit::opened(5, &POLICY);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"state":"open","sinceMs":5,"nextProbeAtMs":10005,"cooldownMs":10000,"failingSinceMs":5}"#
        );
        assert_eq!(serde_json::from_str::<Circuit>(&json).unwrap(), c);
    }
}
