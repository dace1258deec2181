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
        return Err(ApiError::too_large(limit));
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        // to_bytes fails with a length-limit error, or with the transport's.
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = source {
            if s.is::<http_body_util::LengthLimitError>() {
                return ApiError::too_large(limit);
            }
            if let Some(t) = s.downcast_ref::<BodyTimeout>() {
                return ApiError::new(ErrorCode::RequestTimeout, t.to_string());
            }
            source = s.source();
        }
        ApiError::malformed(format!("could not read the request body: {e}"))
    })
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
                    Err(ApiError::invalid(field, strip_position(&inner.to_string())))
                }
                _ => Err(ApiError::malformed(format!("malformed JSON: {inner}"))),
            }
        }
    }
}

fn strip_position(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}
