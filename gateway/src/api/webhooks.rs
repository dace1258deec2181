//! `/api/webhooks`: CRUD, secret rotation and test deliveries.
//!
//! API webhooks live in the store; config webhooks are listed with
//! `source: "config"` and are read-only (409). After a change the local
//! registry applies it at once; other gateways pick it up from the store's
//! change log within their refresh interval. Nothing here reads every
//! webhook: changes go to the store by id, reads come from the registry,
//! and the list is paged like the delivery history.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use std::sync::Arc;

use super::AppState;
use super::deliveries::page_limit;
use super::error::{ApiError, ErrorCode};
use super::events::store_event;
use super::extract::{Path, Query};
use super::json::{parse, read_body, require_json};
use super::views::{ListView, WebhookView};
use super::webhook_input::WebhookInput;
use crate::ids;
use crate::operational;
use crate::registry::PageKey;
use crate::signing::generate_secret;
use crate::store::{NewDelivery, NewEvent, now_ms};
use crate::webhooks::rules::Bounds;
use crate::webhooks::{StoredSecret, StoredWebhook, Webhook, WebhookSpec, is_valid_event_type, rules};

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("no webhook with id {id:?}"))
}

fn read_only(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ReadOnly,
        format!("webhook {id:?} is defined in config.toml and is read-only through the API"),
    )
}

/// Applies the store's latest webhook changes to the registry.
async fn reload(state: &AppState) -> Result<(), ApiError> {
    state
        .registry
        .refresh(state.store.as_ref())
        .await
        .map_err(ApiError::from)
}

/// The stored form of an API webhook.
async fn stored(state: &AppState, id: &str) -> Result<StoredWebhook, ApiError> {
    if state.registry.is_config(id) {
        return Err(read_only(id));
    }
    state.store.webhook(id).await?.ok_or_else(|| not_found(id))
}

/// The live webhook (config or API) as the registry has it after the
/// store's latest changes.
async fn live(state: &AppState, id: &str) -> Result<Arc<Webhook>, ApiError> {
    reload(state).await?;
    state.registry.get(id).ok_or_else(|| not_found(id))
}

/// The client identities config.toml defines.
fn identity_names(state: &AppState) -> Vec<String> {
    state
        .config
        .delivery
        .egress
        .client_identities
        .iter()
        .map(|i| i.name.clone())
        .collect()
}

/// What the rules check an API webhook against.
fn bounds<'a>(state: &AppState, identities: &'a [String]) -> Bounds<'a> {
    Bounds {
        max_timeout: Some(state.config.max_attempt_time()),
        identities: Some(identities),
    }
}

/// Loads every plugin of a webhook definition and has it validate its
/// config, so a bad one is a 422 now rather than a failure at delivery.
async fn check_plugins(state: &AppState, spec: &WebhookSpec) -> Result<(), ApiError> {
    let specs: Vec<_> = spec
        .plugins
        .iter()
        .map(|p| p.to_spec(&state.config.base_dir, state.config.plugins.defaults()))
        .collect();
    state.plugins.validate(&specs).await.map_err(|(i, e)| {
        let path = specs.get(i).map_or("", |s| s.path.as_str());
        ApiError::invalid(&format!("plugins[{i}]"), format!("{path}: {e}"))
    })
}

/// The webhook as the API shows it, with any failed plugin reload.
fn view(state: &AppState, hook: &Webhook) -> WebhookView {
    let mut view = WebhookView::from(hook);
    for (shown, spec) in view.plugins.iter_mut().zip(&hook.plugins) {
        shown.reload_error = state.plugins.reload_error(spec);
    }
    view
}

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /api/webhooks`: config webhooks first, in definition order, then
/// API webhooks by creation; `limit` (at most 500) per page and
/// `nextCursor` to continue, as in the delivery history. Without `limit`
/// and `cursor` the answer is the whole list (as before pagination, so
/// clients that do not page still see every webhook); with a `cursor`
/// alone, pages of 50.
pub async fn list(State(state): State<AppState>, Query(q): Query<ListQuery>) -> Result<Response, ApiError> {
    let limit = match (q.limit.as_deref(), q.cursor.as_deref()) {
        (None | Some(""), None | Some("")) => usize::MAX,
        (raw, _) => page_limit(raw)?,
    };
    let after = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => {
            Some(PageKey::parse(c).ok_or_else(|| ApiError::invalid("cursor", "is not a cursor returned by this API"))?)
        }
    };
    reload(&state).await?;
    let (hooks, next) = state.registry.page(after.as_ref(), limit);
    Ok(axum::Json(ListView {
        data: hooks.iter().map(|w| view(&state, w)).collect::<Vec<WebhookView>>(),
        next_cursor: next.map(|k| k.to_string()),
    })
    .into_response())
}

pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let hook = live(&state, &id).await?;
    Ok(axum::Json(view(&state, &hook)).into_response())
}

pub async fn create(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    require_json(&headers)?;
    let bytes = read_body(&headers, body, state.config.server.max_body_bytes).await?;
    let input: WebhookInput = parse(&bytes)?;
    let (spec, given) = input.into_spec(bounds(&state, &identity_names(&state)))?;
    check_plugins(&state, &spec).await?;
    let generated = given.is_none();
    let secret = given.unwrap_or_else(generate_secret);
    let now = now_ms();
    let record = StoredWebhook {
        id: ids::new_id("wh"),
        spec,
        secrets: vec![StoredSecret {
            secret: secret.clone(),
            expires_at: None,
        }],
        created_at: now,
        updated_at: now,
    };
    if !state.store.insert_webhook(&record).await? {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "webhook id already exists; try again",
        ));
    }
    reload(&state).await?;
    let hook = state.registry.get(&record.id).ok_or_else(|| not_found(&record.id))?;
    let mut view = WebhookView::from(hook.as_ref());
    if generated {
        view.secret = Some(secret);
    }
    tracing::info!(webhook_id = %record.id, "webhook created");
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

pub async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_json(&headers)?;
    let bytes = read_body(&headers, body, state.config.server.max_body_bytes).await?;
    let changes: serde_json::Map<String, serde_json::Value> = parse(&bytes)?;
    let current = stored(&state, &id).await?;
    let was_enabled = live(&state, &id).await?.enabled;
    // JSON merge patch over the editable fields: null clears an override.
    let mut merged =
        serde_json::to_value(WebhookInput::from_stored(&current)).map_err(|e| ApiError::malformed(e.to_string()))?;
    if let Some(obj) = merged.as_object_mut() {
        for (k, v) in &changes {
            if v.is_null() {
                obj.remove(k);
            } else {
                obj.insert(k.clone(), v.clone());
            }
        }
    }
    let merged_bytes = serde_json::to_vec(&merged).map_err(|e| ApiError::malformed(e.to_string()))?;
    let mut input: WebhookInput = parse(&merged_bytes)?;
    // A masked value sent back (GET, edit, PATCH) keeps the stored one.
    for (name, value) in input.headers.iter_mut().flatten() {
        if value == rules::MASKED
            && let Some(kept) = current.spec.headers.get(name)
        {
            value.clone_from(kept);
        }
    }
    let (spec, given) = input.into_spec(bounds(&state, &identity_names(&state)))?;
    check_plugins(&state, &spec).await?;
    let secrets = match given {
        Some(secret) => vec![StoredSecret {
            secret,
            expires_at: None,
        }],
        None => current.secrets.clone(),
    };
    let record = StoredWebhook {
        spec,
        secrets,
        updated_at: now_ms(),
        ..current
    };
    // Enabling a webhook clears a 410 "disabled" state.
    let clear_state = changes.get("enabled").and_then(|v| v.as_bool()) == Some(true);
    if !state.store.replace_webhook(&record, clear_state).await? {
        return Err(not_found(&id));
    }
    reload(&state).await?;
    let hook = state.registry.get(&id).ok_or_else(|| not_found(&id))?;
    tracing::info!(webhook_id = %id, "webhook updated");
    if clear_state && !was_enabled {
        match operational::emit(
            state.store.as_ref(),
            &state.registry,
            operational::WEBHOOK_ENABLED,
            &id,
            operational::reason::API,
        )
        .await
        {
            Ok(n) if n > 0 => state.waker.wake(),
            Ok(_) => {}
            Err(e) => tracing::warn!(webhook_id = %id, error = %e, "could not emit hookgate.webhook.enabled"),
        }
    }
    Ok(axum::Json(WebhookView::from(hook.as_ref())).into_response())
}

pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    if state.registry.is_config(&id) {
        return Err(read_only(&id));
    }
    if !state.store.delete_webhook(&id).await? {
        return Err(not_found(&id));
    }
    reload(&state).await?;
    tracing::info!(webhook_id = %id, "webhook deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RotateInput {
    secret: Option<String>,
    grace_seconds: Option<u64>,
}

/// Most a rotated-out secret may stay valid.
const MAX_GRACE_SECONDS: u64 = 30 * 86_400;

pub async fn rotate_secret(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(&headers, body, state.config.server.max_body_bytes).await?;
    let input: RotateInput = if bytes.iter().all(u8::is_ascii_whitespace) {
        RotateInput::default()
    } else {
        require_json(&headers)?;
        parse(&bytes)?
    };
    if let Some(s) = &input.secret {
        rules::check_secret(s).map_err(|p| ApiError::invalid("secret", p))?;
    }
    let grace = input.grace_seconds.unwrap_or(86_400);
    if grace > MAX_GRACE_SECONDS {
        return Err(ApiError::invalid(
            "graceSeconds",
            format!("must be at most {MAX_GRACE_SECONDS}"),
        ));
    }
    let current = stored(&state, &id).await?;
    let now = now_ms();
    let until = now + grace * 1000;
    let new_secret = input.secret.unwrap_or_else(generate_secret);
    let mut secrets = vec![StoredSecret {
        secret: new_secret.clone(),
        expires_at: None,
    }];
    secrets.extend(
        current
            .secrets
            .iter()
            .filter(|s| s.expires_at.is_none_or(|e| e > now))
            .map(|s| StoredSecret {
                secret: s.secret.clone(),
                expires_at: Some(s.expires_at.map_or(until, |e| e.min(until))),
            }),
    );
    let record = StoredWebhook {
        secrets,
        updated_at: now,
        ..current
    };
    if !state.store.replace_webhook(&record, false).await? {
        return Err(not_found(&id));
    }
    reload(&state).await?;
    tracing::info!(webhook_id = %id, grace_seconds = grace, "webhook secret rotated");
    Ok(axum::Json(json!({ "secret": new_secret })).into_response())
}

#[derive(Deserialize)]
pub struct TestQuery {
    #[serde(rename = "type")]
    event_type: Option<String>,
}

pub async fn test(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<TestQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_json(&headers)?;
    let bytes = read_body(&headers, body, state.config.server.max_body_bytes).await?;
    let event_type = q.event_type.unwrap_or_else(|| "webhook.test".into());
    if !is_valid_event_type(&event_type) {
        return Err(ApiError::invalid("type", "must match ^[a-z0-9_]+(\\.[a-z0-9_]+)*$"));
    }
    let data = if bytes.iter().all(u8::is_ascii_whitespace) {
        Bytes::from_static(b"{}")
    } else {
        let _: &serde_json::value::RawValue = parse(&bytes)?;
        bytes
    };
    let hook = live(&state, &id).await?;
    if !hook.enabled {
        return Err(ApiError::new(
            ErrorCode::WebhookDisabled,
            format!("webhook {id:?} is disabled"),
        ));
    }
    let event = NewEvent {
        id: ids::new_id("evt"),
        event_type,
        data,
        test: true,
        created_at_ms: now_ms(),
        lease: None,
    };
    let delivery = NewDelivery {
        id: ids::solo_delivery_id(&event.id),
        webhook_id: hook.id.clone(),
    };
    let answer = json!({ "deliveryId": delivery.id });
    store_event(&state, event, vec![delivery], None, None, None).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(answer)).into_response())
}
