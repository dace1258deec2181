//! The one definition of a webhook: what an operator writes in config.toml
//! or sends to the API, before it is checked ([`super::rules`]) and compiled
//! into the live [`super::Webhook`]. The store keeps it inside
//! [`super::StoredWebhook`]; the API's input and views are shaped from it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{OnError, PluginSpec};

/// A webhook's definition, as data. Field names are the API's (camelCase);
/// the stored JSON has the same shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSpec {
    pub name: String,
    pub url: String,
    /// Event patterns as written: exact types, `prefix.*` or `*`.
    pub events: Vec<String>,
    #[serde(default)]
    pub test_mode: bool,
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Extra static headers sent with every attempt.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A client certificate to present to the receiver, by the name it has
    /// in `[[delivery.client_identities]]` (keys never leave config.toml).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_identity: Option<String>,
    /// Plugins run in order before signing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<PluginRef>,
}

fn enabled_default() -> bool {
    true
}

/// One plugin of a webhook, as written (and as the API takes and shows it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PluginRef {
    /// A `.wasm` component; relative paths resolve against the config
    /// file's folder.
    pub path: String,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<OnError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Per-call limits: config.toml may set them; API plugins use `[plugins]`.
    #[serde(skip)]
    pub timeout: Option<Duration>,
    #[serde(skip)]
    pub max_memory: Option<u64>,
}

/// Per-call plugin limits used where a plugin sets none (`[plugins]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginDefaults {
    pub timeout: Duration,
    pub max_memory: u64,
}

impl PluginRef {
    /// The runnable spec, with the default limits where none are set.
    pub fn to_spec(&self, base_dir: &Path, defaults: PluginDefaults) -> PluginSpec {
        PluginSpec {
            path: self.path.clone(),
            resolved: base_dir.join(&self.path),
            config: self.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            on_error: self.on_error.unwrap_or_default(),
            sha256: self.sha256.as_ref().map(|s| s.to_ascii_lowercase()),
            timeout: self.timeout.unwrap_or(defaults.timeout),
            max_memory: self.max_memory.unwrap_or(defaults.max_memory),
            position: None,
        }
    }
}

/// A signing secret as stored. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredSecret {
    pub secret: String,
    /// Unix ms after which it no longer signs (an old secret in rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

impl std::fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSecret")
            .field("secret", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}
