//! API rate limits and the error matrix: every route answers 401 without a
//! token, 400 for malformed JSON, 422 for wrong types, 404 for unknown ids,
//! and never a 500.

use serde_json::json;

use crate::common::*;

async fn the_429_comes_exactly_after_the_limit_with_headers(backend: Backend) {
    let db = TestStore::start(backend);
    let (toml, _) = config_toml(&db, FAST_DELIVERY, "");
    let toml = toml.replace(
        &format!("tokens = [\"{TOKEN}\"]"),
        &format!("tokens = [\"{TOKEN}\"]\nrate_limit_per_minute = 5"),
    );
    let gw = Gateway::start(&toml).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Ingest (whose store write takes the limit), an event refused before
    // the store (counted after its answer) and the other routes share one
    // allowance.
    for i in 0..5u64 {
        let (status, h, _) = match i {
            0 | 1 => {
                gw.api("POST", "/api/events", Some(json!({"type": "a.b", "data": {"i": i}})))
                    .await
            }
            2 => {
                gw.api("POST", "/api/events", Some(json!({"type": "Not A Type", "data": {}})))
                    .await
            }
            _ => gw.api("GET", "/api/webhooks", None).await,
        };
        let expected = match i {
            0 | 1 => 202,
            2 => 422,
            _ => 200,
        };
        assert_eq!(status, expected, "request {}", i + 1);
        assert_eq!(h["x-ratelimit-limit"], "5");
        assert_eq!(h["x-ratelimit-remaining"].to_str().unwrap(), (4 - i).to_string());
        let reset: u64 = h["x-ratelimit-reset"].to_str().unwrap().parse().unwrap();
        assert!(reset >= now && reset <= now + 62, "reset {reset} now {now}");
    }
    let (status, h, body) = gw.api("GET", "/api/webhooks", None).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(h["x-ratelimit-remaining"], "0");
    let retry_after: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=12).contains(&retry_after), "{retry_after}");
    // Ingest shares the same allowance (checked inside its store write).
    let (status, h, body) = gw
        .api("POST", "/api/events", Some(json!({"type": "a.b", "data": {}})))
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(h["x-ratelimit-remaining"], "0");
    assert!(h.contains_key("retry-after"));
    // Errors carry the headers too; requests without a token are limited
    // separately (per address), so they are not starved by this token.
    let (status, h, _) = gw.api_as(None, "GET", "/api/webhooks", None).await;
    assert_eq!(status, 401);
    assert!(h.contains_key("x-ratelimit-limit"));
    gw.stop().await;
}

async fn every_route_rejects_bad_requests_cleanly(backend: Backend) {
    let db = TestStore::start(backend);
    let (toml, _) = config_toml(&db, FAST_DELIVERY, "");
    let gw = Gateway::start(&toml).await;
    let (_, _, hook) = gw
        .api(
            "POST",
            "/api/webhooks",
            Some(json!({"name": "n", "url": "https://example.com/h", "events": ["*"]})),
        )
        .await;
    let id = hook["id"].as_str().unwrap().to_owned();
    let routes: Vec<(&str, String, bool)> = vec![
        ("POST", "/api/events".into(), true),
        ("GET", "/api/webhooks".into(), false),
        ("POST", "/api/webhooks".into(), true),
        ("GET", format!("/api/webhooks/{id}"), false),
        ("PATCH", format!("/api/webhooks/{id}"), true),
        ("DELETE", "/api/webhooks/wh_nope".into(), false),
        ("POST", format!("/api/webhooks/{id}/rotate-secret"), true),
        ("POST", format!("/api/webhooks/{id}/test"), true),
        ("GET", "/api/deliveries".into(), false),
        ("GET", "/api/deliveries/dlv_nope".into(), false),
        ("POST", "/api/deliveries/dlv_nope/retry".into(), false),
        ("GET", "/api/dead-letters".into(), false),
        ("POST", "/api/dead-letters/replay".into(), true),
    ];
    for (method, path, takes_body) in &routes {
        let (status, _, body) = gw.api_as(None, method, path, None).await;
        assert_eq!(status, 401, "{method} {path} without a token: {body}");
        let (status, _, body) = gw.api_as(Some("not-the-token"), method, path, None).await;
        assert_eq!(status, 401, "{method} {path} with a wrong token: {body}");
        if *takes_body {
            let (status, _, body) = gw.api_as(Some(TOKEN), method, path, Some("{\"oops\": ".into())).await;
            assert_eq!(status, 400, "{method} {path} malformed: {body}");
            assert_eq!(body["error"]["code"], "malformed_json");
            let wrong = match path.as_str() {
                "/api/events" => json!({"type": 1, "data": {}}),
                "/api/dead-letters/replay" => json!({"ids": "x"}),
                p if p.ends_with("/rotate-secret") => json!({"graceSeconds": "soon"}),
                p if p.ends_with("/test") => json!(null),
                _ => json!({"name": 5, "url": [], "events": "x"}),
            };
            let (status, _, body) = gw.api(method, path, Some(wrong.clone())).await;
            if !path.ends_with("/test") {
                assert_eq!(status, 422, "{method} {path} wrong types {wrong}: {body}");
                assert_eq!(body["error"]["code"], "validation_failed");
            } else {
                assert_eq!(status, 202, "any JSON is a valid test payload");
            }
        }
    }
    for (method, path) in [
        ("GET", "/api/webhooks/wh_nope"),
        ("PATCH", "/api/webhooks/wh_nope"),
        ("DELETE", "/api/webhooks/wh_nope"),
        ("POST", "/api/webhooks/wh_nope/rotate-secret"),
        ("POST", "/api/webhooks/wh_nope/test"),
        ("GET", "/api/deliveries/dlv_nope"),
        ("POST", "/api/deliveries/dlv_nope/retry"),
    ] {
        let (status, _, body) = gw.api(method, path, Some(json!({}))).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    // Field-level validation names the field.
    for (input, field) in [
        (json!({"name": "n", "url": "ftp://x", "events": ["*"]}), "url"),
        (json!({"name": "n", "url": "https://x.com", "events": []}), "events"),
        (
            json!({"name": "n", "url": "https://x.com", "events": ["Bad"]}),
            "events[0]",
        ),
        (
            json!({"name": "n", "url": "https://x.com", "events": ["*"], "secret": "short"}),
            "secret",
        ),
        (
            json!({"name": "n", "url": "https://x.com", "events": ["*"], "maxRetries": 11}),
            "maxRetries",
        ),
        (
            json!({"name": "n", "url": "https://x.com", "events": ["*"], "rateLimitPerMinute": 0}),
            "rateLimitPerMinute",
        ),
        (
            json!({"name": "n", "url": "https://x.com", "events": ["*"], "headers": {"X-Hub-Signature": "x"}}),
            "headers.X-Hub-Signature",
        ),
        (json!({"name": "", "url": "https://x.com", "events": ["*"]}), "name"),
        (json!({"url": "https://x.com", "events": ["*"]}), "name"),
    ] {
        let (status, _, body) = gw.api("POST", "/api/webhooks", Some(input.clone())).await;
        assert_eq!(status, 422, "{input}: {body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(field), "{msg:?} should name {field}");
    }
    // The OpenAPI document holds no data: no token needed, a wrong one is ignored.
    for token in [Some(TOKEN), None, Some("not-the-token")] {
        let (status, headers, doc) = gw.api_as(token, "GET", "/api/openapi.json", None).await;
        assert_eq!(status, 200, "{token:?}: {doc}");
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(headers.contains_key("x-ratelimit-remaining"), "{headers:?}");
    }
    gw.stop().await;
}

on_both_backends!(
    the_429_comes_exactly_after_the_limit_with_headers,
    every_route_rejects_bad_requests_cleanly,
);
