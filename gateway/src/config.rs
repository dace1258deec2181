//! config.toml: the validated configuration (docs/configuration.md).
//!
//! Loading is two steps: serde reads the file into the spanned raw model
//! (`raw.rs`, unknown keys are errors), then `validate.rs` resolves
//! `env:NAME` values, applies defaults and checks every value, collecting
//! all errors in one pass. Each error carries its position so `hookgate
//! check` prints `PATH:LINE:COL: message`.

mod raw;
mod units;
mod validate;
mod webhook;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::dispatch::RetryPolicy;
use crate::webhooks::{Secret, Webhook};

pub use units::{parse_duration, parse_size};
pub use webhook::{check_header, parse_webhook_url};

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub api: ApiConfig,
    pub store: StoreConfig,
    pub delivery: DeliveryConfig,
    pub plugins: PluginsConfig,
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
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Bearer tokens for `/api/*`.
    pub tokens: Vec<Secret>,
    pub rate_limit_per_minute: u32,
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
    pub url: String,
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
}

#[derive(Debug, Clone)]
pub struct PluginsConfig {
    pub cache_dir: PathBuf,
    pub timeout: Duration,
    pub max_memory: u64,
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
