//! The serde model of config.toml, exactly as written (docs/configuration.md).
//!
//! Every key is optional here so that defaults live in one place
//! (`validate.rs`) and every value keeps its source span for error messages.
//! Unknown keys are errors (`deny_unknown_fields`).

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub type S = Spanned<String>;
pub type N = Spanned<i64>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub api: RawApi,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub delivery: RawDelivery,
    #[serde(default)]
    pub plugins: RawPlugins,
    #[serde(default)]
    pub webhooks: Vec<Spanned<RawWebhook>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<S>,
    pub max_body_bytes: Option<N>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub tokens: Option<Spanned<Vec<S>>>,
    pub rate_limit_per_minute: Option<N>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub backend: Option<S>,
    pub path: Option<S>,
    pub url: Option<S>,
    pub prefix: Option<S>,
    pub retention: Option<S>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDelivery {
    pub timeout: Option<S>,
    pub max_retries: Option<N>,
    pub retry_base: Option<S>,
    pub retry_factor: Option<N>,
    pub retry_max_delay: Option<S>,
    pub retry_jitter: Option<Spanned<f64>>,
    pub rate_limit_per_minute: Option<N>,
    pub rate_limit_burst: Option<N>,
    pub signature_headers: Option<Spanned<Vec<S>>>,
    pub concurrency: Option<N>,
    pub allow_private_destinations: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlugins {
    pub cache_dir: Option<S>,
    pub timeout: Option<S>,
    pub max_memory: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub id: Option<S>,
    pub name: Option<S>,
    pub url: Option<S>,
    pub events: Option<Spanned<Vec<S>>>,
    pub secret: Option<S>,
    pub test_mode: Option<bool>,
    pub rate_limit_per_minute: Option<N>,
    pub max_retries: Option<N>,
    pub timeout: Option<S>,
    pub headers: Option<Spanned<BTreeMap<String, S>>>,
    pub plugins: Option<Vec<Spanned<RawPluginRef>>>,
}

/// One `[[webhooks.plugins]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPluginRef {
    pub path: Option<S>,
    pub config: Option<Spanned<BTreeMap<String, S>>>,
    pub on_error: Option<S>,
    pub sha256: Option<S>,
    pub timeout: Option<S>,
    pub max_memory: Option<S>,
}
