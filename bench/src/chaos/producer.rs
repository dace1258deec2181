//! The chaos suite's producer: posts events at a fixed rate, alternating
//! between the gateways, the way a careful producer behind a load balancer
//! would: an event that gets no 202 (gateway down, 503, timeout) is posted
//! again to the other gateway with the same `Idempotency-Key`, until it is
//! accepted or a deadline passes. Only 202 answers count as accepted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::fleet::{EVENT_TYPE, TOKEN};
use crate::http::{Target, request_full};

/// Longest wait for one answer (a hang counts as a failed post).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Events being posted at once at most.
const IN_FLIGHT: usize = 128;

#[derive(Debug, Clone)]
pub struct ProducerSpec {
    pub events: usize,
    pub rate: f64,
    /// An event not accepted by then is given up (counted, not lost: it
    /// was never acknowledged).
    pub give_up_after: Duration,
    /// Distinguishes runs in idempotency keys.
    pub run: String,
}

/// What the producer saw.
#[derive(Debug, Default)]
pub struct Produced {
    /// Delivery ids of accepted events (one webhook: one per event).
    pub accepted: Vec<String>,
    pub given_up: u64,
    /// Posts by answer: `202`, `http 503`, `refused`, `timeout`, ...
    pub answers: BTreeMap<String, u64>,
    /// The slowest 503 answer.
    pub max_503: Duration,
    /// The slowest post (any answer; a post with none counts its wait).
    pub max_post: Duration,
    /// 503 answers without a `Retry-After` header.
    pub without_retry_after: u64,
    pub last_accept: Option<Instant>,
}

#[derive(Deserialize)]
struct Answer {
    deliveries: Vec<DeliveryRef>,
}

#[derive(Deserialize)]
struct DeliveryRef {
    id: String,
}

pub async fn produce(targets: Arc<Vec<Target>>, spec: ProducerSpec) -> Produced {
    let out = Arc::new(Mutex::new(Produced::default()));
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(spec.events);
    for i in 0..spec.events {
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / spec.rate)).await;
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let (targets, out, spec) = (targets.clone(), out.clone(), spec.clone());
        tasks.push(tokio::spawn(async move {
            post_until_accepted(&targets, &out, &spec, i).await;
            drop(permit);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Arc::try_unwrap(out)
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .unwrap_or_default()
}

async fn post_until_accepted(targets: &[Target], out: &Mutex<Produced>, spec: &ProducerSpec, i: usize) {
    let body = Bytes::from(format!(r#"{{"type":"{EVENT_TYPE}","data":{{"n":{i}}}}}"#));
    let key = format!("{}-{i}", spec.run);
    let auth = format!("Bearer {TOKEN}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("idempotency-key", key.as_str()),
    ];
    let deadline = Instant::now() + spec.give_up_after;
    let mut tries = 0usize;
    loop {
        let target = &targets[(i + tries) % targets.len()];
        tries += 1;
        let sent = Instant::now();
        let result = request_full(
            target,
            Method::POST,
            "/api/events",
            &headers,
            body.clone(),
            ANSWER_TIMEOUT,
        )
        .await;
        let took = sent.elapsed();
        {
            let mut o = out.lock().unwrap_or_else(|e| e.into_inner());
            o.max_post = o.max_post.max(took);
        }
        let (kind, pause) = match result {
            Ok((StatusCode::ACCEPTED, _, answer)) => {
                let ids = serde_json::from_slice::<Answer>(&answer)
                    .map(|a| a.deliveries.into_iter().map(|d| d.id).collect::<Vec<_>>())
                    .unwrap_or_default();
                let mut o = out.lock().unwrap_or_else(|e| e.into_inner());
                *o.answers.entry("202".into()).or_default() += 1;
                o.accepted.extend(ids);
                o.last_accept = Some(Instant::now());
                return;
            }
            Ok((status, headers, _)) => {
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    let mut o = out.lock().unwrap_or_else(|e| e.into_inner());
                    o.max_503 = o.max_503.max(took);
                    if !headers.contains_key("retry-after") {
                        o.without_retry_after += 1;
                    }
                }
                (format!("http {}", status.as_u16()), Duration::from_millis(200))
            }
            Err(e) if e.to_string().contains("no answer within") => ("timeout".to_owned(), Duration::ZERO),
            Err(_) => ("refused or closed".to_owned(), Duration::from_millis(100)),
        };
        let give_up = {
            let mut o = out.lock().unwrap_or_else(|e| e.into_inner());
            *o.answers.entry(kind).or_default() += 1;
            let give_up = Instant::now() + pause > deadline;
            if give_up {
                o.given_up += 1;
            }
            give_up
        };
        if give_up {
            return;
        }
        tokio::time::sleep(pause).await;
    }
}
