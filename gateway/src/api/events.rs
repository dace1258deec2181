//! `POST /api/events`: validate, fan out, store atomically, answer 202.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::AppState;
use super::error::ApiError;
use super::json::{parse, read_body, require_json};
use crate::ids;
use crate::store::{NewDelivery, NewEvent, now_ms};
use crate::webhooks::is_valid_event_type;

#[derive(Deserialize)]
struct EventIn<'a> {
    #[serde(rename = "type")]
    event_type: String,
    #[serde(borrow)]
    data: &'a RawValue,
    #[serde(default)]
    test: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryRef {
    id: String,
    webhook_id: String,
}

#[derive(Serialize)]
struct Accepted {
    id: String,
    deliveries: Vec<DeliveryRef>,
}

pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_json(&headers)?;
    let bytes = read_body(&headers, body, state.config.server.max_body_bytes).await?;
    let input: EventIn<'_> = parse(&bytes)?;
    if !is_valid_event_type(&input.event_type) {
        return Err(ApiError::invalid(
            "type",
            "must match ^[a-z0-9_]+(\\.[a-z0-9_]+)*$ (e.g. \"task.completed\")",
        ));
    }
    let event = NewEvent {
        id: ids::new_id("evt"),
        event_type: input.event_type,
        data: Bytes::copy_from_slice(input.data.get().as_bytes()),
        test: input.test,
        created_at_ms: now_ms(),
    };
    let snapshot = state.registry.snapshot();
    let deliveries: Vec<NewDelivery> = snapshot
        .matching(&event.event_type, event.test)
        .map(|w| NewDelivery {
            id: ids::new_id("dlv"),
            webhook_id: w.id.clone(),
        })
        .collect();
    state.store.enqueue(&event, &deliveries).await?;
    state.waker.wake();
    tracing::debug!(event_id = %event.id, event_type = %event.event_type, deliveries = deliveries.len(), "event accepted");
    let answer = Accepted {
        id: event.id,
        deliveries: deliveries
            .into_iter()
            .map(|d| DeliveryRef {
                id: d.id,
                webhook_id: d.webhook_id,
            })
            .collect(),
    };
    Ok((StatusCode::ACCEPTED, axum::Json(answer)).into_response())
}
