//! WebAssembly plugins: a narrow facade over wasmtime (docs/plugins.md).
//!
//! A plugin is a component implementing the `hookgate:plugin@0.1.0` world in
//! `plugin-sdk/wit/`. The gateway owns one [`PluginHost`]; config loading
//! calls [`PluginHost::load`] once per plugin path and keeps the
//! [`PluginHandle`]; the dispatcher calls [`PluginHost::call`] (or
//! [`PluginHost::run_chain`]) per delivery attempt.
//!
//! How it runs, and why:
//!
//! * **One engine** (`engine`): component model, epoch interruption, and the
//!   pooling allocator sized for `max_concurrent` running instances plus the
//!   idle warm ones ([`WarmLimits::total`]). An engine-owned
//!   ticker thread bumps the epoch every millisecond while calls are in flight.
//! * **Compile once** ([`cache`]): components are compiled on first load and
//!   cached on disk as precompiled artifacts keyed by the wasm's SHA-256 and
//!   the engine's compatibility hash; a restart loads them in well under a
//!   millisecond. `InstancePre` (imports resolved, exports type-checked) is
//!   kept per plugin (`registry`).
//! * **Warm instances, reused** (`warm`, `call`): each loaded plugin version
//!   keeps a small bounded pool of idle (store, instance) pairs; a call takes
//!   one (or instantiates a fresh one from the `InstancePre`), arms it with
//!   *this* call's memory limit ([`limits`]), deadline and log state, and
//!   gives it back only if the call returned normally. An instance is
//!   discarded, never reused, after a trap, a timeout, a refused memory
//!   growth or a guest error, after [`WarmLimits::max_calls`] calls, when it
//!   already holds more memory than a call allows, and when its plugin is
//!   reloaded (the pool belongs to the replaced version). Instantiation was
//!   most of a pass-through call's cost.
//!
//!   So **guest state may persist between calls**: globals, the heap, lazily
//!   initialised statics of one instance survive from one call to the next
//!   on that instance, and a later call may equally run on a fresh instance.
//!   Plugins must rely on neither persistence nor freshness: no caches they
//!   need to be there, no state they need to be gone. Isolation *between
//!   plugins* (and between versions of one plugin) is unchanged: every
//!   instance belongs to exactly one plugin version.
//! * **Async execution, not `spawn_blocking`.** Calls run as wasmtime async
//!   calls on the caller's task. The epoch callback yields to the runtime on
//!   every tick, so a guest holds a runtime worker for at most ~1 ms at a
//!   time, and traps it once the budget is spent. This was chosen over
//!   running synchronous calls on the blocking pool because (1) a guest can
//!   also block *inside a WASI host call* (e.g. sleeping on a monotonic-clock
//!   pollable), which epochs cannot interrupt; as an async call it is simply
//!   a future that a timer drops at the deadline, so no guest can hold a
//!   thread or a permit past its budget; and (2) a healthy call costs no
//!   thread hand-off, which matters at ~tens of µs per call.
//! * **Bounded concurrency**: a semaphore (`max_concurrent` permits) in
//!   front of every call; idle instances are capped per version and across
//!   the host ([`WarmLimits`]), and the pooling allocator has room for both,
//!   so it can never be exhausted.
//! * **Hot reload** (`registry`): every [`RELOAD_CHECK_INTERVAL`] a call
//!   stats the plugin file (on the blocking pool); a changed file is
//!   recompiled there and swapped in. A new version that fails to load is
//!   logged and the previous one keeps running. A `sha256` pin applies to
//!   every version.
//! * **Guest output** ([`output`]): `host.log`, stdout and stderr go to
//!   `tracing` (target `hookgate::plugin::guest`), bounded and rate-limited.
//! * **Errors** are the closed [`PluginError`]; guest behaviour never panics
//!   the host.
//!
//! `load` blocks (it may compile: ~100 ms for a Rust plugin, 6-9 s for the
//! 12-18 MiB components of componentize-js and componentize-py): call it at
//! startup or from `spawn_blocking`, never on an async worker. Concurrent
//! first loads of one plugin compile it once. `call`, `validate_config` and `run_chain` are async and
//! never block the runtime for more than a tick.

mod bindings;
pub mod cache;
mod call;
mod chain;
pub mod cli;
mod engine;
pub mod limits;
pub mod output;
mod registry;
pub mod runtime;
pub mod scaffold;
mod warm;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Semaphore;
use wasmtime::Engine;
use wasmtime::component::Linker;

pub use cache::CacheOutcome;
pub use chain::ChainStep;
pub use limits::PluginLimits;
pub use registry::PluginHandle;
pub use runtime::PluginRuntime;
pub use warm::WarmLimits;

/// How often a call checks whether its plugin file changed on disk.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// Why a plugin could not be loaded or did not produce a verdict.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    /// The call ran out of its time budget (the plugin's `timeout`).
    #[error("plugin timed out after {0:?} (its `timeout` limit; raise it if the plugin needs longer)")]
    Timeout(Duration),
    /// The guest needed more memory than `max_memory` (to start, or to
    /// grow while running).
    #[error("plugin needed more than its memory limit of {} (its `max_memory` limit; raise it if the plugin needs more)", limits::show_size(*.0))]
    Memory(u64),
    /// The guest trapped (a panic, an `unreachable`, a stack overflow...).
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The guest returned an error, or an output the gateway refuses (too
    /// large, invalid header).
    #[error("plugin error: {0}")]
    Guest(String),
    /// The plugin file could not be read, compiled or linked, or its
    /// content does not match the `sha256` pin.
    #[error("cannot load plugin: {0}")]
    Load(String),
    /// The plugin (via `validate-config`) or the host rejected its config
    /// or limits.
    #[error("invalid plugin config: {0}")]
    Config(String),
}

/// One event on its way to one webhook, as handed to a plugin.
#[derive(Clone, Debug)]
pub struct PluginInput<'a> {
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub webhook_id: &'a str,
    /// Request headers built so far (e.g. `content-type`).
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// What a plugin decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginVerdict {
    /// Deliver this body with exactly these headers (the plugin's full list).
    Forward {
        body: Bytes,
        headers: Vec<(String, String)>,
    },
    /// Do not deliver: the delivery becomes `filtered`.
    Drop { reason: String },
}

/// The gateway's plugin runtime. Cheap to clone; one per gateway.
#[derive(Clone)]
pub struct PluginHost {
    inner: Arc<HostInner>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("cache", &self.inner.cache)
            .finish_non_exhaustive()
    }
}

/// Plugins are cached per (absolute path, sha256 pin).
type PluginKey = (PathBuf, Option<[u8; 32]>);

struct HostInner {
    engine: Engine,
    linker: Linker<bindings::HostState>,
    cache: cache::DiskCache,
    permits: Arc<Semaphore>,
    warm: Arc<warm::IdleBudget>,
    ticker: engine::Ticker,
    plugins: Mutex<HashMap<PluginKey, PluginHandle>>,
    /// One gate per plugin being loaded for the first time, so concurrent
    /// first loads of one plugin compile it once (big components take
    /// seconds) while loads of other plugins go on in parallel.
    loading: Mutex<HashMap<PluginKey, Arc<Mutex<()>>>>,
    reload_interval: Mutex<Duration>,
}

impl PluginHost {
    /// Creates the engine, the linker, the epoch ticker and the cache folder.
    /// `max_concurrent` bounds the calls running at once (calls beyond it
    /// wait for a slot); warm instances are kept within the default
    /// [`WarmLimits`].
    pub fn new(cache_dir: &Path, max_concurrent: usize) -> Result<Self, PluginError> {
        Self::with_warm_limits(cache_dir, max_concurrent, WarmLimits::default())
    }

    /// [`PluginHost::new`] keeping idle instances within `warm`. The pooling
    /// allocator is sized for `max_concurrent + warm.total` instances.
    pub fn with_warm_limits(cache_dir: &Path, max_concurrent: usize, warm: WarmLimits) -> Result<Self, PluginError> {
        let max_concurrent = max_concurrent.max(1);
        let engine = engine::build_engine(max_concurrent.saturating_add(warm.total))?;
        let linker = engine::build_linker(&engine)?;
        let cache = cache::DiskCache::open(cache_dir, &engine)?;
        let ticker = engine::Ticker::start(engine.clone())?;
        Ok(PluginHost {
            inner: Arc::new(HostInner {
                engine,
                linker,
                cache,
                permits: Arc::new(Semaphore::new(max_concurrent)),
                warm: warm::IdleBudget::new(warm),
                ticker,
                plugins: Mutex::new(HashMap::new()),
                loading: Mutex::new(HashMap::new()),
                reload_interval: Mutex::new(RELOAD_CHECK_INTERVAL),
            }),
        })
    }

    /// Loads (compiling or reading the cache) the plugin at `path`, refusing
    /// content whose SHA-256 (hex) differs from `sha256`. Loading the same
    /// path and pin again returns the same handle. Blocking.
    pub fn load(&self, path: &Path, sha256: Option<&str>) -> Result<PluginHandle, PluginError> {
        registry::load(self, path, sha256)
    }

    /// The plugin loaded earlier with this path and pin, without blocking.
    pub fn cached(&self, path: &Path, sha256: Option<&str>) -> Option<PluginHandle> {
        registry::cached(self, path, sha256)
    }

    /// Runs the plugin on one event.
    pub async fn call(
        &self,
        plugin: &PluginHandle,
        input: PluginInput<'_>,
        config: &[(String, String)],
        limits: PluginLimits,
    ) -> Result<PluginVerdict, PluginError> {
        call::handle(self, plugin, input, config, limits).await
    }

    /// Asks the plugin whether `config` is acceptable (`Config` error if not).
    pub async fn validate_config(
        &self,
        plugin: &PluginHandle,
        config: &[(String, String)],
        limits: PluginLimits,
    ) -> Result<(), PluginError> {
        call::validate(self, plugin, config, limits).await
    }

    /// Runs plugins in order, each on the previous one's output; a drop ends
    /// the chain. A failing step with `skip_on_error` is logged and passed
    /// over (its input goes on unchanged); any other failure ends the chain
    /// with the step's index.
    pub async fn run_chain(
        &self,
        steps: &[ChainStep<'_>],
        input: PluginInput<'_>,
    ) -> Result<PluginVerdict, (usize, PluginError)> {
        chain::run(self, steps, input).await
    }

    /// Changes how often calls check plugin files for changes (tests use a
    /// short interval; zero checks on every call).
    pub fn set_reload_interval(&self, interval: Duration) {
        if let Ok(mut i) = self.inner.reload_interval.lock() {
            *i = interval;
        }
    }

    /// Idle warm instances kept now, across all plugins.
    pub fn idle_instances(&self) -> usize {
        self.inner.warm.idle()
    }

    /// The cache file a plugin with this content is stored in.
    pub fn cache_path(&self, wasm_sha256: &[u8; 32]) -> PathBuf {
        self.inner.cache.entry_path(wasm_sha256)
    }
}
