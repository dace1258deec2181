//! `hookgate plugin run PLUGIN.wasm --event EVENT.json [--set KEY=VALUE]...
//! [--timeout 100ms] [--max-memory 32MiB]` (docs/plugins.md): runs one plugin on one
//! event the way the gateway does and prints the verdict, headers, body,
//! timing and the memory the plugin held. For plugin authors.
//!
//! EVENT.json is a `POST /api/events` body: `{"type", "data", "test"?}`. The
//! plugin sees `data` byte for byte as the body, a fresh event id, webhook id
//! `cli`, and the header `content-type: application/json`. Config entries are
//! checked with the plugin's `validate-config` first. Limits are the
//! gateway's defaults unless given (the same `timeout` and `max_memory` a
//! webhook's plugin entry takes). Precompiled plugins are cached in
//! `$XDG_CACHE_HOME/hookgate/plugin-cache` (or `~/.cache/...`).
//!
//! Exit status: 0 forward, 2 drop, 1 error.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::limits::show_size;
use super::{CacheOutcome, PluginError, PluginHost, PluginInput, PluginLimits, PluginVerdict};

/// Webhook id the plugin sees.
pub const CLI_WEBHOOK_ID: &str = "cli";

#[derive(Deserialize)]
struct EventFile {
    #[serde(rename = "type")]
    event_type: String,
    data: Box<RawValue>,
    /// Accepted for shape compatibility; plugins do not see it.
    #[serde(default, rename = "test")]
    _test: bool,
}

/// Runs the command; returns the process exit status.
pub async fn run_cli(plugin: &Path, event_json: &Path, sets: &[(String, String)], limits: PluginLimits) -> i32 {
    match run(plugin, event_json, sets, limits).await {
        Ok(Outcome::Forward) => 0,
        Ok(Outcome::Drop) => 2,
        Err(message) => {
            eprintln!("error: {message}");
            1
        }
    }
}

enum Outcome {
    Forward,
    Drop,
}

/// The event to run on: `-` reads standard input, a value starting with
/// `{` is the JSON itself, anything else is a file. Returns where it came
/// from (for messages) and its bytes.
fn read_event(arg: &Path) -> Result<(String, Vec<u8>), String> {
    match arg.to_str() {
        Some("-") => {
            let mut text = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut text).map_err(|e| format!("standard input: {e}"))?;
            Ok(("standard input".into(), text))
        }
        Some(inline) if inline.trim_start().starts_with('{') => Ok(("--event".into(), inline.as_bytes().to_vec())),
        _ => std::fs::read(arg)
            .map(|text| (arg.display().to_string(), text))
            .map_err(|e| format!("{}: {e}", arg.display())),
    }
}

async fn run(
    plugin: &Path,
    event_json: &Path,
    sets: &[(String, String)],
    limits: PluginLimits,
) -> Result<Outcome, String> {
    limits.check().map_err(|e| e.to_string())?;
    let (source, text) = read_event(event_json)?;
    let event: EventFile = serde_json::from_slice(&text)
        .map_err(|e| format!("{source}: not a POST /api/events body {{type, data, test?}}: {e}"))?;
    if !valid_event_type(&event.event_type) {
        return Err(format!(
            "{source}: type {:?} must match ^[a-z0-9_]+(\\.[a-z0-9_]+)*$",
            event.event_type
        ));
    }

    let host = PluginHost::new(&cache_dir(), 1).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let (h, path) = (host.clone(), plugin.to_owned());
    let handle = tokio::task::spawn_blocking(move || h.load(&path, None))
        .await
        .map_err(|e| format!("loading the plugin: {e}"))?
        .map_err(|e| e.to_string())?;
    let load_time = started.elapsed();
    host.validate_config(&handle, sets, limits).await.map_err(|e| match e {
        PluginError::Config(m) => format!("the plugin rejected its config: {m}"),
        other => other.to_string(),
    })?;

    let event_id = new_event_id();
    let input = PluginInput {
        event_id: &event_id,
        event_type: &event.event_type,
        webhook_id: CLI_WEBHOOK_ID,
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        body: Bytes::copy_from_slice(event.data.get().as_bytes()),
    };
    let started = Instant::now();
    let verdict = host.call(&handle, input, sets, limits).await;
    let call_time = started.elapsed();
    let loaded = match handle.cache_outcome() {
        CacheOutcome::Hit => "from cache",
        CacheOutcome::Compiled => "compiled",
    };
    let timing = format!(
        "time: {} (load {}, {loaded})\nmemory: {} (limit {})",
        ms(call_time),
        ms(load_time),
        show_size(handle.peak_memory()),
        show_size(limits.max_memory)
    );
    let verdict = verdict.map_err(|e| format!("plugin: {e}\n{timing}"))?;
    let mut out = std::io::stdout().lock();
    let result = match &verdict {
        PluginVerdict::Drop { reason } => {
            writeln!(out, "verdict: drop\nreason: {reason}\n{timing}")
        }
        PluginVerdict::Forward { body, headers } => print_forward(&mut out, body, headers, &timing),
    };
    result.map_err(|e| format!("writing the output: {e}"))?;
    Ok(match verdict {
        PluginVerdict::Forward { .. } => Outcome::Forward,
        PluginVerdict::Drop { .. } => Outcome::Drop,
    })
}

fn print_forward(
    out: &mut impl Write,
    body: &Bytes,
    headers: &[(String, String)],
    timing: &str,
) -> std::io::Result<()> {
    writeln!(out, "verdict: forward\n{timing}\nheaders:")?;
    for (name, value) in headers {
        writeln!(out, "  {name}: {value}")?;
    }
    writeln!(out, "body ({} bytes):", body.len())?;
    match std::str::from_utf8(body) {
        Ok(text) => writeln!(out, "{text}"),
        Err(_) => writeln!(out, "(not UTF-8; shown lossily)\n{}", String::from_utf8_lossy(body)),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// `^[a-z0-9_]+(\.[a-z0-9_]+)*$`
fn valid_event_type(t: &str) -> bool {
    !t.is_empty()
        && t.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("hookgate").join("plugin-cache")
}

/// `evt_` + a ULID-layout id (ms timestamp + random bits), like the gateway's.
fn new_event_id() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let value = ((ms & ((1 << 48) - 1)) << 80) | (rand::random::<u128>() & ((1 << 80) - 1));
    let mut id = String::from("evt_");
    for i in (0..26).rev() {
        id.push(ALPHABET[((value >> (i * 5)) & 0x1f) as usize] as char);
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_and_ids() {
        assert!(valid_event_type("task.completed"));
        assert!(valid_event_type("a_1"));
        assert!(!valid_event_type("Task"));
        assert!(!valid_event_type("a..b"));
        assert!(!valid_event_type(""));
        let id = new_event_id();
        assert_eq!(id.len(), 30);
        assert!(id.starts_with("evt_0"));
    }
}
