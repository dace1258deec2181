//! The yardstick: this machine's loopback ceiling, measured in the same run.
//!
//! A bare hyper server that reads the body and answers 204, driven by the
//! very same driver code (same connections, same concurrency, same body) as
//! the gateway. Nothing that goes through the gateway can be faster than
//! this: each delivery costs at least one such exchange in and one out, plus
//! the store. Shared 2-core machines drift a lot between runs, so figures
//! read as a fraction of this ceiling compare across runs far better than
//! absolute ones.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::StatusCode;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::driver::{self, LoadSpec};
use crate::http::{Target, empty, listen_loopback, spawn_server};
use crate::stats::Summary;

/// Most requests sent, unmeasured, before a measurement.
const WARMUP: usize = 2000;

/// A running 204 sink; stops when dropped.
pub struct Sink {
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Sink {
    /// Starts on a free port of 127.0.0.1.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = listen_loopback()?;
        let addr = listener.local_addr()?;
        let server = spawn_server(listener, |req| async move {
            // Read the body like a real server, then answer.
            match req.into_body().collect().await {
                Ok(_) => empty(StatusCode::NO_CONTENT),
                Err(_) => empty(StatusCode::BAD_REQUEST),
            }
        });
        Ok(Sink { addr, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// One ceiling measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Ceiling {
    pub requests: u64,
    pub errors: u64,
    pub requests_per_sec: f64,
    pub latency_us: Summary,
}

/// Drives `count` closed-loop requests with `body` at `concurrency` against a
/// fresh sink (bounded by `max_time`).
pub async fn measure(
    clock: Clock,
    concurrency: usize,
    body: Bytes,
    count: usize,
    max_time: Duration,
) -> anyhow::Result<Ceiling> {
    let sink = Sink::start().await?;
    let spec = |count| LoadSpec {
        target: Target::local(sink.addr()),
        path: "/api/events".into(),
        token: Some("ceiling".into()),
        body: body.clone(),
        count,
        concurrency,
        rate: None,
        max_time,
        parse_deliveries: false,
    };
    // Unmeasured warm-up: connections, allocator, CPU frequency.
    driver::run(clock, spec((count / 10).min(WARMUP))).await;
    let result = driver::run(clock, spec(count)).await;
    Ok(Ceiling {
        requests: result.ok,
        errors: result.errors.values().sum(),
        requests_per_sec: result.ok_per_sec(),
        latency_us: Summary::of(result.latencies_us),
    })
}
