//! A webhook's plugin chain, run before signing: each plugin sees the
//! previous one's output; a drop ends the chain (the delivery becomes
//! `filtered`); a failure fails the attempt (or, with `on_error = "skip"`,
//! is passed over). Plugins are loaded once per (path, pin) by the
//! [`PluginRuntime`] and kept; the host reloads a changed file by itself.

use bytes::Bytes;

use crate::plugin::runtime::{handle, limits};
use crate::plugin::{ChainStep, PluginInput, PluginRuntime, PluginVerdict};
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

/// Runs `hook`'s plugins on `job`'s payload.
pub async fn transform(runtime: &PluginRuntime, job: &Job, hook: &Webhook) -> Transformed {
    let host = match runtime.host().await {
        Ok(host) => host,
        Err(e) => return Transformed::Failed(format!("plugin: {e}")),
    };
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
