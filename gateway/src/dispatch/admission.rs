//! The admission policy, pure: given a claimed batch, the webhooks, what is
//! in flight and how long attempts take, decide what starts now, what waits
//! and for how long, and what is dead without an attempt. The worker does
//! the I/O around it (store, rate limiter, spawning).
//!
//! Two steps, because the shared rate limiter answers in between:
//!
//! 1. [`screen`]: a job whose webhook is gone, disabled or whose event data
//!    is missing is dead; a job whose webhook's circuit breaker is open
//!    waits for the next probe time (one job per webhook may become the
//!    probe when it is due); a job over its webhook's in-flight cap waits about
//!    until its turn (its place over the cap times the webhook's typical
//!    attempt time, divided by the cap), so other webhooks' work queued
//!    behind a slow one's backlog surfaces; the rest go to the rate limiter.
//! 2. [`pace`]: a job over its rate limit waits for its own slot (the n-th
//!    such job of a webhook in this batch, n intervals past the first free
//!    slot); an allowed job starts while there are slots (and, for a retry,
//!    retry slots), else waits a moment.

use std::time::Duration;

use foldhash::{HashMap, HashMapExt};

use crate::circuit::Gate;
use crate::store::RateDecision;

/// How long a delivery waits when its webhook already has its share of the
/// in-flight slots, or no slot is free.
pub const BUSY_DEFER: Duration = Duration::from_millis(200);
/// The longest a delivery is pushed back for its webhook being busy.
pub const MAX_BUSY_DEFER: Duration = Duration::from_secs(30);
/// How long deliveries wait behind a probe that is on its way.
pub const PROBE_WAIT: Duration = Duration::from_secs(1);

/// What to know about one claimed job in step 1.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub webhook_id: &'a str,
    /// `None`: no such webhook (deleted); `Some(false)`: disabled.
    pub webhook_enabled: Option<bool>,
    pub data_missing: bool,
    /// What the webhook's circuit breaker allows.
    pub gate: Gate,
}

/// Why a job is dead without an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dead {
    WebhookGone,
    WebhookDisabled,
    /// The event's data is not in the store (it should never be missing
    /// while a delivery is pending).
    DataMissing,
}

impl Dead {
    /// The reason recorded with the delivery.
    pub fn reason(self) -> &'static str {
        match self {
            Dead::WebhookGone => "webhook no longer exists",
            Dead::WebhookDisabled => "webhook is disabled",
            Dead::DataMissing => "event data missing",
        }
    }
}

/// Step 1's decision for one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screened {
    /// Final without an attempt.
    Dead(Dead),
    /// Not now: due again after this long, retry budget untouched.
    Defer(Duration),
    /// On to the rate limiter.
    Ready,
    /// The probe of an open breaker: ready if this gateway wins it.
    Probe,
}

/// Step 1 at `now_ms`. `load` counts a webhook's attempts running and
/// deliveries waiting locally to start, `cap` the most it may have;
/// `typical` is a webhook's typical attempt time; `jitter` spreads
/// deferrals (0..200 ms in the gateway, fixed in tests).
pub fn screen(
    jobs: &[Candidate<'_>],
    now_ms: u64,
    load: impl Fn(&str) -> usize,
    cap: usize,
    typical: impl Fn(&str) -> Duration,
    mut jitter: impl FnMut() -> Duration,
) -> Vec<Screened> {
    let cap = cap.max(1);
    let mut held: HashMap<&str, usize> = HashMap::new();
    let mut probed: Vec<&str> = Vec::new();
    jobs.iter()
        .map(|job| {
            match job.webhook_enabled {
                None => return Screened::Dead(Dead::WebhookGone),
                Some(false) => return Screened::Dead(Dead::WebhookDisabled),
                Some(true) => {}
            }
            if job.data_missing {
                return Screened::Dead(Dead::DataMissing);
            }
            match job.gate {
                Gate::Pass => {}
                Gate::WaitUntil(at) => {
                    return Screened::Defer(Duration::from_millis(at.saturating_sub(now_ms)) + jitter());
                }
                Gate::Probe if probed.contains(&job.webhook_id) => return Screened::Defer(PROBE_WAIT + jitter()),
                Gate::Probe => {
                    probed.push(job.webhook_id);
                    return Screened::Probe;
                }
            }
            let extra = held.entry(job.webhook_id).or_default();
            *extra += 1;
            let running = load(job.webhook_id);
            let over = (running + *extra).saturating_sub(cap);
            if over == 0 {
                return Screened::Ready;
            }
            let turn = typical(job.webhook_id).mul_f64(over as f64 / cap as f64);
            Screened::Defer((BUSY_DEFER + turn + jitter()).min(MAX_BUSY_DEFER))
        })
        .collect()
}

/// What to know about one job that passed step 1.
#[derive(Debug, Clone, Copy)]
pub struct Paced<'a> {
    pub webhook_id: &'a str,
    pub decision: RateDecision,
    /// The webhook's steady-rate interval.
    pub interval: Duration,
    /// A retry (needs a retry slot as well as a slot).
    pub retry: bool,
}

/// Step 2's decision for one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Now,
    /// Not now: due again after this long, retry budget untouched.
    Defer(Duration),
    /// Over the rate limit: due again after this long.
    RateLimited(Duration),
}

/// Step 2, with `slots` attempts and `retry_slots` retries free to start.
pub fn pace(jobs: &[Paced<'_>], mut slots: usize, mut retry_slots: usize) -> Vec<Start> {
    let mut waiting: HashMap<&str, u32> = HashMap::new();
    jobs.iter()
        .map(|job| match job.decision {
            RateDecision::Wait(wait) => {
                let n = waiting.entry(job.webhook_id).or_default();
                let spread = job.interval * *n;
                *n += 1;
                Start::RateLimited(wait + spread)
            }
            RateDecision::Allow if slots == 0 || (job.retry && retry_slots == 0) => Start::Defer(BUSY_DEFER),
            RateDecision::Allow => {
                slots -= 1;
                if job.retry {
                    retry_slots -= 1;
                }
                Start::Now
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(webhook_id: &str) -> Candidate<'_> {
        Candidate {
            webhook_id,
            webhook_enabled: Some(true),
            data_missing: false,
            gate: Gate::Pass,
        }
    }

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn gone_disabled_and_dataless_jobs_are_dead_without_an_attempt() {
        let jobs = [
            Candidate {
                webhook_enabled: None,
                ..job("a")
            },
            Candidate {
                webhook_enabled: Some(false),
                ..job("b")
            },
            Candidate {
                data_missing: true,
                ..job("c")
            },
            job("d"),
        ];
        let out = screen(&jobs, 0, |_| 0, 4, |_| MS(0), || MS(0));
        assert_eq!(
            out,
            [
                Screened::Dead(Dead::WebhookGone),
                Screened::Dead(Dead::WebhookDisabled),
                Screened::Dead(Dead::DataMissing),
                Screened::Ready
            ]
        );
    }

    #[test]
    fn a_busy_webhook_waits_its_turn_and_leaves_room_for_others() {
        // Webhook "slow" has 2 of its 3 slots busy; a batch of its 4 jobs
        // and 2 of "fast": one "slow" job starts, the others wait longer the
        // further back they are; "fast" is not held up.
        let in_flight: HashMap<String, usize> = [("slow".to_owned(), 2)].into_iter().collect();
        let jobs = [
            job("slow"),
            job("slow"),
            job("fast"),
            job("slow"),
            job("slow"),
            job("fast"),
        ];
        let typical = |w: &str| if w == "slow" { MS(3000) } else { MS(10) };
        let out = screen(
            &jobs,
            0,
            |w| in_flight.get(w).copied().unwrap_or(0),
            3,
            typical,
            || MS(0),
        );
        assert_eq!(
            out,
            [
                Screened::Ready,
                Screened::Defer(BUSY_DEFER + MS(1000)),
                Screened::Ready,
                Screened::Defer(BUSY_DEFER + MS(2000)),
                Screened::Defer(BUSY_DEFER + MS(3000)),
                Screened::Ready,
            ]
        );
    }

    #[test]
    fn busy_deferrals_are_jittered_and_capped() {
        let in_flight: HashMap<String, usize> = [("w".to_owned(), 1)].into_iter().collect();
        let out = screen(
            &[job("w")],
            0,
            |w| in_flight.get(w).copied().unwrap_or(0),
            1,
            |_| Duration::from_secs(3600),
            || MS(7),
        );
        assert_eq!(out, [Screened::Defer(MAX_BUSY_DEFER)]);
        let out = screen(
            &[job("w")],
            0,
            |w| in_flight.get(w).copied().unwrap_or(0),
            1,
            |_| MS(0),
            || MS(7),
        );
        assert_eq!(out, [Screened::Defer(BUSY_DEFER + MS(7))]);
    }

    #[test]
    fn an_open_breaker_holds_its_webhooks_jobs_and_lets_one_probe_go() {
        let gated = |webhook_id, gate| Candidate {
            gate,
            ..job(webhook_id)
        };
        let jobs = [
            gated("open", Gate::WaitUntil(5_000)),
            gated("due", Gate::Probe),
            gated("due", Gate::Probe),
            job("fine"),
        ];
        let out = screen(&jobs, 1_000, |_| 0, 4, |_| MS(0), || MS(3));
        assert_eq!(
            out,
            [
                Screened::Defer(MS(4_003)),
                Screened::Probe,
                Screened::Defer(PROBE_WAIT + MS(3)),
                Screened::Ready
            ]
        );
    }

    fn paced(webhook_id: &str, decision: RateDecision, retry: bool) -> Paced<'_> {
        Paced {
            webhook_id,
            decision,
            interval: MS(100),
            retry,
        }
    }

    #[test]
    fn rate_limited_jobs_are_spread_one_interval_apart_per_webhook() {
        let wait = RateDecision::Wait(MS(50));
        let jobs = [
            paced("a", wait, false),
            paced("b", wait, false),
            paced("a", wait, false),
            paced("a", wait, false),
        ];
        assert_eq!(
            pace(&jobs, 10, 10),
            [
                Start::RateLimited(MS(50)),
                Start::RateLimited(MS(50)),
                Start::RateLimited(MS(150)),
                Start::RateLimited(MS(250)),
            ]
        );
    }

    #[test]
    fn allowed_jobs_start_while_slots_last_and_retries_need_retry_slots() {
        let ok = RateDecision::Allow;
        let jobs = [
            paced("a", ok, true),
            paced("a", ok, true),
            paced("a", ok, false),
            paced("b", ok, false),
            paced("b", ok, false),
        ];
        assert_eq!(
            pace(&jobs, 3, 1),
            [
                Start::Now,
                Start::Defer(BUSY_DEFER),
                Start::Now,
                Start::Now,
                Start::Defer(BUSY_DEFER),
            ]
        );
    }
}
