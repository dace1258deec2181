//! Moving a gateway's state between stores (`hookgate store export` /
//! `import`): webhooks with their secrets and state, every delivery that is
//! not finished (pending, failed, in flight) or dead, with its attempts, and
//! the events they need, as JSON lines.
//!
//! The first line is a header (`{"kind":"header","format":"hookgate-export",
//! "version":1}`); then `webhook` lines, then `event` and `delivery` lines,
//! each event before the first delivery that needs it. A delivery in flight
//! at the export is written as waiting (its lease does not travel).
//! Importing is idempotent: webhooks are replaced by id, events already in
//! the store are kept, deliveries already in the store are skipped. So a
//! file can be imported again after an interruption, and a delivery is
//! never queued twice in one store.

use std::collections::HashSet;

use async_trait::async_trait;
use base64::Engine;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

use super::{AttemptRecord, Status, Store, StoreError, WebhookState};
use crate::webhooks::StoredWebhook;

/// The header's `format`.
pub const FORMAT_NAME: &str = "hookgate-export";
/// The header's `version`.
pub const VERSION: u32 = 1;
/// Deliveries read or written per store call.
const BATCH: usize = 500;

/// One line of an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Line {
    Header { format: String, version: u32 },
    Webhook(WebhookLine),
    Event(EventLine),
    Delivery(DeliveryLine),
}

/// An API webhook (config webhooks live in config files) and its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookLine {
    pub webhook: StoredWebhook,
    /// Set when a receiver answered 410 Gone (for that URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<Disabled>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Disabled {
    pub reason: String,
    pub url: String,
}

/// An event a delivery needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventLine {
    pub id: String,
    pub event_type: String,
    /// The event's JSON data, byte for byte, as a string (JSON is UTF-8).
    pub data: String,
    pub test: bool,
    pub created_at: u64,
}

/// A delivery that is waiting (pending or failed) or dead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeliveryLine {
    pub id: String,
    pub event_id: String,
    pub webhook_id: String,
    pub event_type: String,
    pub status: Status,
    pub test: bool,
    /// Attempts made (attempt records of outcomes that arrived after a lease
    /// was lost are in `attempts` but not counted).
    pub attempt_count: u32,
    /// `attemptCount` when the current retry budget started.
    pub retry_base: u32,
    pub created_at: u64,
    pub updated_at: u64,
    /// When it is due (waiting deliveries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<u64>,
    /// The body as last sent, when a plugin changed it (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
    pub attempts: Vec<AttemptRecord>,
}

/// A slice of an import, applied by one store call.
#[derive(Debug, Clone, Default)]
pub struct ImportBatch {
    pub webhooks: Vec<WebhookLine>,
    pub events: Vec<EventLine>,
    pub deliveries: Vec<DeliveryLine>,
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportStats {
    pub webhooks: usize,
    pub events: usize,
    pub deliveries: usize,
    /// Deliveries already in the store (left as they were).
    pub skipped: usize,
}

impl std::ops::AddAssign for ImportStats {
    fn add_assign(&mut self, o: Self) {
        self.webhooks += o.webhooks;
        self.events += o.events;
        self.deliveries += o.deliveries;
        self.skipped += o.skipped;
    }
}

/// The store side of export and import.
#[async_trait]
pub trait Transfer: Send + Sync + 'static {
    /// Ids of every delivery that is waiting, in flight or dead.
    async fn export_ids(&self) -> Result<Vec<String>, StoreError>;
    /// These deliveries (ids no longer there are left out).
    async fn export_deliveries(&self, ids: &[String]) -> Result<Vec<DeliveryLine>, StoreError>;
    /// These events (ids no longer there are left out).
    async fn export_events(&self, ids: &[String]) -> Result<Vec<EventLine>, StoreError>;
    /// Writes a batch: webhooks replaced by id, events kept if present,
    /// deliveries skipped if present; waiting deliveries are queued.
    async fn import(&self, batch: &ImportBatch) -> Result<ImportStats, StoreError>;
}

/// Why an export or import stopped.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
}

fn line_error(line: usize, message: impl Into<String>) -> TransferError {
    TransferError::Line {
        line,
        message: message.into(),
    }
}

async fn write_line(out: &mut (impl AsyncWrite + Unpin), line: &Line) -> Result<(), TransferError> {
    let mut json = serde_json::to_vec(line).map_err(|e| line_error(0, e.to_string()))?;
    json.push(b'\n');
    out.write_all(&json).await?;
    Ok(())
}

/// Writes the store's webhooks, waiting and dead deliveries and their
/// events to `out`; returns (webhooks, events, deliveries) written.
pub async fn export(store: &dyn Store, out: &mut (impl AsyncWrite + Unpin)) -> Result<ImportStats, TransferError> {
    let mut stats = ImportStats::default();
    let header = Line::Header {
        format: FORMAT_NAME.into(),
        version: VERSION,
    };
    write_line(out, &header).await?;
    let set = store.load_webhooks().await?;
    for webhook in set.webhooks {
        let disabled = set.states.get(&webhook.id).map(|s: &WebhookState| Disabled {
            reason: s.disabled_reason.clone(),
            url: s.url.clone(),
        });
        write_line(out, &Line::Webhook(WebhookLine { webhook, disabled })).await?;
        stats.webhooks += 1;
    }
    let ids = store.export_ids().await?;
    let mut written: HashSet<String> = HashSet::new();
    for chunk in ids.chunks(BATCH) {
        let deliveries = store.export_deliveries(chunk).await?;
        let needed: Vec<String> = deliveries
            .iter()
            .map(|d| d.event_id.clone())
            .filter(|e| !written.contains(e))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for event in store.export_events(&needed).await? {
            written.insert(event.id.clone());
            write_line(out, &Line::Event(event)).await?;
            stats.events += 1;
        }
        for d in deliveries {
            // A delivery whose event is gone has nothing to deliver.
            if written.contains(&d.event_id) {
                write_line(out, &Line::Delivery(d)).await?;
                stats.deliveries += 1;
            }
        }
    }
    out.flush().await?;
    Ok(stats)
}

/// Reads an export from `input` into the store, in batches.
pub async fn import(store: &dyn Store, input: impl AsyncBufRead + Unpin) -> Result<ImportStats, TransferError> {
    let mut lines = input.lines();
    let mut n = 0;
    let mut stats = ImportStats::default();
    let mut batch = ImportBatch::default();
    let mut events: HashSet<String> = HashSet::new();
    let mut header = false;
    while let Some(text) = lines.next_line().await? {
        n += 1;
        if text.trim().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(&text).map_err(|e| line_error(n, e.to_string()))?;
        match line {
            Line::Header { format, version } => {
                if format != FORMAT_NAME || version != VERSION {
                    return Err(line_error(
                        n,
                        format!(
                            "not a hookgate export this version reads ({format:?} version {version}; reads {FORMAT_NAME:?} version {VERSION})"
                        ),
                    ));
                }
                header = true;
            }
            _ if !header => {
                return Err(line_error(n, "the first line must be the export header"));
            }
            Line::Webhook(w) => batch.webhooks.push(w),
            Line::Event(e) => {
                if serde_json::from_str::<serde::de::IgnoredAny>(&e.data).is_err() {
                    return Err(line_error(n, format!("event {}: data is not JSON", e.id)));
                }
                events.insert(e.id.clone());
                batch.events.push(e);
            }
            Line::Delivery(d) => {
                if !matches!(d.status, Status::Pending | Status::Failed | Status::Dead) {
                    return Err(line_error(
                        n,
                        format!("delivery {}: status {} is not exported", d.id, d.status.as_str()),
                    ));
                }
                if !events.contains(&d.event_id) {
                    return Err(line_error(
                        n,
                        format!("delivery {}: its event {} is not on an earlier line", d.id, d.event_id),
                    ));
                }
                if let Some(p) = &d.payload_base64
                    && base64::engine::general_purpose::STANDARD.decode(p).is_err()
                {
                    return Err(line_error(n, format!("delivery {}: payloadBase64 is not base64", d.id)));
                }
                batch.deliveries.push(d);
            }
        }
        if batch.webhooks.len() + batch.events.len() + batch.deliveries.len() >= BATCH {
            stats += store.import(&std::mem::take(&mut batch)).await?;
        }
    }
    if !header {
        return Err(line_error(n.max(1), "empty input: no export header"));
    }
    stats += store.import(&batch).await?;
    Ok(stats)
}

/// Decodes a line's custom payload.
pub fn payload_bytes(d: &DeliveryLine) -> Option<Vec<u8>> {
    d.payload_base64
        .as_ref()
        .and_then(|p| base64::engine::general_purpose::STANDARD.decode(p).ok())
}

/// Encodes a custom payload for a line.
pub fn payload_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
