//! Per-call resource limits: [`PluginLimits`] (time and memory, from config),
//! the store's `MemoryLimiter`, and the fixed ceilings the engine's pooling
//! allocator is sized for.

use std::time::Duration;

use super::PluginError;

/// Default per-call time budget (`[plugins] timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);
/// Default per-instance memory cap (`[plugins] max_memory`).
pub const DEFAULT_MAX_MEMORY: u64 = 32 << 20;
/// The largest `max_memory` a plugin may be given: the size of one slot in the
/// pooling allocator.
pub const MAX_MEMORY_CEILING: u64 = 1 << 30;
/// The longest `timeout` a plugin may be given.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// A plugin's output (body plus header names and values) larger than this
/// fails the call: it is more than any receiver should get from a webhook.
pub const MAX_OUTPUT_BYTES: usize = 16 << 20;
/// Most header pairs a plugin may return.
pub const MAX_OUTPUT_HEADERS: usize = 256;

/// Upper bounds on what one store may create; the pooling allocator is sized
/// from these per concurrent instance.
pub(crate) const MAX_CORE_INSTANCES: usize = 32;
pub(crate) const MAX_TABLES: usize = 8;
pub(crate) const MAX_MEMORIES: usize = 4;
pub(crate) const MAX_TABLE_ELEMENTS: usize = 20_000;

/// How long and how big one plugin call may get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PluginLimits {
    /// Wall-clock budget for one call of the plugin's code. Enforced by
    /// epoch interruption (CPU) and by a timer (time spent waiting in WASI).
    /// Creating a fresh instance first is bounded separately (at least 1 s;
    /// see `call`), so host work on a busy machine does not eat it.
    pub timeout: Duration,
    /// Cap on the total linear memory of the instance running the call, in
    /// bytes. A warm instance already holding more is not used for the call.
    pub max_memory: u64,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            timeout: DEFAULT_TIMEOUT,
            max_memory: DEFAULT_MAX_MEMORY,
        }
    }
}

impl PluginLimits {
    /// Checks the limits against the ceilings the engine supports.
    pub fn check(&self) -> Result<(), PluginError> {
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return Err(PluginError::Config(format!(
                "plugin timeout must be between 1ms and {}s, not {:?}",
                MAX_TIMEOUT.as_secs(),
                self.timeout
            )));
        }
        if self.max_memory < (1 << 16) || self.max_memory > MAX_MEMORY_CEILING {
            return Err(PluginError::Config(format!(
                "plugin max_memory must be between 64KiB and {}MiB, not {} bytes",
                MAX_MEMORY_CEILING >> 20,
                self.max_memory
            )));
        }
        Ok(())
    }
}

/// A size for people: `32 MiB`, `512 KiB`, `1000 bytes`.
pub fn show_size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

/// The store's resource limiter: refuses memory growth past the cap (set
/// per call: a warm instance serves calls with different limits) and
/// remembers that it did, so a trap that follows is reported as
/// [`PluginError::Memory`] rather than a generic trap.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    max_memory: usize,
    total: usize,
    pub(crate) exhausted: bool,
}

impl MemoryLimiter {
    pub(crate) fn new(max_memory: u64) -> Self {
        MemoryLimiter {
            max_memory: usize::try_from(max_memory).unwrap_or(usize::MAX),
            total: 0,
            exhausted: false,
        }
    }

    /// Arms the limiter for one call on a (possibly warm) instance: this
    /// call's cap, and no refusal recorded yet.
    pub(crate) fn begin_call(&mut self, max_memory: u64) {
        self.max_memory = usize::try_from(max_memory).unwrap_or(usize::MAX);
        self.exhausted = false;
    }

    /// Bytes of linear memory the instance holds (all memories together).
    pub(crate) fn total(&self) -> usize {
        self.total
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // The cap is on the sum of all of the instance's memories.
        let after = self.total.saturating_sub(current).saturating_add(desired);
        if after > self.max_memory {
            self.exhausted = true;
            return Ok(false);
        }
        self.total = after;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.exhausted = true;
        Ok(())
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use wasmtime::ResourceLimiter;

    use super::*;

    #[test]
    fn limiter_caps_the_sum_of_memories_and_remembers_refusals() {
        let mut l = MemoryLimiter::new(4 << 16);
        assert!(l.memory_growing(0, 2 << 16, None).unwrap());
        assert!(l.memory_growing(0, 2 << 16, None).unwrap());
        assert!(!l.exhausted);
        assert!(!l.memory_growing(2 << 16, 3 << 16, None).unwrap());
        assert!(l.exhausted);
    }

    #[test]
    fn sizes_are_shown_in_the_largest_whole_unit() {
        assert_eq!(show_size(32 << 20), "32 MiB");
        assert_eq!(show_size((32 << 20) + (1 << 19)), "32.5 MiB");
        assert_eq!(show_size(64 << 10), "64 KiB");
        assert_eq!(show_size(1000), "1000 bytes");
        let e = PluginError::Memory(16 << 20).to_string();
        assert!(e.contains("16 MiB") && e.contains("max_memory"), "{e}");
        let e = PluginError::Timeout(Duration::from_millis(100)).to_string();
        assert!(e.contains("100ms") && e.contains("timeout"), "{e}");
    }

    #[test]
    fn limits_are_checked_against_the_ceilings() {
        assert!(PluginLimits::default().check().is_ok());
        let big = PluginLimits {
            max_memory: MAX_MEMORY_CEILING + 1,
            ..Default::default()
        };
        assert!(matches!(big.check(), Err(PluginError::Config(_))));
        let zero = PluginLimits {
            timeout: Duration::ZERO,
            ..Default::default()
        };
        assert!(matches!(zero.check(), Err(PluginError::Config(_))));
    }
}
