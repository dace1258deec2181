//! Every metric hookgate exports (docs/operations.md), defined in one place, and the
//! Prometheus text rendering for `GET /metrics`.
//!
//! Recording goes through the `metrics` facade to one process-wide
//! Prometheus recorder (installed on first use), so gateways started twice
//! in one process (tests) share it.

use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use foldhash::HashMap;
use metrics::{Counter, Histogram, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Histogram buckets for durations, in seconds.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder (once per process) and returns its handle, or
/// `None` if another recorder was installed first.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), DURATION_BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    describe_gauge!(
        "hookgate_circuit_state",
        "Circuit breaker per webhook: 0 closed, 1 half-open (probing), 2 open"
    );
    describe_counter!(
        "hookgate_circuit_transitions_total",
        "Circuit breaker changes made by this gateway, by the state entered"
    );
    describe_counter!(
        "hookgate_events_received_total",
        "Events accepted by POST /api/events, by type"
    );
    describe_counter!(
        "hookgate_delivery_attempts_total",
        "Delivery attempts, by webhook and result"
    );
    describe_counter!(
        "hookgate_deliveries_total",
        "Deliveries that reached a final state, by webhook and outcome"
    );
    describe_histogram!(
        "hookgate_delivery_duration_seconds",
        "Time of one delivery attempt, by webhook"
    );
    describe_counter!("hookgate_retries_total", "Retries scheduled, by webhook");
    describe_counter!(
        "hookgate_rate_limited_total",
        "Deliveries that waited for their webhook's rate limit"
    );
    describe_gauge!("hookgate_queue_depth", "Deliveries in the store's queues, by status");
    describe_histogram!("hookgate_plugin_duration_seconds", "Time of one plugin call, by plugin");
}

/// Folds recorded histogram samples into their buckets. The recorder keeps
/// raw samples until then, so the gateway calls this every few seconds:
/// without it memory would grow with every delivery between scrapes.
pub fn upkeep() {
    if let Some(h) = install() {
        h.run_upkeep();
    }
}

/// The exposition text.
pub fn render() -> String {
    install().map(PrometheusHandle::render).unwrap_or_default()
}

/// Handles of the per-event and per-delivery series, kept so recording one
/// needs no key built, hashed and looked up in the recorder's registry (an
/// allocation or two per series each time). A series still appears only
/// once first recorded.
#[derive(Default)]
struct Handles<T> {
    by_name: RwLock<HashMap<String, Arc<T>>>,
}

impl<T: Default> Handles<T> {
    fn get(&self, name: &str) -> Arc<T> {
        if let Some(h) = self.by_name.read().unwrap_or_else(|e| e.into_inner()).get(name) {
            return h.clone();
        }
        self.by_name
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_owned())
            .or_default()
            .clone()
    }
}

/// One webhook's delivery series, each registered on first use.
#[derive(Default)]
struct WebhookSeries {
    /// `hookgate_delivery_attempts_total` by [`ATTEMPT_RESULTS`].
    attempts: [OnceLock<Counter>; ATTEMPT_RESULTS.len()],
    duration: OnceLock<Histogram>,
    /// `hookgate_deliveries_total` by [`OUTCOMES`].
    deliveries: [OnceLock<Counter>; OUTCOMES.len()],
    retries: OnceLock<Counter>,
    rate_limited: OnceLock<Counter>,
}

const ATTEMPT_RESULTS: [&str; 6] = [
    "success",
    "http_4xx",
    "http_5xx",
    "timeout",
    "connect_error",
    "plugin_error",
];
const OUTCOMES: [&str; 3] = ["succeeded", "dead", "filtered"];

fn webhook(id: &str) -> Arc<WebhookSeries> {
    static SERIES: OnceLock<Handles<WebhookSeries>> = OnceLock::new();
    SERIES.get_or_init(Handles::default).get(id)
}

/// The handle in `slot`, registered with `make` the first time (after the
/// recorder is installed, so no handle kept is a no-op one).
fn handle<T: Clone>(slot: &OnceLock<T>, make: impl FnOnce() -> T) -> T {
    slot.get_or_init(|| {
        install();
        make()
    })
    .clone()
}

/// The counter for `label` among `labels`, kept in the matching slot.
fn labelled(slots: &[OnceLock<Counter>], labels: &[&str], label: &str, make: impl FnOnce() -> Counter) -> Counter {
    match labels.iter().position(|l| *l == label) {
        Some(i) => handle(&slots[i], make),
        None => make(),
    }
}

pub fn event_received(event_type: &str) {
    #[derive(Default)]
    struct Received(OnceLock<Counter>);
    static BY_TYPE: OnceLock<Handles<Received>> = OnceLock::new();
    let r = BY_TYPE.get_or_init(Handles::default).get(event_type);
    handle(
        &r.0,
        || counter!("hookgate_events_received_total", "type" => event_type.to_owned()),
    )
    .increment(1);
}

/// One attempt: `result` is `success`, `http_4xx`, `http_5xx`, `timeout`,
/// `connect_error` or `plugin_error`.
pub fn attempt(webhook_id: &str, result: &'static str, took: Duration) {
    let s = webhook(webhook_id);
    labelled(
        &s.attempts,
        &ATTEMPT_RESULTS,
        result,
        || counter!("hookgate_delivery_attempts_total", "webhook" => webhook_id.to_owned(), "result" => result),
    )
    .increment(1);
    handle(
        &s.duration,
        || histogram!("hookgate_delivery_duration_seconds", "webhook" => webhook_id.to_owned()),
    )
    .record(took.as_secs_f64());
}

/// A final state: `succeeded`, `dead` or `filtered`.
pub fn delivery(webhook_id: &str, outcome: &'static str) {
    let s = webhook(webhook_id);
    labelled(
        &s.deliveries,
        &OUTCOMES,
        outcome,
        || counter!("hookgate_deliveries_total", "webhook" => webhook_id.to_owned(), "outcome" => outcome),
    )
    .increment(1);
}

pub fn retry(webhook_id: &str) {
    webhook_counter(webhook_id, |s| &s.retries, "hookgate_retries_total").increment(1);
}

pub fn rate_limited(webhook_id: &str) {
    webhook_counter(webhook_id, |s| &s.rate_limited, "hookgate_rate_limited_total").increment(1);
}

/// A webhook's counter with the `webhook` label alone, kept in `slot`.
fn webhook_counter(webhook_id: &str, slot: fn(&WebhookSeries) -> &OnceLock<Counter>, name: &'static str) -> Counter {
    let s = webhook(webhook_id);
    handle(slot(&s), || counter!(name, "webhook" => webhook_id.to_owned()))
}

/// A breaker changed state (this gateway made the change).
pub fn circuit_transition(webhook: &str, to: crate::circuit::CircuitState) {
    counter!("hookgate_circuit_transitions_total", "webhook" => webhook.to_owned(), "to" => to.as_str()).increment(1);
    circuit_state(webhook, to);
}

/// A webhook's breaker: 0 closed, 1 half-open, 2 open.
pub fn circuit_state(webhook: &str, state: crate::circuit::CircuitState) {
    gauge!("hookgate_circuit_state", "webhook" => webhook.to_owned()).set(state.gauge());
}

pub fn queue_depth(status: &'static str, n: u64) {
    gauge!("hookgate_queue_depth", "status" => status).set(n as f64);
}

pub fn plugin_call(plugin: &str, took: Duration) {
    histogram!("hookgate_plugin_duration_seconds", "plugin" => plugin.to_owned()).record(took.as_secs_f64());
}
