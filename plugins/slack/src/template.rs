//! `{{...}}` templates: literal text with placeholders for the event type
//! (`{{type}}`), id (`{{id}}`), webhook id (`{{webhook_id}}`) and JSON
//! pointers into the body (`{{/task/title}}`). Whitespace inside the braces
//! is ignored.

use hookgate_plugin_sdk::pointer;

/// One piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Text(String),
    EventType,
    EventId,
    WebhookId,
    Pointer(String),
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template(Vec<Part>);

impl Template {
    pub fn parse(source: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or_else(|| {
                format!(
                    "template: `{{{{` at byte {} is never closed",
                    source.len() - rest.len() + start
                )
            })?;
            let name = after[..end].trim();
            parts.push(match name {
                "type" => Part::EventType,
                "id" => Part::EventId,
                "webhook_id" => Part::WebhookId,
                p if p.starts_with('/') => {
                    pointer::validate_field(p).map_err(|e| format!("template: {e}"))?;
                    Part::Pointer(p.to_owned())
                }
                other => {
                    return Err(format!(
                        "template: unknown placeholder {{{{{other}}}}}; use {{{{type}}}}, {{{{id}}}}, {{{{webhook_id}}}} or a JSON pointer like {{{{/task/title}}}}"
                    ));
                }
            });
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template(parts))
    }

    pub fn parts(&self) -> &[Part] {
        &self.0
    }

    pub fn render(&self, mut value: impl FnMut(&Part) -> String) -> String {
        self.0.iter().map(&mut value).collect()
    }
}
