//! Counts the calls its instance has served in a global and forwards the
//! event unchanged with the count in an `x-calls` header: 1 means a fresh
//! instance, more means the host reused a warm one.
//!
//! Config `mode` makes the call misbehave after counting: `panic` (a trap),
//! `loop` (spins past any budget), `grow` (allocates until refused), `hold`
//! (keeps `hold_mib` MiB allocated in the instance for good, then forwards),
//! `error` (returns a guest error). `sleep_ms` first sleeps that long inside
//! a WASI call, so concurrent calls overlap.

#![forbid(unsafe_code)]

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hookgate_plugin_sdk::{Config, Error, Event, Plugin, Verdict, export_plugin};

static CALLS: AtomicU64 = AtomicU64::new(0);
static HELD: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

struct Counter;

impl Plugin for Counter {
    #[allow(clippy::disallowed_methods, reason = "blocking the guest is what `sleep_ms` tests")]
    fn handle(event: Event, config: &Config) -> Result<Verdict, Error> {
        let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(ms) = config.parse::<u64>("sleep_ms")? {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        match config.get("mode") {
            Some("panic") => panic!("counter plugin panicked on purpose at call {calls}"),
            Some("loop") => loop {
                std::hint::black_box(calls);
            },
            Some("grow") => {
                let mut blocks: Vec<Vec<u8>> = Vec::new();
                loop {
                    blocks.push(vec![0x5A; 1 << 20]);
                    std::hint::black_box(&blocks);
                }
            }
            Some("hold") => {
                let mib = config.parse::<usize>("hold_mib")?.unwrap_or(1);
                if let Ok(mut held) = HELD.lock() {
                    held.extend((0..mib).map(|_| vec![0x5A; 1 << 20]));
                }
            }
            Some("error") => return Err(Error::msg(format!("counter error at call {calls}"))),
            _ => {}
        }
        Ok(event.forward().with_header("x-calls", calls.to_string()))
    }
}

export_plugin!(Counter);
