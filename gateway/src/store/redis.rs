//! The Redis store: queue, records, webhook state and rate limits, shared by
//! every gateway that uses the same Redis and prefix.
//!
//! Every multi-key change is one Lua script (files in `redis/lua/`), so it is
//! atomic and one round trip, and every script takes a batch. Scripts read
//! the clock with `TIME`, so gateways on several hosts agree on due times
//! and rate-limit slots. Scripts build key names from the prefix, so this
//! needs a standalone Redis (or one shard), not Redis Cluster.
//!
//! Key layout (`P` = `[store] prefix`):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:evt:{id}` | hash | `type`, `data` (raw JSON), `test`, `createdAt`, `pending` (deliveries not final yet); expires `retention` after its last delivery is final |
//! | `P:dlv:{id}` | hash | `event`, `webhook`, `type`, `test`, `status`, `attempts`, `retryBase`, `createdAt`, `updatedAt`, `due`, `lease` (owner or ""), optional `payload`; expires `retention` after it is final |
//! | `P:dlv:{id}:att` | list | attempt records (JSON), oldest first; same expiry |
//! | `P:q:first` | zset | delivery id -> due ms, first attempts |
//! | `P:q:retry` | zset | delivery id -> due ms, retries |
//! | `P:leases` | zset | delivery id -> lease expiry ms, claimed deliveries |
//! | `P:wh:{webhook}:pending` | set | delivery ids not final yet (dead-lettered on 410) |
//! | `P:dead` | zset | delivery id -> ms it died: the dead-letter queue |
//! | `P:idx:dlv`, `P:idx:wh:{webhook}` | zset | delivery id -> created ms, for history; trimmed to `retention` |
//! | `P:whstate` | hash | webhook id -> JSON state (disabled by 410) |
//! | `P:rl:{key}` | string | GCRA theoretical arrival time (µs); expires when idle |
//!
//! A delivery is in exactly one of `q:first`, `q:retry`, `leases` while its
//! status is `pending` or `failed`, and in none once final.

mod decode;

use std::collections::HashMap;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Script, Value};
use async_trait::async_trait;
use bytes::Bytes;

use super::*;
use decode::{as_int, field_map};

/// The Lua scripts, loaded once per connection (EVALSHA, reloaded on NOSCRIPT).
struct Scripts {
    enqueue: Script,
    claim: Script,
    complete: Script,
    disable: Script,
    gcra: Script,
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            enqueue: Script::new(include_str!("redis/lua/enqueue.lua")),
            claim: Script::new(include_str!("redis/lua/claim.lua")),
            complete: Script::new(include_str!("redis/lua/complete.lua")),
            disable: Script::new(include_str!("redis/lua/disable.lua")),
            gcra: Script::new(include_str!("redis/lua/gcra.lua")),
        }
    }
}

/// A store on one Redis, under one key prefix.
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    retention_ms: u64,
    scripts: Scripts,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: ::redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl RedisStore {
    /// A store on `url` (not connected yet: the first command connects, and
    /// a lost connection is re-established on demand with backoff).
    pub fn open(url: &str, prefix: &str, retention: Duration) -> Result<Self, StoreError> {
        let client = ::redis::Client::open(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid store.url: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(unavailable)?;
        Ok(RedisStore {
            conn,
            prefix: prefix.to_owned(),
            retention_ms: retention.as_millis().max(1) as u64,
            scripts: Scripts::new(),
        })
    }

    fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.prefix)
    }
}

#[async_trait]
impl DeliveryQueue for RedisStore {
    async fn enqueue(
        &self,
        event: &NewEvent,
        deliveries: &[NewDelivery],
    ) -> Result<(), StoreError> {
        let mut inv = self.scripts.enqueue.prepare_invoke();
        inv.arg(&self.prefix)
            .arg(&event.id)
            .arg(&event.event_type)
            .arg(event.data.as_ref())
            .arg(if event.test { "1" } else { "0" })
            .arg(self.retention_ms)
            .arg(deliveries.len());
        for d in deliveries {
            inv.arg(&d.id).arg(&d.webhook_id);
        }
        let _: Value = inv
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn claim(&self, req: &ClaimRequest) -> Result<ClaimBatch, StoreError> {
        let budget = req.first.max(req.retry);
        let reply: Value = self
            .scripts
            .claim
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(budget)
            .arg(req.retry.min(budget))
            .arg(req.lease.as_millis() as u64)
            .arg(&req.owner)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        decode::claim_batch(reply)
    }

    async fn complete(&self, batch: &[Completion]) -> Result<Vec<bool>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = self.scripts.complete.prepare_invoke();
        inv.arg(&self.prefix)
            .arg(self.retention_ms)
            .arg(batch.len());
        for c in batch {
            let (kind, delay) = match &c.outcome {
                Outcome::Succeeded => ("s", 0),
                Outcome::Filtered => ("f", 0),
                Outcome::Dead => ("d", 0),
                Outcome::Retry(d) => ("r", d.as_millis() as u64),
                Outcome::Defer(d) => ("w", d.as_millis() as u64),
            };
            let attempt = match &c.attempt {
                Some(a) => {
                    serde_json::to_string(a).map_err(|e| StoreError::Corrupt(e.to_string()))?
                }
                None => String::new(),
            };
            inv.arg(&c.delivery_id)
                .arg(&c.owner)
                .arg(kind)
                .arg(delay)
                .arg(attempt)
                .arg(&c.event_id)
                .arg(&c.webhook_id);
        }
        let reply: Value = inv
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        match reply {
            Value::Array(items) => Ok(items.iter().map(|v| as_int(v) == Some(1)).collect()),
            other => Err(StoreError::Corrupt(format!(
                "complete: unexpected reply {other:?}"
            ))),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let _: String = ::redis::cmd("PING")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[async_trait]
impl Records for RedisStore {
    async fn delivery(&self, id: &str) -> Result<Option<DeliveryRecord>, StoreError> {
        let dk = self.key(&format!("dlv:{id}"));
        let (fields, attempts): (Value, Vec<Vec<u8>>) = ::redis::pipe()
            .cmd("HGETALL")
            .arg(&dk)
            .cmd("LRANGE")
            .arg(format!("{dk}:att"))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        let f = field_map(fields);
        if f.is_empty() {
            return Ok(None);
        }
        let get = |k: &str| {
            f.get(k)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        let num = |k: &str| get(k).parse::<u64>().ok();
        let event_id = get("event");
        let payload: Option<Vec<u8>> = match f.get("payload") {
            Some(p) => Some(p.clone()),
            None => ::redis::cmd("HGET")
                .arg(self.key(&format!("evt:{event_id}")))
                .arg("data")
                .query_async(&mut self.conn.clone())
                .await
                .map_err(unavailable)?,
        };
        let status = Status::parse(&get("status")).ok_or_else(|| {
            StoreError::Corrupt(format!("delivery {id}: unknown status {:?}", get("status")))
        })?;
        let attempts = attempts
            .iter()
            .map(|a| {
                serde_json::from_slice(a)
                    .map_err(|e| StoreError::Corrupt(format!("attempt record: {e}")))
            })
            .collect::<Result<Vec<AttemptRecord>, _>>()?;
        Ok(Some(DeliveryRecord {
            id: id.to_owned(),
            webhook_id: get("webhook"),
            event_type: get("type"),
            status,
            test: get("test") == "1",
            created_at_ms: num("createdAt").unwrap_or(0),
            updated_at_ms: num("updatedAt").unwrap_or(0),
            next_attempt_at_ms: match status {
                Status::Pending | Status::Failed => num("due"),
                _ => None,
            },
            payload: Bytes::from(payload.unwrap_or_default()),
            event_id,
            attempts,
        }))
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StateJson {
    reason: String,
    url: String,
}

#[async_trait]
impl WebhookStates for RedisStore {
    async fn disable_webhook(
        &self,
        webhook_id: &str,
        url: &str,
        reason: &str,
    ) -> Result<u64, StoreError> {
        let state = serde_json::to_string(&StateJson {
            reason: reason.to_owned(),
            url: url.to_owned(),
        })
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
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

    async fn webhook_states(&self) -> Result<HashMap<String, WebhookState>, StoreError> {
        let all: HashMap<String, String> = ::redis::cmd("HGETALL")
            .arg(self.key("whstate"))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(all
            .into_iter()
            .filter_map(|(id, json): (String, String)| {
                let s: StateJson = serde_json::from_str(&json).ok()?;
                Some((
                    id,
                    WebhookState {
                        disabled_reason: s.reason,
                        url: s.url,
                    },
                ))
            })
            .collect())
    }
}

#[async_trait]
impl RateLimiter for RedisStore {
    async fn acquire(&self, reqs: &[RateRequest]) -> Result<Vec<RateDecision>, StoreError> {
        if reqs.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = self.scripts.gcra.prepare_invoke();
        inv.arg(&self.prefix).arg(reqs.len());
        for r in reqs {
            inv.arg(&r.key)
                .arg(r.limit.interval_us)
                .arg(r.limit.tolerance_us);
        }
        let waits: Vec<i64> = inv
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(waits
            .into_iter()
            .map(|w| match w {
                w if w <= 0 => RateDecision::Allow,
                w => RateDecision::Wait(Duration::from_micros(w as u64)),
            })
            .collect())
    }
}
