//! Operational events: hookgate's own news about webhooks
//! (`hookgate.webhook.disabled`, `hookgate.webhook.enabled`, with
//! `data: {webhookId, reason}`), fanned out to the webhooks subscribed to
//! them (for example `events = ["hookgate.*"]`) and then signed, retried and
//! dead-lettered like any event.

use crate::ids;
use crate::registry::Registry;
use crate::store::{Enqueue, NewDelivery, NewEvent, Store, StoreError, now_ms};

pub const WEBHOOK_DISABLED: &str = "hookgate.webhook.disabled";
pub const WEBHOOK_ENABLED: &str = "hookgate.webhook.enabled";

/// Why a webhook was disabled or enabled, as `data.reason` says it.
pub mod reason {
    /// The receiver answered 410 Gone.
    pub const GONE: &str = "gone";
    /// Every attempt failed for `[delivery] disable_after`.
    pub const FAILING: &str = "failing";
    /// Enabled again through the API.
    pub const API: &str = "api";
}

/// Stores the event for every subscribed webhook; how many it went to (no
/// subscriber: nothing is stored).
pub async fn emit(
    store: &dyn Store,
    registry: &Registry,
    event_type: &str,
    webhook_id: &str,
    why: &str,
) -> Result<usize, StoreError> {
    let matching = registry.matching(event_type, false);
    if matching.is_empty() {
        return Ok(0);
    }
    let event_id = ids::new_id("evt");
    let deliveries: Vec<NewDelivery> = matching
        .iter()
        .zip(ids::delivery_ids(&event_id, matching.len()))
        .map(|(w, id)| NewDelivery {
            id,
            webhook_id: w.id.clone(),
        })
        .collect();
    let data = serde_json::json!({ "webhookId": webhook_id, "reason": why });
    let event = NewEvent {
        id: event_id,
        event_type: event_type.to_owned(),
        data: bytes::Bytes::from(data.to_string()),
        test: false,
        created_at_ms: now_ms(),
        lease: None,
    };
    let count = deliveries.len();
    store
        .enqueue_owned(Enqueue {
            event,
            deliveries,
            idempotency: None,
            limit: None,
        })
        .await?;
    tracing::info!(event_type, webhook_id, deliveries = count, "operational event emitted");
    Ok(count)
}
