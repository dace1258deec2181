//! The webhook receiver: a hyper server on 127.0.0.1 that answers fast and
//! keeps just enough to judge the run.
//!
//! For every request it records the arrival time of the first successful
//! attempt per `X-Delivery-ID` (later successes count as duplicates),
//! verifies the `X-Hub-Signature` of a deterministic sample (every n-th
//! request) with the known secret, and counts attempts after the first.
//! Scenario knobs: answer after a fixed delay (a slow receiver), and answer
//! 500 to an exact share of requests (request k fails when
//! `floor((k+1)·r) > floor(k·r)`), so the gateway retries.
//! With `--tls` it serves HTTPS ([`Receiver::start_tls`]); either way it
//! counts the connections it accepts and their TLS handshakes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::Serialize;
use sha2::Sha256;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::http::{Body, empty, listen_loopback, spawn_server_with};
use crate::tls::{ConnCounters, ConnStats};

/// How the receiver behaves.
#[derive(Debug, Clone)]
pub struct ReceiverOptions {
    /// The webhook secret (`X-Hub-Signature` keys with its UTF-8 bytes).
    pub secret: String,
    /// Verify every n-th request's signature (1 = all, 0 = none).
    pub verify_every: u64,
    /// Share of requests answered 500, 0..1.
    pub fail_ratio: f64,
    /// Delay before answering.
    pub delay: Duration,
}

/// Counters, readable at any time.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ReceiverStats {
    pub requests: u64,
    /// Distinct delivery ids answered 2xx.
    pub delivered: u64,
    /// 2xx answers to a delivery id already delivered.
    pub duplicates: u64,
    /// Requests with `X-Delivery-Attempt` > 1.
    pub retries_seen: u64,
    /// Requests answered 500 on purpose.
    pub failed_on_purpose: u64,
    pub signatures_checked: u64,
    pub signatures_bad: u64,
    /// Requests without an `X-Delivery-ID` header.
    pub missing_id: u64,
    /// Body bytes of all requests (shows what a plugin did to the payload).
    pub body_bytes: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    delivered: AtomicU64,
    duplicates: AtomicU64,
    retries_seen: AtomicU64,
    failed_on_purpose: AtomicU64,
    signatures_checked: AtomicU64,
    signatures_bad: AtomicU64,
    missing_id: AtomicU64,
    body_bytes: AtomicU64,
}

struct State {
    clock: Clock,
    opts: ReceiverOptions,
    counters: Counters,
    /// Delivery id -> µs of its first 2xx answer.
    arrivals: Mutex<HashMap<String, u64>>,
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    addr: SocketAddr,
    state: Arc<State>,
    conns: Arc<ConnCounters>,
    tls: bool,
    server: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Receiver {
    /// Starts on a free port of 127.0.0.1.
    pub async fn start(clock: Clock, opts: ReceiverOptions) -> anyhow::Result<Self> {
        Self::start_tls(clock, opts, None).await
    }

    /// Starts on a free port of 127.0.0.1, serving HTTPS with `tls`.
    pub async fn start_tls(
        clock: Clock,
        opts: ReceiverOptions,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> anyhow::Result<Self> {
        let listener = listen_loopback()?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            clock,
            opts,
            counters: Counters::default(),
            arrivals: Mutex::new(HashMap::new()),
        });
        let s = state.clone();
        let conns = Arc::new(ConnCounters::default());
        let https = tls.is_some();
        let server = spawn_server_with(listener, tls, conns.clone(), move |req| handle(s.clone(), req));
        Ok(Receiver {
            addr,
            state,
            conns,
            tls: https,
            server,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether it serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Connections accepted so far, and their TLS handshakes.
    pub fn connections(&self) -> ConnStats {
        self.conns.read()
    }

    pub fn stats(&self) -> ReceiverStats {
        let c = &self.state.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ReceiverStats {
            requests: get(&c.requests),
            delivered: get(&c.delivered),
            duplicates: get(&c.duplicates),
            retries_seen: get(&c.retries_seen),
            failed_on_purpose: get(&c.failed_on_purpose),
            signatures_checked: get(&c.signatures_checked),
            signatures_bad: get(&c.signatures_bad),
            missing_id: get(&c.missing_id),
            body_bytes: get(&c.body_bytes),
        }
    }

    /// A copy of the arrival times so far.
    pub fn arrivals(&self) -> HashMap<String, u64> {
        self.state.arrivals.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until at least `expected` distinct deliveries arrived, giving
    /// up after `timeout` overall or `stall` without any new arrival.
    /// Returns whether all arrived.
    pub async fn wait_for(&self, expected: u64, timeout: Duration, stall: Duration) -> bool {
        let started = tokio::time::Instant::now();
        let mut last = self.stats().delivered;
        let mut last_change = started;
        loop {
            let now_delivered = self.stats().delivered;
            if now_delivered >= expected {
                return true;
            }
            let now = tokio::time::Instant::now();
            if now_delivered != last {
                last = now_delivered;
                last_change = now;
            }
            if now - started >= timeout || now - last_change >= stall {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Whether request number `k` (0-based) is one of the `ratio` share answered
/// 500: exactly `floor(n·ratio)` of the first `n` requests are.
pub fn fails(k: u64, ratio: f64) -> bool {
    if ratio <= 0.0 {
        return false;
    }
    ((k + 1) as f64 * ratio).floor() > (k as f64 * ratio).floor()
}

/// `sha256=<lowercase hex HMAC-SHA256 of body>`, keyed with `secret`.
pub fn hub_signature(secret: &str, body: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    m.update(body);
    let digest = m.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in digest.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn header<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let c = &state.counters;
    let k = c.requests.fetch_add(1, Ordering::Relaxed);
    let id = header(&req, "x-delivery-id").map(str::to_owned);
    let signature = header(&req, "x-hub-signature").map(str::to_owned);
    if header(&req, "x-delivery-attempt").is_some_and(|a| a != "1") {
        c.retries_seen.fetch_add(1, Ordering::Relaxed);
    }
    // Read the whole body, as a real receiver must before answering.
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return empty(StatusCode::BAD_REQUEST),
    };
    c.body_bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    let verify = state.opts.verify_every > 0 && k.is_multiple_of(state.opts.verify_every);
    if verify {
        c.signatures_checked.fetch_add(1, Ordering::Relaxed);
        let expected = hub_signature(&state.opts.secret, &body);
        if signature.as_deref() != Some(expected.as_str()) {
            c.signatures_bad.fetch_add(1, Ordering::Relaxed);
        }
    }
    if !state.opts.delay.is_zero() {
        tokio::time::sleep(state.opts.delay).await;
    }
    if fails(k, state.opts.fail_ratio) {
        c.failed_on_purpose.fetch_add(1, Ordering::Relaxed);
        return empty(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let Some(id) = id else {
        c.missing_id.fetch_add(1, Ordering::Relaxed);
        return empty(StatusCode::NO_CONTENT);
    };
    let now = state.clock.now_us();
    let first = {
        let mut arrivals = state.arrivals.lock().unwrap_or_else(|e| e.into_inner());
        match arrivals.entry(id) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(now);
                true
            }
        }
    };
    if first {
        c.delivered.fetch_add(1, Ordering::Relaxed);
    } else {
        c.duplicates.fetch_add(1, Ordering::Relaxed);
    }
    empty(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_ratio_is_exact_and_deterministic() {
        let n = (0..1000).filter(|&k| fails(k, 0.1)).count();
        assert_eq!(n, 100);
        assert_eq!((0..1000).filter(|&k| fails(k, 0.0)).count(), 0);
        assert_eq!((0..1000).filter(|&k| fails(k, 1.0)).count(), 1000);
        assert_eq!((0..7).filter(|&k| fails(k, 0.5)).count(), 3);
    }

    /// RFC 4231 test case 2, as the gateway's signing tests use it.
    #[test]
    fn hub_signature_matches_rfc4231() {
        assert_eq!(
            hub_signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
