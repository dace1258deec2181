//! The HTTP API (docs/api.md) on axum/hyper 1.
//!
//! `/api/*` sits behind one middleware (`limits.rs`) that authenticates the
//! bearer token and applies the shared per-token rate limit. An event posted
//! with a valid token, the request that comes in volume, skips the router
//! ([`Api::call`]) but passes the same limit step. Every error,
//! including unknown routes and wrong methods, answers in the one JSON shape
//! of [`ApiError`]. Bodies are read by `json.rs`, which owns the size limit
//! and the 400/415/422 distinctions; query strings and path ids by
//! `extract.rs`, so axum's own rejections never reach a client as plain
//! text. The routes are one table ([`api_routes`]) so the OpenAPI document
//! can be checked against it (and `gateway/tests/e2e/openapi.rs` checks the
//! document against the running server).

mod deliveries;
pub mod error;
mod events;
mod extract;
mod json;
mod limits;
mod openapi;
mod stats;
mod views;
mod webhook_input;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde_json::json;
use tower::ServiceExt;

use crate::config::Config;
use crate::dispatch::Waker;
use crate::plugin::PluginRuntime;
use crate::registry::Registry;
use crate::store::Store;
pub use error::{ApiError, ErrorCode};
pub use json::BodyTimeout;
pub use limits::token_limit_keys;
pub use openapi::OPENAPI_JSON;

/// What the handlers share, behind one reference count: each handler's
/// `State` extraction (and the middleware's) is one atomic increment, not one
/// per field, on a counter every worker thread touches.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The contents of [`AppState`].
pub struct Shared {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    pub waker: Waker,
    pub plugins: Arc<PluginRuntime>,
    /// Trace export, if `[telemetry]` is set.
    pub telemetry: Option<Arc<crate::telemetry::Telemetry>>,
    /// The rate-limit key of each of `[api] tokens`, in their order.
    pub token_limits: Arc<[String]>,
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// One `/api` route: its path (below `/api`), its methods, its handlers.
pub struct ApiRoute {
    pub path: &'static str,
    pub methods: &'static [&'static str],
    handler: MethodRouter<AppState>,
}

/// Every `/api` route.
pub fn api_routes() -> Vec<ApiRoute> {
    let r = |path, methods, handler| ApiRoute { path, methods, handler };
    vec![
        r(events::PATH, &["post"], post(events::create)),
        r(
            "/webhooks",
            &["get", "post"],
            get(webhooks::list).post(webhooks::create),
        ),
        r(
            "/webhooks/{id}",
            &["get", "patch", "delete"],
            get(webhooks::get).patch(webhooks::patch).delete(webhooks::delete),
        ),
        r("/webhooks/{id}/rotate-secret", &["post"], post(webhooks::rotate_secret)),
        r("/webhooks/{id}/test", &["post"], post(webhooks::test)),
        r("/deliveries", &["get"], get(deliveries::list)),
        r("/deliveries/{id}", &["get"], get(deliveries::get)),
        r("/deliveries/{id}/retry", &["post"], post(deliveries::retry)),
        r("/dead-letters", &["get"], get(deliveries::dead_letters)),
        r("/dead-letters/replay", &["post"], post(deliveries::replay)),
        r("/stats", &["get"], get(stats::get)),
        r("/openapi.json", &["get"], get(openapi::document)),
    ]
}

/// The whole HTTP service: the router, and a direct path for the one
/// request that comes in volume.
#[derive(Clone)]
pub struct Api {
    router: Router,
    state: AppState,
}

impl Api {
    pub fn new(state: AppState) -> Self {
        Api {
            router: router(state.clone()),
            state,
        }
    }

    /// Answers a request. An event posted with a valid token goes straight
    /// to the ingest handler through the same limit step as the middleware
    /// (`limits::ingest_limited`), skipping the router's matching, the
    /// nested router's path rewrite and the boxed layers between them;
    /// everything else, including an event without a valid token, goes
    /// through the router.
    pub async fn call(&self, req: Request) -> Response {
        if req.method() == Method::POST
            && req.uri().path().strip_prefix("/api") == Some(events::PATH)
            && let Some(token) = limits::token_index(&self.state, req.headers())
        {
            let state = &self.state;
            return limits::ingest_limited(state, token, req, |req, limit| events::ingest(state, Some(limit), req))
                .await;
        }
        match self.router.clone().oneshot(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        }
    }
}

/// The whole router.
pub fn router(state: AppState) -> Router {
    let mut api = Router::new();
    for route in api_routes() {
        api = api.route(route.path, route.handler);
    }
    let api = api
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), limits::guard));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(crate::dashboard::routes())
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
    ApiError::new(ErrorCode::MethodNotAllowed, "method not allowed on this route")
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

/// Prometheus text format; queue depths are read from the store per scrape.
async fn metrics(State(state): State<AppState>) -> Response {
    if let Ok(Ok(d)) = tokio::time::timeout(Duration::from_secs(1), state.store.queue_depths()).await {
        crate::metrics::queue_depth("pending", d.pending);
        crate::metrics::queue_depth("failed", d.failed);
        crate::metrics::queue_depth("in_flight", d.in_flight);
        crate::metrics::queue_depth("dead", d.dead);
    }
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        crate::metrics::render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OpenAPI document describes every route with its methods.
    #[test]
    fn openapi_covers_every_route() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for route in api_routes() {
            let path = format!("/api{}", route.path);
            let item = paths
                .get(&path)
                .unwrap_or_else(|| panic!("{path} missing from openapi.json"));
            for m in route.methods {
                assert!(item.get(*m).is_some(), "{m} {path} missing from openapi.json");
            }
        }
        assert_eq!(
            paths.keys().filter(|p| p.starts_with("/api/")).count(),
            api_routes().len(),
            "no stale paths"
        );
    }
}
