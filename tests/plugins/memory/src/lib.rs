//! Allocates 1 MiB blocks (touching every page) until the allocator fails:
//! the host must refuse growth past the cap and report a memory error.

#![forbid(unsafe_code)]

use hookgate_plugin_sdk::{Config, Error, Event, Plugin, Verdict, export_plugin};

struct Bomb;

impl Plugin for Bomb {
    fn handle(_event: Event, _config: &Config) -> Result<Verdict, Error> {
        let mut blocks: Vec<Vec<u8>> = Vec::new();
        loop {
            blocks.push(vec![0xA5; 1 << 20]);
            std::hint::black_box(&blocks);
        }
    }
}

export_plugin!(Bomb);
