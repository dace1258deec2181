//! The JSON shapes the API answers with (camelCase, RFC 3339 times).
//! Secrets never appear here, except the one `secret` field of a freshly
//! created webhook whose secret was generated.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use crate::circuit::{Circuit, CircuitState};
use crate::config::SignatureSchemes;
use crate::dispatch::USER_AGENT_VALUE;
use crate::store::{AttemptRecord, DeliveryRecord, Status};
use crate::webhooks::rules::shown_header_value;
use crate::webhooks::{OnError, Source, Webhook, is_reserved_header};

/// RFC 3339 with milliseconds, UTC.
pub fn time(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    pub id: String,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub test_mode: bool,
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    pub source: Source,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_minute: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    pub headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_identity: Option<String>,
    /// The circuit breaker shared by every gateway.
    pub circuit: CircuitView,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<PluginView>,
    /// Only in the answer to a create that generated the secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl From<&Webhook> for WebhookView {
    fn from(w: &Webhook) -> Self {
        WebhookView {
            id: w.id.clone(),
            name: w.name.clone(),
            url: w.url.to_string(),
            events: w.events.iter().map(ToString::to_string).collect(),
            test_mode: w.test_mode,
            enabled: w.enabled,
            disabled_reason: w.disabled_reason.clone(),
            source: w.source,
            created_at: w.created_at_ms.map(time),
            updated_at: w.updated_at_ms.map(time),
            rate_limit_per_minute: w.rate_limit_per_minute,
            max_retries: w.max_retries,
            timeout_ms: w.timeout.map(|t| t.as_millis() as u64),
            headers: w
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), shown_header_value(k, v).to_owned()))
                .collect(),
            client_identity: w.client_identity.clone(),
            circuit: CircuitView::from(w.circuit.as_ref()),
            plugins: w
                .plugins
                .iter()
                .map(|p| PluginView {
                    path: p.path.clone(),
                    // config.toml values may come from `env:` (secrets):
                    // only API-given values, which the caller sent, are shown.
                    config: p
                        .config
                        .iter()
                        .map(|(k, v)| {
                            let v = if w.source == Source::Api {
                                v.clone()
                            } else {
                                "<hidden>".into()
                            };
                            (k.clone(), v)
                        })
                        .collect(),
                    on_error: p.on_error,
                    sha256: p.sha256.clone(),
                    reload_error: None,
                })
                .collect(),
            secret: None,
        }
    }
}

/// `{state, since, nextProbeAt}`: `closed` alone, or `open`/`half_open`
/// with when it got there and when the next probe may go.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CircuitView {
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_probe_at: Option<String>,
}

impl From<Option<&Circuit>> for CircuitView {
    fn from(c: Option<&Circuit>) -> Self {
        match c {
            None => CircuitView {
                state: CircuitState::Closed.as_str(),
                since: None,
                next_probe_at: None,
            },
            Some(c) => CircuitView {
                state: c.state.as_str(),
                since: Some(time(c.since_ms)),
                next_probe_at: Some(time(c.next_probe_at_ms)),
            },
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginView {
    pub path: String,
    pub config: BTreeMap<String, String>,
    pub on_error: OnError,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The plugin file changed but the new version rejected this webhook's
    /// config: the previous version keeps running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reload_error: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    pub attempt: u32,
    pub started_at: String,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    /// Why a plugin dropped the delivery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filtered: Option<String>,
}

impl From<&AttemptRecord> for AttemptView {
    fn from(a: &AttemptRecord) -> Self {
        AttemptView {
            attempt: a.attempt,
            started_at: time(a.started_at),
            duration_ms: a.duration_ms,
            status_code: a.status_code,
            error: a.error.clone(),
            response_body: a.response_body.clone(),
            filtered: a.filtered.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub id: String,
    pub event_id: String,
    pub webhook_id: String,
    pub event_type: String,
    pub status: Status,
    pub test: bool,
    pub attempt_count: u32,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// The payload as last sent (JSON as is, or a string if it is not JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<AttemptView>>,
    /// The headers hookgate sends, reconstructed (signatures are placeholders).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<SentHeaders>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers_note: Option<&'static str>,
}

impl DeliveryView {
    /// The list form: no payload, no attempts.
    pub fn summary(d: &DeliveryRecord) -> Self {
        DeliveryView {
            id: d.id.clone(),
            event_id: d.event_id.clone(),
            webhook_id: d.webhook_id.clone(),
            event_type: d.event_type.clone(),
            status: d.status,
            test: d.test,
            attempt_count: d.attempt_count,
            created_at: time(d.created_at_ms),
            updated_at: time(d.updated_at_ms),
            next_attempt_at: d.next_attempt_at_ms.map(time),
            payload: None,
            attempts: None,
            headers: None,
            headers_note: None,
        }
    }

    /// The full form: payload, every attempt and the headers sent (`hook` is
    /// the delivery's webhook, if it still exists).
    pub fn full(d: &DeliveryRecord, hook: Option<&Webhook>, schemes: SignatureSchemes) -> Self {
        let payload = serde_json::from_slice::<&RawValue>(&d.payload)
            .map(|v| v.to_owned())
            .or_else(|_| serde_json::value::to_raw_value(&String::from_utf8_lossy(&d.payload)))
            .ok();
        DeliveryView {
            payload,
            attempts: Some(d.attempts.iter().map(AttemptView::from).collect()),
            headers: Some(sent_headers(d, hook, schemes)),
            headers_note: Some(HEADERS_NOTE),
            ..Self::summary(d)
        }
    }
}

const HEADERS_NOTE: &str = "Reconstructed from the delivery and its webhook's current settings: signatures and \
     timestamps are computed per attempt and never stored; a plugin may have changed the headers it sent.";
const SIGNED: &str = "<signed per attempt>";
const SIGNED_AT: &str = "<unix seconds at signing>";

/// Header name/value pairs in sending order, rendered as a JSON object.
#[derive(Debug)]
pub struct SentHeaders(Vec<(String, String)>);

impl Serialize for SentHeaders {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// The headers of the delivery's last attempt (or its next one), as
/// `dispatch::build_headers` sends them, with placeholders for signatures.
fn sent_headers(d: &DeliveryRecord, hook: Option<&Webhook>, schemes: SignatureSchemes) -> SentHeaders {
    let mut h: Vec<(String, String)> = vec![("Content-Type".into(), "application/json".into())];
    for (name, value) in hook.map(|w| w.headers.as_slice()).unwrap_or_default() {
        if is_reserved_header(name) {
            continue;
        }
        h.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        h.push((name.clone(), shown_header_value(name, value).to_owned()));
    }
    let mut put = |name: &str, value: &str| h.push((name.into(), value.into()));
    put("User-Agent", USER_AGENT_VALUE);
    put("X-Webhook-ID", &d.webhook_id);
    put("X-Delivery-ID", &d.id);
    put("X-Delivery-Attempt", &d.attempt_count.max(1).to_string());
    put("X-Event-Type", &d.event_type);
    put("X-Webhook-Timestamp", SIGNED_AT);
    if schemes.hub {
        put("X-Hub-Signature", SIGNED);
    }
    if schemes.standard {
        put("webhook-id", &d.id);
        put("webhook-timestamp", SIGNED_AT);
        put("webhook-signature", SIGNED);
    }
    if d.test {
        put("X-Webhook-Test", "true");
    }
    SentHeaders(h)
}

/// `{data: [...], nextCursor}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListView<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}
