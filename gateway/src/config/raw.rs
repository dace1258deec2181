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
    pub telemetry: RawTelemetry,
    #[serde(default)]
    pub webhooks: Vec<Spanned<RawWebhook>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    pub otlp_endpoint: Option<S>,
    pub otlp_headers: Option<BTreeMap<String, S>>,
    pub service_name: Option<S>,
    pub sample_ratio: Option<Spanned<f64>>,
    pub export_every: Option<S>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<S>,
    pub max_body_bytes: Option<N>,
    pub tls_cert: Option<S>,
    pub tls_key: Option<S>,
    pub header_timeout: Option<S>,
    pub idle_timeout: Option<S>,
    pub body_timeout: Option<S>,
    pub max_connections: Option<N>,
    pub worker_threads: Option<N>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub tokens: Option<Spanned<Vec<S>>>,
    pub rate_limit_per_minute: Option<N>,
    pub client_ca: Option<S>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub backend: Option<S>,
    pub path: Option<S>,
    pub url: Option<S>,
    pub cluster_nodes: Option<Spanned<Vec<S>>>,
    pub shards: Option<N>,
    pub wait_replicas: Option<N>,
    pub history_max: Option<N>,
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
    pub ca_file: Option<S>,
    pub proxy: Option<S>,
    pub no_proxy: Option<Spanned<Vec<S>>>,
    pub client_identities: Option<Vec<Spanned<RawClientIdentity>>>,
    pub circuit_failures: Option<N>,
    pub circuit_cooldown: Option<S>,
    pub circuit_max_cooldown: Option<S>,
    pub disable_after: Option<S>,
}

/// One `[[delivery.client_identities]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientIdentity {
    pub name: Option<S>,
    pub cert: Option<S>,
    pub key: Option<S>,
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
    pub client_identity: Option<S>,
    pub plugins: Option<Vec<Spanned<RawPluginRef>>>,
}

/// A plugin config value: plugins get strings, so numbers and booleans are
/// taken in their string form (`min = 10` is `"10"`).
#[derive(Debug, Clone)]
pub enum Scalar {
    String(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, number or boolean (plugin config values)")
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::String(v.to_owned()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Integer(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
                i64::try_from(v).map(Scalar::Integer).map_err(E::custom)
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// One `[[webhooks.plugins]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPluginRef {
    pub path: Option<S>,
    pub config: Option<Spanned<BTreeMap<String, Spanned<Scalar>>>>,
    pub on_error: Option<S>,
    pub sha256: Option<S>,
    pub timeout: Option<S>,
    pub max_memory: Option<S>,
}
