//! Host side of the plugin ABI: the `wasmtime::component::bindgen!` output for
//! `plugin-sdk/wit` (the single source of truth), the per-call store state
//! ([`HostState`]) and the `host.log` import.
//!
//! WASI is linked because language toolchains (Rust's std among them) import
//! WASI interfaces even when a plugin never uses them; the context is empty:
//! no preopens, no environment, no arguments, no network, stdin closed,
//! stdout/stderr captured into a bounded buffer (see [`super::output`]).

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limits::MemoryLimiter;
use super::output::{CapturedOutput, GuestLog};

wasmtime::component::bindgen!({
    path: "../plugin-sdk/wit",
    world: "plugin",
    exports: { default: async },
});

pub(crate) use self::hookgate::plugin::host::Level;
#[cfg(test)]
pub(crate) use self::hookgate::plugin::types::ForwardRequest;

/// Everything one call's `Store` owns. Dropped with the store after the call.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) log: GuestLog,
    pub(crate) stdout: CapturedOutput,
    pub(crate) stderr: CapturedOutput,
}

impl HostState {
    /// A state with an empty WASI context whose stdout/stderr are captured.
    pub(crate) fn new(plugin: Arc<str>, max_memory: u64, log: Arc<super::output::LogBudget>) -> Self {
        let stdout = CapturedOutput::default();
        let stderr = CapturedOutput::default();
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(max_memory),
            log: GuestLog::new(plugin, log),
            stdout,
            stderr,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl hookgate::plugin::types::Host for HostState {}

impl hookgate::plugin::host::Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        let level = match level {
            Level::Trace => tracing::Level::TRACE,
            Level::Debug => tracing::Level::DEBUG,
            Level::Info => tracing::Level::INFO,
            Level::Warn => tracing::Level::WARN,
            Level::Error => tracing::Level::ERROR,
        };
        self.log.record(level, &message);
    }
}
