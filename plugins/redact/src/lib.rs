//! `redact`: removes (or masks) fields of a JSON body before it leaves the
//! gateway. See README.md.

#![forbid(unsafe_code)]

use hookgate_plugin_sdk::{Config, Error, Event, Plugin, Verdict, export_plugin, pointer};
use serde_json::Value;

struct Redact;

/// The pointers to redact, from the comma-separated `fields`.
fn fields(config: &Config) -> Result<Vec<&str>, String> {
    let list = config
        .get("fields")
        .ok_or("config `fields` is required: comma-separated JSON pointers")?;
    let fields: Vec<&str> = list.split(',').map(str::trim).filter(|f| !f.is_empty()).collect();
    if fields.is_empty() {
        return Err("config `fields` names no JSON pointer".into());
    }
    for f in &fields {
        pointer::validate_field(f)?;
    }
    Ok(fields)
}

impl Plugin for Redact {
    fn handle(event: Event, config: &Config) -> Result<Verdict, Error> {
        let fields = fields(config).map_err(Error::msg)?;
        let mask = config.get("mask");
        let mut doc: Value = event.json()?;
        let mut changed = false;
        for field in fields {
            changed |= match mask {
                Some(mask) => pointer::replace(&mut doc, field, Value::String(mask.to_owned())).is_some(),
                None => pointer::remove(&mut doc, field).is_some(),
            };
        }
        if !changed {
            // Nothing to redact: keep the body byte for byte.
            return Ok(event.forward());
        }
        Verdict::forward_json(&doc)
    }

    fn validate_config(config: &Config) -> Result<(), String> {
        config.check_keys(&["fields", "mask"])?;
        fields(config).map(|_| ())
    }
}

export_plugin!(Redact);

#[cfg(test)]
mod tests {
    use super::*;

    fn run(body: &str, config: &[(&str, &str)]) -> Result<String, String> {
        let event = Event {
            id: "evt_1".into(),
            event_type: "order.paid".into(),
            webhook_id: "w".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        };
        let config: Config = config.iter().copied().collect();
        Redact::validate_config(&config)?;
        match Redact::handle(event, &config).map_err(|e| e.to_string())? {
            Verdict::Forward { body, .. } => Ok(String::from_utf8(body).unwrap()),
            Verdict::Drop { reason } => Err(reason),
        }
    }

    const ORDER: &str = r#"{"id": 7, "customer": {"email": "a@b.c", "name": "Ann"}, "card": {"last4": "4242"}, "total": 10.10, "items": [{"sku": "x"}]}"#;

    #[test]
    fn removes_fields_keeping_order_and_numbers() {
        let out = run(ORDER, &[("fields", "/customer/email, /card,/missing,/items/0/sku")]).unwrap();
        assert_eq!(out, r#"{"id":7,"customer":{"name":"Ann"},"total":10.10,"items":[{}]}"#);
    }

    #[test]
    fn masks_fields_when_asked() {
        let out = run(ORDER, &[("fields", "/customer/email,/card/last4"), ("mask", "***")]).unwrap();
        assert_eq!(
            out,
            r#"{"id":7,"customer":{"email":"***","name":"Ann"},"card":{"last4":"***"},"total":10.10,"items":[{"sku":"x"}]}"#
        );
    }

    #[test]
    fn unchanged_bodies_are_forwarded_byte_for_byte() {
        assert_eq!(run(ORDER, &[("fields", "/nothing/here")]).unwrap(), ORDER);
    }

    #[test]
    fn config_is_validated() {
        assert!(run(ORDER, &[]).is_err());
        assert!(run(ORDER, &[("fields", " , ")]).is_err());
        assert!(run(ORDER, &[("fields", "customer")]).is_err());
        assert!(run(ORDER, &[("fields", "/a"), ("masks", "x")]).is_err());
    }
}
