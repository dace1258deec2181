//! `cloudevents`: wraps the body in a CloudEvents 1.0 JSON envelope
//! (structured content mode). See README.md.

#![forbid(unsafe_code)]

mod time;

use hookgate_plugin_sdk::{Config, Error, Event, Plugin, Verdict, export_plugin};
use serde::Serialize;
use serde_json::value::RawValue;

struct CloudEvents;

#[derive(Serialize)]
struct Envelope<'a> {
    specversion: &'static str,
    id: &'a str,
    source: String,
    #[serde(rename = "type")]
    event_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<String>,
    datacontenttype: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_base64: Option<String>,
}

fn check(config: &Config) -> Result<(), String> {
    config.check_keys(&["source", "type"])?;
    for key in ["source", "type"] {
        if let Some(v) = config.get(key)
            && (v.is_empty() || v.chars().any(char::is_whitespace))
        {
            return Err(format!("config `{key}` must be non-empty and contain no whitespace"));
        }
    }
    Ok(())
}

impl Plugin for CloudEvents {
    fn handle(event: Event, config: &Config) -> Result<Verdict, Error> {
        check(config).map_err(Error::msg)?;
        let content_type = event.header("content-type").unwrap_or("application/json");
        let is_json = content_type.split(';').next().is_some_and(|t| {
            let t = t.trim().to_ascii_lowercase();
            t == "application/json" || t.ends_with("+json")
        });
        let raw: Option<&RawValue> = if is_json {
            serde_json::from_slice(&event.body).ok()
        } else {
            None
        };
        let (data, data_base64) = match raw {
            Some(raw) => (Some(raw), None),
            None if event.body.is_empty() => (None, None),
            None => (None, Some(base64(&event.body))),
        };
        let envelope = Envelope {
            specversion: "1.0",
            id: &event.id,
            source: config
                .get("source")
                .map_or_else(|| format!("hookgate/{}", event.webhook_id), str::to_owned),
            event_type: config.get("type").unwrap_or(&event.event_type),
            time: time::from_event_id(&event.id),
            datacontenttype: if raw.is_some() {
                "application/json"
            } else {
                content_type
            },
            data,
            data_base64,
        };
        Ok(Verdict::forward_json(&envelope)?.with_header("content-type", "application/cloudevents+json"))
    }

    fn validate_config(config: &Config) -> Result<(), String> {
        check(config)
    }
}

export_plugin!(CloudEvents);

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(body: &[u8], content_type: &str, config: &[(&str, &str)]) -> (String, Vec<(String, String)>) {
        let event = Event {
            id: "evt_01HV5Z3K4Q8W7X2M9N5R6T0V1Y".into(),
            event_type: "task.completed".into(),
            webhook_id: "orders".into(),
            headers: vec![
                ("content-type".into(), content_type.into()),
                ("x-team".into(), "a".into()),
            ],
            body: body.to_vec(),
        };
        let config: Config = config.iter().copied().collect();
        CloudEvents::validate_config(&config).unwrap();
        let incoming = event.headers.clone();
        let (body, headers) = CloudEvents::handle(event, &config).unwrap().resolve(incoming).unwrap();
        (String::from_utf8(body).unwrap(), headers)
    }

    #[test]
    fn wraps_json_bodies_verbatim() {
        let (body, headers) = run(br#"{"b": 1.10,  "a": [1]}"#, "application/json", &[]);
        assert_eq!(
            body,
            r#"{"specversion":"1.0","id":"evt_01HV5Z3K4Q8W7X2M9N5R6T0V1Y","source":"hookgate/orders","type":"task.completed","time":"2024-04-11T06:56:45.207Z","datacontenttype":"application/json","data":{"b": 1.10,  "a": [1]}}"#
        );
        assert!(headers.contains(&("content-type".into(), "application/cloudevents+json".into())));
        assert!(headers.contains(&("x-team".into(), "a".into())));
    }

    #[test]
    fn binary_bodies_go_to_data_base64_and_config_overrides() {
        let (body, _) = run(
            b"hi!?",
            "text/plain",
            &[("source", "urn:shop"), ("type", "com.shop.task")],
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["source"], "urn:shop");
        assert_eq!(v["type"], "com.shop.task");
        assert_eq!(v["datacontenttype"], "text/plain");
        assert_eq!(v["data_base64"], "aGkhPw==");
        assert!(v.get("data").is_none());
    }

    #[test]
    fn base64_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn config_is_validated() {
        assert!(CloudEvents::validate_config(&[("source", "a b")].into_iter().collect()).is_err());
        assert!(CloudEvents::validate_config(&[("sauce", "x")].into_iter().collect()).is_err());
    }
}
