//! Validating webhook definitions sent to the API: every problem is a 422
//! whose message names the field.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::config::{check_header, parse_webhook_url};
use crate::webhooks::{EventPattern, StoredPlugin, StoredWebhook, is_sha256_hex};

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
    pub plugins: Option<Vec<StoredPlugin>>,
}

impl WebhookInput {
    /// The editable fields of a stored webhook (no secret), for PATCH.
    pub fn from_stored(w: &StoredWebhook) -> Self {
        WebhookInput {
            name: w.name.clone(),
            url: w.url.clone(),
            events: w.events.clone(),
            secret: None,
            test_mode: Some(w.test_mode),
            enabled: Some(w.enabled),
            rate_limit_per_minute: w.rate_limit_per_minute,
            max_retries: w.max_retries,
            timeout_ms: w.timeout_ms,
            headers: Some(w.headers.clone()),
            plugins: Some(w.plugins.clone()),
        }
    }

    /// Checks every field. `max_timeout` bounds `timeoutMs` (leases are
    /// sized for the longest configured attempt).
    pub fn validate(&self, max_timeout: Duration) -> Result<(), ApiError> {
        let name = self.name.trim();
        if name.is_empty() || name.len() > 256 {
            return Err(ApiError::invalid("name", "must be 1 to 256 characters"));
        }
        parse_webhook_url(&self.url).map_err(|e| ApiError::invalid("url", e))?;
        if self.events.is_empty() {
            return Err(ApiError::invalid("events", "must list at least one pattern"));
        }
        for (i, e) in self.events.iter().enumerate() {
            EventPattern::parse(e).map_err(|msg| ApiError::invalid(&format!("events[{i}]"), msg))?;
        }
        if let Some(s) = &self.secret
            && !(8..=256).contains(&s.len())
        {
            return Err(ApiError::invalid("secret", "must be 8 to 256 bytes long"));
        }
        if let Some(r) = self.rate_limit_per_minute
            && !(1..=60_000_000).contains(&r)
        {
            return Err(ApiError::invalid(
                "rateLimitPerMinute",
                "must be between 1 and 60000000",
            ));
        }
        if let Some(m) = self.max_retries
            && m > 10
        {
            return Err(ApiError::invalid("maxRetries", "must be between 0 and 10"));
        }
        let max_ms = max_timeout.as_millis() as u64;
        if let Some(t) = self.timeout_ms
            && !(1..=max_ms).contains(&t)
        {
            return Err(ApiError::invalid(
                "timeoutMs",
                format!("must be between 1 and {max_ms} (the longest timeout in config.toml)"),
            ));
        }
        for (i, p) in self.plugins.iter().flatten().enumerate() {
            if p.path.trim().is_empty() {
                return Err(ApiError::invalid(
                    &format!("plugins[{i}].path"),
                    "must name a .wasm component",
                ));
            }
            if let Some(h) = &p.sha256
                && !is_sha256_hex(h)
            {
                return Err(ApiError::invalid(
                    &format!("plugins[{i}].sha256"),
                    "must be 64 hex digits",
                ));
            }
        }
        for (k, v) in self.headers.iter().flatten() {
            check_header(k, v).map_err(|e| ApiError::invalid(&format!("headers.{k}"), e))?;
        }
        Ok(())
    }

    /// Canonical event patterns (`task.*` stays `task.*`).
    pub fn events(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| EventPattern::parse(e).ok())
            .map(|p| p.to_string())
            .collect()
    }
}
