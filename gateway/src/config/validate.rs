//! Raw model -> [`Config`]: `env:` indirection, defaults, and every check,
//! with all errors collected in one pass.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ctx::{Ctx, hide_values};
use super::egress::validate_egress;
use super::raw::{RawConfig, RawDelivery, RawStore};
use super::server::{validate_client_ca, validate_server};
use super::telemetry::validate_telemetry;
use super::webhook::validate_webhook;
use super::*;
use crate::circuit::BreakerPolicy;
use crate::webhooks::Secret;

pub(super) fn validate(src: &str, path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
    let mut ctx = Ctx {
        src,
        path,
        env,
        errors: Vec::new(),
    };
    let raw: RawConfig = match toml::from_str(src) {
        Ok(raw) => raw,
        Err(e) => {
            ctx.error(e.span().unwrap_or(0..0), hide_values(e.message().trim()));
            return Err(ConfigErrors(ctx.errors));
        }
    };
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base_dir = if base_dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base_dir
    };

    let server = validate_server(&mut ctx, &raw.server, &base_dir);

    let mut tokens = Vec::new();
    match &raw.api.tokens {
        None => ctx.error(0..0, "[api] tokens is required: at least one bearer token for /api/* (e.g. tokens = [\"env:HOOKGATE_API_TOKEN\"])"),
        Some(list) if list.get_ref().is_empty() => ctx.error(list.span(), "api.tokens must list at least one token"),
        Some(list) => {
            for t in list.get_ref() {
                if let Some(v) = ctx.string(t) {
                    if v.len() < 8 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
                        ctx.error(t.span(), "api token must be at least 8 characters with no whitespace");
                    } else {
                        tokens.push(Secret::new(v));
                    }
                }
            }
        }
    }
    let api = ApiConfig {
        client_ca: validate_client_ca(&mut ctx, &raw.api, &server, &base_dir),
        tokens,
        rate_limit_per_minute: ctx.int(
            raw.api.rate_limit_per_minute.as_ref(),
            600,
            1..1_000_000_001,
            "rate_limit_per_minute",
        ),
    };

    let store = validate_store(&mut ctx, &raw, &base_dir);
    let delivery = validate_delivery(&mut ctx, &raw.delivery, &base_dir);
    let plugins = PluginsConfig {
        cache_dir: base_dir.join(
            raw.plugins
                .cache_dir
                .as_ref()
                .and_then(|s| ctx.string(s))
                .unwrap_or_else(|| "data/plugin-cache".into()),
        ),
        timeout: ctx.duration(
            raw.plugins.timeout.as_ref(),
            Duration::from_millis(100),
            "plugins.timeout",
        ),
        max_memory: ctx.size(raw.plugins.max_memory.as_ref(), 32 << 20, "plugins.max_memory"),
    };
    let telemetry = validate_telemetry(&mut ctx, &raw.telemetry);

    let identities: Vec<String> = delivery
        .egress
        .client_identities
        .iter()
        .map(|i| i.name.clone())
        .collect();
    let mut seen = HashSet::new();
    let mut webhooks = Vec::new();
    for w in &raw.webhooks {
        if let Some(hook) = validate_webhook(
            &mut ctx,
            w.get_ref(),
            w.span(),
            &mut seen,
            &base_dir,
            &plugins,
            &identities,
        ) {
            webhooks.push(hook);
        }
    }

    if ctx.errors.is_empty() {
        Ok(Config {
            server,
            api,
            store,
            delivery,
            plugins,
            telemetry,
            webhooks,
            base_dir,
        })
    } else {
        let mut errors = ctx.errors;
        errors.sort_by_key(|e| (e.line, e.col));
        Err(ConfigErrors(errors))
    }
}

fn validate_store(ctx: &mut Ctx<'_>, raw: &RawConfig, base_dir: &Path) -> StoreConfig {
    let s = &raw.store;
    let backend = match s.backend.as_ref() {
        None => Backend::Embedded,
        Some(b) => match ctx.string(b).as_deref() {
            Some("redis") => Backend::Redis,
            Some("embedded") => Backend::Embedded,
            Some(other) => {
                ctx.error(
                    b.span(),
                    format!("store.backend must be \"embedded\" or \"redis\", got {other:?}"),
                );
                Backend::Redis
            }
            None => Backend::Redis,
        },
    };
    let url = s
        .url
        .as_ref()
        .and_then(|u| ctx.string(u).map(|v| (u.span(), v)))
        .map_or_else(
            || "redis://127.0.0.1:6379".to_owned(),
            |(span, v)| {
                if !(v.starts_with("redis://") || v.starts_with("rediss://") || v.starts_with("unix://")) {
                    ctx.error(span, "store.url must start with redis://, rediss:// or unix://");
                }
                v
            },
        );
    let cluster_nodes = validate_cluster_nodes(ctx, s, backend);
    let max_shards = crate::store::redis::MAX_SHARDS as i64;
    let shards = s
        .shards
        .as_ref()
        .map(|n| ctx.int(Some(n), 1usize, 1..max_shards + 1, "store.shards"));
    let wait_replicas = ctx.int(s.wait_replicas.as_ref(), 0u32, 0..17, "store.wait_replicas");
    let history_max = ctx.int(s.history_max.as_ref(), 0u64, 0..i64::MAX, "store.history_max");
    let prefix = s
        .prefix
        .as_ref()
        .and_then(|p| ctx.string(p).map(|v| (p.span(), v)))
        .map_or_else(
            || "hookgate".to_owned(),
            |(span, v)| {
                if v.is_empty() || v.len() > 64 || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-:.".contains(&b))
                {
                    ctx.error(span, "store.prefix must be 1-64 characters of [a-zA-Z0-9_-:.]");
                }
                v
            },
        );
    StoreConfig {
        backend,
        path: base_dir.join(
            s.path
                .as_ref()
                .and_then(|p| ctx.string(p))
                .unwrap_or_else(|| "data".into()),
        ),
        url,
        cluster_nodes,
        shards,
        wait_replicas,
        history_max,
        prefix,
        retention: ctx.duration(s.retention.as_ref(), Duration::from_secs(7 * 86_400), "store.retention"),
    }
}

/// `store.cluster_nodes`: `redis://` or `rediss://` URLs of seed nodes
/// (host and port), at least one, with the redis backend. When set, the
/// store runs on the cluster and `store.url` is unused (docs/configuration.md).
fn validate_cluster_nodes(ctx: &mut Ctx<'_>, s: &RawStore, backend: Backend) -> Vec<String> {
    let Some(list) = s.cluster_nodes.as_ref() else {
        return Vec::new();
    };
    if backend != Backend::Redis {
        ctx.error(list.span(), "store.cluster_nodes needs backend = \"redis\"");
    }
    if list.get_ref().is_empty() {
        ctx.error(
            list.span(),
            "store.cluster_nodes must name at least one seed node, like [\"redis://10.0.0.1:7000\"]",
        );
    }
    let mut nodes = Vec::with_capacity(list.get_ref().len());
    for node in list.get_ref() {
        let Some(v) = ctx.string(node) else { continue };
        match url::Url::parse(&v) {
            Ok(u) if matches!(u.scheme(), "redis" | "rediss") && u.host_str().is_some_and(|h| !h.is_empty()) => {
                if !matches!(u.path(), "" | "/" | "/0") {
                    ctx.error(
                        node.span(),
                        "store.cluster_nodes: a Redis Cluster has only database 0; leave the path out of the URL",
                    );
                }
                nodes.push(v);
            }
            // The message leaves the value out: it may hold a password.
            _ => ctx.error(
                node.span(),
                "store.cluster_nodes entries must be redis:// or rediss:// URLs with a host, like \"redis://10.0.0.1:7000\"",
            ),
        }
    }
    nodes
}

fn validate_delivery(ctx: &mut Ctx<'_>, d: &RawDelivery, base_dir: &Path) -> DeliveryConfig {
    let jitter = match d.retry_jitter.as_ref() {
        None => 0.1,
        Some(j) if (0.0..=1.0).contains(j.get_ref()) => *j.get_ref(),
        Some(j) => {
            ctx.error(j.span(), "delivery.retry_jitter must be between 0 and 1");
            0.1
        }
    };
    let mut schemes = SignatureSchemes {
        hub: true,
        standard: true,
    };
    if let Some(list) = d.signature_headers.as_ref() {
        schemes = SignatureSchemes {
            hub: false,
            standard: false,
        };
        for s in list.get_ref() {
            match ctx.string(s).as_deref() {
                Some("hub") => schemes.hub = true,
                Some("standard") => schemes.standard = true,
                Some(other) => ctx.error(
                    s.span(),
                    format!("signature_headers entries are \"hub\" or \"standard\", got {other:?}"),
                ),
                None => {}
            }
        }
        if list.get_ref().is_empty() {
            ctx.error(
                list.span(),
                "delivery.signature_headers must name \"hub\", \"standard\" or both",
            );
        }
    }
    DeliveryConfig {
        timeout: ctx.duration(d.timeout.as_ref(), Duration::from_secs(10), "delivery.timeout"),
        retry: RetryPolicy {
            max_retries: ctx.int(d.max_retries.as_ref(), 3, 0..11, "max_retries"),
            base: ctx.duration(d.retry_base.as_ref(), Duration::from_secs(5), "delivery.retry_base"),
            factor: ctx.int(d.retry_factor.as_ref(), 5, 1..1001, "retry_factor"),
            max_delay: ctx.duration(
                d.retry_max_delay.as_ref(),
                Duration::from_secs(36_000),
                "delivery.retry_max_delay",
            ),
            jitter,
        },
        rate_limit_per_minute: ctx.int(
            d.rate_limit_per_minute.as_ref(),
            60,
            1..60_000_001,
            "rate_limit_per_minute",
        ),
        rate_limit_burst: ctx.int(d.rate_limit_burst.as_ref(), 10, 1..1_000_001, "rate_limit_burst"),
        signature_headers: schemes,
        concurrency: ctx.int(d.concurrency.as_ref(), 256, 1..100_001, "concurrency"),
        allow_private_destinations: d.allow_private_destinations.unwrap_or(false),
        egress: validate_egress(ctx, d, base_dir),
        breaker: BreakerPolicy {
            failures: ctx.int(d.circuit_failures.as_ref(), 5, 1..1001, "delivery.circuit_failures"),
            cooldown: ctx.duration(
                d.circuit_cooldown.as_ref(),
                Duration::from_secs(30),
                "delivery.circuit_cooldown",
            ),
            max_cooldown: ctx.duration(
                d.circuit_max_cooldown.as_ref(),
                Duration::from_secs(3600),
                "delivery.circuit_max_cooldown",
            ),
            disable_after: ctx.duration(
                d.disable_after.as_ref(),
                Duration::from_secs(5 * 86_400),
                "delivery.disable_after",
            ),
        },
    }
}
