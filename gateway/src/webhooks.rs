//! Webhook endpoints: the one model of a webhook and its rules.
//!
//! [`WebhookSpec`] is the definition an operator writes (config.toml) or
//! sends (the API); [`rules::check`] is the one rule set both call;
//! [`StoredWebhook`] is the store's form (the spec plus id, secrets and
//! timestamps); [`Webhook`] is the live, compiled form that fan-out and
//! dispatch read through [`crate::registry`], and the API's views derive
//! from it.

mod pattern;
mod record;
pub mod rules;
mod spec;

use std::fmt;
use std::time::Duration;

use crate::signing::SigningKeys;

pub use pattern::{EventPattern, is_valid_event_type};
pub use record::StoredWebhook;
pub use rules::{is_reserved_header, is_sha256_hex, is_valid_webhook_id};
pub use spec::{PluginDefaults, PluginRef, StoredSecret, WebhookSpec};

/// Where a webhook was defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// `[[webhooks]]` in config.toml: read-only through the API.
    Config,
    /// Created through the API.
    Api,
}

/// A signing secret, with its HMAC keys made once. Its `Debug` and
/// `Display` never show it.
#[derive(Clone)]
pub struct Secret {
    text: String,
    keys: SigningKeys,
}

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        let text = s.into();
        let keys = SigningKeys::new(&text);
        Secret { text, keys }
    }
    /// The secret itself. Never log the result.
    pub fn expose(&self) -> &str {
        &self.text
    }
    /// Its keys, for signing.
    pub fn keys(&self) -> &SigningKeys {
        &self.keys
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// What a plugin failure does to the attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// The attempt fails and follows the retry path.
    #[default]
    Retry,
    /// Deliver as if the plugin forwarded the payload unchanged.
    Skip,
}

impl OnError {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "retry" => Some(OnError::Retry),
            "skip" => Some(OnError::Skip),
            _ => None,
        }
    }
}

/// One plugin in a webhook's chain.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginSpec {
    /// As written (config or API), for display.
    pub path: String,
    /// Resolved against the config file's folder.
    pub resolved: std::path::PathBuf,
    pub config: Vec<(String, String)>,
    pub on_error: OnError,
    /// Lowercase hex pin of the module's content.
    pub sha256: Option<String>,
    pub timeout: Duration,
    pub max_memory: u64,
    /// Line and column of its `[[webhooks.plugins]]` entry in config.toml.
    pub position: Option<(usize, usize)>,
}

impl PluginSpec {
    /// The name used in metrics and errors: the file name without `.wasm`.
    pub fn name(&self) -> String {
        self.resolved
            .file_stem()
            .map_or_else(|| self.path.clone(), |s| s.to_string_lossy().into_owned())
    }
}

/// A webhook endpoint.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub id: String,
    pub name: String,
    pub url: reqwest::Url,
    pub events: Vec<EventPattern>,
    /// Signing secrets, newest first, each with the time (unix ms) it stops
    /// being valid, if any. The first signs `X-Hub-Signature`; every one
    /// still valid signs `webhook-signature` (rotation grace period).
    pub secrets: Vec<(Secret, Option<u64>)>,
    pub test_mode: bool,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub rate_limit_per_minute: Option<u32>,
    pub max_retries: Option<u32>,
    pub timeout: Option<Duration>,
    /// Extra static headers, validated (names and values are legal HTTP and
    /// not reserved).
    pub headers: Vec<(String, String)>,
    /// The client certificate presented to the receiver, by name.
    pub client_identity: Option<String>,
    /// Its circuit breaker, from the store (`None`: closed).
    pub circuit: Option<crate::circuit::Circuit>,
    pub source: Source,
    /// Plugins run in order on each attempt before signing.
    pub plugins: Vec<PluginSpec>,
    /// Unix ms; `None` for config webhooks.
    pub created_at_ms: Option<u64>,
    pub updated_at_ms: Option<u64>,
    /// `id` as the `X-Webhook-ID` header value, made once (attempts share
    /// it); `None` only for an id no header can carry, which the rules
    /// never let through.
    pub id_header: Option<reqwest::header::HeaderValue>,
}

impl Webhook {
    /// The live webhook from a definition that passed [`rules::check`].
    pub fn from_spec(
        id: String,
        spec: &WebhookSpec,
        checked: rules::Checked,
        secrets: Vec<(Secret, Option<u64>)>,
        source: Source,
        plugins: Vec<PluginSpec>,
    ) -> Self {
        Webhook {
            id_header: reqwest::header::HeaderValue::from_str(&id).ok(),
            id,
            name: spec.name.trim().to_owned(),
            url: checked.url,
            events: checked.events,
            secrets,
            test_mode: spec.test_mode,
            enabled: spec.enabled,
            disabled_reason: None,
            rate_limit_per_minute: spec.rate_limit_per_minute,
            max_retries: spec.max_retries,
            timeout: spec.timeout_ms.map(Duration::from_millis),
            headers: spec.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            client_identity: spec.client_identity.clone(),
            circuit: None,
            source,
            plugins,
            created_at_ms: None,
            updated_at_ms: None,
        }
    }

    /// The secrets valid at `now_ms`, newest first.
    pub fn active_secrets(&self, now_ms: u64) -> impl Iterator<Item = &Secret> {
        self.secrets
            .iter()
            .filter(move |(_, expires)| expires.is_none_or(|e| e > now_ms))
            .map(|(s, _)| s)
    }

    /// Whether this webhook receives a (non-test or test) event of this type.
    pub fn wants(&self, event_type: &str, test: bool) -> bool {
        self.enabled && self.test_mode == test && self.events.iter().any(|p| p.matches(event_type))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("super-secret-value");
        assert!(!format!("{s:?}").contains("super"));
    }
}
