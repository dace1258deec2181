//! The live set of webhooks, swapped whole on change.
//!
//! Config webhooks come from config.toml; API webhooks, webhook states
//! (disabled by a 410 or by failing) and circuit breakers from the store, which bumps a version number on every
//! change. [`Registry::refresh`] reads that number (one tiny round trip) and
//! reloads only when it moved; the gateway calls it on a short interval, after
//! its own API changes, and when a claimed delivery names a webhook it does
//! not know yet — so a change made through any gateway reaches all of them
//! within moments, without a restart.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use crate::circuit::Circuit;
use crate::config::Config;
use crate::store::{Store, StoreError, WebhookState};
use crate::webhooks::{PluginDefaults, Webhook};

/// An immutable view of every webhook.
#[derive(Debug, Default)]
pub struct Snapshot {
    list: Vec<Arc<Webhook>>,
    by_id: HashMap<String, Arc<Webhook>>,
}

impl Snapshot {
    fn new(list: Vec<Arc<Webhook>>) -> Self {
        let by_id = list.iter().map(|w| (w.id.clone(), w.clone())).collect();
        Snapshot { list, by_id }
    }

    /// The webhook with this id.
    pub fn get(&self, id: &str) -> Option<&Arc<Webhook>> {
        self.by_id.get(id)
    }

    /// Every webhook: config ones first, in definition order, then API ones
    /// by creation.
    pub fn all(&self) -> &[Arc<Webhook>] {
        &self.list
    }

    /// The enabled webhooks an event of this type goes to.
    pub fn matching<'a>(&'a self, event_type: &'a str, test: bool) -> impl Iterator<Item = &'a Arc<Webhook>> + 'a {
        self.list.iter().filter(move |w| w.wants(event_type, test))
    }
}

#[derive(Debug, Default)]
struct Loaded {
    /// `None` until the first successful load.
    version: Option<u64>,
    api: Vec<Webhook>,
    states: HashMap<String, WebhookState>,
    circuits: HashMap<String, Circuit>,
}

/// The registry: config webhooks, API webhooks, and their states.
#[derive(Debug)]
pub struct Registry {
    config: Vec<Webhook>,
    /// Where relative plugin paths of API webhooks resolve, and their limits.
    base_dir: PathBuf,
    plugin_defaults: PluginDefaults,
    loaded: Mutex<Loaded>,
    current: RwLock<Arc<Snapshot>>,
}

impl Registry {
    /// A registry of the config's webhooks, all as configured.
    pub fn new(config: &Config) -> Self {
        let snapshot = Snapshot::new(config.webhooks.iter().cloned().map(Arc::new).collect());
        Registry {
            config: config.webhooks.clone(),
            base_dir: config.base_dir.clone(),
            plugin_defaults: config.plugins.defaults(),
            loaded: Mutex::new(Loaded::default()),
            current: RwLock::new(Arc::new(snapshot)),
        }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether `id` is a config webhook (read-only through the API).
    pub fn is_config(&self, id: &str) -> bool {
        self.config.iter().any(|w| w.id == id)
    }

    /// Reloads from the store if anything changed there (or always, with
    /// `force`).
    pub async fn refresh(&self, store: &dyn Store, force: bool) -> Result<(), StoreError> {
        let version = store.webhooks_version().await?;
        let known = self.loaded.lock().unwrap_or_else(|e| e.into_inner()).version;
        if !force && known == Some(version) {
            return Ok(());
        }
        let (version, stored, states) = store.load_webhooks().await?;
        let circuits = store.load_circuits().await?;
        let mut api = Vec::with_capacity(stored.len());
        for s in stored {
            if self.is_config(&s.id) {
                continue;
            }
            match s.to_webhook(&self.base_dir, self.plugin_defaults) {
                Ok(w) => api.push(w),
                Err(e) => tracing::warn!(
                    webhook_id = %s.id,
                    problems = %e.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
                    "ignoring a stored webhook that breaks the rules"
                ),
            }
        }
        api.sort_by_key(|w| w.created_at_ms);
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        *loaded = Loaded {
            version: Some(version),
            api,
            states,
            circuits,
        };
        self.rebuild(&loaded);
        Ok(())
    }

    /// Lays the states over the webhooks and publishes a new snapshot. A
    /// state recorded for another URL is stale (the URL changed since the
    /// receiver answered 410) and is ignored.
    fn rebuild(&self, loaded: &Loaded) {
        let list: Vec<Arc<Webhook>> = self
            .config
            .iter()
            .chain(loaded.api.iter())
            .map(|w| {
                let circuit = loaded.circuits.get(&w.id).copied();
                match loaded.states.get(&w.id) {
                    Some(state) if state.url == w.url.as_str() => Arc::new(Webhook {
                        enabled: false,
                        disabled_reason: Some(state.disabled_reason.clone()),
                        circuit,
                        ..w.clone()
                    }),
                    _ => Arc::new(Webhook { circuit, ..w.clone() }),
                }
            })
            .collect();
        for w in &list {
            let state = w.circuit.map_or(crate::circuit::CircuitState::Closed, |c| c.state);
            crate::metrics::circuit_state(&w.id, state);
        }
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Snapshot::new(list));
    }
}
