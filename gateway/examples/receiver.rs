//! A webhook receiver that verifies hookgate's signatures, for the README
//! walk-through and as a reference for receivers written in Rust.
//!
//! ```text
//! ORDERS_WEBHOOK_SECRET=whsec_... cargo run --example receiver   # listens on 127.0.0.1:9000
//! ```
//!
//! For every POST it checks `X-Hub-Signature` (HMAC-SHA256 of the body,
//! keyed with the secret's bytes) and the Standard Webhooks
//! `webhook-signature` (over `{webhook-id}.{webhook-timestamp}.{body}`,
//! keyed with the decoded `whsec_` bytes), rejects timestamps more than five
//! minutes off, prints what arrived, and answers 204 (or 401).

#![forbid(unsafe_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use hookgate::signing::{verify_hub, verify_standard};

const TOLERANCE_SECS: i64 = 300;

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

async fn receive(secret: String, headers: HeaderMap, body: Bytes) -> StatusCode {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let ts: i64 = header(&headers, "webhook-timestamp")
        .parse()
        .or_else(|_| header(&headers, "x-webhook-timestamp").parse())
        .unwrap_or(0);
    let fresh = (now - ts).abs() <= TOLERANCE_SECS;
    let hub = verify_hub(&secret, &body, header(&headers, "x-hub-signature"));
    let standard = verify_standard(
        &secret,
        header(&headers, "webhook-id"),
        ts,
        &body,
        header(&headers, "webhook-signature"),
    );
    let verdict = if fresh && (hub || standard) {
        "verified"
    } else {
        "REJECTED"
    };
    println!(
        "{verdict}: delivery {} attempt {} type {} (x-hub-signature: {}, webhook-signature: {}, timestamp fresh: {fresh})\n  body: {}",
        header(&headers, "x-delivery-id"),
        header(&headers, "x-delivery-attempt"),
        header(&headers, "x-event-type"),
        if hub { "ok" } else { "bad" },
        if standard { "ok" } else { "bad" },
        String::from_utf8_lossy(&body),
    );
    if verdict == "verified" {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::UNAUTHORIZED
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let Ok(secret) = std::env::var("ORDERS_WEBHOOK_SECRET") else {
        return Err(std::io::Error::other(
            "set ORDERS_WEBHOOK_SECRET to the webhook's secret",
        ));
    };
    let listen = std::env::var("RECEIVER_LISTEN").unwrap_or_else(|_| "127.0.0.1:9000".into());
    let app =
        axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| receive(secret.clone(), headers, body));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("receiver listening on http://{listen} (verifying signatures)");
    axum::serve(listener, app).await
}
