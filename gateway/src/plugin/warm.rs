//! Warm instances: a small, bounded pool of idle (store, instance) pairs per
//! loaded plugin version, so most calls skip instantiation.
//!
//! An instance goes back to its pool only after a call that returned
//! normally: never after a trap, a timeout (its call was interrupted or
//! dropped half-way), a refused memory growth, or a guest error (the guest
//! may have stopped half-way through updating its own state); never once it
//! has served [`WarmLimits::max_calls`] calls (bounding what a guest or the
//! store's resource table may leak); and never into a version that is no
//! longer current. A call whose memory limit is below what an idle instance
//! already holds discards that instance and takes another or a fresh one.
//!
//! The pool lives in [`Loaded`](super::registry::Loaded), so a hot reload,
//! which replaces the `Loaded`, drops its idle instances with it.
//!
//! Every idle instance holds pooling-allocator slots. The host sizes the
//! allocator for `max_concurrent` running instances (the semaphore bounds
//! those) plus [`WarmLimits::total`] idle ones, and an instance takes an idle
//! slot from the shared [`IdleBudget`] before it is kept, so running plus
//! idle instances can never exhaust the allocator.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use wasmtime::Store;

use super::bindings::{HostState, Plugin};

/// How many idle instances the host keeps, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WarmLimits {
    /// Idle instances kept per loaded plugin version (0 disables reuse: a
    /// fresh instance per call).
    pub per_plugin: usize,
    /// Idle instances kept across all plugins. Each holds pooling-allocator
    /// slots, which the host reserves on top of `max_concurrent`.
    pub total: usize,
    /// Calls one instance serves before it is discarded.
    pub max_calls: u32,
}

impl Default for WarmLimits {
    fn default() -> Self {
        WarmLimits {
            per_plugin: 8,
            total: 32,
            max_calls: 1000,
        }
    }
}

/// A live instance with its store, between or during calls.
pub(crate) struct Warm {
    pub(crate) store: Store<HostState>,
    pub(crate) plugin: Plugin,
    /// Calls this instance has completed.
    pub(crate) calls: u32,
}

impl Warm {
    /// Bytes of linear memory the instance holds now.
    fn memory(&self) -> u64 {
        self.store.data().limiter.total() as u64
    }
}

/// The host-wide count of idle instances, capped at [`WarmLimits::total`].
#[derive(Debug)]
pub(crate) struct IdleBudget {
    idle: AtomicUsize,
    limits: WarmLimits,
}

impl IdleBudget {
    pub(crate) fn new(limits: WarmLimits) -> Arc<Self> {
        Arc::new(IdleBudget {
            idle: AtomicUsize::new(0),
            limits,
        })
    }

    /// Idle instances across all plugins now.
    pub(crate) fn idle(&self) -> usize {
        self.idle.load(Ordering::SeqCst)
    }

    fn try_take(self: &Arc<Self>) -> Option<IdleSlot> {
        let cap = self.limits.total;
        self.idle
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < cap).then_some(n + 1))
            .ok()
            .map(|_| IdleSlot(self.clone()))
    }
}

/// One unit of [`IdleBudget`], held by an idle instance; given back on drop.
struct IdleSlot(Arc<IdleBudget>);

impl Drop for IdleSlot {
    fn drop(&mut self) {
        self.0.idle.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The idle instances of one plugin version. The lock is held only for a
/// push or a pop; instances are dropped outside it.
pub(crate) struct WarmPool {
    idle: Mutex<Vec<(Warm, IdleSlot)>>,
    budget: Arc<IdleBudget>,
}

impl WarmPool {
    pub(crate) fn new(budget: Arc<IdleBudget>) -> Self {
        WarmPool {
            idle: Mutex::new(Vec::new()),
            budget,
        }
    }

    /// The most recently used idle instance whose memory fits `max_memory`;
    /// idle instances holding more are discarded on the way.
    pub(crate) fn take(&self, max_memory: u64) -> Option<Warm> {
        loop {
            let popped = self.idle.lock().ok()?.pop();
            let (warm, slot) = popped?;
            if warm.memory() <= max_memory {
                drop(slot);
                return Some(warm);
            }
            drop((warm, slot));
        }
    }

    /// Keeps an instance that just completed a call normally, if it has
    /// calls left and both caps have room; otherwise drops it.
    pub(crate) fn put(&self, warm: Warm) {
        let limits = self.budget.limits;
        if warm.calls >= limits.max_calls || limits.per_plugin == 0 {
            return;
        }
        let Some(slot) = self.budget.try_take() else {
            return;
        };
        let refused = match self.idle.lock() {
            Ok(mut idle) if idle.len() < limits.per_plugin => {
                idle.push((warm, slot));
                None
            }
            _ => Some((warm, slot)),
        };
        drop(refused);
    }

    /// Idle instances of this version now.
    pub(crate) fn len(&self) -> usize {
        self.idle.lock().map_or(0, |idle| idle.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idle_budget_is_capped_and_given_back_on_drop() {
        let budget = IdleBudget::new(WarmLimits {
            total: 2,
            ..WarmLimits::default()
        });
        let a = budget.try_take();
        let b = budget.try_take();
        assert!(a.is_some() && b.is_some());
        assert!(budget.try_take().is_none());
        assert_eq!(budget.idle(), 2);
        drop(a);
        assert_eq!(budget.idle(), 1);
        assert!(budget.try_take().is_some());
        assert_eq!(budget.idle(), 1);
    }
}
