//! Process-wide state of the embedded store: the stores open in this
//! process (a folder is opened once per process; opening it again returns
//! the same store) and the writer threads still running (so the process can
//! let them close their files before it exits).

use std::path::PathBuf;
use std::sync::{Condvar, Mutex, Weak};
use std::time::Duration;

use super::EmbeddedStore;

/// Stores open in this process, by canonical folder.
pub(super) static OPEN: Mutex<Vec<(PathBuf, Weak<EmbeddedStore>)>> = Mutex::new(Vec::new());
/// Writer threads still running (they close their file on the way out).
static WRITERS: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

/// Waits (at most `timeout`) until every embedded store of this process has
/// closed its data file, so the next start needs no repair. Call it from a
/// blocking context after the last use of the stores, before exiting.
pub fn wait_closed(timeout: Duration) -> bool {
    let (count, cvar) = &WRITERS;
    let guard = count.lock().unwrap_or_else(|e| e.into_inner());
    let (guard, _) = cvar
        .wait_timeout_while(guard, timeout, |n| *n > 0)
        .unwrap_or_else(|e| e.into_inner());
    *guard == 0
}

/// Counts a writer thread while it runs.
pub(super) struct Running;

impl Running {
    pub(super) fn start() -> Self {
        *WRITERS.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        *WRITERS.0.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        WRITERS.1.notify_all();
    }
}
