//! `--history N`: before the measured phase, the store is filled with N
//! finished deliveries through the gateway itself (the run's own load,
//! closed loop, in chunks, not measured), so the measured phase runs
//! against a store that already holds them. The fill keeps the gateway's
//! backlog within one chunk (it waits for deliveries between chunks),
//! prints its progress, stops sending after `max` and waits at most as
//! long again for the last deliveries.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;

use crate::clock::Clock;
use crate::driver::{self, LoadSpec};
use crate::receiver::Receiver;

/// Events per chunk.
const CHUNK: usize = 50_000;
/// The fill gives up when no delivery arrives for this long.
const STALL: Duration = Duration::from_secs(30);

/// What the fill did.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryFigures {
    /// Events asked for (`--history`).
    pub events: usize,
    /// Events the gateway accepted.
    pub accepted_events: u64,
    /// Deliveries that arrived (and are stored, finished).
    pub deliveries: u64,
    pub seconds: f64,
    pub deliveries_per_sec: f64,
}

/// Sends `count` events like `template` (its count, time limit and
/// parsing replaced), `deliveries_per_event` deliveries each, and waits
/// until they all arrived at `receiver`.
pub async fn fill(
    clock: Clock,
    receiver: &Receiver,
    template: &LoadSpec,
    count: usize,
    deliveries_per_event: u64,
    max: Duration,
) -> anyhow::Result<HistoryFigures> {
    let started = Instant::now();
    let send_deadline = started + max;
    let base = receiver.stats().delivered;
    let (mut sent, mut accepted) = (0usize, 0u64);
    while sent < count {
        let left = send_deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            eprintln!("hookgate-bench: history: stopped sending after {max:?} ({sent} of {count} events sent)");
            break;
        }
        let n = CHUNK.min(count - sent);
        let r = driver::run(
            clock,
            LoadSpec {
                count: n,
                max_time: left,
                parse_deliveries: false,
                rate: None,
                ..template.clone()
            },
        )
        .await;
        if r.ok == 0 {
            bail!("history: no event of a chunk was accepted: {:?}", r.errors);
        }
        sent += r.sent as usize;
        accepted += r.ok;
        // Keep the backlog within one chunk.
        let expected = base + accepted * deliveries_per_event;
        let behind = CHUNK as u64 * deliveries_per_event;
        let wait = send_deadline.saturating_duration_since(Instant::now()) + STALL;
        if !receiver.wait_for(expected.saturating_sub(behind), wait, STALL).await {
            bail!(
                "history: deliveries stopped arriving ({} of {expected})",
                receiver.stats().delivered - base
            );
        }
        let got = receiver.stats().delivered - base;
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "hookgate-bench: history: {accepted} of {count} events accepted, {got} deliveries arrived, {:.0}/s, {secs:.0} s",
            got as f64 / secs.max(1e-9)
        );
        if r.cut_short {
            break;
        }
    }
    let expected = base + accepted * deliveries_per_event;
    if !receiver.wait_for(expected, max, STALL).await {
        bail!(
            "history: only {} of {} deliveries arrived",
            receiver.stats().delivered - base,
            expected - base
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    let deliveries = receiver.stats().delivered - base;
    Ok(HistoryFigures {
        events: count,
        accepted_events: accepted,
        deliveries,
        seconds,
        deliveries_per_sec: deliveries as f64 / seconds.max(1e-9),
    })
}
