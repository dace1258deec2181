//! `GET /api/stats`: fleet-wide delivery statistics from the store (every
//! gateway's figures, `crate::stats`), for a window of the last hour, day
//! or week, optionally for one webhook.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use super::extract::Query;
use super::views::time;
use crate::ids::now_ms;
use crate::stats::{Counters, FLEET, Field, Window};
use crate::webhooks::is_valid_webhook_id;

/// Webhooks listed at most in `webhooks` (ask for one with `webhookId`).
pub const MAX_WEBHOOKS: usize = 200;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsQuery {
    window: Option<String>,
    webhook_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempts {
    total: u64,
    success: u64,
    http4xx: u64,
    http5xx: u64,
    timeout: u64,
    connect_error: u64,
    plugin_error: u64,
}

#[derive(Serialize)]
pub struct Deliveries {
    succeeded: u64,
    dead: u64,
    filtered: u64,
}

#[derive(Serialize)]
pub struct Latency {
    mean: Option<f64>,
    p50: Option<f64>,
    p95: Option<f64>,
}

/// The figures of a row (a whole window, one point, or one webhook).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    attempts: Attempts,
    deliveries: Deliveries,
    retries: u64,
    rate_limited: u64,
    attempt_success_rate: Option<f64>,
    delivery_success_rate: Option<f64>,
    latency_ms: Latency,
}

fn round(v: Option<f64>) -> Option<f64> {
    v.map(|v| (v * 1000.0).round() / 1000.0)
}

impl From<&Counters> for Figures {
    fn from(c: &Counters) -> Self {
        Figures {
            attempts: Attempts {
                total: c.attempts(),
                success: c.get(Field::AttemptSuccess),
                http4xx: c.get(Field::AttemptHttp4xx),
                http5xx: c.get(Field::AttemptHttp5xx),
                timeout: c.get(Field::AttemptTimeout),
                connect_error: c.get(Field::AttemptConnectError),
                plugin_error: c.get(Field::AttemptPluginError),
            },
            deliveries: Deliveries {
                succeeded: c.get(Field::Succeeded),
                dead: c.get(Field::Dead),
                filtered: c.get(Field::Filtered),
            },
            retries: c.get(Field::Retries),
            rate_limited: c.get(Field::RateLimited),
            attempt_success_rate: round(c.attempt_success_rate()),
            delivery_success_rate: round(c.delivery_success_rate()),
            latency_ms: Latency {
                mean: round(c.mean_latency_ms()),
                p50: round(c.latency_quantile_ms(0.5)),
                p95: round(c.latency_quantile_ms(0.95)),
            },
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    at: String,
    #[serde(flatten)]
    figures: Figures,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookFigures {
    webhook_id: String,
    /// `None` once the webhook is gone.
    name: Option<String>,
    #[serde(flatten)]
    figures: Figures,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsView {
    window: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_id: Option<String>,
    from: String,
    to: String,
    step_seconds: u64,
    totals: Figures,
    series: Vec<Point>,
    /// Per webhook (fleet-wide answers only), by id.
    #[serde(skip_serializing_if = "Option::is_none")]
    webhooks: Option<Vec<WebhookFigures>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhooks_truncated: Option<bool>,
}

pub async fn get(State(state): State<AppState>, Query(q): Query<StatsQuery>) -> Result<Json<StatsView>, ApiError> {
    let window = match q.window.as_deref() {
        None => Window::Hour,
        Some(w) => Window::parse(w).ok_or_else(|| ApiError::invalid("window", "must be one of 1h, 24h, 7d"))?,
    };
    if let Some(id) = q.webhook_id.as_deref()
        && !is_valid_webhook_id(id)
    {
        return Err(ApiError::invalid(
            "webhookId",
            "is not a valid webhook id ([a-zA-Z0-9_-]{1,64})",
        ));
    }
    let now = now_ms();
    let g = window.granularity();
    let (from, to) = window.range(now);
    let scope = q.webhook_id.as_deref().unwrap_or(FLEET);
    let rows = state.store.read_stats(scope, g, from, to).await?;

    let step = window.step();
    let points = window.buckets() / step;
    let mut series_rows = vec![Counters::default(); points as usize];
    let mut totals = Counters::default();
    for (bucket, c) in &rows {
        let i = ((bucket - from) / step) as usize;
        if let Some(slot) = series_rows.get_mut(i) {
            slot.add(c);
        }
        totals.add(c);
    }
    let bucket_ms = g.seconds() * 1000;
    let series = series_rows
        .iter()
        .enumerate()
        .map(|(i, c)| Point {
            at: time((from + i as u64 * step) * bucket_ms),
            figures: c.into(),
        })
        .collect();

    let (webhooks, webhooks_truncated) = if q.webhook_id.is_none() {
        let (per, more) = state.store.stats_by_webhook(g, from, to, MAX_WEBHOOKS).await?;
        let list = per
            .iter()
            .map(|(id, c)| WebhookFigures {
                name: state.registry.get(id).map(|w| w.name.clone()),
                webhook_id: id.clone(),
                figures: c.into(),
            })
            .collect();
        (Some(list), Some(more))
    } else {
        (None, None)
    };

    Ok(Json(StatsView {
        window: window.as_str(),
        webhook_id: q.webhook_id,
        from: time(from * bucket_ms),
        to: time((to + 1) * bucket_ms),
        step_seconds: step * g.seconds(),
        totals: (&totals).into(),
        series,
        webhooks,
        webhooks_truncated,
    }))
}
