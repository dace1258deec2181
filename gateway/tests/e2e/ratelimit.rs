//! The per-webhook rate limit holds across two gateway processes.

use std::sync::Arc;
use std::time::Duration;

use hookgate_testkit::{Receiver, RedisServer, TempDir};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_is_shared_by_two_gateway_processes() {
    let redis = RedisServer::start();
    let rx = Receiver::start().await;
    // 600/min = one every 100 ms, bursts of 3.
    let delivery =
        "allow_private_destinations = true\nretry_jitter = 0.0\nrate_limit_per_minute = 1200\nrate_limit_burst = 3\n";
    let hook = webhook("limited", &rx.url("/hook"), &["*"], "rate_limit_per_minute = 600");
    let (toml, _) = config_toml(&redis, delivery, &hook);
    let dir = Arc::new(TempDir::new("ratelimit"));
    let a = GatewayProcess::spawn(&toml, dir.clone()).await;
    let b = GatewayProcess::spawn(&toml, dir.clone()).await;
    let client = http();
    const N: usize = 24;
    for i in 0..N {
        let target = if i % 2 == 0 { &a } else { &b };
        let event = serde_json::json!({"type": "tick", "data": {"i": i}});
        post_event_to(&client, &target.url("/api/events"), &event).await;
    }
    let got = rx.wait_for("/hook", N, Duration::from_secs(20)).await;
    let times: Vec<_> = got.iter().map(|r| r.at).collect();
    // GCRA bound: in any window of length w at most burst + w / interval
    // arrivals (one extra allowed for timer and network granularity).
    for i in 0..times.len() {
        for j in i..times.len() {
            let w = times[j] - times[i];
            let allowed = 3 + (w.as_millis() / 100) as usize + 1;
            assert!(j - i < allowed, "{} deliveries within {w:?}", j - i + 1);
        }
    }
    let span = *times.last().unwrap() - times[0];
    assert!(
        span >= Duration::from_millis((N as u64 - 3 - 1) * 100),
        "took only {span:?}"
    );
    for r in &got {
        assert_eq!(
            r.header("x-delivery-attempt"),
            Some("1"),
            "waiting for a slot is not a failed attempt"
        );
    }
    let both_delivered = [&a, &b].iter().all(|g| g.log_text().contains("hookgate listening"));
    assert!(both_delivered);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), N, "nothing delivered twice");
}
