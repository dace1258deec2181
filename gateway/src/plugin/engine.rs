//! The one shared wasmtime [`Engine`] (component model, epoch interruption,
//! pooling allocator sized for the host's running plus idle instances), the [`Linker`] every
//! plugin is instantiated against, and the engine-owned epoch [`Ticker`].
//!
//! The ticker thread bumps the engine epoch every [`TICK`] while any call is in
//! flight, so a guest stuck in a loop is interrupted within a tick or two of
//! its budget; after [`IDLE_TICKS`] ticks with no call it parks until the next
//! call starts, so an idle gateway does not wake up a thousand times a second.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::PluginError;
use super::bindings::{HostState, Plugin};
use super::limits::{MAX_CORE_INSTANCES, MAX_MEMORIES, MAX_MEMORY_CEILING, MAX_TABLE_ELEMENTS, MAX_TABLES};

/// Epoch tick period: the granularity of time limits and of yielding.
pub const TICK: Duration = Duration::from_millis(1);
/// Idle ticks before the ticker parks.
const IDLE_TICKS: u32 = 1000;

/// Builds the engine, its pooling allocator sized for `slots` live
/// instances (running and warm idle ones together). Pooling is preferred; if the process cannot reserve
/// the pool's address space (e.g. under `ulimit -v`) it falls back to
/// on-demand allocation and says so.
pub(crate) fn build_engine(slots: usize) -> Result<Engine, PluginError> {
    let slots = u32::try_from(slots.max(1)).unwrap_or(u32::MAX);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        .total_stacks(slots)
        .total_core_instances(slots.saturating_mul(MAX_CORE_INSTANCES as u32))
        .total_memories(slots.saturating_mul(MAX_MEMORIES as u32))
        .total_tables(slots.saturating_mul(MAX_TABLES as u32))
        .max_core_instances_per_component(MAX_CORE_INSTANCES as u32)
        .max_memories_per_component(MAX_MEMORIES as u32)
        .max_tables_per_component(MAX_TABLES as u32)
        .table_elements(MAX_TABLE_ELEMENTS)
        .max_memory_size(MAX_MEMORY_CEILING as usize);
    let pooled = Engine::new(base_config().allocation_strategy(InstanceAllocationStrategy::Pooling(pool)));
    match pooled {
        Ok(engine) => Ok(engine),
        Err(e) => {
            tracing::warn!(error = %e, "plugin engine: pooling allocator unavailable; using on-demand allocation");
            Engine::new(&base_config()).map_err(|e| PluginError::Load(format!("cannot create the plugin engine: {e}")))
        }
    }
}

fn base_config() -> Config {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .parallel_compilation(true);
    config
}

/// The linker every plugin is instantiated against: WASI 0.2 (async
/// bindings; the per-call context grants nothing) plus the `host` interface.
pub(crate) fn build_linker(engine: &Engine) -> Result<Linker<HostState>, PluginError> {
    let mut linker = Linker::new(engine);
    let load = |e: wasmtime::Error| PluginError::Load(format!("cannot link host functions: {e}"));
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(load)?;
    Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s).map_err(load)?;
    Ok(linker)
}

/// Owns the epoch ticker thread; stops and joins it on drop.
#[derive(Debug)]
pub(crate) struct Ticker {
    shared: Arc<TickShared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct TickShared {
    stop: AtomicBool,
    active: AtomicUsize,
    parked: AtomicBool,
}

/// Marks a call in flight for as long as it lives.
#[derive(Debug)]
pub(crate) struct Active<'a>(&'a TickShared);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Ticker {
    pub(crate) fn start(engine: Engine) -> Result<Ticker, PluginError> {
        let shared = Arc::new(TickShared::default());
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("hookgate-plugin-epoch".into())
            .spawn(move || tick_loop(&engine, &s))
            .map_err(|e| PluginError::Load(format!("cannot start the epoch ticker: {e}")))?;
        Ok(Ticker {
            shared,
            thread: Some(thread),
        })
    }

    /// Registers a call in flight, waking the ticker if it was parked.
    pub(crate) fn enter(&self) -> Option<Active<'_>> {
        let thread = self.thread.as_ref()?.thread();
        self.shared.active.fetch_add(1, Ordering::SeqCst);
        if self.shared.parked.load(Ordering::SeqCst) {
            thread.unpark();
        }
        Some(Active(&self.shared))
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "the ticker runs on its own thread, not the runtime's"
)]
fn tick_loop(engine: &Engine, s: &TickShared) {
    let mut idle = 0u32;
    while !s.stop.load(Ordering::SeqCst) {
        if s.active.load(Ordering::SeqCst) == 0 {
            idle += 1;
        } else {
            idle = 0;
        }
        if idle >= IDLE_TICKS {
            // Publish `parked` before re-checking `active`: a caller either
            // sees `parked` and unparks us, or we see its `active` increment.
            s.parked.store(true, Ordering::SeqCst);
            if s.active.load(Ordering::SeqCst) == 0 && !s.stop.load(Ordering::SeqCst) {
                std::thread::park_timeout(Duration::from_secs(1));
            }
            s.parked.store(false, Ordering::SeqCst);
            idle = 0;
            continue;
        }
        std::thread::sleep(TICK);
        engine.increment_epoch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gateway_sized_pool_can_be_reserved() {
        let started = std::time::Instant::now();
        let engine = build_engine(256 + 32).unwrap();
        assert!(build_linker(&engine).is_ok());
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }

    #[test]
    #[allow(clippy::disallowed_methods, reason = "a synchronous test")]
    fn the_ticker_stops_promptly_when_dropped() {
        let engine = build_engine(1).unwrap();
        let ticker = Ticker::start(engine).unwrap();
        let active = ticker.enter();
        assert!(active.is_some());
        std::thread::sleep(Duration::from_millis(20));
        drop(active);
        let started = std::time::Instant::now();
        drop(ticker);
        // Well under the 1 s park timeout: the drop woke it.
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "{:?}",
            started.elapsed()
        );
    }
}
