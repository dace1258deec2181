//! Waiting until the store holds only final deliveries: the receiver
//! having answered a delivery does not mean the gateway has recorded it
//! as delivered yet. The gateway's `GET /metrics` reads its queue depths
//! from the store on every scrape (`hookgate_queue_depth{status=...}`);
//! the store is settled when nothing is pending, waiting for a retry or
//! in flight. Used before reading Redis's memory after the load.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{Method, StatusCode};

use crate::http::{Target, request_once};

/// Queue depths that are not final.
const OPEN: &[&str] = &["pending", "failed", "in_flight"];

/// Sum of the open queue depths in a Prometheus text answer; `None` when
/// it has none of them.
pub fn open_deliveries(metrics: &str) -> Option<u64> {
    let mut seen = false;
    let mut total = 0.0;
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("hookgate_queue_depth{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once('}') else {
            continue;
        };
        let status = labels
            .split(',')
            .find_map(|kv| kv.trim().strip_prefix("status="))
            .map(|v| v.trim_matches('"'));
        if status.is_some_and(|s| OPEN.contains(&s))
            && let Ok(v) = value.trim().parse::<f64>()
        {
            seen = true;
            total += v;
        }
    }
    seen.then_some(total as u64)
}

/// Polls the gateway's `/metrics` until no delivery is open, for at most
/// `max`. `Some(true)`: settled; `Some(false)`: still open deliveries at
/// the end; `None`: the gateway's metrics do not say.
pub async fn wait_settled(target: &Target, max: Duration) -> Option<bool> {
    let deadline = Instant::now() + max;
    loop {
        let open = match request_once(target, Method::GET, "/metrics", &[], Bytes::new()).await {
            Ok((StatusCode::OK, body)) => open_deliveries(&String::from_utf8_lossy(&body)),
            _ => None,
        };
        match open {
            None => return None,
            Some(0) => return Some(true),
            Some(_) if Instant::now() > deadline => return Some(false),
            Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_deliveries_are_pending_failed_and_in_flight() {
        let text = "# TYPE hookgate_queue_depth gauge\n\
                    hookgate_queue_depth{status=\"pending\"} 3\n\
                    hookgate_queue_depth{status=\"failed\"} 1\n\
                    hookgate_queue_depth{status=\"in_flight\"} 2\n\
                    hookgate_queue_depth{status=\"dead\"} 40\n\
                    hookgate_deliveries_total{outcome=\"ok\"} 9\n";
        assert_eq!(open_deliveries(text), Some(6));
        assert_eq!(open_deliveries("hookgate_queue_depth{status=\"dead\"} 4\n"), None);
        assert_eq!(open_deliveries("other 1\n"), None);
        assert_eq!(
            open_deliveries(
                "hookgate_queue_depth{status=\"pending\"} 0\nhookgate_queue_depth{status=\"in_flight\"} 0\n"
            ),
            Some(0)
        );
    }
}
