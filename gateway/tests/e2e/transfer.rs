//! `hookgate store export` / `import`: a gateway's waiting work moves from
//! the embedded store to Redis and back, and every delivery arrives once.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hookgate::store::Status;
use hookgate_testkit::{Receiver, Reply, TempDir, wait_until};
use serde_json::json;

use crate::common::*;

/// Runs `hookgate store ...`; returns its stderr (the summary).
fn store_cli(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .arg("store")
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "hookgate store {args:?}: {stderr}");
    stderr
}

/// Waits until no store of this process holds `folder` (a stopped
/// gateway's store closes its file on a thread of its own).
async fn wait_folder_free(folder: &str) {
    let lock = Path::new(folder).join(hookgate::store::embedded::LOCK_FILE);
    wait_until(Duration::from_secs(10), "the data folder to be released", || {
        let lock = lock.clone();
        async move {
            let f = std::fs::File::open(&lock).ok()?;
            f.try_lock().ok()
        }
    })
    .await;
}

/// Waits until every id in `ids` arrived (again) since `since`.
async fn wait_received(rx: &Receiver, ids: &[String], since: Instant) {
    wait_until(Duration::from_secs(30), "every delivery to arrive", || async {
        let seen: std::collections::HashSet<String> = rx
            .received()
            .into_iter()
            .filter(|r| r.at >= since)
            .map(|r| r.header("x-delivery-id").unwrap().to_owned())
            .collect();
        ids.iter().all(|id| seen.contains(id)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_work_moves_embedded_to_redis_and_back_and_every_delivery_arrives_once() {
    let rx = Receiver::start().await;
    rx.set_default(Reply::status(503));
    // Every delivery fails once on purpose: no circuit breaker holding them.
    let delivery =
        fast_delivery("max_retries = 10\nretry_base = \"300ms\"\nretry_factor = 1\ncircuit_failures = 1000\n");
    let hooks = webhook("w", &rx.url("/w"), &["*"], "");
    let files = TempDir::new("transfer");
    let write = |name: &str, toml: &str| {
        let path = files.path().join(name);
        std::fs::write(&path, toml).unwrap();
        path.to_str().unwrap().to_owned()
    };

    // 1. Embedded: an API webhook and 10 events; every delivery fails once.
    let a = TestStore::start(Backend::Embedded);
    let (toml_a, folder_a) = config_toml(&a, &delivery, &hooks);
    let start = Instant::now();
    let gw = Gateway::start(&toml_a).await;
    let (status, _, created) = gw
        .api(
            "POST",
            "/api/webhooks",
            Some(json!({"name": "moved", "url": rx.url("/api"), "events": ["order.*"], "secret": "moved-secret-0123"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let api_id = created["id"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.extend(delivery_ids(
            &gw.post_event("order.created", &format!("{{\"i\":{i}}}")).await,
        ));
    }
    assert_eq!(ids.len(), 20);
    wait_received(&rx, &ids, start).await;
    gw.stop().await;
    wait_folder_free(&folder_a).await;
    let config_a = write("a.toml", &toml_a);
    let dump_a = files.path().join("a.jsonl");
    let summary = store_cli(&["export", "--config", &config_a, "--out", dump_a.to_str().unwrap()]);
    assert!(
        summary.contains("exported 1 webhooks, 10 events, 20 deliveries"),
        "{summary}"
    );
    let text = std::fs::read_to_string(&dump_a).unwrap();
    assert!(text.contains("moved-secret-0123"), "secrets travel with their webhook");

    // 2. Redis: imported (twice: the second adds nothing), tried again.
    let b = TestStore::start(Backend::Redis);
    let (toml_b, _) = config_toml(&b, &delivery, &hooks);
    let config_b = write("b.toml", &toml_b);
    let summary = store_cli(&["import", "--config", &config_b, "--in", dump_a.to_str().unwrap()]);
    assert!(
        summary.contains("imported 1 webhooks, 10 events, 20 deliveries (0 already there"),
        "{summary}"
    );
    let summary = store_cli(&["import", "--config", &config_b, "--in", dump_a.to_str().unwrap()]);
    assert!(summary.contains("20 already there"), "{summary}");
    let on_redis = Instant::now();
    let gw = Gateway::start(&toml_b).await;
    wait_received(&rx, &ids, on_redis).await;
    gw.stop().await;
    let dump_b = files.path().join("b.jsonl");
    let summary = store_cli(&["export", "--config", &config_b, "--out", dump_b.to_str().unwrap()]);
    assert!(
        summary.contains("exported 1 webhooks, 10 events, 20 deliveries"),
        "{summary}"
    );

    // 3. A fresh embedded store: the receiver is back; each delivery
    // arrives once more, and only once.
    let c = TestStore::start(Backend::Embedded);
    let (toml_c, folder_c) = config_toml(&c, &delivery, &hooks);
    let config_c = write("c.toml", &toml_c);
    store_cli(&["import", "--config", &config_c, "--in", dump_b.to_str().unwrap()]);
    rx.set_default(Reply::status(200));
    let back_at = Instant::now();
    let gw = Gateway::start(&toml_c).await;
    let store = store(&c, &folder_c);
    for id in &ids {
        let rec = wait_status(&store, id, Status::Succeeded, Duration::from_secs(30)).await;
        assert!(
            rec.attempts.len() >= 3,
            "{id}: attempts from all three stores: {:?}",
            rec.attempts
        );
        assert_eq!(rec.attempts.last().unwrap().status_code, Some(200));
    }
    let mut after: HashMap<String, usize> = HashMap::new();
    for r in rx.received().into_iter().filter(|r| r.at >= back_at) {
        if r.path == "/api" {
            let sig = r.header("x-hub-signature").unwrap();
            assert!(hookgate::signing::verify_hub("moved-secret-0123", &r.body, sig));
            assert_eq!(r.header("x-webhook-id"), Some(api_id.as_str()));
        }
        *after.entry(r.header("x-delivery-id").unwrap().to_owned()).or_default() += 1;
    }
    for id in &ids {
        assert_eq!(after.get(id), Some(&1), "{id} arrives exactly once after the move");
    }
    assert_eq!(after.len(), ids.len());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_import_file_is_refused_with_its_line() {
    let db = TestStore::start(Backend::Embedded);
    let (toml, _) = config_toml(&db, FAST_DELIVERY, "");
    let files = TempDir::new("transfer-bad");
    let config = files.path().join("config.toml");
    std::fs::write(&config, toml).unwrap();
    let header = r#"{"kind":"header","format":"hookgate-export","version":1}"#;
    let delivery = r#"{"kind":"delivery","id":"d1","eventId":"e1","webhookId":"w","eventType":"a.b","status":"pending","test":false,"attemptCount":0,"retryBase":0,"createdAt":1,"updatedAt":1,"attempts":[]}"#;
    let cases = [
        ("not json\n".to_owned(), "line 1: expected"),
        (
            format!("{delivery}\n"),
            "line 1: the first line must be the export header",
        ),
        (
            r#"{"kind":"header","format":"hookgate-export","version":7}"#.to_owned() + "\n",
            "line 1: not a hookgate export this version reads",
        ),
        (
            format!("{header}\n{delivery}\n"),
            "line 2: delivery d1: its event e1 is not on an earlier line",
        ),
        (String::new(), "empty input"),
    ];
    for (input, expect) in cases {
        let file = files.path().join("in.jsonl");
        std::fs::write(&file, &input).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_hookgate"))
            .args(["store", "import", "--config"])
            .arg(&config)
            .arg("--in")
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{input:?}: {stderr}");
        assert!(stderr.contains(expect), "{input:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
