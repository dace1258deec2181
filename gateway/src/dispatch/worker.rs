//! The claim loop and the life of one claimed delivery.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::admission::{self, Candidate, Dead, Paced, Screened, Start};
use super::attempt::{Payload, Verdict, attempt};
use super::breaker;
use super::inflight::{self, InFlight};
use super::transform::Transformed;
use super::{CLAIM_BATCH, IDLE_POLL, Shared};
use crate::circuit::Circuit;
use crate::metrics;
use crate::operational::reason;
use crate::ratelimit::Gcra;
use crate::stats::Field;
use crate::store::{AttemptRecord, ClaimLimit, ClaimRequest, Completion, Job, Outcome, RateDecision, RateRequest};
use crate::webhooks::Webhook;

/// How often to look for other webhooks' work while every known webhook is
/// at its cap, and how much to claim then.
const PROBE_EVERY: Duration = Duration::from_millis(100);
const PROBE: usize = CLAIM_BATCH / 4;

pub(super) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let mut recent: HashSet<String> = HashSet::new();
    let mut last_probe = Instant::now();
    loop {
        // Claim no more than the webhooks seen lately can start: deliveries
        // of a webhook at its cap would only be deferred again.
        let mut rooms = inflight::rooms(&shared, &recent);
        let mut budget = claim_budget(&rooms, &mut last_probe);
        if budget == 0 {
            // Waiting for room: the next attempt to end leaves some and
            // wakes this loop (`inflight`). Looked at again once the flag
            // is up, so room made just before is not missed.
            shared.awaiting_room.store(true, Ordering::SeqCst);
            rooms = inflight::rooms(&shared, &recent);
            budget = claim_budget(&rooms, &mut last_probe);
        }
        if budget == 0 {
            tokio::select! {
                () = stop.cancelled() => return,
                () = shared.wake.notified() => {}
                () = tokio::time::sleep(PROBE_EVERY) => {}
            }
            continue;
        }
        shared.awaiting_room.store(false, Ordering::SeqCst);
        // Hold permits first: never claim more than can start now.
        let first = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            p = shared.total.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let mut permits = vec![first];
        while permits.len() < budget.min(CLAIM_BATCH) {
            match shared.total.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        let req = ClaimRequest {
            first: permits.len(),
            retry: shared.retries.available_permits().min(permits.len()),
            lease: shared.lease,
            owner: shared.owner.clone(),
            limits: claim_limits(&shared, rooms),
        };
        let batch = match shared.store.claim(&req).await {
            Ok(b) => {
                shared.health.ok();
                // Short of the budget: the queue is empty for now.
                let short = b.jobs.len() < req.first.max(req.retry) && b.next_due_in != Some(Duration::ZERO);
                shared.caught_up.store(short, Ordering::Relaxed);
                b
            }
            Err(e) => {
                shared.caught_up.store(false, Ordering::Relaxed);
                drop(permits);
                let wait = shared.health.failed("claiming due deliveries", &e);
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(wait) => continue,
                }
            }
        };
        if batch.jobs.is_empty() {
            drop(permits);
            let wait = batch.next_due_in.map_or(IDLE_POLL, |d| d.min(IDLE_POLL));
            tokio::select! {
                () = stop.cancelled() => return,
                () = shared.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        recent = batch.jobs.iter().map(|j| j.webhook_id.clone()).collect();
        let mut taken = batch.taken;
        // None taken (a store that leaves rate limits to the caller).
        taken.resize(batch.jobs.len(), None);
        let jobs = batch.jobs.into_iter().zip(taken).collect();
        let _turn = shared.routing.lock().await;
        route(&shared, jobs, permits).await;
    }
}

/// How many deliveries to claim now: the room left under the per-webhook
/// cap of the webhooks seen in the last batch or in flight. When all of
/// them are at their cap, a small probe every [`PROBE_EVERY`] finds work of
/// other webhooks queued behind theirs.
fn claim_budget(rooms: &[(String, usize)], last_probe: &mut Instant) -> usize {
    if rooms.is_empty() {
        return CLAIM_BATCH;
    }
    let room: usize = rooms.iter().map(|(_, room)| room).sum();
    if room > 0 {
        room
    } else if last_probe.elapsed() >= PROBE_EVERY {
        *last_probe = Instant::now();
        PROBE
    } else {
        0
    }
}

/// Most webhooks whose rate limits a claim offers to take.
const CLAIM_LIMITS: usize = 64;

/// The rate limits of the webhooks a claim will likely hand out (`rooms`:
/// those of the last batch and those in flight, with their room), for the
/// store to take in the same call, each for as many deliveries as the
/// webhook has room for: a claimed batch then needs no rate-limit call of
/// its own, as a handed-off one (`handoff`). Other jobs are checked after,
/// if they can start.
fn claim_limits(shared: &Shared, rooms: Vec<(String, usize)>) -> Vec<ClaimLimit> {
    rooms
        .into_iter()
        .filter(|(_, room)| *room > 0)
        .take(CLAIM_LIMITS)
        .filter_map(|(webhook_id, at_most)| {
            let hook = shared.registry.get(&webhook_id)?;
            Some(ClaimLimit {
                limit: rate_request(shared, &hook),
                webhook_id,
                at_most,
            })
        })
        .collect()
}

/// A job past the screen: its webhook, the breaker probe it carries, and
/// its rate limit if already taken.
type Ready = (Job, Arc<Webhook>, Option<Circuit>, Option<RateDecision>);

/// Runs the admission policy ([`admission`]) over a claimed batch and does
/// its I/O: records dead and deferred jobs, asks the rate limiter, spawns
/// the attempts that start now. `permits` holds a slot for every job. A
/// job may come with its rate limit already taken (`handoff`).
pub(super) async fn route(
    shared: &Arc<Shared>,
    jobs: Vec<(Job, Option<RateDecision>)>,
    mut permits: Vec<OwnedSemaphorePermit>,
) {
    let (jobs, taken): (Vec<Job>, Vec<Option<RateDecision>>) = jobs.into_iter().unzip();
    if jobs.iter().any(|j| shared.registry.get(&j.webhook_id).is_none()) {
        // Created through another gateway moments ago, or deleted: look again.
        if let Err(e) = shared.registry.refresh(shared.store.as_ref()).await {
            let wait = shared.health.failed("reloading webhooks", &e);
            for job in jobs {
                defer(shared, job, wait).await;
            }
            return;
        }
    }
    // One lookup per webhook of the batch, all before any await below.
    let hooks: foldhash::HashMap<String, Option<Arc<Webhook>>> = jobs
        .iter()
        .map(|j| (j.webhook_id.clone(), shared.registry.get(&j.webhook_id)))
        .collect();
    let hook = |id: &str| hooks.get(id).and_then(Option::as_ref);
    let now = crate::store::now_ms();
    let candidates: Vec<Candidate<'_>> = jobs
        .iter()
        .map(|j| Candidate {
            webhook_id: &j.webhook_id,
            webhook_enabled: hook(&j.webhook_id).map(|h| h.enabled),
            data_missing: j.data_missing,
            gate: crate::circuit::gate(hook(&j.webhook_id).and_then(|h| h.circuit.as_ref()), now),
        })
        .collect();
    let screened = {
        let loads = shared.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        admission::screen(
            &candidates,
            now,
            |w| inflight::load_of(&loads, w),
            inflight::load_limit(shared),
            |w| shared.typical_duration(w),
            || Duration::from_millis(rand::random_range(0..200)),
        )
    };
    drop(candidates);
    let mut ready: Vec<Ready> = Vec::with_capacity(jobs.len());
    for ((job, verdict), taken) in jobs.into_iter().zip(screened).zip(taken) {
        match verdict {
            Screened::Dead(why) => {
                if why == Dead::DataMissing {
                    tracing::error!(delivery_id = %job.delivery_id, "event data missing from the store; dead-lettering");
                }
                finish_without_attempt(shared, job, Outcome::Dead, why.reason()).await;
            }
            Screened::Defer(wait) => defer(shared, job, wait).await,
            Screened::Probe => match hook(&job.webhook_id) {
                Some(hook) => match breaker::try_probe(shared, hook).await {
                    Some(probing) => {
                        tracing::info!(webhook_id = %hook.id, delivery_id = %job.delivery_id, "circuit half-open: probing");
                        ready.push((job, hook.clone(), Some(probing), taken));
                    }
                    None => defer(shared, job, admission::PROBE_WAIT).await,
                },
                None => finish_without_attempt(shared, job, Outcome::Dead, Dead::WebhookGone.reason()).await,
            },
            Screened::Ready => match hook(&job.webhook_id) {
                Some(hook) => ready.push((job, hook.clone(), None, taken)),
                None => finish_without_attempt(shared, job, Outcome::Dead, Dead::WebhookGone.reason()).await,
            },
        }
    }

    let reqs: Vec<RateRequest> = ready.iter().map(|(_, hook, _, _)| rate_request(shared, hook)).collect();
    // Only the limits not taken yet: one call for the batch.
    let asked: Vec<RateRequest> = ready
        .iter()
        .zip(&reqs)
        .filter(|((_, _, _, taken), _)| taken.is_none())
        .map(|(_, req)| req.clone())
        .collect();
    let mut answers = match shared.store.acquire(&asked).await {
        Ok(decisions) => decisions.into_iter(),
        Err(e) => {
            let wait = shared.health.failed("checking rate limits", &e);
            for (job, _, _, _) in ready {
                defer(shared, job, wait).await;
            }
            return;
        }
    };
    let decisions: Vec<RateDecision> = ready
        .iter()
        .map(|(_, _, _, taken)| {
            taken
                .or_else(|| answers.next())
                .unwrap_or(RateDecision::Wait(admission::BUSY_DEFER))
        })
        .collect();
    let paced: Vec<Paced<'_>> = ready
        .iter()
        .zip(&decisions)
        .zip(&reqs)
        .map(|(((job, hook, _, _), decision), req)| Paced {
            webhook_id: &hook.id,
            decision: *decision,
            interval: Duration::from_micros(req.limit.interval_us),
            retry: job.attempts > 0,
        })
        .collect();
    let starts = admission::pace(&paced, permits.len(), shared.retries.available_permits());
    drop(paced);
    for ((job, hook, probe, _), start) in ready.into_iter().zip(starts) {
        match start {
            Start::RateLimited(wait) => {
                metrics::rate_limited(&hook.id);
                shared.tally.count(&hook.id, Field::RateLimited);
                tracing::debug!(webhook_id = %hook.id, wait_ms = wait.as_millis() as u64, "rate limited; waiting for the next slot");
                defer(shared, job, wait).await;
            }
            Start::Defer(wait) => defer(shared, job, wait).await,
            Start::Now => {
                let retry_permit = if job.attempts > 0 {
                    // Only this loop takes retry permits: the count planned
                    // for is there.
                    match shared.retries.clone().try_acquire_owned() {
                        Ok(p) => Some(p),
                        Err(_) => {
                            defer(shared, job, admission::BUSY_DEFER).await;
                            continue;
                        }
                    }
                } else {
                    None
                };
                let Some(permit) = permits.pop() else {
                    defer(shared, job, admission::BUSY_DEFER).await;
                    continue;
                };
                inflight::start_or_park(shared, job, hook, probe, permit, retry_permit);
            }
        }
    }
}

/// Runs one attempt on its own task (traced as `attempt`).
pub(super) fn spawn_attempt(shared: &Arc<Shared>, job: Job, hook: Arc<Webhook>, probe: Option<Circuit>, held: Held) {
    let span = tracing::info_span!(
        "attempt",
        webhook_id = %hook.id,
        delivery_id = %job.delivery_id,
        attempt = job.attempts + 1,
        status = tracing::field::Empty,
    );
    // Boxed first: the attempt's future is kilobytes, and the span, the
    // tracker and the spawn would each move it again.
    let attempt = Box::pin(run_one(
        shared.clone(),
        job,
        hook,
        probe,
        shared.hard_stop.clone(),
        held,
    ));
    shared.attempts.spawn(attempt.instrument(span));
}

/// The rate limit of deliveries to `hook`.
pub(super) fn rate_request(shared: &Shared, hook: &Webhook) -> RateRequest {
    let d = &shared.config.delivery;
    let mut key = String::with_capacity(3 + hook.id.len());
    key.push_str("wh:");
    key.push_str(&hook.id);
    RateRequest {
        key,
        limit: Gcra::per_minute(
            hook.rate_limit_per_minute.unwrap_or(d.rate_limit_per_minute),
            d.rate_limit_burst,
        ),
    }
}

type Held = (OwnedSemaphorePermit, Option<OwnedSemaphorePermit>, InFlight);

async fn run_one(
    shared: Arc<Shared>,
    job: Job,
    hook: Arc<Webhook>,
    probe: Option<Circuit>,
    cancel: CancellationToken,
    held: Held,
) {
    let d = &shared.config.delivery;
    let timeout = hook.timeout.unwrap_or(d.timeout);
    let policy = match hook.max_retries {
        Some(max_retries) => crate::retry::RetryPolicy {
            max_retries,
            ..d.retry.clone()
        },
        None => d.retry.clone(),
    };
    let started = std::time::Instant::now();
    let started_at = crate::store::now_ms();
    let started_wall = std::time::SystemTime::now();
    let mut plugin_time = None;

    // Plugins first: the signature covers what they produce.
    let (body, extra, sent) = if hook.plugins.is_empty() {
        (job.data.clone(), Cow::Borrowed(hook.headers.as_slice()), None)
    } else {
        let no_attempt = |error: Option<String>, filtered: Option<String>| AttemptRecord {
            attempt: job.attempts + 1,
            started_at,
            duration_ms: started.elapsed().as_millis() as u64,
            status_code: None,
            error,
            response_body: None,
            filtered,
        };
        let transformed = run_plugins(&shared, &job, &hook).await;
        plugin_time = Some(started.elapsed());
        match transformed {
            Transformed::Forward { body, headers } => {
                // Kept with the outcome only when the chain changed it: an
                // unchanged body is the event's data, which the store has.
                let changed = (body != job.data).then(|| body.clone());
                (body, Cow::Owned(headers), changed)
            }
            Transformed::Drop(reason) => {
                drop(held);
                tracing::debug!(%reason, "a plugin dropped the delivery");
                let traced = Traced::new(&job, &hook, started_wall, plugin_time);
                traced.record(&shared, started.elapsed(), None, "filtered", &Outcome::Filtered);
                note_outcome(&shared, &hook.id, &Outcome::Filtered);
                let record = no_attempt(None, Some(reason));
                commit(&shared, job, Outcome::Filtered, Some(record)).await;
                return;
            }
            Transformed::Failed(error) => {
                drop(held);
                tracing::info!(%error, "plugin failed; the attempt fails");
                metrics::attempt(&hook.id, "plugin_error", started.elapsed());
                shared.tally.attempt(&hook.id, "plugin_error", started.elapsed());
                let outcome = retry_or_dead(&policy, &job, None);
                let traced = Traced::new(&job, &hook, started_wall, plugin_time);
                traced.record(&shared, started.elapsed(), None, "plugin_error", &outcome);
                note_outcome(&shared, &hook.id, &outcome);
                let record = no_attempt(Some(error), None);
                commit(&shared, job, outcome, Some(record)).await;
                return;
            }
        }
    };

    let payload = Payload { body, headers: &extra };
    let attempted = attempt(
        &shared.outbound,
        &job,
        &hook,
        d.signature_headers,
        payload,
        timeout,
        &cancel,
    )
    .await;
    let took = started.elapsed();
    shared.note_duration(&hook.id, took);
    tracing::Span::current().record("status", tracing::field::display(&attempted.verdict));
    breaker::observe(&shared, &hook, &attempted.verdict, probe).await;

    let (outcome, record) = match &attempted.verdict {
        Verdict::Success => (Outcome::Succeeded, Some(attempted.record)),
        Verdict::Cancelled => (Outcome::Defer(Duration::ZERO), None),
        Verdict::Gone => {
            breaker::disable(&shared, &hook, "receiver answered 410 Gone", reason::GONE).await;
            (Outcome::Dead, Some(attempted.record))
        }
        Verdict::Http { retry_after, .. } => (retry_or_dead(&policy, &job, *retry_after), Some(attempted.record)),
        Verdict::Timeout | Verdict::Connect => (retry_or_dead(&policy, &job, None), Some(attempted.record)),
    };
    // The slot goes once the breaker and the webhook's state have taken
    // this attempt in (both local unless it opened the breaker or disabled
    // the webhook): the delivery that takes the slot next, parked or
    // claimed, sees them.
    drop(held);
    if attempted.verdict != Verdict::Cancelled {
        let label = attempted.verdict.metric_label();
        metrics::attempt(&hook.id, label, took);
        shared.tally.attempt(&hook.id, label, took);
        let status = record.as_ref().and_then(|r| r.status_code);
        Traced::new(&job, &hook, started_wall, plugin_time).record(&shared, took, status, label, &outcome);
    }
    note_outcome(&shared, &hook.id, &outcome);
    commit_sent(&shared, job, outcome, record, sent).await;
}

/// An attempt's trace span (`crate::telemetry`), recorded once its outcome
/// is known; nothing when traces are off.
struct Traced<'a> {
    job: &'a Job,
    hook: &'a Webhook,
    started: std::time::SystemTime,
    plugin_time: Option<Duration>,
}

impl<'a> Traced<'a> {
    fn new(job: &'a Job, hook: &'a Webhook, started: std::time::SystemTime, plugin_time: Option<Duration>) -> Self {
        Traced {
            job,
            hook,
            started,
            plugin_time,
        }
    }

    fn record(&self, shared: &Shared, took: Duration, status_code: Option<u16>, result: &str, outcome: &Outcome) {
        let Some(telemetry) = &shared.telemetry else { return };
        let outcome = match outcome {
            Outcome::Succeeded => "succeeded",
            Outcome::Retry(_) => "retry",
            Outcome::Dead => "dead",
            Outcome::Filtered => "filtered",
            Outcome::Defer(_) => return,
        };
        telemetry.attempt(
            self.started,
            took,
            &crate::telemetry::AttemptSpan {
                webhook_id: &self.hook.id,
                webhook_name: &self.hook.name,
                delivery_id: &self.job.delivery_id,
                event_id: &self.job.event_id,
                event_type: &self.job.event_type,
                attempt: self.job.attempts + 1,
                status_code,
                result,
                outcome,
                plugin_time: self.plugin_time,
            },
        );
    }
}

/// Runs the webhook's plugin chain, starting the plugin runtime if needed.
async fn run_plugins(shared: &Arc<Shared>, job: &Job, hook: &Webhook) -> Transformed {
    super::transform::transform(&shared.plugins, job, hook).await
}

fn note_outcome(shared: &Shared, webhook: &str, outcome: &Outcome) {
    let field = match outcome {
        Outcome::Retry(delay) => {
            metrics::retry(webhook);
            tracing::debug!(delay_ms = delay.as_millis() as u64, "attempt failed; retry scheduled");
            Field::Retries
        }
        Outcome::Dead => {
            metrics::delivery(webhook, "dead");
            tracing::info!("delivery dead-lettered");
            Field::Dead
        }
        Outcome::Succeeded => {
            metrics::delivery(webhook, "succeeded");
            Field::Succeeded
        }
        Outcome::Filtered => {
            metrics::delivery(webhook, "filtered");
            Field::Filtered
        }
        Outcome::Defer(_) => return,
    };
    shared.tally.count(webhook, field);
}

fn retry_or_dead(policy: &crate::retry::RetryPolicy, job: &Job, retry_after: Option<Duration>) -> Outcome {
    let unit = rand::random::<f64>() * 2.0 - 1.0;
    match policy.next_delay(job.next_retry_number(), retry_after, unit) {
        Some(delay) => Outcome::Retry(delay),
        None => Outcome::Dead,
    }
}

async fn defer(shared: &Arc<Shared>, job: Job, delay: Duration) {
    commit(shared, job, Outcome::Defer(delay), None).await;
}

async fn finish_without_attempt(shared: &Arc<Shared>, job: Job, outcome: Outcome, why: &str) {
    metrics::delivery(&job.webhook_id, "dead");
    shared.tally.count(&job.webhook_id, Field::Dead);
    tracing::info!(delivery_id = %job.delivery_id, webhook_id = %job.webhook_id, "{why}; dead-lettering");
    // Recorded like an attempt that never left, so history says why.
    let record = AttemptRecord {
        attempt: job.attempts + 1,
        started_at: crate::store::now_ms(),
        duration_ms: 0,
        status_code: None,
        error: Some(format!("not sent: {why}")),
        response_body: None,
        filtered: None,
    };
    commit(shared, job, outcome, Some(record)).await;
}

async fn commit(shared: &Arc<Shared>, job: Job, outcome: Outcome, attempt: Option<AttemptRecord>) {
    commit_sent(shared, job, outcome, attempt, None).await;
}

/// Like [`commit`], recording the body sent when a plugin changed it.
async fn commit_sent(
    shared: &Arc<Shared>,
    job: Job,
    outcome: Outcome,
    attempt: Option<AttemptRecord>,
    payload: Option<bytes::Bytes>,
) {
    let c = completion(shared, job, outcome, attempt, payload);
    // The committer lives as long as any attempt can; a closed channel means
    // the process is exiting and the lease will hand this delivery out again.
    let _ = shared.commits.send(c).await;
}

/// `job`'s outcome under this gateway's lease, for the committer.
pub(super) fn completion(
    shared: &Shared,
    job: Job,
    outcome: Outcome,
    attempt: Option<AttemptRecord>,
    payload: Option<bytes::Bytes>,
) -> Completion {
    Completion {
        delivery_id: job.delivery_id,
        event_id: job.event_id,
        webhook_id: job.webhook_id,
        owner: shared.owner.clone(),
        outcome,
        attempt,
        payload,
    }
}
