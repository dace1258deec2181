//! config.toml: the validated configuration (docs/configuration.md).
//!
//! Loading is two steps: serde reads the file into the spanned raw model
//! (`raw.rs`, unknown keys are errors), then `validate.rs` resolves
//! `env:NAME` values, applies defaults and checks every value, collecting
//! all errors in one pass. Each error carries its position so `hookgate
//! check` prints `PATH:LINE:COL: message`.

mod ctx;
mod egress;
mod raw;
mod server;
mod telemetry;
mod units;
mod validate;
mod webhook;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::circuit::BreakerPolicy;
use crate::retry::RetryPolicy;
use crate::webhooks::{PluginDefaults, Secret, Webhook};

pub use units::{UnitError, parse_duration, parse_size};

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub api: ApiConfig,
    pub store: StoreConfig,
    pub delivery: DeliveryConfig,
    pub plugins: PluginsConfig,
    /// `[telemetry]`: where traces go, if anywhere.
    pub telemetry: TelemetryConfig,
    /// The static `[[webhooks]]`.
    pub webhooks: Vec<Webhook>,
    /// The folder of the config file; relative paths resolve against it.
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `host:port` to listen on.
    pub listen: String,
    /// Larger request bodies get 413.
    pub max_body_bytes: usize,
    /// Serve HTTPS with this certificate chain and key (PEM files).
    pub tls: Option<TlsFiles>,
    /// A connection must send a complete request head within this.
    pub header_timeout: Duration,
    /// A keep-alive connection idle longer than this is closed.
    pub idle_timeout: Duration,
    /// A request body must arrive within this of its head.
    pub body_timeout: Duration,
    /// Connections served at once; more wait in the backlog.
    pub max_connections: usize,
    /// Threads running the gateway's async work; `None`: one per CPU the
    /// process may use.
    pub worker_threads: Option<usize>,
}

/// A certificate chain and its private key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Bearer tokens for `/api/*`.
    pub tokens: Vec<Secret>,
    pub rate_limit_per_minute: u32,
    /// `/api/*` callers must also present a client certificate this CA
    /// signed (needs TLS).
    pub client_ca: Option<PathBuf>,
}

/// Which store holds the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Redis,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub backend: Backend,
    /// Embedded store folder, resolved against the config folder.
    pub path: PathBuf,
    /// The standalone Redis (unused when `cluster_nodes` is set).
    pub url: String,
    /// Seed nodes of a Redis Cluster; when not empty the store runs on
    /// that cluster and `url` is unused.
    pub cluster_nodes: Vec<String>,
    /// Queue shards (None: 1 on a standalone Redis, 16 on a cluster).
    pub shards: Option<usize>,
    /// Replicas that must have ingest and completion writes (Redis `WAIT`).
    pub wait_replicas: u32,
    /// Deliveries of history kept at most on Redis (0: only retention).
    pub history_max: u64,
    pub prefix: String,
    pub retention: Duration,
}

/// Which signature headers go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureSchemes {
    /// `X-Hub-Signature`.
    pub hub: bool,
    /// Standard Webhooks `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    pub standard: bool,
}

#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub timeout: Duration,
    /// The default retry schedule (a webhook may override `max_retries`).
    pub retry: RetryPolicy,
    pub rate_limit_per_minute: u32,
    pub rate_limit_burst: u32,
    pub signature_headers: SignatureSchemes,
    pub concurrency: usize,
    pub allow_private_destinations: bool,
    /// How deliveries leave: extra roots, proxy, client certificates.
    pub egress: Egress,
    /// When an endpoint that keeps failing is left alone, and disabled.
    pub breaker: BreakerPolicy,
}

/// `[delivery]` settings for the way out.
#[derive(Debug, Clone, Default)]
pub struct Egress {
    /// Extra trusted roots (PEM) for receivers, beside the public ones.
    pub ca_file: Option<PathBuf>,
    /// Egress proxy (`http://host:port`; CONNECT for https destinations).
    pub proxy: Option<url::Url>,
    /// Hosts reached without the proxy (`*.internal`, `example.com`, IPs).
    pub no_proxy: Vec<String>,
    /// Client certificates for mutual TLS with receivers, by name.
    pub client_identities: Vec<ClientIdentity>,
}

/// A named client certificate and key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub name: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[telemetry]`.
#[derive(Debug, Clone, Default)]
pub struct TelemetryConfig {
    /// OTLP/HTTP trace export; `None`: no traces.
    pub otlp: Option<OtlpConfig>,
}

#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// Where spans are POSTed: `<otlp_endpoint>/v1/traces`.
    pub traces_url: url::Url,
    /// Sent with every export (e.g. a collector's API key): secrets.
    pub headers: Vec<(String, Secret)>,
    pub service_name: String,
    /// Share of traces kept, 0..=1.
    pub sample_ratio: f64,
    /// Finished spans are sent at least this often.
    pub export_every: Duration,
}

#[derive(Debug, Clone)]
pub struct PluginsConfig {
    pub cache_dir: PathBuf,
    pub timeout: Duration,
    pub max_memory: u64,
}

impl PluginsConfig {
    /// The limits a plugin gets when it sets none.
    pub fn defaults(&self) -> PluginDefaults {
        PluginDefaults {
            timeout: self.timeout,
            max_memory: self.max_memory,
        }
    }
}

/// One problem in a config file, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub col: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// Every problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl Config {
    /// Reads and validates the file at `path`, resolving `env:` values from
    /// the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let src = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                path: path.to_owned(),
                line: 1,
                col: 1,
                message: format!("cannot read config file: {e}"),
            }])
        })?;
        Self::parse(&src, path, &|name| std::env::var(name).ok())
    }

    /// Validates `src` as if read from `path`, with `env` for `env:NAME`.
    pub fn parse(src: &str, path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
        validate::validate(src, path, env)
    }

    /// The longest a webhook's plugin chain may run: the largest sum of
    /// plugin timeouts over config webhooks, and room for four default-limit
    /// plugins on API webhooks.
    pub fn max_plugin_time(&self) -> Duration {
        self.webhooks
            .iter()
            .map(|w| w.plugins.iter().map(|p| p.timeout).sum::<Duration>())
            .fold(self.plugins.timeout * 4, Duration::max)
    }

    /// The longest time one attempt can hold a delivery: the largest
    /// per-attempt timeout over the defaults and every webhook.
    pub fn max_attempt_time(&self) -> Duration {
        self.webhooks
            .iter()
            .filter_map(|w| w.timeout)
            .fold(self.delivery.timeout, Duration::max)
    }
}

#[cfg(test)]
mod tests;
