//! `event-filter`: forwards an event when its JSON body satisfies every rule,
//! drops it otherwise. See README.md for the configuration.

#![forbid(unsafe_code)]

mod rules;

use hookgate_plugin_sdk::{Config, Error, Event, Plugin, Verdict, export_plugin};
use serde_json::Value;

use rules::rules_from_config;

pub struct EventFilter;

impl Plugin for EventFilter {
    fn handle(event: Event, config: &Config) -> Result<Verdict, Error> {
        let rules = rules_from_config(config).map_err(Error::msg)?;
        let doc: Value = event.json()?;
        for (i, rule) in rules.iter().enumerate() {
            if !rule.holds(&doc) {
                return Ok(Verdict::drop(format!(
                    "rule {} did not hold: {}",
                    i + 1,
                    rule.describe()
                )));
            }
        }
        Ok(event.forward())
    }

    fn validate_config(config: &Config) -> Result<(), String> {
        rules_from_config(config).map(|_| ())
    }
}

export_plugin!(EventFilter);

#[cfg(test)]
mod tests {
    use super::*;

    fn run(body: &str, config: &[(&str, &str)]) -> Result<Verdict, String> {
        let event = Event {
            id: "evt_1".into(),
            event_type: "task.completed".into(),
            webhook_id: "w".into(),
            headers: vec![],
            body: body.as_bytes().to_vec(),
        };
        let config: Config = config.iter().copied().collect();
        EventFilter::validate_config(&config)?;
        EventFilter::handle(event, &config).map_err(|e| e.to_string())
    }

    fn forwarded(body: &str, config: &[(&str, &str)]) -> bool {
        run(body, config).unwrap().is_forward()
    }

    const TASK: &str =
        r#"{"task": {"status": "done", "priority": 3, "tags": ["a"], "code": "42", "due": "2024-05-01"}}"#;

    #[test]
    fn single_rule_ops() {
        assert!(forwarded(
            TASK,
            &[("field", "/task/status"), ("op", "eq"), ("value", "done")]
        ));
        assert!(!forwarded(
            TASK,
            &[("field", "/task/status"), ("op", "eq"), ("value", "open")]
        ));
        assert!(forwarded(
            TASK,
            &[("field", "/task/status"), ("op", "ne"), ("value", "open")]
        ));
        assert!(forwarded(
            TASK,
            &[("field", "/task/missing"), ("op", "ne"), ("value", "open")]
        ));
        assert!(forwarded(
            TASK,
            &[("field", "/task/priority"), ("op", "eq"), ("value", "3")]
        ));
        assert!(forwarded(
            TASK,
            &[("field", "/task/priority"), ("op", "eq"), ("value", "3.0")]
        ));
        assert!(forwarded(
            TASK,
            &[("field", "/task/code"), ("op", "eq"), ("value", "42")]
        ));
        assert!(forwarded(
            TASK,
            &[("field", "/task/priority"), ("op", "gt"), ("value", "2")]
        ));
        assert!(forwarded(
            TASK,
            &[("field", "/task/priority"), ("op", "gte"), ("value", "3")]
        ));
        assert!(!forwarded(
            TASK,
            &[("field", "/task/priority"), ("op", "lt"), ("value", "3")]
        ));
        assert!(forwarded(
            TASK,
            &[("field", "/task/priority"), ("op", "lte"), ("value", "3")]
        ));
        assert!(forwarded(
            TASK,
            &[("field", "/task/due"), ("op", "lt"), ("value", "2025-01-01")]
        ));
        assert!(!forwarded(
            TASK,
            &[("field", "/task/status"), ("op", "gt"), ("value", "1")]
        ));
        assert!(forwarded(TASK, &[("field", "/task/tags"), ("op", "exists")]));
        assert!(forwarded(
            TASK,
            &[("field", "/task/nope"), ("op", "exists"), ("value", "false")]
        ));
        assert!(!forwarded(TASK, &[("field", "/task/nope"), ("op", "exists")]));
        assert!(forwarded(
            TASK,
            &[("field", "/task/status"), ("op", "in"), ("value", "open,done")]
        ));
        assert!(forwarded(
            TASK,
            &[("field", "/task/priority"), ("op", "in"), ("value", "[1, 3]")]
        ));
        assert!(!forwarded(
            TASK,
            &[("field", "/task/status"), ("op", "in"), ("value", r#"["open"]"#)]
        ));
    }

    #[test]
    fn rules_must_all_hold_and_the_reason_names_the_failing_one() {
        let rules = r#"[{"field": "/task/status", "op": "eq", "value": "done"},
                        {"field": "/task/priority", "op": "gte", "value": 5}]"#;
        match run(TASK, &[("rules", rules)]).unwrap() {
            Verdict::Drop { reason } => {
                assert_eq!(reason, "rule 2 did not hold: /task/priority gte 5")
            }
            v => panic!("{v:?}"),
        }
        let rules = r#"[{"field": "/task/status", "op": "eq", "value": "done"}, {"field": "/task", "op": "exists"}]"#;
        assert!(forwarded(TASK, &[("rules", rules)]));
    }

    #[test]
    fn bad_config_is_rejected() {
        let bad: &[&[(&str, &str)]] = &[
            &[("field", "/a"), ("op", "like"), ("value", "x")],
            &[("field", "a"), ("op", "eq"), ("value", "x")],
            &[("field", "/a"), ("op", "eq")],
            &[("op", "eq"), ("value", "x")],
            &[("field", "/a"), ("op", "gt"), ("value", "[1]")],
            &[("field", "/a"), ("op", "exists"), ("value", "maybe")],
            &[("rules", "[]")],
            &[("rules", "{}")],
            &[("rules", r#"[{"field": "/a", "op": "eq", "value": 1, "extra": 1}]"#)],
            &[("rules", r#"[{"field": "/a", "op": "in", "value": 1}]"#)],
            &[
                ("rules", r#"[{"field": "/a", "op": "eq", "value": 1}]"#),
                ("field", "/b"),
            ],
            &[("field", "/a"), ("op", "eq"), ("value", "x"), ("typo", "1")],
        ];
        for config in bad {
            let config: Config = config.iter().copied().collect();
            assert!(EventFilter::validate_config(&config).is_err(), "{config:?}");
        }
    }

    #[test]
    fn a_body_that_is_not_json_is_an_error() {
        let err = run("not json", &[("field", "/a"), ("op", "exists")]).unwrap_err();
        assert!(err.contains("not the expected JSON"), "{err}");
    }
}
