//! The plugin runtime the gateway shares: the host, started on first use,
//! and plugin loading for async callers (a lookup is a map read; only a
//! first load, which may compile, goes to the blocking pool). The dispatcher
//! runs chains through it; the API and `hookgate check` validate configs.

use std::path::PathBuf;

use super::{PluginError, PluginHandle, PluginHost, PluginLimits};
use crate::webhooks::PluginSpec;

/// Loads plugins for the async paths: the host keeps every loaded plugin,
/// so a lookup is a map read; only a first load (which may compile) goes to
/// the blocking pool.
pub async fn handle(host: &PluginHost, spec: &PluginSpec) -> Result<PluginHandle, PluginError> {
    if let Some(h) = host.cached(&spec.resolved, spec.sha256.as_deref()) {
        return Ok(h);
    }
    let (host, path, pin) = (host.clone(), spec.resolved.clone(), spec.sha256.clone());
    tokio::task::spawn_blocking(move || host.load(&path, pin.as_deref()))
        .await
        .map_err(|e| PluginError::Load(format!("loader task failed: {e}")))?
}

/// The plugin host, started on first use (most gateways run no plugins and
/// never pay for an engine), and the plugins loaded so far. Shared by the
/// dispatcher and the API (which validates plugin configs on registration).
pub struct PluginRuntime {
    cache_dir: PathBuf,
    slots: usize,
    started: tokio::sync::OnceCell<PluginHost>,
}

impl PluginRuntime {
    /// A runtime that will cache compiled plugins in `cache_dir` and run at
    /// most `slots` instances at once.
    pub fn new(cache_dir: PathBuf, slots: usize) -> Self {
        PluginRuntime {
            cache_dir,
            slots,
            started: tokio::sync::OnceCell::new(),
        }
    }

    /// The host, started on first use.
    pub async fn host(&self) -> Result<&PluginHost, PluginError> {
        self.started
            .get_or_try_init(|| async {
                let (dir, slots) = (self.cache_dir.clone(), self.slots);
                tokio::task::spawn_blocking(move || PluginHost::new(&dir, slots))
                    .await
                    .map_err(|e| PluginError::Load(format!("the plugin runtime did not start: {e}")))?
            })
            .await
    }

    /// Why the changed file of this plugin is not running (it rejected a
    /// webhook's config), if that is so; `None` also when it is not loaded.
    pub fn reload_error(&self, spec: &PluginSpec) -> Option<String> {
        self.started
            .get()?
            .cached(&spec.resolved, spec.sha256.as_deref())?
            .reload_error()
    }

    /// Loads each plugin and asks it to validate its config: the index and
    /// the problem of the first one that fails.
    pub async fn validate(&self, specs: &[PluginSpec]) -> Result<(), (usize, String)> {
        if specs.is_empty() {
            return Ok(());
        }
        let host = self.host().await.map_err(|e| (0, e.to_string()))?;
        for (i, spec) in specs.iter().enumerate() {
            let handle = handle(host, spec).await.map_err(|e| (i, e.to_string()))?;
            host.validate_config(&handle, &spec.config, limits(spec))
                .await
                .map_err(|e| (i, e.to_string()))?;
        }
        Ok(())
    }
}

pub fn limits(spec: &PluginSpec) -> PluginLimits {
    PluginLimits {
        timeout: spec.timeout,
        max_memory: spec.max_memory,
    }
}
