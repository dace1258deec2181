//! One delivery attempt: headers, signatures, the POST, and what came of it.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT};

use super::client::{Answer, Outbound, SendError};
use crate::config::SignatureSchemes;
use crate::store::{AttemptRecord, Job, now_ms};
use crate::webhooks::{Webhook, is_reserved_header};

/// `hookgate/<version>`.
pub const USER_AGENT_VALUE: &str = concat!("hookgate/", env!("CARGO_PKG_VERSION"));

/// What an attempt came to, for the retry decision and metrics.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// 2xx.
    Success,
    /// 410 Gone: the receiver asked to stop.
    Gone,
    /// Any other status (3xx included); `retry_after` from 429/502/503/504.
    Http {
        status: u16,
        retry_after: Option<Duration>,
    },
    Timeout,
    /// Connection failed, or the SSRF guard refused the destination.
    Connect,
    /// The request was cut short because the gateway is shutting down.
    Cancelled,
}

/// Readable in logs: `success`, `http 503 retry-after 5s`, `timeout`.
impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Success => f.write_str("success"),
            Verdict::Gone => f.write_str("http 410 gone"),
            Verdict::Http {
                status,
                retry_after: None,
            } => write!(f, "http {status}"),
            Verdict::Http {
                status,
                retry_after: Some(d),
            } => write!(f, "http {status} retry-after {}", humantime::format_duration(*d)),
            Verdict::Timeout => f.write_str("timeout"),
            Verdict::Connect => f.write_str("connect error"),
            Verdict::Cancelled => f.write_str("cancelled"),
        }
    }
}

impl Verdict {
    /// The `result` label of `hookgate_delivery_attempts_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Verdict::Success => "success",
            Verdict::Http { status, .. } if *status >= 500 => "http_5xx",
            Verdict::Gone | Verdict::Http { .. } => "http_4xx",
            Verdict::Timeout => "timeout",
            Verdict::Connect | Verdict::Cancelled => "connect_error",
        }
    }
}

/// An attempt's verdict and record.
#[derive(Debug, Clone)]
pub struct Attempted {
    pub verdict: Verdict,
    pub record: AttemptRecord,
}

/// The headers of one attempt, signatures included.
///
/// `extra` are the webhook's static headers, or a plugin chain's output
/// headers (which started from them): they may set `Content-Type`, but every
/// header hookgate owns (ids, signatures, ...) is set by hookgate.
pub fn build_headers(
    job: &Job,
    hook: &Webhook,
    schemes: SignatureSchemes,
    body: &[u8],
    timestamp: i64,
    extra: &[(String, String)],
) -> HeaderMap {
    let attempt = job.attempts + 1;
    let mut h = HeaderMap::with_capacity(16);
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in extra {
        if is_reserved_header(name) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            h.insert(n, v);
        }
    }
    let mut put = |name: HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    put(names::DELIVERY_ID, &job.delivery_id);
    put(names::DELIVERY_ATTEMPT, itoa::Buffer::new().format(attempt));
    put(names::EVENT_TYPE, &job.event_type);
    let mut ts = itoa::Buffer::new();
    let ts = ts.format(timestamp);
    put(names::WEBHOOK_TIMESTAMP, ts);
    if schemes.standard {
        put(names::STANDARD_ID, &job.delivery_id);
        put(names::STANDARD_TIMESTAMP, ts);
    }
    if job.test {
        put(names::TEST, "true");
    }
    if let Some(id) = &hook.id_header {
        h.insert(names::WEBHOOK_ID, id.clone());
    }
    // Signatures are written straight into the bytes the header keeps.
    let mut signed = |name: HeaderName, text: String| {
        if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(text)) {
            h.insert(name, v);
        }
    };
    let now = now_ms();
    if schemes.hub
        && let Some(current) = hook.active_secrets(now).next()
    {
        let mut sig = String::with_capacity(71);
        current.keys().push_hub(&mut sig, body);
        signed(names::HUB_SIGNATURE, sig);
    }
    if schemes.standard {
        // One `v1,` entry per active secret, newest first (rotation).
        let mut sig = String::with_capacity(47);
        for secret in hook.active_secrets(now) {
            if !sig.is_empty() {
                sig.push(' ');
            }
            secret.keys().push_standard(&mut sig, &job.delivery_id, timestamp, body);
        }
        signed(names::STANDARD_SIGNATURE, sig);
    }
    h.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    h
}

/// The names of the headers hookgate sets, made at compile time (a name
/// made at run time is checked byte by byte).
mod names {
    use super::HeaderName;

    pub const WEBHOOK_ID: HeaderName = HeaderName::from_static("x-webhook-id");
    pub const DELIVERY_ID: HeaderName = HeaderName::from_static("x-delivery-id");
    pub const DELIVERY_ATTEMPT: HeaderName = HeaderName::from_static("x-delivery-attempt");
    pub const EVENT_TYPE: HeaderName = HeaderName::from_static("x-event-type");
    pub const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("x-webhook-timestamp");
    pub const HUB_SIGNATURE: HeaderName = HeaderName::from_static("x-hub-signature");
    pub const STANDARD_ID: HeaderName = HeaderName::from_static("webhook-id");
    pub const STANDARD_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
    pub const STANDARD_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");
    pub const TEST: HeaderName = HeaderName::from_static("x-webhook-test");
}

/// What goes out: the body to sign and send, and the extra headers (the
/// webhook's static ones, or a plugin chain's output).
#[derive(Debug, Clone)]
pub struct Payload<'a> {
    pub body: Bytes,
    pub headers: &'a [(String, String)],
}

/// Parses `Retry-After`: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

fn verdict_of(answer: &Answer) -> Verdict {
    let status = answer.status.as_u16();
    match status {
        200..=299 => Verdict::Success,
        410 => Verdict::Gone,
        429 | 502 | 503 | 504 => Verdict::Http {
            status,
            retry_after: answer
                .headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now())),
        },
        _ => Verdict::Http {
            status,
            retry_after: None,
        },
    }
}

/// Makes one attempt of `job` to `hook` with `body`, unless `cancel` fires
/// first.
pub async fn attempt(
    outbound: &Outbound,
    job: &Job,
    hook: &Webhook,
    schemes: SignatureSchemes,
    payload: Payload<'_>,
    timeout: Duration,
    cancel: &tokio_util::sync::CancellationToken,
) -> Attempted {
    let Payload {
        body,
        headers: extra_headers,
    } = payload;
    let started_at = now_ms();
    let clock = Instant::now();
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let headers = build_headers(job, hook, schemes, &body, timestamp, extra_headers);
    let result = tokio::select! {
        r = outbound.post(&hook.url, hook.client_identity.as_deref(), headers, body, timeout) => Some(r),
        () = cancel.cancelled() => None,
    };
    let mut record = AttemptRecord {
        attempt: job.attempts + 1,
        started_at,
        duration_ms: clock.elapsed().as_millis() as u64,
        status_code: None,
        error: None,
        response_body: None,
        filtered: None,
    };
    let verdict = match result {
        None => {
            record.error = Some("cancelled: the gateway is shutting down".into());
            Verdict::Cancelled
        }
        Some(Ok(answer)) => {
            record.status_code = Some(answer.status.as_u16());
            if !answer.body.is_empty() {
                record.response_body = Some(String::from_utf8_lossy(&answer.body).into_owned());
            }
            let v = verdict_of(&answer);
            if v != Verdict::Success {
                record.error = Some(match answer.status.as_u16() {
                    300..=399 => format!("HTTP {} (redirects are not followed)", answer.status.as_u16()),
                    410 => "HTTP 410 Gone: the receiver asked to stop; webhook disabled".into(),
                    s => format!("HTTP {s}"),
                });
            }
            v
        }
        Some(Err(e)) => {
            record.error = Some(e.describe());
            match e {
                SendError::Timeout(_) => Verdict::Timeout,
                SendError::Refused(_) | SendError::Connect(_) | SendError::Other(_) | SendError::UnknownIdentity(_) => {
                    Verdict::Connect
                }
            }
        }
    };
    Attempted { verdict, record }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(30)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
