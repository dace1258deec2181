//! The HTTP API (SPEC §3) on axum/hyper 1.
//!
//! `/api/*` routes sit behind bearer-token auth; every error, including
//! unknown routes and wrong methods, answers in the one JSON error shape of
//! [`ApiError`]. Bodies are read by `json.rs`, which owns the size limit and
//! the 400/415/422 distinctions.

mod auth;
pub mod error;
mod events;
mod json;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::config::Config;
use crate::dispatch::Waker;
use crate::store::Store;
use crate::webhooks::Registry;
pub use error::ApiError;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    pub waker: Waker,
}

/// The whole router.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/events", post(events::create))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .nest("/api", api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

async fn healthz(State(state): State<AppState>) -> Response {
    match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => axum::Json(json!({"status": "ok"})).into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "unavailable", "error": {"code": "store_unavailable", "message": "the store is unreachable"}})),
        )
            .into_response(),
    }
}
