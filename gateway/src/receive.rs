//! `hookgate receive`: a local webhook receiver for trying hookgate out and
//! for plugin authors. It verifies both signature schemes with the given
//! secret (`X-Hub-Signature` over the body, keyed with the secret's bytes;
//! Standard Webhooks `webhook-signature` over `{id}.{timestamp}.{body}`,
//! keyed with the decoded `whsec_` bytes), rejects timestamps more than five
//! minutes off, prints each delivery, and can misbehave on request so the
//! retry path can be watched: a fixed status, the first N requests failing,
//! a delay, a `Retry-After`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::signing::{verify_hub, verify_standard};

/// How far a signature timestamp may be from now.
const TOLERANCE_SECS: i64 = 300;

/// How the receiver answers.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// The webhook's secret; without it, signatures are shown as unchecked.
    pub secret: Option<String>,
    /// Answer every request with this status (after any `fail_first`).
    pub status: Option<u16>,
    /// Answer the first N correctly signed requests with 503 (or `status` if
    /// it is an error); badly signed ones always get 401.
    pub fail_first: u64,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Send `Retry-After: N` with error answers.
    pub retry_after: Option<u64>,
}

/// What one request was found to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub hub: Option<bool>,
    pub standard: Option<bool>,
    pub fresh: bool,
}

impl Verdict {
    /// Signed correctly (by at least one scheme it carries) and fresh.
    pub fn verified(&self) -> bool {
        self.fresh && (self.hub == Some(true) || self.standard == Some(true))
    }
}

fn text<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Checks a request's signatures with `secret` at time `now` (unix s).
pub fn verify(secret: &str, headers: &HeaderMap, body: &[u8], now: i64) -> Verdict {
    let ts: i64 = text(headers, "webhook-timestamp")
        .parse()
        .or_else(|_| text(headers, "x-webhook-timestamp").parse())
        .unwrap_or(0);
    let hub = headers
        .contains_key("x-hub-signature")
        .then(|| verify_hub(secret, body, text(headers, "x-hub-signature")));
    let standard = headers.contains_key("webhook-signature").then(|| {
        verify_standard(
            secret,
            text(headers, "webhook-id"),
            ts,
            body,
            text(headers, "webhook-signature"),
        )
    });
    Verdict {
        hub,
        standard,
        fresh: (now - ts).abs() <= TOLERANCE_SECS,
    }
}

fn shown(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "ok",
        Some(false) => "BAD",
        None => "absent",
    }
}

struct State {
    behaviour: Behaviour,
    seen: AtomicU64,
    accepted: AtomicU64,
}

async fn handle(state: Arc<State>, headers: HeaderMap, body: Bytes) -> Response {
    let n = state.seen.fetch_add(1, Ordering::AcqRel) + 1;
    let b = &state.behaviour;
    let now = crate::ids::now_ms() as i64 / 1000;
    let (label, ok) = match &b.secret {
        Some(secret) => {
            let v = verify(secret, &headers, &body, now);
            let ok = v.verified();
            (
                format!(
                    "{} (x-hub-signature: {}, webhook-signature: {}, timestamp fresh: {})",
                    if ok { "verified" } else { "REJECTED" },
                    shown(v.hub),
                    shown(v.standard),
                    v.fresh
                ),
                ok,
            )
        }
        None => ("received (signatures not checked: no --secret)".to_owned(), true),
    };
    let status = if !ok {
        StatusCode::UNAUTHORIZED
    } else if state.accepted.fetch_add(1, Ordering::AcqRel) < b.fail_first {
        b.status
            .filter(|s| *s >= 400)
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
    } else {
        b.status
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::NO_CONTENT)
    };
    println!(
        "#{n} {label}: delivery {} attempt {} type {} -> {}\n  body: {}",
        text(&headers, "x-delivery-id"),
        text(&headers, "x-delivery-attempt"),
        text(&headers, "x-event-type"),
        status.as_u16(),
        String::from_utf8_lossy(&body),
    );
    if !b.delay.is_zero() {
        tokio::time::sleep(b.delay).await;
    }
    let mut resp = status.into_response();
    if let Some(secs) = b.retry_after
        && !status.is_success()
    {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// Serves until the process ends.
pub async fn run(listener: tokio::net::TcpListener, behaviour: Behaviour) -> std::io::Result<()> {
    let state = Arc::new(State {
        behaviour,
        seen: AtomicU64::new(0),
        accepted: AtomicU64::new(0),
    });
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| handle(state.clone(), headers, body));
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::{hub_signature, standard_key, standard_signature};

    #[test]
    fn both_schemes_are_verified_and_stale_or_forged_ones_refused() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"order": 42}"#;
        let now = 1_700_000_000;
        let mut h = HeaderMap::new();
        h.insert("x-hub-signature", hub_signature(secret, body).parse().unwrap());
        h.insert("webhook-id", "dlv_1".parse().unwrap());
        h.insert("webhook-timestamp", now.to_string().parse().unwrap());
        let sig = standard_signature(&standard_key(secret), "dlv_1", now, body);
        h.insert("webhook-signature", sig.parse().unwrap());
        let v = verify(secret, &h, body, now + 10);
        assert_eq!((v.hub, v.standard, v.fresh), (Some(true), Some(true), true));
        assert!(v.verified());
        assert!(!verify(secret, &h, body, now + 3600).verified(), "stale");
        assert!(!verify("whsec_other", &h, body, now).verified(), "wrong secret");
        assert!(!verify(secret, &h, b"{}", now).verified(), "changed body");
    }
}
