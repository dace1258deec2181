//! Smoke test of the tool's core: driver, receiver, ceiling and report, on a
//! tiny scenario against an in-process fake gateway (a hyper server that
//! answers `POST /api/events` with 202 and forwards the event's data to the
//! receiver with a correct `X-Hub-Signature`, like hookgate would). Fast and
//! deterministic: no timed assertions. The `--tls` test runs the same over
//! HTTPS on both legs with the run's CA and checks the connection and
//! handshake counts and the side-by-side TLS/plain comparison.

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
use hookgate_bench::http::{Body, Target, request_once, spawn_server_with};
use hookgate_bench::receiver::{Receiver, ReceiverOptions, hub_signature};
use hookgate_bench::report::Report;
use hookgate_bench::run::{Stack, measure};
use hookgate_bench::tls::{ConnCounters, Material};
use hookgate_bench::{ceiling, driver, gateway, table};

/// Starts the fake gateway (HTTPS with `tls`); returns its address.
async fn fake_gateway(receiver: Target, fanout: usize, tls: Option<tokio_rustls::TlsAcceptor>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let next = Arc::new(AtomicU64::new(0));
    spawn_server_with(listener, tls, Arc::new(ConnCounters::default()), move |req| {
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
    let gw = fake_gateway(Target::local(receiver.addr()), 2, None).await;
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

/// One tiny run through the fake gateway, plain or over TLS on both legs.
async fn tiny_run(tls: bool) -> Report {
    let mut argv = vec![
        "hookgate-bench",
        "--events",
        "40",
        "--warmup",
        "8",
        "--concurrency",
        "4",
    ];
    argv.extend(["--drain-seconds", "10", "--verify-share", "1"]);
    if tls {
        argv.push("--tls");
    }
    let args = Args::parse_from(argv);
    args.check().unwrap();
    assert_eq!(args.tls_on(), tls);
    let material = Material::generate().unwrap();
    let clock = Clock::new();
    let opts = ReceiverOptions {
        secret: gateway::SECRET.into(),
        verify_every: 1,
        fail_ratio: 0.0,
        delay: Duration::ZERO,
    };
    let acceptor = tls.then(|| material.acceptor().unwrap());
    let receiver = Receiver::start_tls(clock, opts, acceptor.clone()).await.unwrap();
    let mut to_receiver = Target::local(receiver.addr());
    let gw = if tls {
        to_receiver = to_receiver.with_tls(material.connector().unwrap());
        Target::local(fake_gateway(to_receiver, 1, acceptor).await).with_tls(material.connector().unwrap())
    } else {
        Target::local(fake_gateway(to_receiver, 1, None).await)
    };
    let stack = Stack::attached(gw, gateway::TOKEN, gateway::EVENT_TYPE);
    let measured = measure(&args, clock, &receiver, &stack).await.unwrap();
    Report::new(&args, measured)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_runs_deliver_count_handshakes_and_compare_with_plain() {
    let plain = tiny_run(false).await;
    let tls = tiny_run(true).await;
    for r in [&plain, &tls] {
        assert_eq!(r.ingest.requests_ok, 40, "{:?}", r.ingest.errors);
        assert_eq!(r.delivery.join.delivered, 40);
        assert_eq!((r.receiver.signatures_checked, r.receiver.signatures_bad), (40, 0));
        // The driver's connections are opened once and kept alive.
        assert_eq!(r.connections.driver.connections, 4);
    }
    assert!(tls.scenario.tls && tls.connections.tls && !plain.connections.tls);
    let (d, rcv) = (tls.connections.driver, tls.connections.receiver_measured);
    assert_eq!(d.tls_full + d.tls_resumed, 4);
    // The warm-up's sessions are resumed by the measured phase's connections.
    assert!(d.tls_resumed > 0, "{d:?}");
    // The fake gateway opens one connection per delivery: every one a TLS
    // handshake, most of them resumed with the client's session cache.
    assert_eq!(rcv.connections, 40);
    assert_eq!((rcv.tls_full + rcv.tls_resumed, rcv.tls_failed), (40, 0));
    assert!(rcv.tls_resumed > 0, "{rcv:?}");
    assert_eq!(plain.connections.receiver_measured.tls_full, 0);

    let text = tls.to_string();
    assert!(
        text.contains("HTTPS both legs") && text.contains("resumed TLS handshakes"),
        "{text}"
    );
    let both = table::side_by_side(&[plain, tls]);
    assert!(both.contains("https"), "{both}");
    assert!(both.contains("TLS / plain (Redis): deliveries/s x"), "{both}");
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
    let paced = |body, count, rate, max_time| driver::LoadSpec {
        target: Target::local(sink.addr()),
        path: "/api/events".into(),
        token: None,
        body,
        count,
        concurrency: 2,
        rate: Some(rate),
        max_time,
        parse_deliveries: false,
    };
    let r = driver::run(Clock::new(), paced(body, 20, 2000.0, Duration::from_secs(10))).await;
    assert_eq!((r.sent, r.ok, r.cut_short), (20, 20, false));

    // The pacer keeps to the schedule: at 10/s with 300 ms allowed,
    // requests are due at 0, 100, 200 and 300 ms, and the last cannot end
    // before its due time; the rest of the count is cut short.
    let small = driver::event_body(gateway::EVENT_TYPE, 16);
    let r = driver::run(Clock::new(), paced(small, 1000, 10.0, Duration::from_millis(300))).await;
    assert_eq!((r.sent, r.ok, r.cut_short), (4, 4, true));
    assert!(r.last_end_us - r.first_start_us >= 300_000, "{r:?}");
}
