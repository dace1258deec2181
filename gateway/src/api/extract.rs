//! Query-string and path extractors for `/api`, so that what axum's own
//! extractors would reject as plain text answers in the API error shape.
//!
//! * [`Query`]: an empty parameter (`?status=`) is the same as an absent
//!   one; a parameter given twice is a 422 naming it; values are decoded
//!   leniently (invalid UTF-8 becomes U+FFFD and then fails the field's own
//!   check with a 422 naming the field).
//! * [`Path`]: a path segment that is not valid UTF-8 names no resource: 404.
//!
//! Handlers import these in place of `axum::extract::{Path, Query}`.

use axum::extract::FromRequestParts;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::json::describe_data_error;

/// The query string deserialized into `T` (a struct of optional strings).
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        query_from_str(parts.uri.query().unwrap_or("")).map(Query)
    }
}

/// Parses a raw query string the way [`Query`] does.
fn query_from_str<T: DeserializeOwned>(raw: &str) -> Result<T, ApiError> {
    let mut fields = serde_json::Map::new();
    for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        if value.is_empty() {
            continue;
        }
        if fields.contains_key(key.as_ref()) {
            return Err(ApiError::invalid(
                &key,
                "query parameter given more than once; give it once",
            ));
        }
        fields.insert(key.into_owned(), serde_json::Value::String(value.into_owned()));
    }
    serde_path_to_error::deserialize::<_, T>(serde_json::Value::Object(fields)).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { "query".to_owned() } else { field };
        ApiError::invalid(&field, describe_data_error(&e.into_inner().to_string()))
    })
}

/// The path parameters deserialized into `T` (here always one `String`).
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(match e.into_kind() {
                ErrorKind::InvalidUtf8InPathParam { key } => {
                    ApiError::not_found(format!("no such resource: the `{key}` in the path is not valid UTF-8"))
                }
                _ => ApiError::not_found("no such resource: the path does not name one"),
            }),
            Err(_) => Err(ApiError::not_found("no such route")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Q {
        status: Option<String>,
        webhook_id: Option<String>,
    }

    #[test]
    fn empty_parameters_are_absent_and_repeats_are_refused() {
        let q: Q = query_from_str("status=&webhookId=a%20b&other=1").unwrap();
        assert_eq!((q.status, q.webhook_id.as_deref()), (None, Some("a b")));
        let e = query_from_str::<Q>("status=dead&status=pending").unwrap_err();
        assert_eq!(e.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        assert!(e.message.starts_with("status: "), "{}", e.message);
        let q: Q = query_from_str("status=%ff%fe").unwrap();
        assert_eq!(q.status.as_deref(), Some("\u{fffd}\u{fffd}"));
    }
}
