//! The stored form of an API-created webhook (JSON in the store), and its
//! conversion to the live [`Webhook`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{EventPattern, OnError, PluginSpec, Secret, Source, Webhook};
use crate::config::PluginsConfig;

/// A signing secret as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredSecret {
    pub secret: String,
    /// Unix ms after which it no longer signs (an old secret in rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

/// An API webhook as the store keeps it. Secrets are in here (the store is
/// trusted); they never leave through the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredWebhook {
    pub id: String,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub secrets: Vec<StoredSecret>,
    pub test_mode: bool,
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub created_at: u64,
    pub updated_at: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<StoredPlugin>,
}

/// A plugin of an API webhook as stored (and as the API takes and shows it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StoredPlugin {
    /// A `.wasm` component; relative paths resolve against the config
    /// file's folder.
    pub path: String,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<OnError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl StoredPlugin {
    /// The runnable spec, with limits from `[plugins]`.
    pub fn to_spec(&self, base_dir: &Path, defaults: &PluginsConfig) -> PluginSpec {
        PluginSpec {
            path: self.path.clone(),
            resolved: base_dir.join(&self.path),
            config: self.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            on_error: self.on_error.unwrap_or_default(),
            sha256: self.sha256.as_ref().map(|s| s.to_ascii_lowercase()),
            timeout: defaults.timeout,
            max_memory: defaults.max_memory,
            position: None,
        }
    }
}

impl StoredWebhook {
    /// The live webhook, or why the stored one is unusable.
    pub fn to_webhook(&self, base_dir: &Path, defaults: &PluginsConfig) -> Result<Webhook, String> {
        let url = reqwest::Url::parse(&self.url).map_err(|e| format!("url: {e}"))?;
        let events = self
            .events
            .iter()
            .map(|e| EventPattern::parse(e))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Webhook {
            id: self.id.clone(),
            name: self.name.clone(),
            url,
            events,
            secrets: self
                .secrets
                .iter()
                .map(|s| (Secret::new(s.secret.clone()), s.expires_at))
                .collect(),
            test_mode: self.test_mode,
            enabled: self.enabled,
            disabled_reason: None,
            rate_limit_per_minute: self.rate_limit_per_minute,
            max_retries: self.max_retries,
            timeout: self.timeout_ms.map(Duration::from_millis),
            headers: self.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            source: Source::Api,
            plugins: self.plugins.iter().map(|p| p.to_spec(base_dir, defaults)).collect(),
            created_at_ms: Some(self.created_at),
            updated_at_ms: Some(self.updated_at),
        })
    }
}
