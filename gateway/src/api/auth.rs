//! Bearer-token authentication for `/api/*`.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use crate::signing::constant_time_eq;

/// The token a request presents, if any.
pub fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Rejects requests without a configured token with 401.
pub async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let ok = bearer(&req).is_some_and(|given| {
        // Compare against every token so timing does not tell which matched.
        state.config.api.tokens.iter().fold(false, |acc, t| {
            constant_time_eq(t.expose().as_bytes(), given.as_bytes()) | acc
        })
    });
    if ok {
        next.run(req).await
    } else {
        ApiError::unauthorized().into_response()
    }
}
