//! Spins forever in `handle` (and in `validate-config` when config
//! `validate = "loop"`): the host must stop it at its time budget.

#![forbid(unsafe_code)]

use hookgate_plugin_sdk::{Config, Error, Event, Plugin, Verdict, export_plugin};

struct Spin;

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

impl Plugin for Spin {
    fn handle(_event: Event, _config: &Config) -> Result<Verdict, Error> {
        spin()
    }

    fn validate_config(config: &Config) -> Result<(), String> {
        if config.get("validate") == Some("loop") {
            spin();
        }
        Ok(())
    }
}

export_plugin!(Spin);
