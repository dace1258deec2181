//! API webhooks and webhook states, with a version bumped on every change.

use std::collections::HashMap;

use async_trait::async_trait;

use super::{RedisStore, unavailable};
use crate::store::*;

#[derive(serde::Serialize, serde::Deserialize)]
struct StateJson {
    reason: String,
    url: String,
}

impl RedisStore {
    fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
        serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

#[async_trait]
impl WebhookStore for RedisStore {
    async fn disable_webhook(&self, webhook_id: &str, url: &str, reason: &str) -> Result<u64, StoreError> {
        let state = Self::json(&StateJson {
            reason: reason.to_owned(),
            url: url.to_owned(),
        })?;
        let moved: i64 = self
            .scripts
            .disable
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(webhook_id)
            .arg(state)
            .arg(self.retention_ms)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(moved.max(0) as u64)
    }

    async fn webhooks_version(&self) -> Result<u64, StoreError> {
        let v: Option<u64> = ::redis::cmd("GET")
            .arg(self.key("webhooks:version"))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(v.unwrap_or(0))
    }

    async fn load_webhooks(&self) -> Result<(u64, Vec<StoredWebhook>, HashMap<String, WebhookState>), StoreError> {
        let (version, hooks, states): (Option<u64>, HashMap<String, String>, HashMap<String, String>) = ::redis::pipe()
            .atomic()
            .cmd("GET")
            .arg(self.key("webhooks:version"))
            .cmd("HGETALL")
            .arg(self.key("webhooks"))
            .cmd("HGETALL")
            .arg(self.key("whstate"))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        let mut list = Vec::with_capacity(hooks.len());
        for (id, json) in hooks {
            match serde_json::from_str::<StoredWebhook>(&json) {
                Ok(w) => list.push(w),
                Err(e) => tracing::warn!(webhook_id = %id, error = %e, "unreadable stored webhook"),
            }
        }
        let states = states
            .into_iter()
            .filter_map(|(id, json)| {
                let s: StateJson = serde_json::from_str(&json).ok()?;
                Some((
                    id,
                    WebhookState {
                        disabled_reason: s.reason,
                        url: s.url,
                    },
                ))
            })
            .collect();
        Ok((version.unwrap_or(0), list, states))
    }

    async fn insert_webhook(&self, webhook: &StoredWebhook) -> Result<bool, StoreError> {
        let (added, _): (i64, i64) = ::redis::pipe()
            .atomic()
            .cmd("HSETNX")
            .arg(self.key("webhooks"))
            .arg(&webhook.id)
            .arg(Self::json(webhook)?)
            .cmd("INCR")
            .arg(self.key("webhooks:version"))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(added == 1)
    }

    async fn replace_webhook(&self, webhook: &StoredWebhook, clear_state: bool) -> Result<bool, StoreError> {
        // Only replace an existing entry: a concurrent DELETE wins.
        let script = ::redis::Script::new(
            "if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end \
             redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) \
             if ARGV[3] == '1' then redis.call('HDEL', KEYS[2], ARGV[1]) redis.call('HDEL', KEYS[4], ARGV[1]) end \
             redis.call('INCR', KEYS[3]) return 1",
        );
        let done: i64 = script
            .key(self.key("webhooks"))
            .key(self.key("whstate"))
            .key(self.key("webhooks:version"))
            .key(self.key("circuit"))
            .arg(&webhook.id)
            .arg(Self::json(webhook)?)
            .arg(if clear_state { "1" } else { "0" })
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(done == 1)
    }

    async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError> {
        let (removed, _, _, _): (i64, i64, i64, i64) = ::redis::pipe()
            .atomic()
            .cmd("HDEL")
            .arg(self.key("webhooks"))
            .arg(id)
            .cmd("HDEL")
            .arg(self.key("whstate"))
            .arg(id)
            .cmd("HDEL")
            .arg(self.key("circuit"))
            .arg(id)
            .cmd("INCR")
            .arg(self.key("webhooks:version"))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(removed == 1)
    }
}

fn circuit_json(c: Option<&Circuit>) -> Result<String, StoreError> {
    c.map_or_else(|| Ok(String::new()), RedisStore::json)
}

#[async_trait]
impl CircuitStore for RedisStore {
    async fn load_circuits(&self) -> Result<HashMap<String, Circuit>, StoreError> {
        let raw: HashMap<String, String> = ::redis::cmd("HGETALL")
            .arg(self.key("circuit"))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        let mut out = HashMap::with_capacity(raw.len());
        for (id, json) in raw {
            match serde_json::from_str::<Circuit>(&json) {
                Ok(c) => {
                    out.insert(id, c);
                }
                Err(e) => tracing::warn!(webhook_id = %id, error = %e, "ignoring an unreadable circuit breaker state"),
            }
        }
        Ok(out)
    }

    async fn swap_circuit(
        &self,
        webhook_id: &str,
        expected: Option<&Circuit>,
        new: Option<&Circuit>,
    ) -> Result<bool, StoreError> {
        let swapped: i64 = self
            .scripts
            .circuit
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(webhook_id)
            .arg(circuit_json(expected)?)
            .arg(circuit_json(new)?)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(swapped == 1)
    }
}
