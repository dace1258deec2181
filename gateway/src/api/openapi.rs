//! `GET /api/openapi.json`: the API described in OpenAPI 3.1. The document
//! is a file beside this module; a unit test in `api.rs` checks it against
//! the route table.

use axum::response::{IntoResponse, Response};

/// The document.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

pub async fn document() -> Response {
    ([("content-type", "application/json")], OPENAPI_JSON).into_response()
}
