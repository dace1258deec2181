//! Sleeps for ten seconds: the guest is blocked in a WASI clock wait, not
//! running code, so only the host's wall-clock timer can stop it.

#![forbid(unsafe_code)]

use hookgate_plugin_sdk::{Config, Error, Event, Plugin, Verdict, export_plugin};

struct Sleeper;

impl Plugin for Sleeper {
    #[allow(clippy::disallowed_methods, reason = "blocking the guest is what this plugin tests")]
    fn handle(event: Event, _config: &Config) -> Result<Verdict, Error> {
        std::thread::sleep(std::time::Duration::from_secs(10));
        Ok(event.forward())
    }
}

export_plugin!(Sleeper);
