//! The plugin host against real plugins built from source (once per run, by
//! `hookgate_testkit::wasm`): the example plugins' transformations, hostile
//! plugins failing with the exact error, isolation from files, network and
//! environment, concurrency, hot reload, pinning, the on-disk cache, warm
//! instance reuse and the `hookgate plugin run` command; the same for
//! JavaScript and Python plugins (`scripts`), and `hookgate plugin new`.

#![forbid(unsafe_code)]

#[path = "plugin_host/cli.rs"]
mod cli;
#[path = "plugin_host/examples.rs"]
mod examples;
#[path = "plugin_host/hostile.rs"]
mod hostile;
#[path = "plugin_host/lifecycle.rs"]
mod lifecycle;
#[path = "plugin_host/scaffold.rs"]
mod scaffold;
#[path = "plugin_host/scripts.rs"]
mod scripts;
#[path = "plugin_host/warm.rs"]
mod warm;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use hookgate::plugin::{PluginError, PluginHost, PluginInput, PluginLimits, PluginVerdict};
use hookgate_testkit::wasm::{PluginPaths, built_plugins, repo_root};
use serde_json::{Value, json};

const EVENT_ID: &str = "evt_01HV5Z3K4Q8W7X2M9N5R6T0V1Y";

fn plugins() -> &'static PluginPaths {
    built_plugins()
}

/// A host on the shared test cache (so each plugin compiles once per checkout).
fn host() -> PluginHost {
    PluginHost::new(&repo_root().join("target").join("plugin-test-cache"), 8).expect("plugin host")
}

fn input(body: &Value) -> PluginInput<'static> {
    PluginInput {
        event_id: EVENT_ID,
        event_type: "task.completed",
        webhook_id: "orders",
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-team".into(), "billing".into()),
        ],
        body: Bytes::from(serde_json::to_vec(body).unwrap()),
    }
}

fn config(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn limits(timeout_ms: u64, max_memory_mib: u64) -> PluginLimits {
    PluginLimits {
        timeout: Duration::from_millis(timeout_ms),
        max_memory: max_memory_mib << 20,
    }
}

async fn run(
    host: &PluginHost,
    plugin: &Path,
    body: &Value,
    cfg: &[(&str, &str)],
) -> Result<PluginVerdict, PluginError> {
    let handle = host.load(plugin, None)?;
    let cfg = config(cfg);
    host.validate_config(&handle, &cfg, PluginLimits::default()).await?;
    host.call(&handle, input(body), &cfg, PluginLimits::default()).await
}

fn forwarded(v: Result<PluginVerdict, PluginError>) -> (Value, Vec<(String, String)>) {
    match v {
        Ok(PluginVerdict::Forward { body, headers }) => (serde_json::from_slice(&body).expect("JSON body"), headers),
        other => panic!("expected a forward, got {other:?}"),
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn task() -> Value {
    json!({"task": {"id": 7, "title": "Ship <v2>", "status": "done", "priority": 3, "owner": {"email": "ann@example.com", "name": "Ann"}}})
}
