//! The delivery dashboard (docs/operations.md) in a real headless browser.
//!
//! Starts a real redis-server, a real receiver and TWO gateways in-process
//! on it, makes traffic through both (a delivery that succeeds on its second
//! attempt, two dead ones), waits until both gateways' figures are in the
//! store, then runs `tests/dashboard/dashboard.spec.mjs` with Node: it drives
//! Debian's Chromium through `playwright-core` (sign in, the fleet's figures
//! and charts checked against `GET /api/stats` on both gateways, webhook
//! names, history with filters, a delivery's payload, headers and attempts,
//! retry, dead-letter replay, error display) and saves screenshots. Needs `node`,
//! `npm` (for `npm ci` the first time) and `/usr/bin/chromium` (or
//! `$CHROMIUM`); a missing one fails the test with what to install.

#![forbid(unsafe_code)]

#[path = "e2e/common.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hookgate::store::Status;
use hookgate_testkit::{Receiver, RedisServer, Reply};

use common::*;

const NODE_TIMEOUT: Duration = Duration::from_secs(180);

fn script_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard")
}

/// Checks node, Chromium and the npm packages (installing those with `npm
/// ci` if missing); panics with what to install otherwise. Returns Chromium.
fn browser_tools() -> PathBuf {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "`node` not found: the dashboard test drives Chromium with Node.js 18 or newer. \
         Install it with `sudo apt-get install -y nodejs npm` ({node:?})"
    );
    let chromium = std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        chromium.is_file(),
        "{} not found: the dashboard test needs Debian's Chromium. Install it with \
         `sudo apt-get update && sudo apt-get install -y chromium` (or set CHROMIUM=/path/to/chromium)",
        chromium.display()
    );
    let dir = script_dir();
    if !dir.join("node_modules/playwright-core/package.json").is_file() {
        let out = Command::new("npm")
            .args(["ci", "--silent", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "`npm` not found ({e}): the dashboard test installs playwright-core with `npm ci` in {}. \
                     Install npm with `sudo apt-get install -y npm`",
                    dir.display()
                )
            });
        assert!(
            out.status.success(),
            "`npm ci` in {} failed; run it there by hand to see why:\n{}{}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    chromium
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_works_in_headless_chromium() {
    let chromium = browser_tools();
    let redis = RedisServer::start();
    let rx = Receiver::start().await;
    let hooks = [
        webhook("ok-hook", &rx.url("/ok"), &["order.*"], "name = \"Orders service\""),
        webhook(
            "dead-hook",
            &rx.url("/dead"),
            &["invoice.*"],
            "name = \"Billing\"\nmax_retries = 0\nheaders = { \"X-Team\" = \"billing\" }",
        ),
    ]
    .concat();
    let (toml, prefix) = config_toml(&redis, FAST_DELIVERY, &hooks);
    let gw = Gateway::start(&toml).await;
    let other = Gateway::start(&toml).await;
    let store = store(&redis, &prefix);

    // ok-hook: 503, then 200 on the retry.
    rx.plan([Reply::status(503), Reply::status(200)]);
    let ok = delivery_ids(&gw.post_event("order.created", r#"{"order": 42}"#).await);
    wait_status(&store, &ok[0], Status::Succeeded, Duration::from_secs(15)).await;
    // dead-hook: every attempt gets a 500 and max_retries = 0: two dead letters.
    rx.set_default(Reply::status(500).body("boom <b>bold</b>"));
    let payload = r#"{"invoice": 7, "note": "<img src=x onerror=\"window.xssFired=1\">"}"#;
    let mut dead = Vec::new();
    for g in [&gw, &other] {
        dead.extend(delivery_ids(&g.post_event("invoice.created", payload).await));
    }
    for id in &dead {
        wait_status(&store, id, Status::Dead, Duration::from_secs(15)).await;
    }
    check_server_side(&gw, &dead[0]).await;
    // Both gateways' figures are in the store (each flushes every second).
    hookgate_testkit::wait_until(Duration::from_secs(10), "the fleet's figures", || async {
        let (_, _, v) = other.api("GET", "/api/stats", None).await;
        let t = &v["totals"];
        (t["attempts"]["total"] == 4 && t["deliveries"]["dead"] == 2).then_some(())
    })
    .await;
    // The receiver is back: the browser's retry and replay succeed.
    rx.set_default(Reply::status(200).body("ok"));

    let shots = std::env::temp_dir().join("hookgate-dashboard-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let run = tokio::process::Command::new("node")
        .arg("dashboard.spec.mjs")
        .arg(gw.url(""))
        .arg(TOKEN)
        .arg(&shots)
        .arg(other.url(""))
        .current_dir(script_dir())
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(NODE_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("the browser script did not finish within {NODE_TIMEOUT:?}"))
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}{stderr}");
    assert!(
        out.status.success(),
        "the dashboard browser test failed ({}):\n{stdout}{stderr}",
        out.status
    );
    assert!(stdout.contains("all steps passed"), "{stdout}");

    // What the browser did reached the receiver: the retry and the replay.
    for id in &dead {
        wait_status(&store, id, Status::Succeeded, Duration::from_secs(15)).await;
    }
    assert_eq!(rx.received_on("/dead").len(), 4);
    gw.stop().await;
    other.stop().await;
}

/// What the browser relies on, checked without it: the assets' headers, and
/// the delivery view's reconstructed headers (no secret, no real signature).
async fn check_server_side(gw: &Gateway, dead_id: &str) {
    for (path, content_type) in [
        ("/dashboard", "text/html; charset=utf-8"),
        ("/dashboard/app.js", "text/javascript; charset=utf-8"),
        ("/dashboard/style.css", "text/css; charset=utf-8"),
        ("/dashboard/favicon.svg", "image/svg+xml"),
    ] {
        let resp = gw.http.get(gw.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let h = resp.headers();
        assert_eq!(h["content-type"], content_type, "{path}");
        assert_eq!(h["cache-control"], "no-cache", "{path}");
        assert_eq!(
            h["content-security-policy"],
            hookgate::dashboard::CONTENT_SECURITY_POLICY,
            "{path}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
    }
    let missing = gw.http.get(gw.url("/dashboard/nope.js")).send().await.unwrap();
    assert_eq!(missing.status(), 404);

    let (status, _, view) = gw.api("GET", &format!("/api/deliveries/{dead_id}"), None).await;
    assert_eq!(status, 200, "{view}");
    let headers = &view["headers"];
    assert_eq!(headers["X-Delivery-ID"], dead_id);
    assert_eq!(headers["X-Webhook-ID"], "dead-hook");
    assert_eq!(headers["X-Delivery-Attempt"], "1");
    assert_eq!(headers["X-Event-Type"], "invoice.created");
    assert_eq!(headers["X-Team"], "billing");
    assert_eq!(headers["User-Agent"], hookgate::dispatch::USER_AGENT_VALUE);
    assert_eq!(headers["X-Hub-Signature"], "<signed per attempt>");
    assert_eq!(headers["webhook-signature"], "<signed per attempt>");
    assert!(headers.get("X-Webhook-Test").is_none());
    assert!(view["headersNote"].is_string());
    assert!(!view.to_string().contains("secret-dead-hook"), "a secret in {view}");
    let (_, _, list) = gw.api("GET", "/api/deliveries?status=dead", None).await;
    assert!(list["data"][0].get("headers").is_none(), "the list form has no headers");
}
