//! The Redis store: queue, records, webhook state and rate limits, shared by
//! every gateway that uses the same Redis and prefix.
//!
//! Every multi-key change is one Lua script (files in `redis/lua/`), so it is
//! atomic and one round trip, and every script takes a batch: claims and
//! outcomes are batched by the dispatcher, events by the ingest group
//! commit (`ingest`). Scripts pass times to Redis as integer strings. Scripts read
//! the clock with `TIME`, so gateways on several hosts agree on due times
//! and rate-limit slots. Scripts build key names from the prefix (`ARGV[1]`).
//!
//! It runs on a standalone Redis or on a Redis Cluster (`[store]
//! cluster_nodes`, `conn.rs`). On a cluster every key of the store is in ONE
//! hash slot: the prefix the keys are built from is `{P}` instead of `P`
//! (`{P}:q:first`, `{P}:evt:...`: Redis hashes only the part in braces), so
//! scripts and pipelines touch one slot, and every script declares
//! `P:q:first` (the route key) as `KEYS[1]`, which is how the cluster client
//! knows the node to send it to (it is unused in Lua). On a standalone Redis
//! the key names are `P:...` as they always were. One slot means one master
//! holds the whole store: the cluster gives failover to a replica, not more
//! capacity. Spreading the queues over slots (shards, each a hash tag of its
//! own) is the next step and not done here.
//!
//! Key layout (`P` = `[store] prefix`, `{P}` on a cluster):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:evt:{id}` | hash | `type`, `data` (raw JSON), `test`, `createdAt`, `pending` (deliveries not final yet); expires `retention` after its last delivery is final |
//! | `P:dlv:{id}` | hash | `event`, `webhook`, `type`, `test`, `status`, `attempts`, `retryBase`, `createdAt`, `updatedAt`, `due`, `lease` (owner or ""), `att` (attempt records as JSON lines, oldest first), optional `payload`; expires `retention` after it is final |
//! | `P:q:first` | zset | delivery id -> due ms, first attempts |
//! | `P:q:retry` | zset | delivery id -> due ms, retries |
//! | `P:leases` | zset | delivery id -> lease expiry ms, claimed deliveries |
//! | `P:wh:{webhook}:pending` | set | delivery ids not final yet (dead-lettered on 410) |
//! | `P:dead` | zset | delivery id -> ms it died: the dead-letter queue |
//! | `P:idx:dlv`, `P:idx:wh:{webhook}` | zset | delivery id -> created ms, for history; trimmed to `retention` |
//! | `P:whstate` | hash | webhook id -> JSON state (disabled by 410) |
//! | `P:circuit` | hash | webhook id -> JSON circuit breaker (absent: closed) |
//! | `P:webhooks` | hash | API webhook id -> `StoredWebhook` JSON |
//! | `P:webhooks:version` | string | the number of the last webhook change |
//! | `P:webhooks:log` | zset | the webhook change log: `seq:nonce:webhook id` -> seq, the last `webhook_log_cap` changes (`store::changes`) |
//! | `P:rl:{key}` | string | GCRA theoretical arrival time (µs); expires when idle |
//! | `P:st:...` | hash, set | delivery statistics (`redis/stats.rs`) |
//!
//! A delivery is in exactly one of `q:first`, `q:retry`, `leases` while its
//! status is `pending` or `failed`, and in none once final.

mod conn;
mod decode;
mod history;
mod ingest;
mod limits;
mod stats;
mod transfer;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use ::redis::{Script, ScriptInvocation, Value};
use async_trait::async_trait;

use super::*;
use conn::Conn;
use decode::as_int;

/// A Lua script whose invocations declare the store's route key as
/// `KEYS[1]` (see the module docs).
pub(crate) struct RoutedScript {
    script: Script,
    route_key: String,
}

impl RoutedScript {
    fn new(code: &str, route_key: &str) -> Self {
        RoutedScript {
            script: Script::new(code),
            route_key: route_key.to_owned(),
        }
    }

    /// An invocation with the route key; add the arguments.
    pub(crate) fn prepare_invoke(&self) -> ScriptInvocation<'_> {
        let mut inv = self.script.prepare_invoke();
        inv.key(&self.route_key);
        inv
    }
}

/// The Lua scripts, loaded once per connection (EVALSHA, reloaded on NOSCRIPT).
pub(crate) struct Scripts {
    pub(crate) claim: RoutedScript,
    pub(crate) complete: RoutedScript,
    pub(crate) disable: RoutedScript,
    pub(crate) gcra: RoutedScript,
    pub(crate) requeue: RoutedScript,
    pub(crate) circuit: RoutedScript,
    pub(crate) stats: RoutedScript,
    pub(crate) import: RoutedScript,
    pub(crate) webhook: RoutedScript,
    pub(crate) import_webhooks: RoutedScript,
}

impl Scripts {
    fn new(route_key: &str) -> Self {
        let script = |code| RoutedScript::new(code, route_key);
        // Scripts that change webhooks: the change log's function in front.
        let logging =
            |body: &str| RoutedScript::new(&format!("{}\n{body}", include_str!("redis/lua/whlog.lua")), route_key);
        Scripts {
            claim: script(include_str!("redis/lua/claim.lua")),
            complete: script(include_str!("redis/lua/complete.lua")),
            disable: logging(include_str!("redis/lua/disable.lua")),
            gcra: script(include_str!("redis/lua/gcra.lua")),
            requeue: script(include_str!("redis/lua/requeue.lua")),
            circuit: logging(include_str!("redis/lua/circuit.lua")),
            stats: script(include_str!("redis/lua/stats.lua")),
            import: script(include_str!("redis/lua/import.lua")),
            webhook: logging(include_str!("redis/lua/webhook.lua")),
            import_webhooks: logging(include_str!("redis/lua/import_webhooks.lua")),
        }
    }
}

/// A store on one Redis or one Redis Cluster, under one key prefix.
pub struct RedisStore {
    pub(crate) conn: Conn,
    /// The prefix key names are built from: `P`, or `{P}` on a cluster.
    pub(crate) prefix: String,
    pub(crate) retention_ms: u64,
    pub(crate) scripts: Scripts,
    /// Webhook change log entries kept.
    pub(crate) webhook_log_cap: u64,
    ingest: Arc<ingest::Ingest>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

pub(crate) fn unavailable(e: ::redis::RedisError) -> StoreError {
    StoreError::Redis(Arc::new(e))
}

impl RedisStore {
    /// A store on the standalone Redis at `url` (not connected yet: the
    /// first command connects, and a lost connection is re-established on
    /// demand with backoff).
    pub fn open(url: &str, prefix: &str, retention: Duration) -> Result<Self, StoreError> {
        let conn = Conn::single(url).map_err(|e| StoreError::Unavailable(format!("invalid store.url: {e}")))?;
        Ok(Self::with_conn(conn, prefix.to_owned(), retention))
    }

    /// A store on the Redis Cluster that the seed nodes `nodes` belong to,
    /// all its keys in the hash slot of `{prefix}`. Connects in the
    /// background; needs a Tokio runtime.
    pub fn open_cluster(nodes: &[String], prefix: &str, retention: Duration) -> Result<Self, StoreError> {
        let conn =
            Conn::cluster(nodes).map_err(|e| StoreError::Unavailable(format!("invalid store.cluster_nodes: {e}")))?;
        Ok(Self::with_conn(conn, format!("{{{prefix}}}"), retention))
    }

    fn with_conn(conn: Conn, prefix: String, retention: Duration) -> Self {
        let retention_ms = retention.as_millis().max(1) as u64;
        let route_key = format!("{prefix}:q:first");
        RedisStore {
            ingest: ingest::Ingest::new(conn.clone(), prefix.clone(), &route_key, retention_ms),
            conn,
            prefix,
            retention_ms,
            scripts: Scripts::new(&route_key),
            webhook_log_cap: WEBHOOK_LOG_CAP,
        }
    }

    /// Keeps `cap` webhook change log entries instead of
    /// [`WEBHOOK_LOG_CAP`] (at least 1).
    pub fn with_webhook_log_cap(mut self, cap: u64) -> Self {
        self.webhook_log_cap = cap.max(1);
        self
    }

    pub(crate) fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.prefix)
    }

    /// The key whose slot holds the whole store (see the module docs).
    pub(crate) fn route_key(&self) -> String {
        self.key("q:first")
    }
}

#[async_trait]
impl DeliveryQueue for RedisStore {
    async fn enqueue(
        &self,
        event: &NewEvent,
        deliveries: &[NewDelivery],
        idempotency: Option<&Idempotency>,
        limit: Option<&RateRequest>,
    ) -> Result<(Enqueued, Option<RateState>), StoreError> {
        self.ingest.enqueue(event, deliveries, idempotency, limit).await
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
        inv.arg(&self.prefix).arg(self.retention_ms).arg(batch.len());
        for c in batch {
            let (kind, delay) = match &c.outcome {
                Outcome::Succeeded => ("s", 0),
                Outcome::Filtered => ("f", 0),
                Outcome::Dead => ("d", 0),
                Outcome::Retry(d) => ("r", d.as_millis() as u64),
                Outcome::Defer(d) => ("w", d.as_millis() as u64),
            };
            let attempt = match &c.attempt {
                Some(a) => serde_json::to_string(a).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                None => String::new(),
            };
            inv.arg(&c.delivery_id)
                .arg(&c.owner)
                .arg(kind)
                .arg(delay)
                .arg(attempt)
                .arg(&c.event_id)
                .arg(&c.webhook_id);
            match &c.payload {
                Some(p) => inv.arg("1").arg(p.as_ref()),
                None => inv.arg("0").arg(""),
            };
        }
        let reply: Value = inv.invoke_async(&mut self.conn.clone()).await.map_err(unavailable)?;
        match reply {
            Value::Array(items) => Ok(items.iter().map(|v| as_int(v) == Some(1)).collect()),
            other => Err(StoreError::Corrupt(format!("complete: unexpected reply {other:?}"))),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.conn.ping(&self.route_key()).await.map_err(unavailable)
    }

    async fn queue_depths(&self) -> Result<QueueDepths, StoreError> {
        let (pending, failed, in_flight, dead): (u64, u64, u64, u64) = ::redis::pipe()
            .cmd("ZCARD")
            .arg(self.key("q:first"))
            .cmd("ZCARD")
            .arg(self.key("q:retry"))
            .cmd("ZCARD")
            .arg(self.key("leases"))
            .cmd("ZCARD")
            .arg(self.key("dead"))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(QueueDepths {
            pending,
            failed,
            in_flight,
            dead,
        })
    }
}
