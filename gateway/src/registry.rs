//! The live set of webhooks, kept current one change at a time.
//!
//! Config webhooks come from config.toml; API webhooks, webhook states
//! (disabled by a 410 or by failing) and circuit breakers from the store.
//! The first [`Registry::refresh`] loads everything and remembers the
//! store's change log position ([`crate::store::changes`]); every later one
//! asks for the changes after it and reloads just those webhooks by id, so
//! a change costs each gateway the same whether there are 10 webhooks or
//! 50,000. When the log cannot bring this gateway up to date (it fell
//! further behind than the log keeps, or a Redis failover or reset lost or
//! replaced changes it had applied), the store says so and the registry
//! loads everything again, by itself.
//!
//! The gateway refreshes every [`FOLLOW_EVERY`] ([`follow`]), after its own
//! API changes, and when a claimed delivery names a webhook it does not
//! know yet — so a change made through any gateway reaches all of them
//! within moments. Refreshes are serialised, so changes apply in log order.
//!
//! Lookups by id, matching (an index by exact type and prefix, see
//! `index`) and listing pages (`live`) read a shared [`Live`] set under a
//! short read lock; a refresh builds the new webhooks first and holds the
//! write lock only to swap them in.

mod index;
mod live;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use live::Live;
pub use live::PageKey;

use crate::circuit::{Circuit, CircuitState};
use crate::config::Config;
use crate::store::{ChangeCursor, Store, StoreError, WebhookChanges, WebhookEntry, WebhookState};
use crate::webhooks::{PluginDefaults, StoredWebhook, Webhook};

/// How often [`follow`] asks the store for changes: the bound on how long a
/// change made through another gateway takes to arrive here (plus one round
/// trip). Asking costs one small read when nothing changed.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(250);
/// Log entries asked for at once.
const CHANGES_PER_READ: usize = 1_000;
/// Reads per refresh at most (a gateway further behind continues on the
/// next refresh).
const MAX_READS: usize = 20;

/// One webhook's new form, or its removal.
enum Update {
    Put(PageKey, Arc<Webhook>),
    Remove(String),
}

/// The registry: config webhooks, API webhooks, and their states.
#[derive(Debug)]
pub struct Registry {
    config: Vec<Webhook>,
    /// Config webhook id -> position in `config`.
    config_ids: HashMap<String, usize>,
    /// Where relative plugin paths of API webhooks resolve, and their limits.
    base_dir: PathBuf,
    plugin_defaults: PluginDefaults,
    /// The change log position applied (`None` until the first full load);
    /// held for the whole of a refresh.
    cursor: tokio::sync::Mutex<Option<ChangeCursor>>,
    live: RwLock<Live>,
}

impl Registry {
    /// A registry of the config's webhooks, all as configured.
    pub fn new(config: &Config) -> Self {
        let mut live = Live::default();
        for (i, w) in config.webhooks.iter().enumerate() {
            live.put(PageKey::config(i as u64, &w.id), Arc::new(w.clone()));
        }
        Registry {
            config: config.webhooks.clone(),
            config_ids: config
                .webhooks
                .iter()
                .enumerate()
                .map(|(i, w)| (w.id.clone(), i))
                .collect(),
            base_dir: config.base_dir.clone(),
            plugin_defaults: config.plugins.defaults(),
            cursor: tokio::sync::Mutex::new(None),
            live: RwLock::new(live),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Live> {
        self.live.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Live> {
        self.live.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `id` is a config webhook (read-only through the API).
    pub fn is_config(&self, id: &str) -> bool {
        self.config_ids.contains_key(id)
    }

    /// The webhook with this id.
    pub fn get(&self, id: &str) -> Option<Arc<Webhook>> {
        self.read().get(id).cloned()
    }

    /// The enabled webhooks an event of this type goes to: config ones
    /// first, in definition order, then API ones by creation.
    pub fn matching(&self, event_type: &str, test: bool) -> Vec<Arc<Webhook>> {
        self.read().matching(event_type, test)
    }

    /// Up to `limit` webhooks after `after`, in the same order, and the key
    /// of the last one if more follow.
    pub fn page(&self, after: Option<&PageKey>, limit: usize) -> (Vec<Arc<Webhook>>, Option<PageKey>) {
        self.read().page(after, limit)
    }

    /// How many webhooks there are.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Brings the registry up to date with the store: the changes since the
    /// last refresh, or everything on the first call and whenever the
    /// change log cannot tell what changed.
    pub async fn refresh(&self, store: &dyn Store) -> Result<(), StoreError> {
        let mut cursor = self.cursor.lock().await;
        for _ in 0..MAX_READS {
            let Some(since) = cursor.clone() else {
                *cursor = Some(self.load_all(store).await?);
                return Ok(());
            };
            match store.webhook_changes(&since, CHANGES_PER_READ).await? {
                WebhookChanges::Resync => {
                    tracing::info!(
                        seq = since.seq,
                        "the webhook change log no longer reaches this gateway's position; loading every webhook"
                    );
                    *cursor = None;
                }
                WebhookChanges::Changed {
                    entries,
                    cursor: next,
                    more,
                } => {
                    let updates: Vec<Update> = entries.into_iter().map(|e| self.resolve(e)).collect();
                    let mut live = self.write();
                    for update in updates {
                        match update {
                            Update::Put(key, hook) => live.put(key, hook),
                            Update::Remove(id) => live.remove(&id),
                        }
                    }
                    drop(live);
                    *cursor = Some(next);
                    if !more {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// Loads every webhook, replaces the live set, and returns the log
    /// position it reflects.
    async fn load_all(&self, store: &dyn Store) -> Result<ChangeCursor, StoreError> {
        let set = store.load_webhooks().await?;
        let mut live = Live::default();
        for (i, w) in self.config.iter().enumerate() {
            let hook = overlay(w, set.states.get(&w.id), set.circuits.get(&w.id).copied());
            live.put(PageKey::config(i as u64, &w.id), Arc::new(hook));
        }
        for stored in &set.webhooks {
            if self.is_config(&stored.id) {
                continue;
            }
            if let Some((key, w)) = self.compile(stored) {
                let hook = overlay(&w, set.states.get(&w.id), set.circuits.get(&w.id).copied());
                live.put(key, Arc::new(hook));
            }
        }
        for hook in live.iter() {
            crate::metrics::circuit_state(&hook.id, hook.circuit.map_or(CircuitState::Closed, |c| c.state));
        }
        let (webhooks, cursor) = (live.len(), set.cursor);
        *self.write() = live;
        tracing::debug!(webhooks, seq = cursor.seq, "webhooks loaded");
        Ok(cursor)
    }

    /// The live form of a stored API webhook, or `None` (with a warning)
    /// if it breaks the rules.
    fn compile(&self, stored: &StoredWebhook) -> Option<(PageKey, Webhook)> {
        match stored.to_webhook(&self.base_dir, self.plugin_defaults) {
            Ok(w) => Some((PageKey::api(stored.created_at, &stored.id), w)),
            Err(e) => {
                tracing::warn!(
                    webhook_id = %stored.id,
                    problems = %e.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
                    "ignoring a stored webhook that breaks the rules"
                );
                None
            }
        }
    }

    /// What one changed webhook becomes here.
    fn resolve(&self, entry: WebhookEntry) -> Update {
        let circuit = entry.circuit;
        crate::metrics::circuit_state(&entry.id, circuit.map_or(CircuitState::Closed, |c| c.state));
        if let Some(&i) = self.config_ids.get(&entry.id) {
            let hook = overlay(&self.config[i], entry.state.as_ref(), circuit);
            return Update::Put(PageKey::config(i as u64, &entry.id), Arc::new(hook));
        }
        match entry.webhook.as_ref().and_then(|s| self.compile(s)) {
            Some((key, w)) => Update::Put(key, Arc::new(overlay(&w, entry.state.as_ref(), circuit))),
            None => Update::Remove(entry.id),
        }
    }
}

/// A webhook with its stored state and breaker laid over it. A state
/// recorded for another URL is stale (the URL changed since the receiver
/// answered 410) and is ignored.
fn overlay(w: &Webhook, state: Option<&WebhookState>, circuit: Option<Circuit>) -> Webhook {
    match state {
        Some(state) if state.url == w.url.as_str() => Webhook {
            enabled: false,
            disabled_reason: Some(state.disabled_reason.clone()),
            circuit,
            ..w.clone()
        },
        _ => Webhook { circuit, ..w.clone() },
    }
}

/// Keeps `registry` current until `shutdown`: a refresh every
/// [`FOLLOW_EVERY`]. Failures are reported by the loops that need the
/// store; this one just tries again.
pub async fn follow(registry: Arc<Registry>, store: Arc<dyn Store>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(FOLLOW_EVERY) => {}
        }
        if let Err(e) = registry.refresh(store.as_ref()).await {
            tracing::debug!(error = %e, "could not read webhook changes");
        }
    }
}
