//! API webhooks, webhook states and circuit breakers, and the webhook
//! change log (`P:webhooks:version`, `P:webhooks:log`; see
//! `store::changes`). Every write is one script that also logs the change;
//! reads by id are single hash fields, so nothing here but a full load
//! grows with the number of webhooks.

use std::collections::HashMap;

use async_trait::async_trait;

use super::{RedisStore, unavailable};
use crate::store::changes::{Judged, LogRead, judge};
use crate::store::*;

#[derive(serde::Serialize, serde::Deserialize)]
struct StateJson {
    reason: String,
    url: String,
}

impl RedisStore {
    pub(crate) fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
        serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// Runs the webhook script: `op` on `id`; whether it did anything.
    async fn webhook_op(&self, op: &str, id: &str, json: &str, clear_state: bool) -> Result<bool, StoreError> {
        let done: i64 = self
            .scripts
            .webhook
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(op)
            .arg(id)
            .arg(json)
            .arg(if clear_state { "1" } else { "0" })
            .arg(self.webhook_log_cap)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(done == 1)
    }

    /// The webhooks, states and breakers of `ids`, as they are now.
    async fn entries(&self, ids: Vec<String>) -> Result<Vec<WebhookEntry>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        type Fields = Vec<Option<String>>;
        let (hooks, states, circuits): (Fields, Fields, Fields) = ::redis::pipe()
            .atomic()
            .cmd("HMGET")
            .arg(self.key("webhooks"))
            .arg(&ids)
            .cmd("HMGET")
            .arg(self.key("whstate"))
            .arg(&ids)
            .cmd("HMGET")
            .arg(self.key("circuit"))
            .arg(&ids)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(ids
            .into_iter()
            .zip(hooks)
            .zip(states)
            .zip(circuits)
            .map(|(((id, hook), state), circuit)| WebhookEntry {
                webhook: hook.and_then(|j| read_webhook(&id, &j)),
                state: state.and_then(|j| read_state(&j)),
                circuit: circuit.and_then(|j| read_circuit(&id, &j)),
                id,
            })
            .collect())
    }
}

fn read_webhook(id: &str, json: &str) -> Option<StoredWebhook> {
    serde_json::from_str(json)
        .map_err(|e| tracing::warn!(webhook_id = %id, error = %e, "unreadable stored webhook"))
        .ok()
}

fn read_state(json: &str) -> Option<WebhookState> {
    let s: StateJson = serde_json::from_str(json).ok()?;
    Some(WebhookState {
        disabled_reason: s.reason,
        url: s.url,
    })
}

fn read_circuit(id: &str, json: &str) -> Option<Circuit> {
    serde_json::from_str(json)
        .map_err(|e| tracing::warn!(webhook_id = %id, error = %e, "ignoring an unreadable circuit breaker state"))
        .ok()
}

/// A 410 state as stored (for import).
pub(super) fn state_json(reason: &str, url: &str) -> Result<String, StoreError> {
    RedisStore::json(&StateJson {
        reason: reason.to_owned(),
        url: url.to_owned(),
    })
}

#[async_trait]
impl WebhookStore for RedisStore {
    async fn disable_webhook(&self, webhook_id: &str, url: &str, reason: &str) -> Result<u64, StoreError> {
        // The state first, so gateways stop claiming for it; then each
        // shard's waiting deliveries become dead letters.
        let _: i64 = self
            .scripts
            .disable
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(webhook_id)
            .arg(state_json(reason, url)?)
            .arg(self.webhook_log_cap)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        let mut moved = 0;
        for shard in self.shards.all() {
            let n: i64 = self
                .scripts
                .dead_letter
                .on(shard)
                .arg(webhook_id)
                .arg(self.retention_ms)
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(unavailable)?;
            moved += n.max(0) as u64;
        }
        Ok(moved)
    }

    async fn load_webhooks(&self) -> Result<WebhookSet, StoreError> {
        type Full = (
            Option<u64>,
            Vec<(String, u64)>,
            HashMap<String, String>,
            HashMap<String, String>,
            HashMap<String, String>,
        );
        let (version, last, hooks, states, circuits): Full = ::redis::pipe()
            .atomic()
            .cmd("GET")
            .arg(self.key("webhooks:version"))
            .cmd("ZRANGE")
            .arg(self.key("webhooks:log"))
            .arg(-1)
            .arg(-1)
            .arg("WITHSCORES")
            .cmd("HGETALL")
            .arg(self.key("webhooks"))
            .cmd("HGETALL")
            .arg(self.key("whstate"))
            .cmd("HGETALL")
            .arg(self.key("circuit"))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        let seq = version.unwrap_or(0);
        // The newest entry is the cursor's unless the store was written
        // before it had a log (then there is no entry at `seq`).
        let mark = last
            .into_iter()
            .find(|(_, s)| *s == seq)
            .map(|(m, _)| m)
            .unwrap_or_default();
        Ok(WebhookSet {
            cursor: ChangeCursor { seq, mark },
            webhooks: hooks.iter().filter_map(|(id, j)| read_webhook(id, j)).collect(),
            states: states
                .into_iter()
                .filter_map(|(id, j)| Some((id, read_state(&j)?)))
                .collect(),
            circuits: circuits
                .into_iter()
                .filter_map(|(id, j)| {
                    let c = read_circuit(&id, &j)?;
                    Some((id, c))
                })
                .collect(),
        })
    }

    async fn webhook_changes(&self, since: &ChangeCursor, max: usize) -> Result<WebhookChanges, StoreError> {
        let log = self.key("webhooks:log");
        let (current, anchor, after): (Option<u64>, Vec<String>, Vec<(String, u64)>) = ::redis::pipe()
            .atomic()
            .cmd("GET")
            .arg(self.key("webhooks:version"))
            .cmd("ZRANGEBYSCORE")
            .arg(&log)
            .arg(since.seq)
            .arg(since.seq)
            .cmd("ZRANGEBYSCORE")
            .arg(&log)
            .arg(format!("({}", since.seq))
            .arg("+inf")
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(max.max(1))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        let read = LogRead {
            current: current.unwrap_or(0),
            anchor,
            after: after.into_iter().map(|(m, s)| (s, m)).collect(),
        };
        match judge(since, read, max.max(1)) {
            Judged::Resync => Ok(WebhookChanges::Resync),
            Judged::Apply { ids, cursor, more } => Ok(WebhookChanges::Changed {
                entries: self.entries(ids).await?,
                cursor,
                more,
            }),
        }
    }

    async fn webhook(&self, id: &str) -> Result<Option<StoredWebhook>, StoreError> {
        let json: Option<String> = ::redis::cmd("HGET")
            .arg(self.key("webhooks"))
            .arg(id)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(json.and_then(|j| read_webhook(id, &j)))
    }

    async fn insert_webhook(&self, webhook: &StoredWebhook) -> Result<bool, StoreError> {
        self.webhook_op("insert", &webhook.id, &Self::json(webhook)?, false)
            .await
    }

    async fn replace_webhook(&self, webhook: &StoredWebhook, clear_state: bool) -> Result<bool, StoreError> {
        self.webhook_op("replace", &webhook.id, &Self::json(webhook)?, clear_state)
            .await
    }

    async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError> {
        self.webhook_op("delete", id, "", false).await
    }
}

fn circuit_json(c: Option<&Circuit>) -> Result<String, StoreError> {
    c.map_or_else(|| Ok(String::new()), RedisStore::json)
}

#[async_trait]
impl CircuitStore for RedisStore {
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
            .arg(self.webhook_log_cap)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(swapped == 1)
    }
}
