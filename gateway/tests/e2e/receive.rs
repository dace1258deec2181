//! `hookgate receive`, the local receiver of the README walk-through: it
//! verifies what the gateway signs and misbehaves when asked to.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use hookgate::store::Status;
use hookgate_testkit::{RedisServer, free_port};

use crate::common::*;

#[tokio::test]
async fn receive_verifies_signatures_and_fails_first_with_retry_after() {
    let redis = RedisServer::start();
    let port = free_port();
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["receive", "--listen", &format!("127.0.0.1:{port}"), "--fail-first", "1"])
        .args(["--retry-after", "1", "--secret", secret])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run hookgate receive");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::sync_channel::<String>(1024);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(10)).expect("receive starts");
    assert!(
        first.contains("listening on http://127.0.0.1:") && first.contains("verifying signatures"),
        "{first}"
    );

    let url = format!("http://127.0.0.1:{port}/webhook");
    let hooks = format!(
        "{}\n[[webhooks]]\nid = \"forged\"\nurl = \"{url}\"\nevents = [\"order.*\"]\nsecret = \"another-secret-123\"\n",
        webhook("good", &url, &["order.*"], "").replace("secret-good-0123", secret)
    );
    let (toml, prefix) = config_toml(&redis, &fast_delivery("max_retries = 2"), &hooks);
    let gw = Gateway::start(&toml).await;
    let answer = gw.post_event("order.created", r#"{"order": 42}"#).await;
    let store = store(&redis, &prefix);
    let mut done = Vec::new();
    for d in answer["deliveries"].as_array().unwrap() {
        let id = d["id"].as_str().unwrap();
        let status = if d["webhookId"] == "good" {
            Status::Succeeded
        } else {
            Status::Dead
        };
        done.push(wait_status(&store, id, status, Duration::from_secs(20)).await);
    }
    let good = done.iter().find(|d| d.webhook_id == "good").unwrap();
    assert_eq!(good.attempts.len(), 2, "503 first, then delivered");
    assert_eq!(good.attempts[0].status_code, Some(503));
    let gap = good.attempts[1].started_at - good.attempts[0].started_at;
    assert!(gap >= 1000, "Retry-After: 1 was honoured ({gap} ms)");
    let forged = done.iter().find(|d| d.webhook_id == "forged").unwrap();
    assert!(forged.attempts.iter().all(|a| a.status_code == Some(401)), "{forged:?}");

    let lines: Vec<String> = rx.try_iter().collect();
    let text = lines.join("\n");
    assert!(
        text.contains("verified (x-hub-signature: ok, webhook-signature: ok, timestamp fresh: true)"),
        "{text}"
    );
    assert!(
        text.contains("REJECTED (x-hub-signature: BAD, webhook-signature: BAD"),
        "{text}"
    );
    assert!(text.contains("type order.created -> 204"), "{text}");
    assert!(text.contains(r#"body: {"order": 42}"#), "{text}");
    let _ = child.kill();
    let _ = child.wait();
    gw.stop().await;
}

#[tokio::test]
async fn logs_written_to_a_file_are_plain_and_readable() {
    let redis = RedisServer::start();
    let receiver = hookgate_testkit::Receiver::start().await;
    receiver.set_default(hookgate_testkit::Reply::status(401));
    let hooks = webhook("w", &receiver.url("/w"), &["order.*"], "");
    let (toml, _) = config_toml(&redis, &fast_delivery("max_retries = 0"), &hooks);
    let dir = std::sync::Arc::new(hookgate_testkit::TempDir::new("logs"));
    let mut gw = GatewayProcess::spawn(&toml, dir).await;
    let resp = http()
        .post(gw.url("/api/events"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"type": "order.created", "data": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    receiver.wait_for("/w", 1, Duration::from_secs(10)).await;
    let log = hookgate_testkit::wait_until(Duration::from_secs(10), "the attempt in the log", || async {
        let log = gw.log_text();
        log.contains("http 401").then_some(log)
    })
    .await;
    assert!(!log.contains('\u{1b}'), "no colour codes in a log file:\n{log}");
    assert!(!log.contains("Http {"), "no Rust debug values:\n{log}");
    gw.terminate(Duration::from_secs(10));
}
