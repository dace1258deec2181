//! Webhook endpoints: the model, secrets, and the registry that fan-out and
//! dispatch read from.
//!
//! The registry holds an immutable [`Snapshot`] behind an `Arc` that is
//! swapped whole when anything changes, so the hot paths (fan-out on ingest,
//! lookup on every attempt) take a read lock only long enough to clone an
//! `Arc`. Webhooks come from config.toml (read-only) and, with the management
//! API, from the store; state the store keeps about a config webhook (disabled
//! by a 410 Gone) is laid over it on every refresh.

mod pattern;
mod record;
mod registry;

use std::fmt;
use std::time::Duration;

pub use pattern::{EventPattern, is_valid_event_type};
pub use record::{StoredPlugin, StoredSecret, StoredWebhook};
pub use registry::{Registry, Snapshot};

/// Where a webhook was defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// `[[webhooks]]` in config.toml: read-only through the API.
    Config,
    /// Created through the API.
    Api,
}

/// A signing secret. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for signing. Never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

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

/// Whether `s` is a SHA-256 in hex.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `id` is a valid webhook id: `[a-zA-Z0-9_-]{1,64}`.
pub fn is_valid_webhook_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Headers a webhook's static `headers` may not set: hookgate owns them.
pub fn is_reserved_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "content-length"
            | "host"
            | "transfer-encoding"
            | "connection"
            | "x-webhook-id"
            | "x-delivery-id"
            | "x-delivery-attempt"
            | "x-event-type"
            | "x-hub-signature"
            | "x-webhook-timestamp"
            | "x-webhook-test"
            | "webhook-id"
            | "webhook-timestamp"
            | "webhook-signature"
    )
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
    pub source: Source,
    /// Plugins run in order on each attempt before signing.
    pub plugins: Vec<PluginSpec>,
    /// Unix ms; `None` for config webhooks.
    pub created_at_ms: Option<u64>,
    pub updated_at_ms: Option<u64>,
}

impl Webhook {
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

    #[test]
    fn webhook_ids() {
        assert!(is_valid_webhook_id("orders_v2-A"));
        assert!(is_valid_webhook_id(&"a".repeat(64)));
        assert!(!is_valid_webhook_id(&"a".repeat(65)));
        assert!(!is_valid_webhook_id(""));
        assert!(!is_valid_webhook_id("a b"));
        assert!(!is_valid_webhook_id("a/b"));
    }
}
