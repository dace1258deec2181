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
    /// Strings for the plugin; numbers and booleans are taken in their
    /// string form.
    #[serde(default, deserialize_with = "string_map")]
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

/// A map of strings, numbers and booleans, as strings.
fn string_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        String(String),
        Number(serde_json::Number),
        Bool(bool),
    }
    let map = BTreeMap::<String, Scalar>::deserialize(d)
        .map_err(|_| serde::de::Error::custom("plugin config values must be strings, numbers or booleans"))?;
    Ok(map
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Scalar::String(s) => s,
                Scalar::Number(n) => n.to_string(),
                Scalar::Bool(b) => b.to_string(),
            };
            (k, v)
        })
        .collect())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_plugin_config_takes_numbers_and_booleans_as_strings() {
        let p: PluginRef =
            serde_json::from_str(r#"{"path": "p.wasm", "config": {"min": 10, "on": true, "s": "x"}}"#).unwrap();
        let want: BTreeMap<String, String> = [("min", "10"), ("on", "true"), ("s", "x")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(p.config, want);
        let e = serde_json::from_str::<PluginRef>(r#"{"path": "p.wasm", "config": {"l": [1]}}"#).unwrap_err();
        assert!(
            e.to_string()
                .contains("plugin config values must be strings, numbers or booleans"),
            "{e}"
        );
    }
}
