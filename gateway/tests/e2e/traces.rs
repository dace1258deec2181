//! Traces: with `[telemetry] otlp_endpoint`, one span per ingest request and
//! one per delivery attempt reach an OTLP/HTTP endpoint (the test kit's),
//! with the attempt's webhook, delivery id, attempt number, status and
//! plugin time; config mistakes in `[telemetry]` are clear errors.

use std::path::Path;
use std::time::Duration;

use hookgate::config::Config;
use hookgate::store::Status;
use hookgate_testkit::otlp::{OtlpCollector, SpanSeen};
use hookgate_testkit::{Receiver, Reply, TempDir};

use crate::common::*;

fn telemetry_section(endpoint: &str) -> String {
    format!(
        "[telemetry]\notlp_endpoint = \"{endpoint}\"\nservice_name = \"hookgate-test\"\nexport_every = \"100ms\"\n\
         otlp_headers = {{ \"x-collector-key\" = \"collector-key-123\" }}\n\n"
    )
}

fn deliver_spans<'a>(spans: &'a [SpanSeen], delivery_id: &str) -> Vec<&'a SpanSeen> {
    let mut v: Vec<&SpanSeen> = spans
        .iter()
        .filter(|s| s.name == "deliver" && s.attr("hookgate.delivery.id") == Some(delivery_id))
        .collect();
    v.sort_by_key(|s| s.attr("hookgate.attempt").map(str::to_owned));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_requests_and_attempts_are_exported_as_spans() {
    let collector = OtlpCollector::start().await;
    let test_store = TestStore::start(Backend::Embedded);
    let ok = Receiver::start().await;
    let flaky = Receiver::start().await;
    flaky.plan([Reply::status(503), Reply::status(200)]);
    let dir = TempDir::new("traces");
    let hooks = [
        telemetry_section(&collector.endpoint()),
        plugins_section(&dir),
        webhook("orders", &ok.url("/"), &["order.*"], "name = \"Orders service\""),
        webhook("flaky", &flaky.url("/"), &["flaky.*"], "name = \"Flaky partner\""),
        done_tasks_only_webhook("gated", &ok.url("/gated")),
    ]
    .concat();
    let (toml, key) = config_toml(&test_store, &fast_delivery("circuit_failures = 1000"), &hooks);
    let gw = Gateway::start(&toml).await;
    let store = store(&test_store, &key);

    let order = gw.post_event("order.created", r#"{"n": 1}"#).await;
    let flaky_answer = gw.post_event("flaky.ping", "{}").await;
    let task = gw.post_event("task.updated", r#"{"status": "open"}"#).await;
    let (order_id, flaky_id, task_id) = (
        delivery_ids(&order)[0].clone(),
        delivery_ids(&flaky_answer)[0].clone(),
        delivery_ids(&task)[0].clone(),
    );
    let (status, _) = gw.post_raw("{not json").await;
    assert_eq!(status, 400);
    wait_status(&store, &order_id, Status::Succeeded, Duration::from_secs(15)).await;
    wait_status(&store, &flaky_id, Status::Succeeded, Duration::from_secs(15)).await;
    wait_status(&store, &task_id, Status::Filtered, Duration::from_secs(15)).await;

    let spans = collector
        .wait_for(Duration::from_secs(15), "every span", |spans| {
            spans.iter().filter(|s| s.name == "POST /api/events").count() == 4
                && deliver_spans(spans, &flaky_id).len() == 2
                && deliver_spans(spans, &order_id).len() == 1
                && deliver_spans(spans, &task_id).len() == 1
        })
        .await;
    assert!(spans.iter().all(|s| s.service == "hookgate-test"), "{spans:?}");

    // Ingest: the accepted ones with their event, the malformed one with its 400.
    let ingest: Vec<&SpanSeen> = spans.iter().filter(|s| s.name == "POST /api/events").collect();
    let order_span = ingest
        .iter()
        .find(|s| s.attr("hookgate.event.id") == order["id"].as_str())
        .expect("the order's ingest span");
    assert_eq!(order_span.attr("hookgate.event.type"), Some("order.created"));
    assert_eq!(order_span.attr("hookgate.event.deliveries"), Some("1"));
    assert_eq!(order_span.attr("http.response.status_code"), Some("202"));
    assert_eq!(order_span.kind, 2, "a server span");
    assert!(order_span.end_unix_nano >= order_span.start_unix_nano);
    assert!(
        ingest
            .iter()
            .any(|s| s.attr("http.response.status_code") == Some("400") && s.attr("hookgate.event.id").is_none()),
        "{ingest:?}"
    );

    // Attempts: the flaky delivery's two, in order.
    let attempts = deliver_spans(&spans, &flaky_id);
    let (first, second) = (attempts[0], attempts[1]);
    assert_eq!(first.attr("hookgate.attempt"), Some("1"));
    assert_eq!(first.attr("http.response.status_code"), Some("503"));
    assert_eq!(first.attr("hookgate.attempt.result"), Some("http_5xx"));
    assert_eq!(first.attr("hookgate.delivery.outcome"), Some("retry"));
    assert_eq!(first.status, 2, "a failed attempt is an error span");
    assert_eq!(second.attr("hookgate.attempt"), Some("2"));
    assert_eq!(second.attr("http.response.status_code"), Some("200"));
    assert_eq!(second.attr("hookgate.delivery.outcome"), Some("succeeded"));
    assert_ne!(second.status, 2);
    assert_eq!(second.attr("hookgate.webhook.id"), Some("flaky"));
    assert_eq!(second.attr("hookgate.webhook.name"), Some("Flaky partner"));
    assert_eq!(second.attr("hookgate.event.id"), flaky_answer["id"].as_str());
    assert_eq!(second.kind, 3, "a client span");
    assert!(
        second.attr("hookgate.plugin.duration_ms").is_none(),
        "no plugins, no plugin time"
    );
    assert!(second.attr("hookgate.attempt.duration_ms").is_some());

    // A plugin's drop: filtered, with the plugin's time.
    let gated = deliver_spans(&spans, &task_id)[0];
    assert_eq!(gated.attr("hookgate.attempt.result"), Some("filtered"));
    assert_eq!(gated.attr("hookgate.delivery.outcome"), Some("filtered"));
    let plugin_ms: f64 = gated.attr("hookgate.plugin.duration_ms").unwrap().parse().unwrap();
    assert!(plugin_ms > 0.0, "{gated:?}");
    assert!(gated.attr("http.response.status_code").is_none());

    // No payload or secret in any span; the collector's header came along.
    let all = format!("{spans:?}");
    for secret in [
        "secret-orders-0123",
        "secret-flaky-0123",
        "collector-key-123",
        TOKEN,
        "\"status\": \"open\"",
    ] {
        assert!(!all.contains(secret), "{secret} in a span");
    }
    assert!(
        collector
            .request_headers()
            .iter()
            .all(|h| h.get("x-collector-key").is_some_and(|v| v == "collector-key-123")),
        "otlp_headers are sent with every export"
    );
    assert!(
        collector
            .request_headers()
            .iter()
            .all(|h| h.get("content-type").is_some_and(|v| v == "application/x-protobuf"))
    );
    gw.stop().await;
}

#[test]
fn telemetry_config_mistakes_are_clear_errors() {
    let base = "[api]\ntokens = [\"0123456789abcdef\"]\n[store]\nbackend = \"embedded\"\npath = \"data\"\n";
    for (section, expected) in [
        (
            "[telemetry]\notlp_endpoint = \"ftp://collector\"\n",
            "telemetry.otlp_endpoint must be an http",
        ),
        (
            "[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\nsample_ratio = 2.0\n",
            "telemetry.sample_ratio must be from 0 to 1",
        ),
        (
            "[telemetry]\nservice_name = \"x\"\n",
            "telemetry.service_name needs telemetry.otlp_endpoint",
        ),
        (
            "[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\nendpoint = \"x\"\n",
            "unknown field `endpoint`",
        ),
        (
            "[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\nexport_every = \"soon\"\n",
            "telemetry.export_every",
        ),
        (
            "[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\notlp_headers = { \"bad header\" = \"v\" }\n",
            "not a valid HTTP header",
        ),
    ] {
        let src = format!("{base}{section}");
        let err = Config::parse(&src, Path::new("c.toml"), &|_| None).expect_err(section);
        assert!(err.to_string().contains(expected), "{section}: {err}");
        assert!(err.to_string().starts_with("c.toml:"), "{err}");
    }
    let ok = format!("{base}[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318/\"\n");
    let config = Config::parse(&ok, Path::new("c.toml"), &|_| None).unwrap();
    let otlp = config.telemetry.otlp.unwrap();
    assert_eq!(otlp.traces_url.as_str(), "http://127.0.0.1:4318/v1/traces");
    assert_eq!(otlp.service_name, "hookgate");
    assert_eq!(otlp.sample_ratio, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_never_holds_up_deliveries() {
    let closed = hookgate_testkit::free_port();
    let test_store = TestStore::start(Backend::Embedded);
    let rx = Receiver::start().await;
    let hooks = [
        telemetry_section(&format!("http://127.0.0.1:{closed}")),
        webhook("orders", &rx.url("/"), &["order.*"], ""),
    ]
    .concat();
    let (toml, key) = config_toml(&test_store, FAST_DELIVERY, &hooks);
    let gw = Gateway::start(&toml).await;
    let store = store(&test_store, &key);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.extend(delivery_ids(
            &gw.post_event("order.created", &format!("{{\"n\": {i}}}")).await,
        ));
    }
    for id in &ids {
        wait_status(&store, id, Status::Succeeded, Duration::from_secs(15)).await;
    }
    // Shutdown tries one last export and gives up in bounded time.
    tokio::time::timeout(Duration::from_secs(30), gw.stop())
        .await
        .expect("the gateway stops although its collector is gone");
}
