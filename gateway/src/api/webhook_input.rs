//! The webhook definition the API takes (`POST`, and `PATCH` after merging),
//! turned into the one [`WebhookSpec`] and checked by the one rule set: a
//! broken rule is a 422 whose message names the field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::webhooks::rules::{self, Bounds};
use crate::webhooks::{PluginRef, StoredWebhook, WebhookSpec};

/// The fields of `POST /api/webhooks`, and of `PATCH` after merging.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebhookInput {
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_mode: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_identity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugins: Option<Vec<PluginRef>>,
}

impl WebhookInput {
    /// The editable fields of a stored webhook (no secret), for PATCH.
    pub fn from_stored(w: &StoredWebhook) -> Self {
        let spec = &w.spec;
        WebhookInput {
            name: spec.name.clone(),
            url: spec.url.clone(),
            events: spec.events.clone(),
            secret: None,
            test_mode: Some(spec.test_mode),
            enabled: Some(spec.enabled),
            rate_limit_per_minute: spec.rate_limit_per_minute,
            max_retries: spec.max_retries,
            timeout_ms: spec.timeout_ms,
            headers: Some(spec.headers.clone()),
            client_identity: spec.client_identity.clone(),
            plugins: Some(spec.plugins.clone()),
        }
    }

    /// Checks the definition with the one rule set and returns it with
    /// canonical event patterns, and the secret if one was given. The first
    /// broken rule is the 422.
    pub fn into_spec(self, bounds: Bounds<'_>) -> Result<(WebhookSpec, Option<String>), ApiError> {
        let mut spec = WebhookSpec {
            name: self.name.trim().to_owned(),
            url: self.url,
            events: self.events,
            test_mode: self.test_mode.unwrap_or(false),
            enabled: self.enabled.unwrap_or(true),
            rate_limit_per_minute: self.rate_limit_per_minute,
            max_retries: self.max_retries,
            timeout_ms: self.timeout_ms,
            headers: self.headers.unwrap_or_default(),
            client_identity: self.client_identity,
            plugins: self.plugins.unwrap_or_default(),
        };
        let checked = rules::check(&spec, self.secret.as_deref(), bounds).map_err(|bad| {
            let first = &bad[0];
            ApiError::invalid(&first.field.api_name(), &first.problem)
        })?;
        spec.events = checked.events.iter().map(ToString::to_string).collect();
        Ok((spec, self.secret))
    }
}
