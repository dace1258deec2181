//! Panics with a recognisable message.

#![forbid(unsafe_code)]

use hookgate_plugin_sdk::{Config, Error, Event, Plugin, Verdict, export_plugin};

struct Panics;

impl Plugin for Panics {
    fn handle(event: Event, _config: &Config) -> Result<Verdict, Error> {
        panic!("hostile plugin panicked on purpose for {}", event.event_type)
    }
}

export_plugin!(Panics);
