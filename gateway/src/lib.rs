//! hookgate: a webhook delivery gateway.
//!
//! Producers post events to the API; each event fans out to the webhooks
//! subscribed to its type as deliveries stored atomically with it; the
//! dispatcher claims due deliveries under a lease, signs them and POSTs them,
//! with retries, per-endpoint rate limits and a dead-letter queue. All state
//! lives in the store, so gateways sharing a store share the work.
//!
//! [`run`] is the whole gateway on a listener; tests start it in-process on
//! port 0.

pub mod api;
pub mod circuit;
pub mod config;
pub mod dashboard;
pub mod dispatch;
pub mod health;
pub mod ids;
pub mod metrics;
pub mod operational;
pub mod pace;
pub mod plugin;
pub mod ratelimit;
pub mod receive;
pub mod registry;
pub mod report;
pub mod retry;
pub mod server;
pub mod signing;
pub mod stats;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Backend, Config};
use crate::dispatch::Dispatcher;
use crate::health::StoreHealth;
use crate::plugin::PluginRuntime;
use crate::registry::Registry;
use crate::store::Store;

/// How often metrics are folded and history trimming is considered.
const UPKEEP_EVERY: Duration = Duration::from_millis(500);
/// How often history indexes are trimmed to the retention period.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// Why the gateway could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("store")]
    Store(#[from] store::StoreError),
    /// A config webhook's plugin cannot be loaded or rejects its config.
    #[error("webhook {webhook:?}: plugin {plugin:?}: {problem}")]
    Plugin {
        webhook: String,
        plugin: String,
        problem: String,
    },
    #[error("outbound deliveries")]
    Client(#[source] dispatch::OutboundError),
    #[error("server")]
    Serve(#[from] std::io::Error),
    #[error("HTTPS")]
    Tls(#[source] tls::TlsError),
    #[error(transparent)]
    Open(#[from] store::embedded::OpenError),
    #[error("a setup task failed")]
    Task(#[source] tokio::task::JoinError),
    #[error("traces")]
    Telemetry(#[source] telemetry::TelemetryError),
}

/// Opens the store the config names. The embedded store is opened on the
/// blocking pool (file I/O, and a repair after an unclean shutdown).
async fn redis_store(store: store::redis::RedisStore, config: &Config) -> Result<Arc<dyn Store>, RunError> {
    let mut store = store
        .with_wait_replicas(config.store.wait_replicas)
        .with_history_max(config.store.history_max);
    if let Some(n) = config.store.shards {
        store = store.with_shards(n);
    }
    match store.check_layout().await {
        Ok(()) => {}
        // Unreachable at start: the gateway runs (answering 503 until the
        // store is back) without this check.
        Err(e) if e.is_unavailable() => tracing::warn!(
            error = %report::error_chain(&e),
            "store: could not check the shard count the store was made with (Redis unreachable); going on"
        ),
        Err(e) => return Err(e.into()),
    }
    // History indexes of an earlier version move to the current layout
    // (also retried with each retention pass).
    match store.migrate_indexes().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(entries = n, "store: moved history index entries to the current layout"),
        Err(e) => tracing::warn!(
            error = %report::error_chain(&e),
            "store: could not move history indexes of an earlier version yet; retrying later"
        ),
    }
    tracing::info!(
        shards = store.shard_count(),
        wait_replicas = config.store.wait_replicas,
        "store: Redis"
    );
    Ok(Arc::new(store))
}

pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, RunError> {
    match config.store.backend {
        Backend::Redis if !config.store.cluster_nodes.is_empty() => {
            tracing::info!(
                seed_nodes = config.store.cluster_nodes.len(),
                prefix = %config.store.prefix,
                "store: Redis Cluster, queues in hash-tagged shards"
            );
            let store = store::redis::RedisStore::open_cluster(
                &config.store.cluster_nodes,
                &config.store.prefix,
                config.store.retention,
            )?;
            redis_store(store, config).await
        }
        Backend::Redis => {
            let store =
                store::redis::RedisStore::open(&config.store.url, &config.store.prefix, config.store.retention)?;
            redis_store(store, config).await
        }
        Backend::Embedded => {
            let (path, retention) = (config.store.path.clone(), config.store.retention);
            let store = tokio::task::spawn_blocking(move || store::embedded::EmbeddedStore::open(&path, retention))
                .await
                .map_err(RunError::Task)??;
            Ok(store)
        }
    }
}

/// Runs the gateway on `listener` until `shutdown` fires, then drains:
/// stops accepting, lets in-flight attempts finish (bounded), releases the
/// rest and records every outcome it can.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> Result<(), RunError> {
    let config = Arc::new(config);
    metrics::install();
    let store = open_store(&config).await?;
    let registry = Arc::new(Registry::new(&config));
    let health = Arc::new(StoreHealth::default());
    if let Err(e) = registry.refresh(store.as_ref()).await {
        tracing::warn!(error = %e, "store unreachable at start; will keep trying");
    }
    let plugins = Arc::new(PluginRuntime::new(
        config.plugins.cache_dir.clone(),
        config.delivery.concurrency.min(32),
    ));
    for w in &config.webhooks {
        plugins
            .validate(&w.plugins)
            .await
            .map_err(|(i, problem)| RunError::Plugin {
                webhook: w.id.clone(),
                plugin: w.plugins[i].path.clone(),
                problem,
            })?;
    }
    let telemetry = match &config.telemetry.otlp {
        Some(otlp) => Some(Arc::new(
            telemetry::Telemetry::start(otlp).map_err(RunError::Telemetry)?,
        )),
        None => None,
    };
    let dispatcher = Dispatcher::start(
        config.clone(),
        store.clone(),
        registry.clone(),
        health.clone(),
        plugins.clone(),
        telemetry.clone(),
    )
    .map_err(RunError::Client)?;

    let refresher = tokio::spawn(maintain(config.clone(), store.clone(), shutdown.clone()));
    let follower = tokio::spawn(registry::follow(registry.clone(), store.clone(), shutdown.clone()));
    let state = api::AppState::new(api::Shared {
        config: config.clone(),
        store: store.clone(),
        registry,
        waker: dispatcher.waker(),
        plugins,
        telemetry: telemetry.clone(),
        token_limits: api::token_limit_keys(&config.api.tokens),
    });
    let tls = match &config.server.tls {
        None => None,
        Some(files) => Some(
            server::TlsAcceptor::new(
                &files.cert,
                &files.key,
                config.api.client_ca.as_deref(),
                shutdown.child_token(),
            )
            .map_err(RunError::Tls)?,
        ),
    };
    tracing::info!(
        listen = %listener.local_addr()?,
        tls = tls.is_some(),
        webhooks = config.webhooks.len(),
        worker_threads = tokio::runtime::Handle::current().metrics().num_workers(),
        "hookgate listening"
    );
    let grace = config.max_attempt_time().min(Duration::from_secs(30));
    server::serve(
        listener,
        api::Api::new(state),
        tls,
        server::Limits::from(&config.server),
        shutdown.clone(),
        grace,
    )
    .await?;
    tracing::info!("shutting down: no new work taken; draining in-flight deliveries");
    dispatcher.shutdown(grace).await;
    refresher.abort();
    follower.abort();
    if let Some(t) = telemetry {
        t.shutdown().await;
    }
    tracing::info!("shutdown complete");
    Ok(())
}

/// Background upkeep: fold metric samples, trim history. (The webhook
/// registry follows the store on its own: [`registry::follow`].)
async fn maintain(config: Arc<Config>, store: Arc<dyn Store>, shutdown: CancellationToken) {
    let mut last_purge = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(UPKEEP_EVERY) => {}
        }
        metrics::upkeep();
        match store.enforce_history_bound().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(removed = n, "history bound: removed the oldest finished deliveries"),
            Err(e) => tracing::debug!(error = %e, "could not enforce the history bound"),
        }
        if last_purge.elapsed() >= PURGE_EVERY {
            last_purge = tokio::time::Instant::now();
            if let Err(e) = store.purge_history(config.store.retention).await {
                tracing::debug!(error = %e, "could not trim history indexes");
            }
        }
    }
}
