//! Smoke test of the tool's core: driver, receiver, ceiling and report, on a
//! tiny scenario against an in-process fake gateway (a hyper server that
//! answers `POST /api/events` with 202 and forwards the event's data to the
//! receiver with a correct `X-Hub-Signature`, like hookgate would). Fast and
//! deterministic: no timed assertions.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http_body_util::BodyExt;
use hyper::{Method, Response, StatusCode};
use tokio::net::TcpListener;

use hookgate_bench::cli::Args;
use hookgate_bench::clock::Clock;
use hookgate_bench::http::{Body, Target, request_once, spawn_server};
use hookgate_bench::receiver::{Receiver, ReceiverOptions, hub_signature};
use hookgate_bench::report::Report;
use hookgate_bench::run::{Stack, measure};
use hookgate_bench::{ceiling, driver, gateway};

/// Starts the fake gateway; returns its address.
async fn fake_gateway(receiver: Target, fanout: usize) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let next = Arc::new(AtomicU64::new(0));
    spawn_server(listener, move |req| {
        let receiver = receiver.clone();
        let next = next.clone();
        async move {
            assert_eq!(
                req.headers().get("authorization").and_then(|v| v.to_str().ok()),
                Some(format!("Bearer {}", gateway::TOKEN).as_str())
            );
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let data = Bytes::from(serde_json::to_vec(&event["data"]).unwrap());
            let n = next.fetch_add(1, Ordering::Relaxed);
            let ids: Vec<String> = (0..fanout).map(|i| format!("dlv_{n}_{i}")).collect();
            for id in &ids {
                let (receiver, id, data) = (receiver.clone(), id.clone(), data.clone());
                tokio::spawn(async move {
                    let sig = hub_signature(gateway::SECRET, &data);
                    let headers = [
                        ("content-type", "application/json"),
                        ("x-delivery-id", id.as_str()),
                        ("x-delivery-attempt", "1"),
                        ("x-hub-signature", sig.as_str()),
                    ];
                    request_once(&receiver, Method::POST, "/hook/0", &headers, data)
                        .await
                        .unwrap();
                });
            }
            let answer = serde_json::json!({
                "id": format!("evt_{n}"),
                "deliveries": ids.iter().map(|id| serde_json::json!({"id": id, "webhookId": "bench-0"})).collect::<Vec<_>>(),
            });
            let mut resp = Response::new(Body::new(Bytes::from(answer.to_string())));
            *resp.status_mut() = StatusCode::ACCEPTED;
            resp
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_receiver_and_report_agree_on_a_tiny_run() {
    let args = Args::parse_from([
        "hookgate-bench",
        "--events",
        "50",
        "--warmup",
        "5",
        "--concurrency",
        "4",
        "--fanout",
        "2",
        "--payload",
        "256",
        "--verify-share",
        "1",
        "--drain-seconds",
        "10",
    ]);
    args.check().unwrap();
    let clock = Clock::new();
    let receiver = Receiver::start(
        clock,
        ReceiverOptions {
            secret: gateway::SECRET.into(),
            verify_every: args.verify_every(),
            fail_ratio: 0.0,
            delay: Duration::ZERO,
        },
    )
    .await
    .unwrap();
    let gw = fake_gateway(Target::local(receiver.addr()), 2).await;
    let stack = Stack::attached(Target::local(gw), gateway::TOKEN, gateway::EVENT_TYPE);
    let measured = measure(&args, clock, &receiver, &stack).await.unwrap();
    let report = Report::new(&args, measured);

    assert_eq!(report.ingest.requests_ok, 50);
    assert!(report.ingest.errors.is_empty(), "{:?}", report.ingest.errors);
    assert_eq!(report.ingest.latency_us.count, 50);
    assert!(report.delivery.drained);
    assert_eq!(report.delivery.join.accepted, 100);
    assert_eq!(report.delivery.join.delivered, 100);
    assert_eq!(report.delivery.join.missing, 0);
    assert_eq!(report.receiver.delivered, 100);
    assert_eq!(report.receiver.duplicates, 0);
    // Every request's signature was checked (verify share 1), and all held.
    assert_eq!(report.receiver.signatures_checked, 100);
    assert_eq!(report.receiver.signatures_bad, 0);
    assert!(report.delivery.join.deliveries_per_sec > 0.0);
    assert!(report.gateway.is_none() && report.redis.is_none());
    // Both renderings work and carry the figures.
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["delivery"]["delivered"], 100);
    assert!(report.to_string().contains("end-to-end deliveries"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_are_counted() {
    let clock = Clock::new();
    let receiver = Receiver::start(
        clock,
        ReceiverOptions {
            secret: "the-right-secret".into(),
            verify_every: 1,
            fail_ratio: 0.5,
            delay: Duration::ZERO,
        },
    )
    .await
    .unwrap();
    let target = Target::local(receiver.addr());
    for i in 0..4 {
        let id = format!("dlv_{i}");
        let sig = hub_signature("a-wrong-secret", b"{}");
        let headers = [("x-delivery-id", id.as_str()), ("x-hub-signature", sig.as_str())];
        let (status, _) = request_once(&target, Method::POST, "/", &headers, Bytes::from_static(b"{}"))
            .await
            .unwrap();
        // Exactly every second request is answered 500.
        let expected = if i % 2 == 1 { 500 } else { 204 };
        assert_eq!(status.as_u16(), expected);
    }
    let s = receiver.stats();
    assert_eq!((s.requests, s.signatures_checked, s.signatures_bad), (4, 4, 4));
    assert_eq!((s.delivered, s.failed_on_purpose), (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ceiling_and_fixed_rate_driver_complete_their_count() {
    let body = driver::event_body(gateway::EVENT_TYPE, 1024);
    let c = ceiling::measure(Clock::new(), 4, body.clone(), 200, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!((c.requests, c.errors), (200, 0));
    assert_eq!(c.latency_us.count, 200);
    assert!(c.requests_per_sec > 0.0);

    // Fixed rate: all 20 requests go out, latencies measured from due times.
    let sink = ceiling::Sink::start().await.unwrap();
    let r = driver::run(
        Clock::new(),
        driver::LoadSpec {
            target: Target::local(sink.addr()),
            path: "/api/events".into(),
            token: None,
            body,
            count: 20,
            concurrency: 2,
            rate: Some(2000.0),
            max_time: Duration::from_secs(10),
            parse_deliveries: false,
        },
    )
    .await;
    assert_eq!((r.sent, r.ok, r.cut_short), (20, 20, false));
}
