//! A webhook's plugin chain, run before signing: each plugin sees the
//! previous one's output; a drop ends the chain (the delivery becomes
//! `filtered`); a failure fails the attempt (or, with `on_error = "skip"`,
//! is passed over). Plugins are loaded once per (path, pin) on the blocking
//! pool and kept; the host reloads a changed file by itself.

use std::path::PathBuf;

use bytes::Bytes;

use crate::plugin::{ChainStep, PluginError, PluginHandle, PluginHost, PluginInput, PluginLimits, PluginVerdict};
use crate::store::Job;
use crate::webhooks::{OnError, PluginSpec, Webhook};

/// What the chain decided.
#[derive(Debug)]
pub enum Transformed {
    /// Deliver this body with these extra headers (the chain's output).
    Forward {
        body: Bytes,
        headers: Vec<(String, String)>,
    },
    /// A plugin dropped the delivery.
    Drop(String),
    /// A plugin failed (and was not to be skipped): `plugin: <name>: <why>`.
    Failed(String),
}

/// Loads plugins for the async paths: the host keeps every loaded plugin,
/// so a lookup is a map read; only a first load (which may compile) goes to
/// the blocking pool.
async fn handle(host: &PluginHost, spec: &PluginSpec) -> Result<PluginHandle, PluginError> {
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

    async fn get(&self) -> Result<&PluginHost, String> {
        self.started
            .get_or_try_init(|| async {
                let (dir, slots) = (self.cache_dir.clone(), self.slots);
                let host = tokio::task::spawn_blocking(move || PluginHost::new(&dir, slots))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("cannot start the plugin runtime: {e}"))?;
                Ok(host)
            })
            .await
    }

    /// Runs `hook`'s plugins on `job`'s payload.
    pub async fn transform(&self, job: &Job, hook: &Webhook) -> Transformed {
        match self.get().await {
            Ok(host) => transform(host, job, hook).await,
            Err(e) => Transformed::Failed(format!("plugin: {e}")),
        }
    }

    /// Loads each plugin and asks it to validate its config: the index and
    /// the problem of the first one that fails.
    pub async fn validate(&self, specs: &[PluginSpec]) -> Result<(), (usize, String)> {
        if specs.is_empty() {
            return Ok(());
        }
        let host = self.get().await.map_err(|e| (0, e))?;
        for (i, spec) in specs.iter().enumerate() {
            let handle = handle(host, spec).await.map_err(|e| (i, e.to_string()))?;
            host.validate_config(&handle, &spec.config, limits(spec))
                .await
                .map_err(|e| (i, e.to_string()))?;
        }
        Ok(())
    }
}

fn limits(spec: &PluginSpec) -> PluginLimits {
    PluginLimits {
        timeout: spec.timeout,
        max_memory: spec.max_memory,
    }
}

/// Runs `hook`'s plugins on `job`'s payload.
async fn transform(host: &PluginHost, job: &Job, hook: &Webhook) -> Transformed {
    let mut handles = Vec::with_capacity(hook.plugins.len());
    let mut kept: Vec<&PluginSpec> = Vec::with_capacity(hook.plugins.len());
    for spec in &hook.plugins {
        match handle(host, spec).await {
            Ok(h) => {
                handles.push(h);
                kept.push(spec);
            }
            Err(e) if spec.on_error == OnError::Skip => {
                tracing::warn!(plugin = %spec.name(), error = %e, "plugin failed to load; skipped (on_error = \"skip\")");
            }
            Err(e) => return Transformed::Failed(format!("plugin: {}: {e}", spec.name())),
        }
    }
    let steps: Vec<ChainStep<'_>> = kept
        .iter()
        .zip(&handles)
        .map(|(spec, handle)| ChainStep {
            plugin: handle,
            config: &spec.config,
            limits: limits(spec),
            skip_on_error: spec.on_error == OnError::Skip,
        })
        .collect();
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    headers.extend(hook.headers.iter().cloned());
    let input = PluginInput {
        event_id: &job.event_id,
        event_type: &job.event_type,
        webhook_id: &hook.id,
        headers,
        body: job.data.clone(),
    };
    match host.run_chain(&steps, input).await {
        Ok(PluginVerdict::Forward { body, headers }) => Transformed::Forward { body, headers },
        Ok(PluginVerdict::Drop { reason }) => Transformed::Drop(reason),
        Err((i, e)) => Transformed::Failed(format!("plugin: {}: {e}", kept[i].name())),
    }
}
