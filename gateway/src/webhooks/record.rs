//! The stored form of an API-created webhook: its [`WebhookSpec`] plus what
//! only the store keeps (id, secrets, timestamps), and its conversion to the
//! live [`Webhook`]. The JSON is the spec's fields side by side with these.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::rules::{self, Bounds, Invalid};
use super::{PluginDefaults, Secret, Source, StoredSecret, Webhook, WebhookSpec};

/// An API webhook as the store keeps it. Secrets are in here (the store is
/// trusted); they never leave through the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredWebhook {
    pub id: String,
    #[serde(flatten)]
    pub spec: WebhookSpec,
    pub secrets: Vec<StoredSecret>,
    pub created_at: u64,
    pub updated_at: u64,
}

impl StoredWebhook {
    /// The live webhook, or the rules the stored one breaks.
    pub fn to_webhook(&self, base_dir: &Path, defaults: PluginDefaults) -> Result<Webhook, Vec<Invalid>> {
        let checked = rules::check(&self.spec, None, Bounds::default())?;
        let secrets = self
            .secrets
            .iter()
            .map(|s| (Secret::new(s.secret.clone()), s.expires_at))
            .collect();
        let plugins = self
            .spec
            .plugins
            .iter()
            .map(|p| p.to_spec(base_dir, defaults))
            .collect();
        Ok(Webhook {
            created_at_ms: Some(self.created_at),
            updated_at_ms: Some(self.updated_at),
            ..Webhook::from_spec(self.id.clone(), &self.spec, checked, secrets, Source::Api, plugins)
        })
    }
}
