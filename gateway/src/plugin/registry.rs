//! Loaded plugins: [`PluginHandle`]s cached per (path, pin), the version each
//! is running, and hot reload.
//!
//! A handle points at an entry holding the current [`Loaded`] version (an
//! `InstancePre` ready to instantiate, and the version's warm instances). Calls check the file's fingerprint
//! (size, mtime, ctime, inode) at most once per reload interval, on the
//! blocking pool; a changed file is read, hashed, checked against the pin,
//! compiled (or read from the cache) and linked there, then swapped in. If
//! any step fails, the previous version keeps running and the failure is
//! logged once per change.

use std::collections::hash_map::Entry as MapEntry;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use super::bindings::{HostState, PluginPre};
use super::cache::{CacheOutcome, sha256};
use super::output::LogBudget;
use super::warm::WarmPool;
use super::{PluginError, PluginHost};

/// Plugin files larger than this are refused.
pub const MAX_PLUGIN_FILE: u64 = 64 << 20;

/// A loaded plugin. Cheap to clone; follows reloads of its file.
#[derive(Clone)]
pub struct PluginHandle(pub(crate) Arc<Entry>);

impl std::fmt::Debug for PluginHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHandle")
            .field("path", &self.0.path)
            .field("sha256", &self.sha256())
            .finish()
    }
}

pub(crate) struct Entry {
    path: PathBuf,
    pub(crate) name: Arc<str>,
    pin: Option<[u8; 32]>,
    current: RwLock<Arc<Loaded>>,
    watch: Mutex<Watch>,
    reloading: Mutex<()>,
    pub(crate) log_budget: Arc<LogBudget>,
    /// The most linear memory an instance of this plugin held after a call.
    peak_memory: AtomicU64,
    /// A changed file, loaded but not running yet: it must accept every
    /// config in `configs` first.
    candidate: Mutex<Option<Arc<Loaded>>>,
    /// The configs (with limits) this plugin has run with, at most
    /// [`MAX_CONFIGS`]: a new version is validated against each.
    configs: Mutex<Vec<SeenConfig>>,
    /// Why the last changed file was not taken (it rejected a config).
    rejected: Mutex<Option<String>>,
}

/// Configs remembered per plugin for validating a new version.
const MAX_CONFIGS: usize = 64;

/// A config a plugin ran with, and the limits it ran under.
type SeenConfig = (Vec<(String, String)>, super::PluginLimits);

struct Watch {
    seen: Fingerprint,
    last_check: Instant,
}

/// One version of a plugin, ready to instantiate, with its idle instances
/// (dropped with it when a reload replaces it).
pub(crate) struct Loaded {
    pub(crate) pre: PluginPre<HostState>,
    pub(crate) warm: WarmPool,
    sha256: [u8; 32],
    outcome: CacheOutcome,
}

/// What identifies a version of a file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fingerprint {
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: u64,
    dev: u64,
}

impl Fingerprint {
    fn of(m: &fs::Metadata) -> Self {
        Fingerprint {
            len: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            ino: m.ino(),
            dev: m.dev(),
        }
    }
}

impl PluginHandle {
    /// The plugin file (absolute).
    pub fn path(&self) -> &Path {
        &self.0.path
    }

    /// The file name without extension: the `plugin` label in logs and metrics.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// SHA-256 (hex) of the version now running.
    pub fn sha256(&self) -> String {
        hex::encode(self.current().sha256)
    }

    /// Whether the version now running was loaded from the on-disk cache or
    /// compiled.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.current().outcome
    }

    /// The most linear memory (all memories of an instance together, in
    /// bytes) an instance of this plugin held at the end of a call so far:
    /// what a `max_memory` limit must leave room for.
    pub fn peak_memory(&self) -> u64 {
        self.0.peak_memory.load(Ordering::Relaxed)
    }

    pub(crate) fn note_memory(&self, bytes: u64) {
        self.0.peak_memory.fetch_max(bytes, Ordering::Relaxed);
    }

    /// Idle warm instances of the version now running.
    pub fn idle_instances(&self) -> usize {
        self.current().warm.len()
    }

    /// Why the plugin's changed file is not running: it rejected the config
    /// of a webhook that uses it (the previous version keeps running).
    pub fn reload_error(&self) -> Option<String> {
        self.0.rejected.lock().ok().and_then(|r| r.clone())
    }

    /// Remembers a config this plugin runs with, so a new version of the
    /// file is validated against it before it replaces this one.
    pub(crate) fn note_config(&self, config: &[(String, String)], limits: super::PluginLimits) {
        if let Ok(mut configs) = self.0.configs.lock()
            && configs.len() < MAX_CONFIGS
            && !configs.iter().any(|(c, _)| c.as_slice() == config)
        {
            configs.push((config.to_vec(), limits));
        }
    }

    pub(crate) fn current(&self) -> Arc<Loaded> {
        match self.0.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// Parses a `sha256` pin: 64 hex digits.
fn parse_pin(pin: &str) -> Result<[u8; 32], PluginError> {
    let pin = pin.trim();
    let bad = || PluginError::Config(format!("sha256 must be 64 hex digits, not {pin:?}"));
    let mut out = [0u8; 32];
    hex::decode_to_slice(pin, &mut out).map_err(|_| bad())?;
    Ok(out)
}

/// The handle of a plugin already loaded with this path and pin, if any.
/// Does no file I/O, so async code may call it before falling back to
/// [`load`] on the blocking pool.
pub(crate) fn cached(host: &PluginHost, path: &Path, sha256: Option<&str>) -> Option<PluginHandle> {
    let pin = sha256.map(parse_pin).transpose().ok()?;
    let key = (std::path::absolute(path).ok()?, pin);
    host.inner.plugins.lock().ok().and_then(|p| p.get(&key).cloned())
}

pub(crate) fn load(host: &PluginHost, path: &Path, sha256: Option<&str>) -> Result<PluginHandle, PluginError> {
    let pin = sha256.map(parse_pin).transpose()?;
    let path = std::path::absolute(path).map_err(|e| PluginError::Load(format!("{}: {e}", path.display())))?;
    let key = (path.clone(), pin);
    let loaded_already = || host.inner.plugins.lock().ok().and_then(|p| p.get(&key).cloned());
    if let Some(handle) = loaded_already() {
        return Ok(handle);
    }
    // Whoever takes the gate first compiles; the others wait here (on the
    // blocking pool) and then find the plugin loaded.
    let gate = host
        .inner
        .loading
        .lock()
        .map_err(|_| PluginError::Load("plugin table poisoned".into()))?
        .entry(key.clone())
        .or_default()
        .clone();
    let _loading = gate.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(handle) = loaded_already() {
        return Ok(handle);
    }
    let result = first_load(host, path, pin, key.clone());
    if let Ok(mut loading) = host.inner.loading.lock() {
        loading.remove(&key);
    }
    result
}

fn first_load(
    host: &PluginHost,
    path: PathBuf,
    pin: Option<[u8; 32]>,
    key: (PathBuf, Option<[u8; 32]>),
) -> Result<PluginHandle, PluginError> {
    let (loaded, seen) = read_and_prepare(host, &path, pin, None)?;
    let name = path
        .file_stem()
        .map_or_else(|| "plugin".into(), |s| s.to_string_lossy().into());
    let handle = PluginHandle(Arc::new(Entry {
        path,
        name,
        pin,
        current: RwLock::new(Arc::new(loaded)),
        watch: Mutex::new(Watch {
            seen,
            last_check: Instant::now(),
        }),
        reloading: Mutex::new(()),
        log_budget: Arc::new(LogBudget::default()),
        peak_memory: AtomicU64::new(0),
        candidate: Mutex::new(None),
        configs: Mutex::new(Vec::new()),
        rejected: Mutex::new(None),
    }));
    let mut plugins = host
        .inner
        .plugins
        .lock()
        .map_err(|_| PluginError::Load("plugin table poisoned".into()))?;
    Ok(match plugins.entry(key) {
        MapEntry::Occupied(e) => e.get().clone(),
        MapEntry::Vacant(e) => e.insert(handle).clone(),
    })
}

/// Reads, verifies, compiles (or loads from cache) and links one version.
/// Content identical to the `running` version reuses its `InstancePre` (but
/// not its warm instances: a reload always starts them afresh).
fn read_and_prepare(
    host: &PluginHost,
    path: &Path,
    pin: Option<[u8; 32]>,
    running: Option<&Loaded>,
) -> Result<(Loaded, Fingerprint), PluginError> {
    let load = |msg: String| PluginError::Load(format!("{}: {msg}", path.display()));
    let mut file = File::open(path).map_err(|e| load(e.to_string()))?;
    let meta = file.metadata().map_err(|e| load(e.to_string()))?;
    if !meta.is_file() || meta.len() > MAX_PLUGIN_FILE {
        return Err(load(format!(
            "not a regular file of at most {} MiB",
            MAX_PLUGIN_FILE >> 20
        )));
    }
    let seen = Fingerprint::of(&meta);
    let mut wasm = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut wasm).map_err(|e| load(e.to_string()))?;
    let sha = sha256(&wasm);
    if let Some(pin) = pin
        && pin != sha
    {
        return Err(load(format!(
            "sha256 mismatch: config pins {}, the file has {}",
            hex::encode(pin),
            hex::encode(sha)
        )));
    }
    if let Some(running) = running
        && running.sha256 == sha
    {
        let same = Loaded {
            pre: running.pre.clone(),
            warm: WarmPool::new(host.inner.warm.clone()),
            sha256: sha,
            outcome: running.outcome,
        };
        return Ok((same, seen));
    }
    let (component, outcome) = host.inner.cache.load_or_compile(&host.inner.engine, &wasm, &sha)?;
    let pre = host
        .inner
        .linker
        .instantiate_pre(&component)
        .map_err(|e| load(format!("imports something the gateway does not provide: {e:#}")))?;
    let pre =
        PluginPre::new(pre).map_err(|e| load(format!("does not export the hookgate:plugin@0.1.0 functions: {e:#}")))?;
    Ok((
        Loaded {
            pre,
            warm: WarmPool::new(host.inner.warm.clone()),
            sha256: sha,
            outcome,
        },
        seen,
    ))
}

/// The version to run now, after a (throttled) check for a changed file.
pub(crate) async fn refresh(host: &PluginHost, handle: &PluginHandle) -> Arc<Loaded> {
    let interval = host
        .inner
        .reload_interval
        .lock()
        .map_or(super::RELOAD_CHECK_INTERVAL, |i| *i);
    let due = match handle.0.watch.lock() {
        Ok(mut w) if w.last_check.elapsed() >= interval => {
            w.last_check = Instant::now();
            true
        }
        _ => false,
    };
    if due {
        let (owned, h) = (host.clone(), handle.clone());
        let _ = tokio::task::spawn_blocking(move || reload_if_changed(&owned, &h)).await;
        let candidate = handle.0.candidate.lock().ok().and_then(|mut c| c.take());
        if let Some(candidate) = candidate {
            adopt_if_valid(host, handle, candidate).await;
        }
    }
    handle.current()
}

/// Runs `validate-config` of a new version on every config the plugin runs
/// with; swaps it in only if it accepts them all. Otherwise the previous
/// version keeps running and the rejection is kept for the API.
async fn adopt_if_valid(host: &PluginHost, handle: &PluginHandle, candidate: Arc<Loaded>) {
    let entry = &handle.0;
    let configs = entry.configs.lock().map(|c| c.clone()).unwrap_or_default();
    for (config, limits) in &configs {
        if let Err(e) = super::call::validate_on(host, handle, candidate.clone(), config, *limits).await {
            let why = format!(
                "the changed file (sha256 {}) was not loaded: {e}; the previous version keeps running",
                hex::encode(candidate.sha256)
            );
            tracing::warn!(plugin = %entry.name, path = %entry.path.display(), "{why}");
            if let Ok(mut r) = entry.rejected.lock() {
                *r = Some(why);
            }
            return;
        }
    }
    if candidate.sha256 != handle.current().sha256 {
        tracing::info!(plugin = %entry.name, path = %entry.path.display(), sha256 = %hex::encode(candidate.sha256), "plugin reloaded");
    }
    if let Ok(mut r) = entry.rejected.lock() {
        *r = None;
    }
    if let Ok(mut current) = entry.current.write() {
        *current = candidate;
    }
}

fn reload_if_changed(host: &PluginHost, handle: &PluginHandle) {
    let entry = &handle.0;
    // Another call is already reloading: run the current version meanwhile.
    let Ok(_reloading) = entry.reloading.try_lock() else {
        return;
    };
    let Ok(meta) = fs::metadata(&entry.path) else {
        // Missing for a moment (e.g. mid-deploy): keep running what we have.
        return;
    };
    let now = Fingerprint::of(&meta);
    if entry.watch.lock().is_ok_and(|w| w.seen == now) {
        return;
    }
    let running = handle.current();
    let result = read_and_prepare(host, &entry.path, entry.pin, Some(&running));
    let seen = match result {
        Ok((loaded, seen)) => {
            // Validated against the webhooks' configs before it runs.
            if let Ok(mut candidate) = entry.candidate.lock() {
                *candidate = Some(Arc::new(loaded));
            }
            seen
        }
        Err(e) => {
            tracing::warn!(plugin = %entry.name, path = %entry.path.display(), "plugin file changed but the new version cannot be loaded; the previous version keeps running: {e}");
            now
        }
    };
    if let Ok(mut w) = entry.watch.lock() {
        w.seen = seen;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_64_hex_digits() {
        let hex64 = "ab".repeat(32);
        assert_eq!(parse_pin(&hex64).unwrap(), [0xab; 32]);
        assert_eq!(parse_pin(&hex64.to_uppercase()).unwrap(), [0xab; 32]);
        assert!(matches!(parse_pin("abc"), Err(PluginError::Config(_))));
        assert!(matches!(parse_pin(&"zz".repeat(32)), Err(PluginError::Config(_))));
    }
}
