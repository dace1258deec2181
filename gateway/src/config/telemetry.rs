//! `[telemetry]`: OpenTelemetry trace export over OTLP/HTTP.

use std::time::Duration;

use super::ctx::Ctx;
use super::raw::RawTelemetry;
use super::{OtlpConfig, TelemetryConfig};
use crate::webhooks::Secret;

pub(super) fn validate_telemetry(ctx: &mut Ctx<'_>, t: &RawTelemetry) -> TelemetryConfig {
    let Some(endpoint) = &t.otlp_endpoint else {
        for (set, key) in [
            (t.otlp_headers.is_some(), "otlp_headers"),
            (t.service_name.is_some(), "service_name"),
            (t.sample_ratio.is_some(), "sample_ratio"),
            (t.export_every.is_some(), "export_every"),
        ] {
            if set {
                ctx.error(
                    0..0,
                    format!("telemetry.{key} needs telemetry.otlp_endpoint (where to send traces)"),
                );
            }
        }
        return TelemetryConfig::default();
    };
    let traces_url = ctx.string(endpoint).and_then(|v| {
        let parsed = url::Url::parse(&v)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some() && u.query().is_none());
        match parsed {
            // OTLP/HTTP: the signal's path goes after the base URL.
            Some(u) => url::Url::parse(&format!("{}/v1/traces", u.as_str().trim_end_matches('/'))).ok(),
            None => {
                ctx.error(
                    endpoint.span(),
                    "telemetry.otlp_endpoint must be an http:// or https:// base URL like \"http://127.0.0.1:4318\" \
                     (spans go to <otlp_endpoint>/v1/traces)",
                );
                None
            }
        }
    });
    let mut headers = Vec::new();
    for (name, value) in t.otlp_headers.iter().flatten() {
        let Some(v) = ctx.string(value) else { continue };
        let valid_name = reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok();
        let valid_value = reqwest::header::HeaderValue::from_str(&v).is_ok();
        if !valid_name || !valid_value {
            ctx.error(
                value.span(),
                format!("telemetry.otlp_headers: {name:?} is not a valid HTTP header name and value"),
            );
            continue;
        }
        headers.push((name.clone(), Secret::new(v)));
    }
    let service_name = t
        .service_name
        .as_ref()
        .and_then(|s| ctx.string(s))
        .unwrap_or_else(|| "hookgate".into());
    let sample_ratio = match &t.sample_ratio {
        None => 1.0,
        Some(r) if (0.0..=1.0).contains(r.get_ref()) => *r.get_ref(),
        Some(r) => {
            ctx.error(
                r.span(),
                format!("telemetry.sample_ratio must be from 0 to 1, got {}", r.get_ref()),
            );
            1.0
        }
    };
    let export_every = ctx.duration(
        t.export_every.as_ref(),
        Duration::from_secs(2),
        "telemetry.export_every",
    );
    TelemetryConfig {
        otlp: traces_url.map(|traces_url| OtlpConfig {
            traces_url,
            headers,
            service_name,
            sample_ratio,
            export_every,
        }),
    }
}
