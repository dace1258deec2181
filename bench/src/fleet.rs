//! `--webhooks N`: many webhooks. Before the load, N webhooks are created
//! through the API (most with an exact event type, every fifth with a
//! `prefix.*` pattern; none matches the load's `bench.*` events, so the
//! load still fans out to one webhook and its figures compare with a run
//! without them). Measured:
//!
//! * the time per create of the first and the last thousand (p50, p99);
//! * the gateway's CPU per create, and, on Redis, the CPU per change of a
//!   second gateway on the same store that only follows the change log
//!   (what every other gateway of a fleet pays for one change);
//! * update, secret rotation and delete (`ops` of each on scratch
//!   webhooks), at the start (no other API webhook) and at the end (N of
//!   them): their p50 and the CPU per change of both gateways.
//!
//! Every request is bounded in time; the phase stops at the first error.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use serde::Serialize;

use crate::http::{Body, Target, connect};
use crate::procfs;
use crate::stats::Summary;
use crate::tls::ConnCounters;

/// Longest wait for one API answer.
const API_TIMEOUT: Duration = Duration::from_secs(30);
/// Creates timed at the start and at the end.
const EDGE: usize = 1000;

/// What to run.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    pub target: Target,
    pub token: String,
    /// Where the webhooks point (they never match the load's events).
    pub receiver: std::net::SocketAddr,
    pub count: usize,
    pub concurrency: usize,
    /// Updates, rotations and deletes timed at the start and at the end.
    pub ops: usize,
    /// The gateway serving the API, and a gateway that only follows the
    /// store's change log, for CPU figures.
    pub gateway_pid: Option<u32>,
    pub follower_pid: Option<u32>,
}

/// Update, rotate and delete with some number of webhooks present.
#[derive(Debug, Clone, Serialize)]
pub struct OpsFigures {
    /// API webhooks in the store while they ran.
    pub webhooks_present: usize,
    pub update_us: Summary,
    pub rotate_us: Summary,
    pub delete_us: Summary,
    pub gateway_cpu_ms_per_change: Option<f64>,
    pub follower_cpu_ms_per_change: Option<f64>,
}

/// The many-webhooks figures.
#[derive(Debug, Clone, Serialize)]
pub struct FleetFigures {
    pub webhooks: usize,
    pub create_concurrency: usize,
    pub create_first_1000_us: Summary,
    pub create_last_1000_us: Summary,
    pub creates_per_sec: f64,
    pub gateway_cpu_ms_per_create: Option<f64>,
    pub follower_cpu_ms_per_create: Option<f64>,
    pub at_start: OpsFigures,
    pub at_end: OpsFigures,
}

fn cpu_s(pid: Option<u32>) -> anyhow::Result<Option<f64>> {
    pid.map(|p| procfs::sample(Some(p)).map(|s| s.cpu_s)).transpose()
}

/// CPU milliseconds per change between two readings.
fn per_change(before: Option<f64>, after: Option<f64>, changes: usize) -> Option<f64> {
    let (b, a) = (before?, after?);
    (changes > 0).then(|| (a - b) * 1000.0 / changes as f64)
}

/// The body of webhook `i`: an exact type, or every fifth a prefix.
pub fn webhook_body(receiver: std::net::SocketAddr, i: usize) -> String {
    let events = if i.is_multiple_of(5) {
        format!("tenant{i}.*")
    } else {
        format!("tenant{i}.order.created")
    };
    serde_json::json!({
        "name": format!("fleet {i}"),
        "url": format!("http://{receiver}/fleet/{i}"),
        "events": [events],
        "secret": crate::gateway::SECRET,
    })
    .to_string()
}

/// One API call on a keep-alive connection (reopened as needed); the
/// status, the body and how long it took.
async fn call(
    target: &Target,
    token: &str,
    conn: &mut Option<SendRequest<Body>>,
    method: Method,
    path: &str,
    body: Option<String>,
) -> anyhow::Result<(u16, Bytes, u64)> {
    let started = Instant::now();
    let fut = async {
        let sender = match conn {
            Some(s) if !s.is_closed() => s,
            _ => conn.insert(connect(target, &ConnCounters::default()).await?),
        };
        sender.ready().await?;
        let mut req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header("host", target.host.as_str())
            .header("authorization", format!("Bearer {token}"));
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let body = Bytes::from(body.unwrap_or_default());
        let resp = sender.send_request(req.body(Body::new(body))?).await?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, bytes))
    };
    let (status, bytes) = tokio::time::timeout(API_TIMEOUT, fut)
        .await
        .with_context(|| format!("{method} {path}: no answer within {API_TIMEOUT:?}"))??;
    Ok((status, bytes, started.elapsed().as_micros() as u64))
}

async fn expect(
    spec: &FleetSpec,
    conn: &mut Option<SendRequest<Body>>,
    method: Method,
    path: &str,
    body: Option<String>,
    want: u16,
) -> anyhow::Result<(Bytes, u64)> {
    let (status, bytes, us) = call(&spec.target, &spec.token, conn, method.clone(), path, body).await?;
    if status != want {
        bail!("{method} {path} answered {status}: {}", String::from_utf8_lossy(&bytes));
    }
    Ok((bytes, us))
}

/// Creates webhooks `from..to` over `spec.concurrency` connections; their
/// ids and create times, by index.
async fn create_range(spec: &FleetSpec, from: usize, to: usize) -> anyhow::Result<(Vec<String>, Vec<u64>)> {
    let workers = spec.concurrency.max(1);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(from));
    let mut tasks = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (spec, next) = (spec.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = None;
            let mut done: Vec<(usize, String, u64)> = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= to {
                    return anyhow::Ok(done);
                }
                let body = webhook_body(spec.receiver, i);
                let (answer, us) = expect(&spec, &mut conn, Method::POST, "/api/webhooks", Some(body), 201).await?;
                let v: serde_json::Value = serde_json::from_slice(&answer).context("POST /api/webhooks answer")?;
                let id = v["id"].as_str().context("POST /api/webhooks answer without id")?;
                done.push((i, id.to_owned(), us));
            }
        }));
    }
    let mut all = Vec::with_capacity(to - from);
    for t in tasks {
        all.extend(t.await.context("create task")??);
    }
    all.sort_unstable_by_key(|(i, _, _)| *i);
    Ok(all.into_iter().map(|(_, id, us)| (id, us)).unzip())
}

/// Creates `spec.ops` scratch webhooks, then updates, rotates the secret
/// of and deletes each, timing the three kinds and the CPU they cost.
async fn ops(spec: &FleetSpec, present: usize, tag: &str) -> anyhow::Result<OpsFigures> {
    let mut conn = None;
    let mut ids = Vec::with_capacity(spec.ops);
    for i in 0..spec.ops {
        let body = webhook_body(spec.receiver, 10_000_000 + i);
        let (answer, _) = expect(spec, &mut conn, Method::POST, "/api/webhooks", Some(body), 201).await?;
        let v: serde_json::Value = serde_json::from_slice(&answer)?;
        ids.push(v["id"].as_str().context("answer without id")?.to_owned());
    }
    let (g0, f0) = (cpu_s(spec.gateway_pid)?, cpu_s(spec.follower_pid)?);
    let (mut update, mut rotate, mut delete) = (Vec::new(), Vec::new(), Vec::new());
    for id in &ids {
        let path = format!("/api/webhooks/{id}");
        let body = serde_json::json!({"name": format!("renamed {tag}")}).to_string();
        update.push(expect(spec, &mut conn, Method::PATCH, &path, Some(body), 200).await?.1);
    }
    for id in &ids {
        let path = format!("/api/webhooks/{id}/rotate-secret");
        rotate.push(
            expect(spec, &mut conn, Method::POST, &path, Some("{}".into()), 200)
                .await?
                .1,
        );
    }
    for id in &ids {
        let path = format!("/api/webhooks/{id}");
        delete.push(expect(spec, &mut conn, Method::DELETE, &path, None, 204).await?.1);
    }
    // The follower applies the last changes within its refresh interval.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (g1, f1) = (cpu_s(spec.gateway_pid)?, cpu_s(spec.follower_pid)?);
    let changes = 3 * ids.len();
    Ok(OpsFigures {
        webhooks_present: present,
        update_us: Summary::of(update),
        rotate_us: Summary::of(rotate),
        delete_us: Summary::of(delete),
        gateway_cpu_ms_per_change: per_change(g0, g1, changes),
        follower_cpu_ms_per_change: per_change(f0, f1, changes),
    })
}

/// Runs the whole phase.
pub async fn run(spec: &FleetSpec) -> anyhow::Result<FleetFigures> {
    let at_start = ops(spec, 0, "start").await.context("updates at the start")?;
    let (g0, f0) = (cpu_s(spec.gateway_pid)?, cpu_s(spec.follower_pid)?);
    let started = Instant::now();
    let (ids, times) = create_range(spec, 0, spec.count).await.context("creating webhooks")?;
    let took = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (g1, f1) = (cpu_s(spec.gateway_pid)?, cpu_s(spec.follower_pid)?);
    let edge = EDGE.min(times.len());
    let at_end = ops(spec, ids.len(), "end").await.context("updates at the end")?;
    Ok(FleetFigures {
        webhooks: ids.len(),
        create_concurrency: spec.concurrency,
        create_first_1000_us: Summary::of(times[..edge].to_vec()),
        create_last_1000_us: Summary::of(times[times.len() - edge..].to_vec()),
        creates_per_sec: ids.len() as f64 / took.max(1e-9),
        gateway_cpu_ms_per_create: per_change(g0, g1, ids.len()),
        follower_cpu_ms_per_create: per_change(f0, f1, ids.len()),
        at_start,
        at_end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_mostly_exact_types_and_never_match_the_load() {
        let rx = "127.0.0.1:9".parse().unwrap();
        let events: Vec<String> = (0..10)
            .map(|i| {
                let v: serde_json::Value = serde_json::from_str(&webhook_body(rx, i)).unwrap();
                v["events"][0].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(events.iter().filter(|e| e.ends_with(".*")).count(), 2);
        assert!(events.iter().all(|e| !e.starts_with("bench")));
        assert_eq!(per_change(Some(1.0), Some(2.0), 4), Some(250.0));
        assert_eq!(per_change(None, Some(2.0), 4), None);
    }
}
