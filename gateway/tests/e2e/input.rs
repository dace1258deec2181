//! Bad input gets a clear error in the API error shape, never a 500; bad
//! config gets `PATH:LINE:COL: message` from `hookgate check`.

use std::process::Command;

use hookgate_testkit::{RedisServer, TempDir};
use serde_json::Value;

use crate::common::*;

async fn send(gw: &Gateway, token: Option<&str>, content_type: Option<&str>, body: String) -> (u16, Value) {
    let mut req = gw.http.post(gw.url("/api/events")).body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

fn assert_error(got: &(u16, Value), status: u16, code: &str, mentions: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error"]["code"], code, "{}", got.1);
    let msg = got.1["error"]["message"].as_str().unwrap();
    assert!(msg.contains(mentions), "message {msg:?} should mention {mentions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_rejects_bad_input_with_clear_errors() {
    let redis = RedisServer::start();
    let (toml, _) = config_toml(&redis, FAST_DELIVERY, "");
    let gw = Gateway::start(&toml).await;
    let json = Some("application/json");
    let ok_body = r#"{"type":"a.b","data":{}}"#.to_owned();

    assert_error(
        &send(&gw, None, json, ok_body.clone()).await,
        401,
        "unauthorized",
        "bearer",
    );
    assert_error(
        &send(&gw, Some("wrong-token-123"), json, ok_body.clone()).await,
        401,
        "unauthorized",
        "token",
    );
    assert_error(
        &send(&gw, Some(TOKEN), json, "{\"type\":".into()).await,
        400,
        "malformed_json",
        "JSON",
    );
    assert_error(
        &send(&gw, Some(TOKEN), json, "not json".into()).await,
        400,
        "malformed_json",
        "JSON",
    );
    assert_error(
        &send(&gw, Some(TOKEN), json, r#"{"type":"a","data":1} x"#.into()).await,
        400,
        "malformed_json",
        "JSON",
    );
    assert_error(
        &send(&gw, Some(TOKEN), json, r#"{"type":5,"data":{}}"#.into()).await,
        422,
        "validation_failed",
        "type",
    );
    assert_error(
        &send(
            &gw,
            Some(TOKEN),
            json,
            r#"{"type":"a.b","data":{},"test":"yes"}"#.into(),
        )
        .await,
        422,
        "validation_failed",
        "test",
    );
    assert_error(
        &send(&gw, Some(TOKEN), json, r#"{"type":"a.b"}"#.into()).await,
        422,
        "validation_failed",
        "data",
    );
    assert_error(
        &send(&gw, Some(TOKEN), json, r#"{"type":"Bad Type!","data":{}}"#.into()).await,
        422,
        "validation_failed",
        "type",
    );
    assert_error(
        &send(&gw, Some(TOKEN), json, "[1,2]".into()).await,
        422,
        "validation_failed",
        "",
    );
    let big = format!(r#"{{"type":"a.b","data":"{}"}}"#, "x".repeat(5000));
    assert_error(
        &send(&gw, Some(TOKEN), json, big).await,
        413,
        "payload_too_large",
        "4096",
    );
    assert_error(
        &send(&gw, Some(TOKEN), Some("text/plain"), ok_body.clone()).await,
        415,
        "unsupported_media_type",
        "JSON",
    );

    let missing = gw
        .http
        .get(gw.url("/api/nope"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let wrong_method = gw
        .http
        .get(gw.url("/api/events"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);

    let health: Value = gw
        .http
        .get(gw.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    // After all that, a good request still works.
    assert_eq!(send(&gw, Some(TOKEN), json, ok_body).await.0, 202);
    gw.stop().await;
}

#[test]
fn check_prints_every_config_error_with_its_position() {
    let dir = TempDir::new("check");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        r#"[api]
tokens = ["env:HOOKGATE_TEST_SURELY_UNSET_VAR"]

[store]
backend = "redis"

[delivery]
max_retries = 11
timeout = "soon"

[[webhooks]]
id = "bad id"
url = "ftp://example.com/hook"
events = ["Task.*"]
secret = "short"
"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let p = bad.display().to_string();
    for expected in [
        format!("{p}:2:11: environment variable HOOKGATE_TEST_SURELY_UNSET_VAR is not set"),
        format!("{p}:8:15: max_retries must be between 0 and 10, got 11"),
        format!("{p}:9:11: delivery.timeout: invalid duration"),
        format!("{p}:12:6: webhook id \"bad id\""),
        format!("{p}:13:7: url must be http or https"),
        format!("{p}:14:11: invalid event pattern \"Task.*\""),
        format!("{p}:15:10: secret must be 8 to 256 bytes long"),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    }

    let unknown = dir.path().join("unknown.toml");
    std::fs::write(
        &unknown,
        "[api]\ntokens = [\"abcdefgh1\"]\n[store]\nbackend = \"redis\"\n\n[delivery]\nmax_retry = 3\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["check", "--config"])
        .arg(&unknown)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("{}:7:1: unknown field `max_retry`", unknown.display())),
        "{text}"
    );

    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../config.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["check", "--config", example])
        .env("HOOKGATE_API_TOKEN", "example-token-123")
        .env("ORDERS_WEBHOOK_SECRET", "example-secret-123")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok",
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.status.success());
}
