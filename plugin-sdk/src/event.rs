//! [`Event`]: what a plugin is handed.

use serde::de::DeserializeOwned;

use crate::{Error, Verdict, bindings};

/// One event on its way to one webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The event id: the same for every webhook the event fans out to.
    pub id: String,
    /// The event type, e.g. `task.completed`.
    pub event_type: String,
    /// The webhook this delivery goes to.
    pub webhook_id: String,
    /// Request headers built so far (e.g. `content-type`), in order.
    pub headers: Vec<(String, String)>,
    /// The request body: the event's `data` as JSON, or the previous
    /// plugin's output.
    pub body: Vec<u8>,
}

impl Event {
    pub(crate) fn from_wit(e: bindings::Event) -> Self {
        Event {
            id: e.id,
            event_type: e.event_type,
            webhook_id: e.webhook_id,
            headers: e.headers,
            body: e.body,
        }
    }

    /// Deserializes the body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| Error::msg(format!("event body is not the expected JSON: {e}")))
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.body).map_err(|e| Error::msg(format!("event body is not UTF-8: {e}")))
    }

    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Forward the event unchanged.
    pub fn forward(self) -> Verdict {
        Verdict::forward(self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(body: &str) -> Event {
        Event {
            id: "evt_1".into(),
            event_type: "task.completed".into(),
            webhook_id: "orders".into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn json_and_headers() {
        let e = event(r#"{"a": 1}"#);
        let v: serde_json::Value = e.json().unwrap();
        assert_eq!(v["a"], 1);
        assert_eq!(e.header("content-type"), Some("application/json"));
        assert!(
            event("{")
                .json::<serde_json::Value>()
                .unwrap_err()
                .to_string()
                .contains("not the expected JSON")
        );
    }
}
