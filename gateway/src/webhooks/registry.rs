//! The live set of webhooks, swapped whole on change.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::Webhook;
use crate::store::WebhookState;

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

    /// Every webhook, in definition order.
    pub fn all(&self) -> &[Arc<Webhook>] {
        &self.list
    }

    /// The enabled webhooks an event of this type goes to.
    pub fn matching<'a>(
        &'a self,
        event_type: &'a str,
        test: bool,
    ) -> impl Iterator<Item = &'a Arc<Webhook>> + 'a {
        self.list.iter().filter(move |w| w.wants(event_type, test))
    }
}

/// The registry: config webhooks plus the state the store keeps about them.
#[derive(Debug)]
pub struct Registry {
    config: Vec<Arc<Webhook>>,
    current: RwLock<Arc<Snapshot>>,
}

impl Registry {
    /// A registry of the config webhooks, all as configured.
    pub fn new(config: Vec<Webhook>) -> Self {
        let config: Vec<Arc<Webhook>> = config.into_iter().map(Arc::new).collect();
        Registry {
            current: RwLock::new(Arc::new(Snapshot::new(config.clone()))),
            config,
        }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Lays the store's webhook states over the config webhooks. A state
    /// recorded for another URL is stale (the operator changed the URL in
    /// config.toml since the receiver answered 410) and is ignored.
    pub fn apply_states(&self, states: &HashMap<String, WebhookState>) {
        let list = self
            .config
            .iter()
            .map(|w| match states.get(&w.id) {
                Some(state) if state.url == w.url.as_str() => Arc::new(Webhook {
                    enabled: false,
                    disabled_reason: Some(state.disabled_reason.clone()),
                    ..(**w).clone()
                }),
                _ => w.clone(),
            })
            .collect();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Snapshot::new(list));
    }
}
