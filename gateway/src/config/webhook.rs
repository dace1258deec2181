//! `[[webhooks]]` entries of config.toml: read into a [`WebhookSpec`]
//! (types and `env:` values), checked by the one rule set
//! ([`crate::webhooks::rules`]), each broken rule reported at the position
//! of the value that breaks it.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use super::PluginsConfig;
use super::ctx::Ctx;
use super::raw::{N, RawPluginRef, RawWebhook, Scalar};
use crate::webhooks::rules::{self, Bounds, Field};
use crate::webhooks::{OnError, PluginRef, PluginSpec, Secret, Source, Webhook, WebhookSpec, is_valid_webhook_id};
use toml::Spanned;

pub(super) fn validate_webhook(
    ctx: &mut Ctx<'_>,
    w: &RawWebhook,
    span: Range<usize>,
    seen: &mut HashSet<String>,
    base_dir: &Path,
    defaults: &PluginsConfig,
    identities: &[String],
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
        Some(s) => ctx.string(s),
    };
    let secret = match &w.secret {
        None => {
            ctx.error(
                span.clone(),
                format!("webhook {id:?} is missing `secret` (use secret = \"env:NAME\")"),
            );
            None
        }
        Some(s) => ctx.string(s),
    };
    let events = match &w.events {
        None => {
            ctx.error(span.clone(), format!("webhook {id:?} is missing `events`"));
            Vec::new()
        }
        Some(list) => list.get_ref().iter().filter_map(|p| ctx.string(p)).collect(),
    };
    let mut headers = BTreeMap::new();
    for (name, value) in w.headers.iter().flat_map(|m| m.get_ref()) {
        if let Some(v) = ctx.string(value) {
            headers.insert(name.clone(), v);
        }
    }
    let timeout = w
        .timeout
        .as_ref()
        .map(|t| ctx.duration(Some(t), Duration::from_secs(10), "timeout"));
    let int = |n: &Option<N>| n.as_ref().map(|n| u32::try_from(*n.get_ref()).unwrap_or(u32::MAX));
    let plugins: Vec<(PluginRef, (usize, usize))> = w
        .plugins
        .iter()
        .flatten()
        .filter_map(|p| read_plugin(ctx, p.get_ref(), p.span(), defaults))
        .collect();
    let spec = WebhookSpec {
        name: match &w.name {
            Some(s) => ctx.string(s).unwrap_or_default(),
            None => id.clone(),
        },
        url: url.clone().unwrap_or_default(),
        events,
        test_mode: w.test_mode.unwrap_or(false),
        enabled: true,
        rate_limit_per_minute: int(&w.rate_limit_per_minute),
        max_retries: int(&w.max_retries),
        timeout_ms: timeout.map(|t| t.as_millis() as u64),
        headers,
        client_identity: w.client_identity.as_ref().and_then(|s| ctx.string(s)),
        plugins: plugins.iter().map(|(p, _)| p.clone()).collect(),
    };
    let bounds = Bounds {
        max_timeout: None,
        identities: Some(identities),
    };
    let checked = match rules::check(&spec, secret.as_deref(), bounds) {
        Ok(c) => Some(c),
        Err(bad) => {
            // Values that are missing or unreadable were reported above.
            let reported = |f: &Field| match f {
                Field::Url => url.is_none(),
                Field::Events => w.events.is_none(),
                _ => false,
            };
            for b in bad.into_iter().filter(|b| !reported(&b.field)) {
                let at = field_span(w, &b.field).unwrap_or_else(|| span.clone());
                ctx.error(at, b.config_message());
            }
            None
        }
    };
    if ctx.errors.len() > before {
        return None;
    }
    let plugin_specs = plugins
        .iter()
        .map(|(p, pos)| PluginSpec {
            position: Some(*pos),
            ..p.to_spec(base_dir, defaults.defaults())
        })
        .collect();
    let secrets = vec![(Secret::new(secret?), None)];
    Some(Webhook::from_spec(
        id,
        &spec,
        checked?,
        secrets,
        Source::Config,
        plugin_specs,
    ))
}

/// Where a field of a `[[webhooks]]` entry was written.
fn field_span(w: &RawWebhook, field: &Field) -> Option<Range<usize>> {
    let plugin = |i: &usize| w.plugins.as_ref().and_then(|p| p.get(*i));
    match field {
        Field::Name => w.name.as_ref().map(|s| s.span()),
        Field::Url => w.url.as_ref().map(|s| s.span()),
        Field::Events => w.events.as_ref().map(|s| s.span()),
        Field::Event(i) => w.events.as_ref().and_then(|l| l.get_ref().get(*i)).map(|s| s.span()),
        Field::Secret => w.secret.as_ref().map(|s| s.span()),
        Field::RateLimitPerMinute => w.rate_limit_per_minute.as_ref().map(|n| n.span()),
        Field::MaxRetries => w.max_retries.as_ref().map(|n| n.span()),
        Field::Timeout => w.timeout.as_ref().map(|s| s.span()),
        Field::Header(h) => w.headers.as_ref().and_then(|m| m.get_ref().get(h)).map(|s| s.span()),
        Field::ClientIdentity => w.client_identity.as_ref().map(|s| s.span()),
        Field::PluginPath(i) => plugin(i).map(|p| p.get_ref().path.as_ref().map_or_else(|| p.span(), |s| s.span())),
        Field::PluginSha256(i) => plugin(i).map(|p| p.get_ref().sha256.as_ref().map_or_else(|| p.span(), |s| s.span())),
    }
}

/// Reads one `[[webhooks.plugins]]` entry (types and `env:` values; the
/// rules are checked with the webhook), with its position.
fn read_plugin(
    ctx: &mut Ctx<'_>,
    p: &RawPluginRef,
    span: Range<usize>,
    defaults: &PluginsConfig,
) -> Option<(PluginRef, (usize, usize))> {
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
    let mut config = BTreeMap::new();
    for (k, v) in p.config.iter().flat_map(|m| m.get_ref()) {
        let value = match v.get_ref() {
            Scalar::String(s) => ctx.string(&Spanned::new(v.span(), s.clone())),
            Scalar::Integer(n) => Some(n.to_string()),
            Scalar::Float(x) => Some(x.to_string()),
            Scalar::Bool(b) => Some(b.to_string()),
        };
        if let Some(value) = value {
            config.insert(k.clone(), value);
        }
    }
    let on_error = match &p.on_error {
        None => None,
        Some(s) => match ctx.string(s).as_deref().map(OnError::parse) {
            Some(Some(o)) => Some(o),
            Some(None) => {
                ctx.error(s.span(), "on_error must be \"retry\" or \"skip\"");
                None
            }
            None => None,
        },
    };
    let sha256 = p
        .sha256
        .as_ref()
        .and_then(|s| ctx.string(s))
        .map(|v| v.to_ascii_lowercase());
    let timeout = ctx.duration(p.timeout.as_ref(), defaults.timeout, "plugin timeout");
    let max_memory = ctx.size(p.max_memory.as_ref(), defaults.max_memory, "plugin max_memory");
    if ctx.errors.len() > before {
        return None;
    }
    let plugin = PluginRef {
        path,
        config,
        on_error,
        sha256,
        timeout: Some(timeout),
        max_memory: Some(max_memory),
    };
    Some((plugin, ctx.position(span.start)))
}
