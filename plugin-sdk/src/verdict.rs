//! [`Verdict`] (what to do with the event) and [`Error`] (why the plugin
//! failed).

use std::fmt;

use serde::Serialize;

use crate::bindings;

/// An ordered header list; names are case-insensitive.
pub type Headers = Vec<(String, String)>;

/// Forward (possibly changed) or drop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send this body on. `headers: None` keeps the incoming headers, apart
    /// from the changes in `set_headers` (applied in order; a `None` value
    /// removes the header).
    Forward {
        body: Vec<u8>,
        headers: Option<Vec<(String, String)>>,
        set_headers: Vec<(String, Option<String>)>,
    },
    /// Do not deliver; the delivery becomes `filtered` with this reason.
    Drop { reason: String },
}

impl Verdict {
    /// Forward `body` with the incoming headers.
    pub fn forward(body: impl Into<Vec<u8>>) -> Self {
        Verdict::Forward {
            body: body.into(),
            headers: None,
            set_headers: Vec::new(),
        }
    }

    /// Forward `value` serialized as JSON, with `content-type:
    /// application/json` and otherwise the incoming headers.
    pub fn forward_json<T: Serialize + ?Sized>(value: &T) -> Result<Self, Error> {
        let body = serde_json::to_vec(value).map_err(|e| Error::msg(format!("cannot serialize the output: {e}")))?;
        Ok(Verdict::forward(body).with_header("content-type", "application/json"))
    }

    /// Drop the event, saying why.
    pub fn drop(reason: impl Into<String>) -> Self {
        Verdict::Drop { reason: reason.into() }
    }

    /// Sets a header, replacing any with the same name (case-insensitive).
    /// No effect on a drop.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        if let Verdict::Forward { set_headers, .. } = &mut self {
            set_headers.push((name.into(), Some(value.into())));
        }
        self
    }

    /// Removes every header with this name (case-insensitive).
    pub fn without_header(mut self, name: impl Into<String>) -> Self {
        if let Verdict::Forward { set_headers, .. } = &mut self {
            set_headers.push((name.into(), None));
        }
        self
    }

    /// Replaces the whole header list (later `with_header` calls still apply).
    pub fn with_headers(mut self, list: Vec<(String, String)>) -> Self {
        if let Verdict::Forward { headers, .. } = &mut self {
            *headers = Some(list);
        }
        self
    }

    /// Whether this is a forward.
    pub fn is_forward(&self) -> bool {
        matches!(self, Verdict::Forward { .. })
    }

    /// What this verdict sends given the incoming headers: `Ok((body,
    /// headers))` for a forward (header changes applied), `Err(reason)` for a
    /// drop. The SDK does this before answering the host; tests can use it to
    /// see the exact output.
    pub fn resolve(self, incoming: Vec<(String, String)>) -> Result<(Vec<u8>, Headers), String> {
        match self {
            Verdict::Drop { reason } => Err(reason),
            Verdict::Forward {
                body,
                headers,
                set_headers,
            } => {
                let mut headers = headers.unwrap_or(incoming);
                for (name, value) in set_headers {
                    headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
                    if let Some(value) = value {
                        headers.push((name, value));
                    }
                }
                Ok((body, headers))
            }
        }
    }

    /// The WIT verdict.
    pub(crate) fn into_wit(self, incoming: Vec<(String, String)>) -> bindings::Verdict {
        match self.resolve(incoming) {
            Ok((body, headers)) => {
                bindings::Verdict::Forward(bindings::hookgate::plugin::types::ForwardRequest { body, headers })
            }
            Err(reason) => bindings::Verdict::Drop(reason),
        }
    }
}

/// A plugin failure: the delivery attempt fails with this message.
///
/// Any `std::error::Error` converts into it, so `?` works on serde, UTF-8 and
/// parse errors; use [`Error::msg`] for your own messages.
pub struct Error(String);

impl Error {
    /// An error with this message.
    pub fn msg(message: impl fmt::Display) -> Self {
        Error(message.to_string())
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(e: E) -> Self {
        Error(e.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: bindings::Verdict) -> Vec<(String, String)> {
        match v {
            bindings::Verdict::Forward(f) => f.headers,
            bindings::Verdict::Drop(r) => panic!("dropped: {r}"),
        }
    }

    #[test]
    fn header_changes_apply_to_the_incoming_list() {
        let incoming = vec![
            ("Content-Type".into(), "text/plain".into()),
            ("X-Team".into(), "a".into()),
        ];
        let v = Verdict::forward_json(&serde_json::json!({"a": 1}))
            .unwrap()
            .without_header("x-team")
            .with_header("x-new", "1");
        assert_eq!(
            headers(v.into_wit(incoming.clone())),
            vec![
                ("content-type".to_owned(), "application/json".to_owned()),
                ("x-new".to_owned(), "1".to_owned())
            ]
        );
        assert_eq!(headers(Verdict::forward("x").into_wit(incoming.clone())), incoming);
        let replaced = Verdict::forward("x").with_headers(vec![("a".into(), "b".into())]);
        assert_eq!(
            headers(replaced.into_wit(incoming)),
            vec![("a".to_owned(), "b".to_owned())]
        );
    }

    #[test]
    fn errors_convert_from_std_errors() {
        fn parse() -> Result<u8, Error> {
            Ok("x".parse::<u8>()?)
        }
        assert!(parse().unwrap_err().to_string().contains("invalid digit"));
    }
}
