//! The load generator: `count` POSTs of one body over `concurrency`
//! keep-alive connections, either closed-loop (each connection sends as soon
//! as its previous answer is in) or at a fixed rate.
//!
//! At a fixed rate, request `i` is due at `start + i / rate` and its latency
//! is measured from that due time, not from when a connection got free to
//! send it: a stalled server shows up as latency instead of hiding as a
//! lower send rate (no coordinated omission). Due times are kept by a pacer
//! thread that sleeps to each one with the OS's fine-grained sleep (tens of
//! microseconds late), not by tokio's timer, whose 1 ms tick would send
//! requests in bursts at each millisecond and add up to 1 ms of the
//! driver's own lateness to every latency.
//!
//! Loops are bounded by `count` and by `max_time`; each request by
//! [`REQUEST_TIMEOUT`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use serde::Deserialize;
use tokio::sync::{Barrier, Mutex, mpsc, watch};

use crate::clock::Clock;
use crate::http::{Body, Target, connect};
use crate::tls::{ConnCounters, ConnStats};

/// Longest wait for one answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What to send.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub target: Target,
    pub path: String,
    /// Sent as `Authorization: Bearer <token>`.
    pub token: Option<String>,
    pub body: Bytes,
    pub count: usize,
    pub concurrency: usize,
    /// Requests per second; `None` is closed-loop.
    pub rate: Option<f64>,
    /// No request starts later than this after the first.
    pub max_time: Duration,
    /// Parse 202 answers as `POST /api/events` answers and keep their
    /// delivery ids.
    pub parse_deliveries: bool,
}

/// A delivery the gateway accepted, and when its 202 arrived.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub delivery_id: String,
    pub accepted_us: u64,
}

/// What the load run observed.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    /// Requests that got an answer or failed.
    pub sent: u64,
    /// Answers with a 2xx status.
    pub ok: u64,
    /// Everything else, by kind (`http 503`, `connect`, `timeout`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Latency of each 2xx answer, µs (unsorted).
    pub latencies_us: Vec<u64>,
    pub accepted: Vec<Accepted>,
    /// When the first request started and the last answer ended.
    pub first_start_us: u64,
    pub last_end_us: u64,
    /// Whether `max_time` stopped the run before `count`.
    pub cut_short: bool,
    /// Connections opened (before the clock started, and any reopened
    /// after an error) and their TLS handshakes.
    pub connections: ConnStats,
}

impl LoadResult {
    /// Successful requests per second over the run.
    pub fn ok_per_sec(&self) -> f64 {
        let span = self.last_end_us.saturating_sub(self.first_start_us);
        if span == 0 {
            return 0.0;
        }
        self.ok as f64 * 1e6 / span as f64
    }

    fn merge(&mut self, other: LoadResult) {
        self.sent += other.sent;
        self.ok += other.ok;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.latencies_us.extend(other.latencies_us);
        self.accepted.extend(other.accepted);
        self.last_end_us = self.last_end_us.max(other.last_end_us);
        self.cut_short |= other.cut_short;
        self.connections.add(&other.connections);
    }
}

#[derive(Deserialize)]
struct AcceptedBody {
    deliveries: Vec<DeliveryRef>,
}

#[derive(Deserialize)]
struct DeliveryRef {
    id: String,
}

/// Runs the load and returns what it observed. Every connection is opened
/// before the clock starts, so connection setup (and a dropped SYN's 1 s
/// retransmit when many connect at once) is not part of the measurement.
pub async fn run(clock: Clock, spec: LoadSpec) -> LoadResult {
    let spec = Arc::new(spec);
    let n = spec.concurrency.max(1);
    let (schedule, due_tx) = Schedule::new(&spec, n);
    let connected = Arc::new(Barrier::new(n + 1));
    let (start_tx, start_rx) = watch::channel(None::<u64>);
    let counters = Arc::new(ConnCounters::default());
    let workers: Vec<_> = (0..n)
        .map(|_| {
            let (spec, schedule, connected, mut start_rx, counters) = (
                spec.clone(),
                schedule.clone(),
                connected.clone(),
                start_rx.clone(),
                counters.clone(),
            );
            tokio::spawn(async move {
                // A failed connect is retried by the first request.
                let conn = connect(&spec.target, &counters).await.ok();
                connected.wait().await;
                let start_us = match start_rx.wait_for(Option::is_some).await {
                    Ok(v) => v.unwrap_or_default(),
                    Err(_) => return LoadResult::default(),
                };
                worker(clock, spec, schedule, start_us, conn, &counters).await
            })
        })
        .collect();
    connected.wait().await;
    let start_us = clock.now_us();
    let _ = start_tx.send(Some(start_us));
    let cut_short = Arc::new(AtomicBool::new(false));
    let pacer = due_tx.map(|tx| {
        let (spec, cut_short) = (spec.clone(), cut_short.clone());
        std::thread::spawn(move || pace(clock, &spec, start_us, &tx, &cut_short))
    });
    let mut total = LoadResult {
        first_start_us: start_us,
        last_end_us: start_us,
        ..LoadResult::default()
    };
    for w in workers {
        match w.await {
            Ok(part) => total.merge(part),
            Err(e) => *total.errors.entry(format!("driver task: {e}")).or_default() += 1,
        }
    }
    if let Some(p) = pacer {
        let _ = p.join();
    }
    total.cut_short |= cut_short.load(Ordering::Relaxed);
    total.connections = counters.read();
    total
}

/// Where a worker's next request comes from.
#[derive(Clone)]
enum Schedule {
    /// Closed loop: the next index, sent as soon as the worker is free.
    Closed(Arc<AtomicUsize>),
    /// Fixed rate: due times from the pacer, taken by whichever worker is
    /// free (one waits on the channel at a time).
    Paced(Arc<Mutex<mpsc::Receiver<u64>>>),
}

impl Schedule {
    fn new(spec: &LoadSpec, workers: usize) -> (Self, Option<mpsc::Sender<u64>>) {
        match spec.rate {
            Some(rate) if rate > 0.0 => {
                // Bounded: while every worker is busy the pacer waits, and
                // the due times it then hands out are already past, so the
                // wait counts as latency.
                let (tx, rx) = mpsc::channel(workers);
                (Schedule::Paced(Arc::new(Mutex::new(rx))), Some(tx))
            }
            _ => (Schedule::Closed(Arc::new(AtomicUsize::new(0))), None),
        }
    }

    /// The next request's due time (µs on `clock`), or `None` when the run
    /// is over.
    async fn next(&self, clock: &Clock, count: usize) -> Option<u64> {
        match self {
            Schedule::Closed(next) => (next.fetch_add(1, Ordering::Relaxed) < count).then(|| clock.now_us()),
            Schedule::Paced(rx) => rx.lock().await.recv().await,
        }
    }
}

/// The pacer thread: hands out request `i`'s due time at `start + i / rate`,
/// sleeping to it first, until `count` or `max_time`.
#[allow(
    clippy::disallowed_methods,
    reason = "the pacer's own thread, never an async runtime's"
)]
fn pace(clock: Clock, spec: &LoadSpec, start_us: u64, tx: &mpsc::Sender<u64>, cut_short: &AtomicBool) {
    let rate = spec.rate.unwrap_or(1.0);
    let deadline_us = start_us + u64::try_from(spec.max_time.as_micros()).unwrap_or(u64::MAX);
    for i in 0..spec.count {
        let due_us = start_us + (i as f64 * 1e6 / rate) as u64;
        if due_us > deadline_us {
            cut_short.store(true, Ordering::Relaxed);
            return;
        }
        let now_us = clock.now_us();
        if due_us > now_us {
            std::thread::sleep(Duration::from_micros(due_us - now_us));
        }
        if tx.blocking_send(due_us).is_err() {
            return;
        }
    }
}

async fn worker(
    clock: Clock,
    spec: Arc<LoadSpec>,
    schedule: Schedule,
    start_us: u64,
    mut conn: Option<SendRequest<Body>>,
    counters: &ConnCounters,
) -> LoadResult {
    let mut out = LoadResult::default();
    let deadline_us = start_us + u64::try_from(spec.max_time.as_micros()).unwrap_or(u64::MAX);
    while let Some(due_us) = schedule.next(&clock, spec.count).await {
        if due_us > deadline_us {
            out.cut_short = true;
            break;
        }
        out.sent += 1;
        let result = tokio::time::timeout(REQUEST_TIMEOUT, one(&spec, &mut conn, counters)).await;
        let end_us = clock.now_us();
        out.last_end_us = out.last_end_us.max(end_us);
        match result {
            Ok(Ok((status, body))) if (200..300).contains(&status) => {
                out.ok += 1;
                out.latencies_us.push(end_us.saturating_sub(due_us));
                if spec.parse_deliveries {
                    match serde_json::from_slice::<AcceptedBody>(&body) {
                        Ok(a) => out.accepted.extend(a.deliveries.into_iter().map(|d| Accepted {
                            delivery_id: d.id,
                            accepted_us: end_us,
                        })),
                        Err(_) => *out.errors.entry("unparsable 2xx body".into()).or_default() += 1,
                    }
                }
            }
            Ok(Ok((status, _))) => *out.errors.entry(format!("http {status}")).or_default() += 1,
            Ok(Err(e)) => {
                conn = None;
                *out.errors.entry(error_kind(&e)).or_default() += 1;
                // A refused connection would otherwise spin through the count.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(_) => {
                conn = None;
                *out.errors.entry("timeout".into()).or_default() += 1;
            }
        }
    }
    out
}

/// One request on the worker's connection (opened or reopened as needed).
async fn one(
    spec: &LoadSpec,
    conn: &mut Option<SendRequest<Body>>,
    counters: &ConnCounters,
) -> anyhow::Result<(u16, Bytes)> {
    let sender = match conn {
        Some(s) if !s.is_closed() => s,
        _ => conn.insert(connect(&spec.target, counters).await?),
    };
    sender.ready().await?;
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(spec.path.as_str())
        .header("host", spec.target.host.as_str())
        .header("content-type", "application/json");
    if let Some(t) = &spec.token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = sender.send_request(req.body(Body::new(spec.body.clone()))?).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

fn error_kind(e: &anyhow::Error) -> String {
    let text = e.to_string();
    if text.starts_with("connect") {
        "connect".into()
    } else if text.starts_with("HTTP handshake") {
        "handshake".into()
    } else if text.starts_with("TLS handshake") {
        "tls handshake".into()
    } else {
        format!("io: {}", e.root_cause())
    }
}

/// `{"type": <event_type>, "data": <data>}` where `data` is JSON of exactly
/// `payload_bytes` bytes (at least 12): the bytes each delivery carries.
pub fn event_body(event_type: &str, payload_bytes: usize) -> Bytes {
    let data = payload(payload_bytes);
    let mut body = Vec::with_capacity(data.len() + event_type.len() + 24);
    body.extend_from_slice(b"{\"type\":\"");
    body.extend_from_slice(event_type.as_bytes());
    body.extend_from_slice(b"\",\"data\":");
    body.extend_from_slice(&data);
    body.push(b'}');
    Bytes::from(body)
}

/// A JSON object of exactly `bytes` bytes (at least 12): `{"pad":"xx…"}`.
pub fn payload(bytes: usize) -> Vec<u8> {
    let fill = bytes.max(12) - 10;
    let mut v = Vec::with_capacity(fill + 10);
    v.extend_from_slice(b"{\"pad\":\"");
    v.extend(std::iter::repeat_n(b'x', fill));
    v.extend_from_slice(b"\"}");
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_the_exact_size_and_parse() {
        for n in [12, 256, 1024, 65536] {
            let p = payload(n);
            assert_eq!(p.len(), n);
            let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
            assert!(v["pad"].is_string());
        }
        let body = event_body("bench.event", 256);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["type"], "bench.event");
        assert_eq!(serde_json::to_vec(&v["data"]).unwrap().len(), 256);
    }
}
