//! `slack`: renders a message template against the event and forwards
//! `{"text": ...}` for a Slack incoming webhook. See README.md.

#![forbid(unsafe_code)]

mod template;

use hookgate_plugin_sdk::{Config, Error, Event, Plugin, Verdict, export_plugin};
use serde_json::{Value, json};
use template::{Part, Template};

struct Slack;

fn parse(config: &Config) -> Result<Template, String> {
    config.check_keys(&["template", "missing"])?;
    Template::parse(
        config
            .get("template")
            .ok_or("config `template` is required, e.g. \"{{type}}: {{/task/title}}\"")?,
    )
}

impl Plugin for Slack {
    fn handle(event: Event, config: &Config) -> Result<Verdict, Error> {
        let template = parse(config).map_err(Error::msg)?;
        let missing = config.get("missing").unwrap_or("");
        let needs_body = template.parts().iter().any(|p| matches!(p, Part::Pointer(_)));
        let body: Value = if needs_body { event.json()? } else { Value::Null };
        let text = template.render(|part| match part {
            Part::Text(t) => t.clone(),
            Part::EventType => escape(&event.event_type),
            Part::EventId => escape(&event.id),
            Part::WebhookId => escape(&event.webhook_id),
            Part::Pointer(p) => match body.pointer(p) {
                None | Some(Value::Null) => missing.to_owned(),
                Some(Value::String(s)) => escape(s),
                Some(other) => escape(&other.to_string()),
            },
        });
        Verdict::forward_json(&json!({ "text": text }))
    }

    fn validate_config(config: &Config) -> Result<(), String> {
        parse(config).map(|_| ())
    }
}

export_plugin!(Slack);

/// Slack's three control characters in message text.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(body: &str, config: &[(&str, &str)]) -> Result<String, String> {
        let event = Event {
            id: "evt_1".into(),
            event_type: "task.completed".into(),
            webhook_id: "ops".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        };
        let config: Config = config.iter().copied().collect();
        Slack::validate_config(&config)?;
        let (body, _) = Slack::handle(event, &config)
            .map_err(|e| e.to_string())?
            .resolve(vec![])?;
        Ok(String::from_utf8(body).unwrap())
    }

    #[test]
    fn renders_pointers_and_event_fields() {
        let body = r#"{"task": {"title": "Ship <v2> & party", "points": 3, "done": true}}"#;
        let out = run(body, &[("template", "*{{type}}* {{ /task/title }}: {{/task/points}} pts, done={{/task/done}}{{/task/owner}} [{{id}}/{{webhook_id}}]")]).unwrap();
        assert_eq!(
            out,
            r#"{"text":"*task.completed* Ship &lt;v2&gt; &amp; party: 3 pts, done=true [evt_1/ops]"}"#
        );
        let out = run(body, &[("template", "owner: {{/task/owner}}"), ("missing", "nobody")]).unwrap();
        assert_eq!(out, r#"{"text":"owner: nobody"}"#);
    }

    #[test]
    fn templates_without_pointers_do_not_need_a_json_body() {
        assert_eq!(
            run("not json", &[("template", "{{type}}")]).unwrap(),
            r#"{"text":"task.completed"}"#
        );
        assert!(run("not json", &[("template", "{{/a}}")]).is_err());
    }

    #[test]
    fn bad_templates_are_rejected() {
        for t in ["{{", "a {{ type", "{{nope}}", "{{/a~2}}", "{{}}"] {
            assert!(
                Slack::validate_config(&[("template", t)].into_iter().collect()).is_err(),
                "{t}"
            );
        }
        assert!(Slack::validate_config(&Config::default()).is_err());
    }
}
