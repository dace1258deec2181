//! The smallest useful hookgate plugin: forwards every event unchanged.
//!
//! Copy this folder, rename the package, and change `handle`. See the
//! `hookgate-plugin-sdk` docs for the API (`cargo doc -p hookgate-plugin-sdk --open`).

#![forbid(unsafe_code)]

use hookgate_plugin_sdk::{Config, Error, Event, Plugin, Verdict, export_plugin};

struct Template;

impl Plugin for Template {
    fn handle(event: Event, _config: &Config) -> Result<Verdict, Error> {
        Ok(event.forward())
    }

    fn validate_config(config: &Config) -> Result<(), String> {
        // This plugin takes no configuration; reject typos early.
        config.check_keys(&[])
    }
}

export_plugin!(Template);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_unchanged() {
        let event = Event {
            id: "evt_1".into(),
            event_type: "task.completed".into(),
            webhook_id: "orders".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"id": 1}"#.to_vec(),
        };
        let verdict = Template::handle(event, &Config::default()).unwrap();
        assert_eq!(verdict, Verdict::forward(br#"{"id": 1}"#.to_vec()));
        assert!(Template::validate_config(&[("x", "1")].into_iter().collect()).is_err());
    }
}
