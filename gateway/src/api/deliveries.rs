//! `/api/deliveries` and `/api/dead-letters`: history, one delivery with its
//! attempts, retry, and dead-letter replay.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::{ApiError, ErrorCode};
use super::extract::{Path, Query};
use super::json::{parse, read_body, require_json};
use super::views::{DeliveryView, ListView};
use crate::store::{DeliveryFilter, Page, Requeue, Status};
use crate::webhooks::is_valid_webhook_id;

/// Dead letters replayed at most by one request (call again for more).
const MAX_REPLAY: usize = 10_000;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    webhook_id: Option<String>,
    status: Option<String>,
    event_type: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// A `limit` parameter: 50 when absent, otherwise 1 to 500.
pub(super) fn page_limit(raw: Option<&str>) -> Result<usize, ApiError> {
    match raw {
        None => Ok(50),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=500).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid("limit", "must be a whole number from 1 to 500")),
        },
    }
}

fn page_view(page: Page<crate::store::DeliveryRecord>) -> Response {
    axum::Json(ListView {
        data: page.items.iter().map(DeliveryView::summary).collect(),
        next_cursor: page.next_cursor,
    })
    .into_response()
}

/// A `webhookId` filter: a valid webhook id, or none.
fn webhook_filter(raw: Option<&str>) -> Result<Option<&str>, ApiError> {
    match raw {
        Some(w) if !is_valid_webhook_id(w) => Err(ApiError::invalid(
            "webhookId",
            "is not a valid webhook id ([a-zA-Z0-9_-]{1,64})",
        )),
        other => Ok(other),
    }
}

fn cursor(raw: Option<&str>) -> Result<Option<&str>, ApiError> {
    match raw {
        Some(c) if !c.starts_with("dlv_") || c.len() > 64 => {
            Err(ApiError::invalid("cursor", "is not a cursor returned by this API"))
        }
        other => Ok(other),
    }
}

pub async fn list(State(state): State<AppState>, Query(q): Query<ListQuery>) -> Result<Response, ApiError> {
    let status =
        match q.status.as_deref() {
            None | Some("") => None,
            Some(s) => Some(Status::parse(s).ok_or_else(|| {
                ApiError::invalid("status", "must be one of pending, succeeded, failed, dead, filtered")
            })?),
        };
    webhook_filter(q.webhook_id.as_deref())?;
    let filter = DeliveryFilter {
        webhook_id: q.webhook_id.filter(|s| !s.is_empty()),
        status,
        event_type: q.event_type.filter(|s| !s.is_empty()),
    };
    let page = state
        .store
        .list_deliveries(&filter, page_limit(q.limit.as_deref())?, cursor(q.cursor.as_deref())?)
        .await?;
    Ok(page_view(page))
}

pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    match state.store.delivery(&id).await? {
        Some(d) => {
            let hook = state.registry.get(&d.webhook_id);
            let view = DeliveryView::full(&d, hook.as_deref(), state.config.delivery.signature_headers);
            Ok(axum::Json(view).into_response())
        }
        None => Err(ApiError::not_found(format!("no delivery with id {id:?}"))),
    }
}

pub async fn retry(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let result = state
        .store
        .requeue(
            std::slice::from_ref(&id),
            &[Status::Dead, Status::Succeeded, Status::Filtered],
        )
        .await?;
    match result.first() {
        Some(Requeue::Queued) => {
            state.waker.wake();
            Ok((
                StatusCode::ACCEPTED,
                axum::Json(json!({ "id": id, "status": "pending" })),
            )
                .into_response())
        }
        Some(Requeue::WrongStatus(s)) => Err(ApiError::new(
            ErrorCode::AlreadyQueued,
            format!("delivery {id:?} is {} and already queued", s.as_str()),
        )),
        Some(Requeue::EventGone) => Err(ApiError::new(
            ErrorCode::EventExpired,
            format!("the event of delivery {id:?} is past its retention period"),
        )),
        Some(Requeue::Missing) | None => Err(ApiError::not_found(format!("no delivery with id {id:?}"))),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadQuery {
    webhook_id: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

pub async fn dead_letters(State(state): State<AppState>, Query(q): Query<DeadQuery>) -> Result<Response, ApiError> {
    let page = state
        .store
        .list_dead(
            webhook_filter(q.webhook_id.as_deref())?,
            page_limit(q.limit.as_deref())?,
            cursor(q.cursor.as_deref())?,
        )
        .await?;
    Ok(page_view(page))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ReplayInput {
    webhook_id: Option<String>,
    ids: Option<Vec<String>>,
}

pub async fn replay(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let bytes = read_body(&headers, body, state.config.server.max_body_bytes).await?;
    let input: ReplayInput = if bytes.iter().all(u8::is_ascii_whitespace) {
        ReplayInput::default()
    } else {
        require_json(&headers)?;
        parse(&bytes)?
    };
    webhook_filter(input.webhook_id.as_deref())?;
    if input.ids.is_some() && input.webhook_id.is_some() {
        return Err(ApiError::invalid(
            "ids",
            "give either ids or webhookId, not both (ids names the deliveries exactly)",
        ));
    }
    let ids: Vec<String> = match input.ids {
        Some(ids) => {
            if ids.len() > MAX_REPLAY {
                return Err(ApiError::invalid("ids", format!("at most {MAX_REPLAY} ids at once")));
            }
            ids
        }
        None => {
            let mut ids = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = state
                    .store
                    .list_dead(input.webhook_id.as_deref(), 500, cursor.as_deref())
                    .await?;
                ids.extend(page.items.into_iter().map(|d| d.id));
                cursor = page.next_cursor;
                if cursor.is_none() || ids.len() >= MAX_REPLAY {
                    break;
                }
            }
            ids.truncate(MAX_REPLAY);
            ids
        }
    };
    let results = state.store.requeue(&ids, &[Status::Dead]).await?;
    let replayed = results.iter().filter(|r| **r == Requeue::Queued).count();
    if replayed > 0 {
        state.waker.wake();
    }
    tracing::info!(replayed, "dead letters replayed");
    Ok((StatusCode::ACCEPTED, axum::Json(json!({ "replayed": replayed }))).into_response())
}
