//! Webhook and plugin entries of config.toml, and the URL and header
//! checks the API shares.

use std::collections::HashSet;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use super::PluginsConfig;
use super::raw::{RawPluginRef, RawWebhook};
use super::validate::Ctx;
use crate::webhooks::{
    EventPattern, OnError, PluginSpec, Secret, Source, Webhook, is_reserved_header, is_sha256_hex, is_valid_webhook_id,
};

pub(super) fn validate_webhook(
    ctx: &mut Ctx<'_>,
    w: &RawWebhook,
    span: Range<usize>,
    seen: &mut HashSet<String>,
    base_dir: &Path,
    defaults: &PluginsConfig,
) -> Option<Webhook> {
    let before = ctx.errors.len();
    let id = match &w.id {
        None => {
            ctx.error(span.clone(), "webhook is missing `id`");
            String::new()
        }
        Some(s) => {
            let id = ctx.string(s).unwrap_or_default();
            if !is_valid_webhook_id(&id) {
                ctx.error(s.span(), format!("webhook id {id:?} must match [a-zA-Z0-9_-]{{1,64}}"));
            } else if !seen.insert(id.clone()) {
                ctx.error(s.span(), format!("duplicate webhook id {id:?}"));
            }
            id
        }
    };
    let url = match &w.url {
        None => {
            ctx.error(span.clone(), format!("webhook {id:?} is missing `url`"));
            None
        }
        Some(s) => ctx.string(s).and_then(|v| match parse_webhook_url(&v) {
            Ok(u) => Some(u),
            Err(e) => {
                ctx.error(s.span(), e);
                None
            }
        }),
    };
    let mut events = Vec::new();
    match &w.events {
        None => ctx.error(span.clone(), format!("webhook {id:?} is missing `events`")),
        Some(list) if list.get_ref().is_empty() => ctx.error(list.span(), "events must list at least one pattern"),
        Some(list) => {
            for p in list.get_ref() {
                if let Some(v) = ctx.string(p) {
                    match EventPattern::parse(&v) {
                        Ok(p) => events.push(p),
                        Err(e) => ctx.error(p.span(), e),
                    }
                }
            }
        }
    }
    let secret = match &w.secret {
        None => {
            ctx.error(
                span.clone(),
                format!("webhook {id:?} is missing `secret` (use secret = \"env:NAME\")"),
            );
            None
        }
        Some(s) => ctx.string(s).and_then(|v| {
            if (8..=256).contains(&v.len()) {
                Some(Secret::new(v))
            } else {
                ctx.error(s.span(), "secret must be 8 to 256 bytes long");
                None
            }
        }),
    };
    let mut headers = Vec::new();
    if let Some(map) = &w.headers {
        for (name, value) in map.get_ref() {
            let Some(v) = ctx.string(value) else { continue };
            if let Err(e) = check_header(name, &v) {
                ctx.error(value.span(), e);
            } else {
                headers.push((name.clone(), v));
            }
        }
    }
    let timeout = w
        .timeout
        .as_ref()
        .map(|t| ctx.duration(Some(t), Duration::from_secs(10), "timeout"));
    let rate_limit_per_minute = w
        .rate_limit_per_minute
        .as_ref()
        .map(|n| ctx.int(Some(n), 60, 1..60_000_001, "rate_limit_per_minute"));
    let max_retries = w
        .max_retries
        .as_ref()
        .map(|n| ctx.int(Some(n), 3, 0..11, "max_retries"));
    let name = w
        .name
        .as_ref()
        .and_then(|s| ctx.string(s))
        .unwrap_or_else(|| id.clone());
    let plugins: Vec<PluginSpec> = w
        .plugins
        .iter()
        .flatten()
        .filter_map(|p| validate_plugin(ctx, p.get_ref(), p.span(), base_dir, defaults))
        .collect();
    if ctx.errors.len() > before {
        return None;
    }
    Some(Webhook {
        id,
        name,
        url: url?,
        events,
        secrets: vec![(secret?, None)],
        test_mode: w.test_mode.unwrap_or(false),
        enabled: true,
        disabled_reason: None,
        rate_limit_per_minute,
        max_retries,
        timeout,
        headers,
        source: Source::Config,
        plugins,
        created_at_ms: None,
        updated_at_ms: None,
    })
}

fn validate_plugin(
    ctx: &mut Ctx<'_>,
    p: &RawPluginRef,
    span: Range<usize>,
    base_dir: &Path,
    defaults: &PluginsConfig,
) -> Option<PluginSpec> {
    let before = ctx.errors.len();
    let path = match &p.path {
        None => {
            ctx.error(
                span.clone(),
                "plugin is missing `path` (a .wasm component, relative to this file's folder)",
            );
            String::new()
        }
        Some(s) => ctx.string(s).unwrap_or_default(),
    };
    let mut config = Vec::new();
    if let Some(map) = &p.config {
        for (k, v) in map.get_ref() {
            if let Some(v) = ctx.string(v) {
                config.push((k.clone(), v));
            }
        }
    }
    let on_error = match &p.on_error {
        None => OnError::Retry,
        Some(s) => match ctx.string(s).as_deref().map(OnError::parse) {
            Some(Some(o)) => o,
            Some(None) => {
                ctx.error(s.span(), "on_error must be \"retry\" or \"skip\"");
                OnError::Retry
            }
            None => OnError::Retry,
        },
    };
    let sha256 = p.sha256.as_ref().and_then(|s| {
        let v = ctx.string(s)?.to_ascii_lowercase();
        if !is_sha256_hex(&v) {
            ctx.error(s.span(), "sha256 must be 64 hex digits");
        }
        Some(v)
    });
    let timeout = ctx.duration(p.timeout.as_ref(), defaults.timeout, "plugin timeout");
    let max_memory = ctx.size(p.max_memory.as_ref(), defaults.max_memory, "plugin max_memory");
    if ctx.errors.len() > before {
        return None;
    }
    Some(PluginSpec {
        position: Some(ctx.position(span.start)),
        resolved: base_dir.join(&path),
        path,
        config,
        on_error,
        sha256,
        timeout,
        max_memory,
    })
}

/// Checks a webhook URL: absolute http(s) with a host, no credentials.
pub fn parse_webhook_url(v: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(v).map_err(|e| format!("invalid url {v:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("url must be http or https, got {:?}", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("url must have a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("url must not contain credentials; use headers instead".into());
    }
    Ok(url)
}

/// Checks one extra static header.
pub fn check_header(name: &str, value: &str) -> Result<(), String> {
    if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("invalid header name {name:?}"));
    }
    if is_reserved_header(name) {
        return Err(format!("header {name:?} is set by hookgate and cannot be overridden"));
    }
    if reqwest::header::HeaderValue::from_str(value).is_err() {
        return Err(format!("invalid value for header {name:?}"));
    }
    Ok(())
}
