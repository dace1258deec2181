//! Running several plugins in order, as a webhook's `plugins` list does.

use super::{PluginError, PluginHandle, PluginHost, PluginInput, PluginLimits, PluginVerdict};

/// One plugin in a chain, with its config and limits.
#[derive(Clone, Copy, Debug)]
pub struct ChainStep<'a> {
    pub plugin: &'a PluginHandle,
    pub config: &'a [(String, String)],
    pub limits: PluginLimits,
    /// `on_error = "skip"`: a failure passes the input on unchanged.
    pub skip_on_error: bool,
}

pub(crate) async fn run(
    host: &PluginHost,
    steps: &[ChainStep<'_>],
    input: PluginInput<'_>,
) -> Result<PluginVerdict, (usize, PluginError)> {
    let PluginInput {
        event_id,
        event_type,
        webhook_id,
        mut headers,
        mut body,
    } = input;
    for (i, step) in steps.iter().enumerate() {
        let input = PluginInput {
            event_id,
            event_type,
            webhook_id,
            headers: headers.clone(),
            body: body.clone(),
        };
        let started = std::time::Instant::now();
        let result = host.call(step.plugin, input, step.config, step.limits).await;
        crate::metrics::plugin_call(step.plugin.name(), started.elapsed());
        match result {
            Ok(PluginVerdict::Forward { body: b, headers: h }) => (body, headers) = (b, h),
            Ok(drop @ PluginVerdict::Drop { .. }) => return Ok(drop),
            Err(e) if step.skip_on_error => {
                tracing::warn!(plugin = step.plugin.name(), step = i, error = %e, "plugin failed; skipped (on_error = \"skip\")");
            }
            Err(e) => return Err((i, e)),
        }
    }
    Ok(PluginVerdict::Forward { body, headers })
}
