//! `POST /api/events`: validate, fan out, store atomically, answer 202.
//!
//! With an `Idempotency-Key` header, the first answer is remembered for 24
//! hours in the same atomic write that stores the event: a repeat (even
//! racing in another gateway) gets that answer and creates nothing; the same
//! key with a different body is a 409.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::{ApiError, ErrorCode};
use super::json::{parse, read_body, require_json};
use super::limits::{IngestLimit, too_many};
use crate::dispatch::Reservation;
use crate::ids;
use crate::signing::digest_hex;
use crate::store::{Enqueue, Enqueued, Idempotency, NewDelivery, NewEvent, RateDecision, now_ms};
use crate::webhooks::is_valid_event_type;

/// The route, below `/api`.
pub const PATH: &str = "/events";

const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

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
struct DeliveryRef<'a> {
    id: &'a str,
    webhook_id: &'a str,
}

#[derive(Serialize)]
struct Accepted<'a> {
    id: &'a str,
    deliveries: Vec<DeliveryRef<'a>>,
}

/// Stores an event and its deliveries, then starts them (with a
/// `reservation`, whose lease `event` carries) or wakes the dispatcher. The
/// store takes the event whole; the first attempts are made beforehand.
pub async fn store_event(
    state: &AppState,
    event: NewEvent,
    deliveries: Vec<NewDelivery>,
    idempotency: Option<Idempotency>,
    limit: Option<IngestLimit>,
    reservation: Option<Reservation>,
) -> Result<Enqueued, ApiError> {
    debug_assert_eq!(event.lease.is_some(), reservation.is_some());
    let handoff = reservation.map(|r| (r, Reservation::jobs(&event, &deliveries)));
    let (request, report) = match limit {
        Some(IngestLimit { request, state }) => (Some(request), Some(state)),
        None => (None, None),
    };
    let stored = state
        .store
        .enqueue_owned(Enqueue {
            event,
            deliveries,
            idempotency,
            limit: request,
        })
        .await?;
    if let (Some(report), Some(rate)) = (report, stored.rate) {
        *report.lock().unwrap_or_else(|e| e.into_inner()) = Some(rate);
        if let RateDecision::Wait(wait) = rate.decision {
            return Err(too_many(state.config.api.rate_limit_per_minute, wait));
        }
    }
    if stored.outcome == Enqueued::Created {
        match handoff {
            Some((r, jobs)) => r.start(jobs, stored.taken),
            None => state.waker.wake(),
        }
    }
    Ok(stored.outcome)
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match v.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= 255 => Ok(Some(k)),
        _ => Err(ApiError::new(
            ErrorCode::InvalidIdempotencyKey,
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )),
    }
}

/// What an ingest request came to, for its trace span.
#[derive(Default)]
struct IngestNote {
    event_id: Option<String>,
    event_type: Option<String>,
    deliveries: Option<usize>,
    replayed: bool,
}

/// The route's handler: the limit the middleware left in the request's
/// extensions is moved out, not cloned.
pub async fn create(State(state): State<AppState>, mut req: Request) -> Response {
    let limit = req.extensions_mut().remove::<IngestLimit>();
    ingest(&state, limit, req).await
}

/// Takes the request whole: its headers are moved out, not cloned.
pub async fn ingest(state: &AppState, limit: Option<IngestLimit>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    let Some(telemetry) = state.telemetry.clone() else {
        return accept(state, limit, headers, body, None).await.into_response();
    };
    let started = std::time::SystemTime::now();
    let mut note = IngestNote::default();
    let response = accept(state, limit, headers, body, Some(&mut note))
        .await
        .into_response();
    telemetry.ingest(
        started,
        &crate::telemetry::IngestSpan {
            status: response.status().as_u16(),
            event_id: note.event_id.as_deref(),
            event_type: note.event_type.as_deref(),
            deliveries: note.deliveries,
            replayed: note.replayed,
        },
    );
    response
}

async fn accept(
    state: &AppState,
    limit: Option<IngestLimit>,
    headers: HeaderMap,
    body: Body,
    mut note: Option<&mut IngestNote>,
) -> Result<Response, ApiError> {
    require_json(&headers)?;
    let key = idempotency_key(&headers)?;
    let bytes = read_body(&headers, body, state.config.server.max_body_bytes).await?;
    let input: EventIn<'_> = parse(&bytes)?;
    if !is_valid_event_type(&input.event_type) {
        return Err(ApiError::invalid(
            "type",
            "must match ^[a-z0-9_]+(\\.[a-z0-9_]+)*$ (e.g. \"task.completed\")",
        ));
    }
    let matching = state.registry.matching(&input.event_type, input.test);
    let (reservation, lease) = state.waker.reserve(&matching).unzip();
    let event = NewEvent {
        id: ids::new_event_id(key),
        event_type: input.event_type,
        // A view into the request body: no copy.
        data: bytes.slice_ref(input.data.get().as_bytes()),
        test: input.test,
        created_at_ms: now_ms(),
        lease,
    };
    let deliveries: Vec<NewDelivery> = matching
        .iter()
        .zip(ids::delivery_ids(&event.id, matching.len()))
        .map(|(w, id)| NewDelivery {
            id,
            webhook_id: w.id.clone(),
        })
        .collect();
    let answer = serde_json::to_string(&Accepted {
        id: &event.id,
        deliveries: deliveries
            .iter()
            .map(|d| DeliveryRef {
                id: &d.id,
                webhook_id: &d.webhook_id,
            })
            .collect(),
    })
    .map_err(|e| ApiError::malformed(e.to_string()))?;
    let idempotency = key.map(|k| Idempotency {
        key: digest_hex(&Sha256::digest(k.as_bytes()).into()),
        fingerprint: digest_hex(&Sha256::digest(&bytes).into()),
        answer: answer.clone(),
        ttl: IDEMPOTENCY_TTL,
    });
    if let Some(n) = note.as_deref_mut() {
        n.event_id = Some(event.id.clone());
        n.event_type = Some(event.event_type.clone());
        n.deliveries = Some(deliveries.len());
    }
    // Kept for after the write, which takes the event.
    let (event_id, event_type, count) = (event.id.clone(), event.event_type.clone(), deliveries.len());
    let fingerprint_sent = idempotency.as_ref().map(|i| i.fingerprint.clone());
    let stored = store_event(state, event, deliveries, idempotency, limit, reservation).await?;
    let (body, replayed) = match stored {
        Enqueued::Created => {
            crate::metrics::event_received(&event_type);
            tracing::debug!(%event_id, %event_type, deliveries = count, "event accepted");
            (answer, false)
        }
        Enqueued::Repeated { fingerprint, answer } => {
            if fingerprint_sent.is_some_and(|sent| sent != fingerprint) {
                return Err(ApiError::new(
                    ErrorCode::IdempotencyKeyReused,
                    "this Idempotency-Key was used within 24 hours for a different request",
                ));
            }
            (answer, true)
        }
        Enqueued::RateLimited => return Err(too_many(state.config.api.rate_limit_per_minute, Duration::ZERO)),
    };
    let mut resp = (StatusCode::ACCEPTED, [("content-type", "application/json")], body).into_response();
    if replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        if let Some(n) = note {
            // The answer is the first request's: this one created nothing.
            n.replayed = true;
            n.event_id = None;
            n.deliveries = None;
        }
    }
    Ok(resp)
}
