//! Authentication and the per-token API rate limit, one middleware for all
//! of `/api/*`.
//!
//! Every answer carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
//! `X-RateLimit-Reset` (unix seconds when the allowance is full again); past
//! the limit the answer is 429 with `Retry-After`. The allowance is a GCRA
//! bucket of `rate_limit_per_minute` requests refilling continuously, shared
//! by every gateway on the store. Requests without a valid token are limited
//! per client address with the same allowance, so guessing tokens is slow.
//! `GET /api/openapi.json` holds no data and needs no token (it is limited
//! like any request; if the store is unreachable it is served anyway).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::{ApiError, ErrorCode};
use crate::ratelimit::Gcra;
use crate::signing::{constant_time_eq, digest_hex};
use crate::store::{RateDecision, RateRequest, RateState};

/// How long a refused event's answer waits for its rate limit to be
/// counted (as long as ingest waits for the store).
const LIMIT_WAIT: Duration = Duration::from_millis(1_500);

/// The token a request presents, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Which of the configured tokens `given` is, comparing with every one in
/// constant time.
fn matching_token(state: &AppState, given: &str) -> Option<usize> {
    state.config.api.tokens.iter().enumerate().fold(None, |found, (i, t)| {
        if constant_time_eq(t.expose().as_bytes(), given.as_bytes()) {
            Some(i)
        } else {
            found
        }
    })
}

/// The rate-limit key of each token: a prefix of its SHA-256, so neither
/// the store nor its keys hold the token itself.
pub fn token_limit_keys(tokens: &[crate::webhooks::Secret]) -> std::sync::Arc<[String]> {
    tokens
        .iter()
        .map(|t| {
            format!(
                "api:tok:{}",
                &digest_hex(&Sha256::digest(t.expose().as_bytes()).into())[..24]
            )
        })
        .collect()
}

/// The index of the configured token the request presents, if any.
pub fn token_index(state: &AppState, headers: &HeaderMap) -> Option<usize> {
    bearer(headers).and_then(|t| matching_token(state, t))
}

/// The per-token allowance.
fn allowance(state: &AppState) -> (Gcra, u32) {
    let per_minute = state.config.api.rate_limit_per_minute;
    (Gcra::per_minute(per_minute, per_minute), per_minute)
}

/// An event posted with the valid token `token`: `run` is the ingest
/// handler, given the caller's limit to check inside its store write (one
/// round trip); the handler reports the limit's state back, and the answer
/// is stamped with it. Used by [`guard`] and by the direct ingest path
/// (`Api::call`).
pub async fn ingest_limited<F, Fut>(state: &AppState, token: usize, req: Request, run: F) -> Response
where
    F: FnOnce(Request, IngestLimit) -> Fut,
    Fut: Future<Output = Response>,
{
    let (limit, per_minute) = allowance(state);
    let rate = || RateRequest {
        key: state.token_limits[token].clone(),
        limit,
    };
    let slot = Arc::new(Mutex::new(None));
    let mut resp = run(
        req,
        IngestLimit {
            request: rate(),
            state: slot.clone(),
        },
    )
    .await;
    let reported = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    let st = match reported {
        Some(st) => st,
        // The store did not answer (503): asking it again would only
        // hold the answer back.
        None if resp.status().is_server_error() => return resp,
        // The handler answered before reaching the store (a bad
        // request): count it here, within the time ingest allows.
        None => match tokio::time::timeout(LIMIT_WAIT, state.store.acquire_with_state(&rate())).await {
            Ok(Ok(st)) => st,
            Ok(Err(_)) | Err(_) => return resp,
        },
    };
    stamp(&mut resp, limit, per_minute, st);
    resp
}

/// Authenticates, rate-limits and stamps the limit headers.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let token = token_index(&state, req.headers());
    // Ingest checks the limit inside its own store write.
    if let Some(token) = token
        && req.method() == Method::POST
        && req.uri().path() == super::events::PATH
    {
        return ingest_limited(&state, token, req, |mut req, limit| {
            req.extensions_mut().insert(limit);
            next.run(req)
        })
        .await;
    }
    let key = match token {
        Some(i) => state.token_limits[i].clone(),
        None => {
            let ip = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string());
            format!("api:ip:{ip}")
        }
    };
    let (limit, per_minute) = allowance(&state);
    let rate = RateRequest { key, limit };
    let public = req.method() == Method::GET && req.uri().path() == "/openapi.json";
    let st = match state.store.acquire_with_state(&rate).await {
        Ok(st) => st,
        Err(_) if public => return next.run(req).await,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let mut resp = match st.decision {
        RateDecision::Wait(wait) => too_many(per_minute, wait).into_response(),
        RateDecision::Allow if token.is_none() && !public => ApiError::unauthorized().into_response(),
        RateDecision::Allow => next.run(req).await,
    };
    stamp(&mut resp, limit, per_minute, st);
    resp
}

/// The 429 answer.
pub fn too_many(per_minute: u32, wait: Duration) -> ApiError {
    ApiError {
        retry_after: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
        ..ApiError::new(
            ErrorCode::RateLimited,
            format!("more than {per_minute} requests a minute; slow down"),
        )
    }
}

/// Adds the `X-RateLimit-*` headers.
fn stamp(resp: &mut Response, limit: Gcra, per_minute: u32, st: RateState) {
    let remaining = limit.remaining(Some(st.tat_us), st.now_us);
    let reset = (st.now_us + limit.reset_after(Some(st.tat_us), st.now_us).as_micros() as u64).div_ceil(1_000_000);
    let h = resp.headers_mut();
    h.insert(LIMIT, number(per_minute));
    h.insert(REMAINING, number(remaining));
    h.insert(RESET, number(reset));
}

// Made at compile time (a name made at run time is checked byte by byte).
const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// A number as a header value, in one allocation (`HeaderValue::from(u64)`
/// takes two).
fn number(n: impl itoa::Integer) -> HeaderValue {
    // Digits always are a valid value; the fallback is never taken.
    HeaderValue::from_str(itoa::Buffer::new().format(n)).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// Handed to the ingest handler: the caller's limit, to check inside the
/// enqueue, and where to report the limit's state.
#[derive(Clone, Debug)]
pub struct IngestLimit {
    pub request: RateRequest,
    pub state: Arc<Mutex<Option<RateState>>>,
}
