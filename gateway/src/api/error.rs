//! The one API error type: `{"error": {"code", "message"}}` with its status.
//!
//! Every code is an [`ErrorCode`] with one status; answers are logged in one
//! place ([`IntoResponse`]), with the cause kept for the log only (a cause
//! never reaches the client, so no store detail or secret can leak).

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

/// Every error code the API answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 400: the body is not JSON, or not of the expected shape.
    MalformedJson,
    /// 400: a query string or path the route cannot read.
    InvalidRequest,
    /// 400: the `Idempotency-Key` header is not usable.
    InvalidIdempotencyKey,
    /// 401.
    Unauthorized,
    /// 404.
    NotFound,
    /// 405.
    MethodNotAllowed,
    /// 409: a config webhook changed through the API.
    ReadOnly,
    /// 409: an id clash.
    Conflict,
    /// 409: a test delivery to a disabled webhook.
    WebhookDisabled,
    /// 409: a retry of a delivery that is already queued.
    AlreadyQueued,
    /// 409: a retry of a delivery whose event has expired.
    EventExpired,
    /// 409: an `Idempotency-Key` reused for another request.
    IdempotencyKeyReused,
    /// 408: the request body did not arrive in time.
    RequestTimeout,
    /// 413.
    PayloadTooLarge,
    /// 415.
    UnsupportedMediaType,
    /// 422: valid JSON, invalid field.
    ValidationFailed,
    /// 429.
    RateLimited,
    /// 503: the store cannot be reached.
    StoreUnavailable,
    /// 500: the store returned data this version cannot read.
    InternalError,
}

impl ErrorCode {
    /// The snake_case code clients see.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidIdempotencyKey => "invalid_idempotency_key",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::ReadOnly => "read_only",
            ErrorCode::Conflict => "conflict",
            ErrorCode::WebhookDisabled => "webhook_disabled",
            ErrorCode::AlreadyQueued => "already_queued",
            ErrorCode::EventExpired => "event_expired",
            ErrorCode::IdempotencyKeyReused => "idempotency_key_reused",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::StoreUnavailable => "store_unavailable",
            ErrorCode::InternalError => "internal_error",
        }
    }

    /// The one HTTP status of this code.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::MalformedJson | ErrorCode::InvalidRequest | ErrorCode::InvalidIdempotencyKey => {
                StatusCode::BAD_REQUEST
            }
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::ReadOnly
            | ErrorCode::Conflict
            | ErrorCode::WebhookDisabled
            | ErrorCode::AlreadyQueued
            | ErrorCode::EventExpired
            | ErrorCode::IdempotencyKeyReused => StatusCode::CONFLICT,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::ValidationFailed => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u64>,
    /// What went wrong underneath, for the log only.
    pub cause: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after: None,
            cause: None,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::MalformedJson, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            ErrorCode::Unauthorized,
            "missing or invalid bearer token (send Authorization: Bearer <token>)",
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            ErrorCode::PayloadTooLarge,
            format!("request body is larger than {limit} bytes (server.max_body_bytes)"),
        )
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            ErrorCode::UnsupportedMediaType,
            "request body must be JSON (Content-Type: application/json)",
        )
    }

    /// 422: valid JSON, invalid field. `field` is named in the message.
    pub fn invalid(field: &str, problem: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::ValidationFailed, format!("{field}: {problem}"))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let err = match &e {
            e if e.is_unavailable() => ApiError {
                retry_after: Some(1),
                ..Self::new(
                    ErrorCode::StoreUnavailable,
                    "the store is unreachable; try again shortly",
                )
            },
            _ => Self::new(ErrorCode::InternalError, "the store returned unreadable data"),
        };
        ApiError {
            cause: Some(Arc::new(e)),
            ..err
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Some(cause) = &self.cause {
            let chain = crate::report::error_chain(cause.as_ref());
            if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
                tracing::error!(code = self.code.as_str(), error = %chain, "API request failed");
            } else {
                tracing::warn!(code = self.code.as_str(), error = %chain, "API request failed");
            }
        }
        let body = json!({"error": {"code": self.code.as_str(), "message": self.message}});
        let mut resp = (status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
