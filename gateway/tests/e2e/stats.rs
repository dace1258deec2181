//! `GET /api/stats`: the figures every gateway on the store adds up, read
//! the same from any of them, per window and per webhook.

use std::time::Duration;

use hookgate::store::Status;
use hookgate_testkit::{Receiver, Reply, TempDir, wait_until};
use serde_json::Value;

use crate::common::*;

/// What the scripted traffic below adds up to, fleet-wide.
fn fleet_done(v: &Value) -> bool {
    let d = &v["totals"]["deliveries"];
    v["totals"]["attempts"]["total"] == 10 && d["succeeded"] == 5 && d["dead"] == 2 && d["filtered"] == 1
}

async fn stats(gw: &Gateway, query: &str) -> Value {
    let (status, _, v) = gw.api("GET", &format!("/api/stats{query}"), None).await;
    assert_eq!(status, 200, "{v}");
    v
}

fn by_id<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["webhookId"] == id)
        .unwrap_or_else(|| panic!("{id} not in {v}"))
}

async fn fleet_figures_add_up_across_gateways(backend: Backend) {
    let test_store = TestStore::start(backend);
    let ok = Receiver::start().await;
    let flaky = Receiver::start().await;
    let failing = Receiver::start().await;
    failing.set_default(Reply::status(500));
    let dir = TempDir::new("stats");
    let hooks = [
        plugins_section(&dir),
        webhook("orders", &ok.url("/"), &["order.*"], "name = \"Orders service\""),
        webhook("flaky", &flaky.url("/"), &["flaky.*"], "name = \"Flaky partner\""),
        webhook(
            "billing",
            &failing.url("/"),
            &["invoice.*"],
            "name = \"Billing\"\nmax_retries = 1",
        ),
        done_tasks_only_webhook("gated", &ok.url("/gated")),
    ]
    .concat();
    let (toml, key) = config_toml(&test_store, &fast_delivery("circuit_failures = 1000"), &hooks);
    let one = Gateway::start(&toml).await;
    let two = Gateway::start(&toml).await;
    let store = store(&test_store, &key);

    // Events through both gateways; either may deliver any of them.
    let mut finished = Vec::new();
    for (i, gw) in [&one, &two, &one, &two].into_iter().enumerate() {
        finished.extend(delivery_ids(
            &gw.post_event("order.created", &format!(r#"{{"n": {i}}}"#)).await,
        ));
    }
    flaky.plan([Reply::status(503), Reply::status(200)]);
    finished.extend(delivery_ids(&two.post_event("flaky.ping", "{}").await));
    let mut dead = Vec::new();
    for gw in [&one, &two] {
        dead.extend(delivery_ids(&gw.post_event("invoice.created", "{}").await));
    }
    let filtered = delivery_ids(&one.post_event("task.updated", r#"{"status": "open"}"#).await);
    wait_status(&store, &filtered[0], Status::Filtered, Duration::from_secs(20)).await;
    for id in &finished {
        wait_status(&store, id, Status::Succeeded, Duration::from_secs(15)).await;
    }
    for id in &dead {
        wait_status(&store, id, Status::Dead, Duration::from_secs(15)).await;
    }

    // Each gateway flushes its figures within a second.
    wait_until(Duration::from_secs(10), "the fleet's figures to add up", || async {
        let v = stats(&two, "").await;
        fleet_done(&v).then_some(())
    })
    .await;

    let a = stats(&one, "?window=1h").await;
    let b = stats(&two, "").await;
    assert_eq!(a["totals"], b["totals"], "every gateway answers the same figures");
    let t = &a["totals"];
    assert_eq!(a["window"], "1h");
    assert_eq!(a["stepSeconds"], 60);
    assert_eq!(t["attempts"]["success"], 5);
    assert_eq!(t["attempts"]["http5xx"], 5);
    assert_eq!(t["attempts"]["http4xx"], 0);
    assert_eq!(t["deliveries"]["filtered"], 1, "a filter is an outcome, not an attempt");
    assert_eq!(t["retries"], 3, "one for flaky, two for billing");
    assert_eq!(t["attemptSuccessRate"], 0.5);
    assert_eq!(t["deliverySuccessRate"], 0.714);
    assert!(t["latencyMs"]["p50"].as_f64().unwrap() > 0.0, "{t}");
    assert!(t["latencyMs"]["p95"].as_f64().unwrap() >= t["latencyMs"]["p50"].as_f64().unwrap());

    // The series adds up to the totals.
    let series = a["series"].as_array().unwrap();
    assert_eq!(series.len(), 60);
    let sum = |path: &[&str]| -> u64 {
        series
            .iter()
            .map(|p| path.iter().fold(p, |v, k| &v[*k]).as_u64().unwrap())
            .sum()
    };
    assert_eq!(sum(&["attempts", "total"]), 10);
    assert_eq!(sum(&["deliveries", "dead"]), 2);
    assert!(
        series.windows(2).all(|w| w[0]["at"].as_str() < w[1]["at"].as_str()),
        "oldest first"
    );

    // Per webhook, with names.
    assert_eq!(a["webhooksTruncated"], false);
    let orders = by_id(&a, "orders");
    assert_eq!(orders["name"], "Orders service");
    assert_eq!(orders["deliveries"]["succeeded"], 4);
    assert_eq!(orders["attemptSuccessRate"], 1.0);
    let flaky_figures = by_id(&a, "flaky");
    assert_eq!(flaky_figures["name"], "Flaky partner");
    assert_eq!(flaky_figures["attempts"]["total"], 2);
    assert_eq!(flaky_figures["retries"], 1);
    assert_eq!(flaky_figures["deliverySuccessRate"], 1.0);
    let billing = by_id(&a, "billing");
    assert_eq!(billing["deliveries"]["dead"], 2);
    assert_eq!(billing["deliverySuccessRate"], 0.0);
    let gated = by_id(&a, "gated");
    assert_eq!(gated["name"], "Done tasks only");
    assert_eq!(gated["deliveries"]["filtered"], 1);
    assert_eq!(gated["attempts"]["total"], 0);
    assert_eq!(gated["deliverySuccessRate"], Value::Null, "nothing was meant to arrive");

    // One webhook, over longer windows: the same figures, coarser points.
    let day = stats(&one, "?window=24h&webhookId=billing").await;
    assert_eq!(day["webhookId"], "billing");
    assert_eq!(day["stepSeconds"], 900);
    assert_eq!(day["series"].as_array().unwrap().len(), 96);
    assert_eq!(day["totals"], billing_totals(billing));
    assert!(day.get("webhooks").is_none());
    let week = stats(&two, "?window=7d").await;
    assert_eq!(week["stepSeconds"], 3600);
    assert_eq!(week["series"].as_array().unwrap().len(), 168);
    assert_eq!(week["totals"], a["totals"]);
    let unknown = stats(&one, "?webhookId=nobody").await;
    assert_eq!(unknown["totals"]["attempts"]["total"], 0);
    assert_eq!(unknown["totals"]["deliverySuccessRate"], Value::Null);

    // Bad parameters name the field.
    for (query, field) in [("?window=2h", "window"), ("?webhookId=no%20spaces", "webhookId")] {
        let (status, _, v) = one.api("GET", &format!("/api/stats{query}"), None).await;
        assert_eq!(status, 422, "{query}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(field), "{v}");
    }
    one.stop().await;
    two.stop().await;
}

/// A `webhooks[]` entry's figures without its id and name.
fn billing_totals(entry: &Value) -> Value {
    let mut v = entry.clone();
    let m = v.as_object_mut().unwrap();
    m.remove("webhookId");
    m.remove("name");
    v
}

on_both_backends!(fleet_figures_add_up_across_gateways);
