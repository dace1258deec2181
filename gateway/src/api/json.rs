//! Request bodies: size limit (413), media type (415), and JSON errors in
//! the API error shape: 400 for malformed JSON, 422 naming the field for
//! valid JSON of the wrong shape.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;

use super::error::{ApiError, ErrorCode};

/// The body of a request did not arrive within `body_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimeout(pub std::time::Duration);

/// Reads a body of at most `limit` bytes.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > limit as u64
    {
        discard(body).await;
        return Err(ApiError::too_large(limit));
    }
    let mut body = body;
    let mut bytes = bytes::BytesMut::new();
    while let Some(chunk) = next_data(&mut body).await {
        let chunk = chunk.map_err(|e| read_error(&e))?;
        if bytes.len() + chunk.len() > limit {
            discard(body).await;
            return Err(ApiError::too_large(limit));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes.freeze())
}

/// The next data chunk of a body (trailers are skipped).
async fn next_data(body: &mut Body) -> Option<Result<Bytes, axum::Error>> {
    use http_body_util::BodyExt;
    loop {
        match body.frame().await? {
            Ok(frame) => match frame.into_data() {
                Ok(data) => return Some(Ok(data)),
                Err(_) => continue,
            },
            Err(e) => return Some(Err(e)),
        }
    }
}

/// Reads and drops up to [`DISCARD_LIMIT`] more bytes of a body refused for
/// its size, so the client gets its 413 instead of a connection reset while
/// it is still sending (past that, or past the body timeout, the connection
/// closes).
async fn discard(mut body: Body) {
    let mut dropped = 0;
    while dropped < DISCARD_LIMIT {
        match next_data(&mut body).await {
            Some(Ok(chunk)) => dropped += chunk.len(),
            _ => return,
        }
    }
}

/// Most bytes read and dropped after a body was refused for its size.
const DISCARD_LIMIT: usize = 4 << 20;

/// A body that could not be read: the transport failed or was too slow.
fn read_error(e: &axum::Error) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(t) = s.downcast_ref::<BodyTimeout>() {
            return ApiError::new(ErrorCode::RequestTimeout, t.to_string());
        }
        source = s.source();
    }
    ApiError::malformed(format!("could not read the request body: {e}"))
}

/// Checks that the body is declared as JSON (a missing Content-Type is
/// taken as JSON; anything else is 415).
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")) {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type())
    }
}

/// Parses JSON into `T`: syntax errors are 400, shape errors 422 with the
/// path of the offending field.
pub fn parse<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    // Most bodies are well formed: parse without tracking the path, and
    // only a body that fails again with it, for the error's field.
    if let Ok(v) = serde_json::from_slice(bytes) {
        return Ok(v);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => {
            // Reject trailing garbage after the value.
            de.end()
                .map_err(|e| ApiError::malformed(format!("malformed JSON: {e}")))?;
            Ok(v)
        }
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            // A shape error can surface before a syntax error further on:
            // malformed JSON is a 400 whatever else is wrong with it.
            let syntax = match inner.classify() {
                serde_json::error::Category::Data => serde_json::from_slice::<serde::de::IgnoredAny>(bytes).err(),
                _ => None,
            };
            if let Some(e) = syntax {
                return Err(ApiError::malformed(format!("malformed JSON: {e}")));
            }
            match inner.classify() {
                serde_json::error::Category::Data => {
                    let field = if path == "." || path.is_empty() {
                        "body"
                    } else {
                        path.as_str()
                    };
                    Err(ApiError::invalid(field, describe_data_error(&inner.to_string())))
                }
                _ => Err(ApiError::malformed(format!("malformed JSON: {inner}"))),
            }
        }
    }
}

fn strip_position(msg: &str) -> &str {
    msg.find(" at line ").map_or(msg, |i| &msg[..i])
}

/// A serde data error (wrong type, out of range, missing or unknown field)
/// in words for API users: what is expected and what kind of value came,
/// never the value itself (it may be a secret) and never a Rust type name.
pub fn describe_data_error(msg: &str) -> String {
    let msg = strip_position(msg);
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = msg.strip_prefix(prefix)
            && let Some((unexpected, expected)) = rest.split_once(", expected ")
        {
            let expected = describe_expected(expected);
            return if prefix == "invalid type: " {
                format!("expected {expected}, got {}", describe_kind(unexpected))
            } else {
                format!("expected {expected}")
            };
        }
    }
    if let Some(rest) = msg.strip_prefix("invalid length ")
        && let Some((_, expected)) = rest.split_once(", expected ")
    {
        return format!("expected {}", describe_expected(expected));
    }
    if msg.contains("struct ") || msg.contains("enum ") {
        return "has the wrong shape".to_owned();
    }
    msg.to_owned()
}

/// serde's `Unexpected` ("integer `5`", "string \"x\"") without the value.
fn describe_kind(unexpected: &str) -> &'static str {
    let kind = unexpected.split(['`', '"']).next().unwrap_or("").trim();
    match kind {
        "string" | "character" => "a string",
        "integer" => "an integer",
        "floating point" => "a number",
        "boolean" => "a boolean",
        "map" => "an object",
        "sequence" => "an array",
        "null" | "unit" | "unit value" | "Option value" => "null",
        _ => "another kind of value",
    }
}

/// serde's `Expected` in JSON terms.
fn describe_expected(expected: &str) -> String {
    let e = expected.trim();
    let max = |n: u64| format!("a whole number from 0 to {n}");
    match e {
        "u8" => max(u8::MAX.into()),
        "u16" => max(u16::MAX.into()),
        "u32" => max(u32::MAX.into()),
        "u64" | "usize" => max(u64::MAX),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "a string" | "a borrowed string" | "a char" => "a string".to_owned(),
        "a boolean" => "true or false".to_owned(),
        "a sequence" => "an array".to_owned(),
        "a map" => "an object".to_owned(),
        _ if e.starts_with("struct ") || e.starts_with("a map") => "an object".to_owned(),
        _ if e.starts_with("a sequence") || e.starts_with("a tuple") || e.starts_with("tuple") => "an array".to_owned(),
        _ if e.starts_with("enum ") || e.contains("struct ") => "a valid value".to_owned(),
        _ => e.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct EventIn {
        secret: String,
        retries: Option<u32>,
    }

    fn message<T: for<'a> serde::Deserialize<'a> + std::fmt::Debug>(body: &str) -> String {
        parse::<T>(body.as_bytes()).unwrap_err().message
    }

    #[test]
    fn data_errors_name_the_field_not_the_value_or_the_type() {
        assert_eq!(
            message::<EventIn>(r#""just a string""#),
            "body: expected an object, got a string"
        );
        assert_eq!(
            message::<EventIn>(r#"{"secret": 12345678}"#),
            "secret: expected a string, got an integer"
        );
        assert_eq!(
            message::<EventIn>(r#"{"secret": "s", "retries": -1}"#),
            "retries: expected a whole number from 0 to 4294967295"
        );
        assert_eq!(
            message::<EventIn>(r#"{"secret": "s", "retries": 1.5}"#),
            "retries: expected a whole number from 0 to 4294967295, got a number"
        );
        assert_eq!(message::<EventIn>("{}"), "body: missing field `secret`");
        assert_eq!(message::<Vec<u8>>("{}"), "body: expected an array, got an object");
    }
}
