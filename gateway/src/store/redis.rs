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
//! cluster_nodes`, `conn.rs`). The per-delivery keys are split into
//! `[store] shards` (`shards.rs`): each shard has a prefix of its own, a
//! hash tag on a cluster, so every script touches one shard's keys, in one
//! slot. The store-wide keys (webhooks, their state and change log, circuit
//! breakers, rate limits, statistics) are under the store's own prefix:
//! `P`, or `{P}` on a cluster. Every script declares a route key as
//! `KEYS[1]` (`<prefix>:q:first` of its shard, or of the store), which is how
//! the cluster client knows the node to send it to (unused in Lua).
//!
//! Key layout (`S` = a shard's prefix, `P` = the store's; with one shard,
//! `S` is `P`):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `S:evt:{id}` | hash | `type`, `data` (raw JSON, when at most 64 bytes; see below), `test`, `createdAt`, `pending` (deliveries not final yet); expires `retention` after its last delivery is final. Not written for an event with one delivery (that delivery holds the data) |
//! | `S:dlv:{id}` | hash | `webhook`, `type`, `status`, `attempts`, `updatedAt`, `due`; `test` = "1" for a test delivery; `event` unless `solo` = "1" (its event's only delivery: it holds the event's data, and the event id is the delivery's own with `evt_` in front); attempt records `a<n>` (and `x<ms>.<i>` for attempts whose lease was lost) as `attempt_text.rs` writes them; the delivered `payload` when a plugin changed it, chunked; `retryBase` once a retry schedule starts. Its creation time is the one in its time-sortable id. Expires `retention` after it is final |
//! | `S:dat:{id}` | string | the data of record `id` (an event, or a solo delivery) when longer than 64 bytes; expires, persists and is removed with its record |
//! | `S:q:first` | zset | delivery id -> due ms, first attempts |
//! | `S:q:retry` | zset | delivery id -> due ms, retries |
//! | `S:leases` | zset | delivery id -> lease expiry ms, claimed deliveries |
//! | `S:lo` | hash | delivery id -> "owner solo": who holds the lease |
//! | `S:wh:{webhook}:pending` | set | delivery ids not final yet (dead-lettered on 410) |
//! | `S:dead` | zset | delivery id -> 0: the dead-letter queue |
//! | `S:ix:{slice}`, `S:ix:wh:{webhook}:{slice}` | string | the history index: delivery ids separated by spaces, one string per slice of the id's time (its first 8 characters: 1.024 s; `lua/index.lua`) |
//! | `S:ix:dir`, `S:ix:wh:{webhook}:dir` | zset | slice -> 0: the index's slices, oldest first; `S:ix:n` counts the deliveries indexed |
//! | `S:idem:{key}` | string | an idempotency key's first answer |
//! | `P:meta` | hash | `shards`: the shard count the store was made with |
//! | `P:whstate` | hash | webhook id -> JSON state (disabled by 410) |
//! | `P:circuit` | hash | webhook id -> JSON circuit breaker (absent: closed) |
//! | `P:webhooks` | hash | API webhook id -> `StoredWebhook` JSON |
//! | `P:webhooks:version` | string | the number of the last webhook change |
//! | `P:webhooks:log` | zset | the webhook change log: `seq:nonce:webhook id` -> seq, the last `webhook_log_cap` changes (`store::changes`) |
//! | `P:rl:{key}` | string | GCRA theoretical arrival time (µs); expires when idle. On a cluster `{P:rl:key}`: each rate limit in a slot of its own (`limits.rs`) |
//! | `P:st:...` | hash, set | delivery statistics (`redis/stats.rs`) |
//!
//! A delivery is in exactly one of `q:first`, `q:retry`, `leases` while its
//! status is `pending` or `failed`, and in none once final.
//!
//! Records are kept small, so Redis keeps each hash in its compact
//! encoding (a listpack: every field at most 64 bytes, at most 128 fields):
//! event data longer than 64 bytes is a string key of its own, `S:dat:{id}`
//! (`lua/data.lua`: one value to write and read back), and a plugin's
//! longer payload is stored as chunks `<c>0`, `<c>1`, ... and `<c>n` (their
//! count), `lua/chunks.lua`. Records written before the data keys hold longer
//! data in chunks `d0`, ... `dn`; every reader reads both.

mod attempt_text;
mod cluster;
mod conn;
mod deadline;
mod decode;
mod history;
mod ingest;
mod lean;
mod limits;
mod resp;
mod shards;
mod stats;
mod transfer;
mod webhooks;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::join_all;

use ::redis::{Script, Value};
use async_trait::async_trait;

use super::*;
use conn::Conn;
use decode::as_int;
pub use shards::MAX_SHARDS;
use shards::{Shard, Shards};

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

    /// An invocation routed to the store-wide keys; add the arguments.
    pub(crate) fn prepare_invoke(&self) -> Invocation<'_> {
        Invocation::new(&self.script, &self.route_key)
    }

    /// An invocation routed to the slot of `key`; add the arguments.
    pub(crate) fn on_key(&self, key: &str) -> Invocation<'_> {
        Invocation::new(&self.script, key)
    }

    /// An invocation routed to `shard`, its prefix the first argument.
    pub(crate) fn on(&self, shard: &Shard) -> Invocation<'_> {
        self.on_sized(shard, 0, 0)
    }

    /// [`Self::on`] with room for `args` more arguments of `bytes` in all.
    pub(crate) fn on_sized(&self, shard: &Shard, args: usize, bytes: usize) -> Invocation<'_> {
        let mut inv = Invocation::sized(&self.script, &shard.route, args, bytes);
        inv.arg(&shard.prefix);
        inv
    }
}

/// One call of a script with one key (`KEYS[1]`, the route) and its
/// arguments: the `EVALSHA` command itself, written as the arguments are
/// added. `redis::ScriptInvocation` keeps every argument in a buffer of its
/// own and copies them all into a command when called, which cost an
/// allocation and a copy per argument: dozens per delivery.
pub(crate) struct Invocation<'a> {
    script: &'a Script,
    cmd: ::redis::Cmd,
}

impl<'a> Invocation<'a> {
    fn new(script: &'a Script, route: &str) -> Self {
        Self::sized(script, route, 0, 0)
    }

    /// With room for `args` arguments of `bytes` in all beyond the usual
    /// few, so a large call is not grown a piece at a time.
    fn sized(script: &'a Script, route: &str, args: usize, bytes: usize) -> Self {
        let mut cmd = ::redis::Cmd::with_capacity(16 + args, 256 + bytes);
        cmd.arg("EVALSHA").arg(script.get_hash()).arg(1).arg(route);
        Invocation { script, cmd }
    }

    /// Adds an argument (`ARGV[n]`).
    pub(crate) fn arg<T: ::redis::ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        self.cmd.arg(arg);
        self
    }

    /// Runs the script; where Redis does not have it (NOSCRIPT: a restart,
    /// a promoted replica), loads it and runs it again.
    pub(crate) async fn invoke_async<T: ::redis::FromRedisValue>(
        &self,
        con: &mut impl ::redis::aio::ConnectionLike,
    ) -> ::redis::RedisResult<T> {
        match self.cmd.query_async(con).await {
            Err(e) if e.kind() == ::redis::ErrorKind::Server(::redis::ServerErrorKind::NoScript) => {
                self.script.load_async(con).await?;
                self.cmd.query_async(con).await
            }
            answer => answer,
        }
    }
}

/// The Lua scripts, loaded once per connection (EVALSHA, reloaded on NOSCRIPT).
pub(crate) struct Scripts {
    pub(crate) claim: RoutedScript,
    pub(crate) complete: RoutedScript,
    pub(crate) disable: RoutedScript,
    pub(crate) requeue: RoutedScript,
    pub(crate) dead_letter: RoutedScript,
    pub(crate) trim: RoutedScript,
    pub(crate) purge: RoutedScript,
    pub(crate) migrate_index: RoutedScript,
    pub(crate) circuit: RoutedScript,
    pub(crate) stats: RoutedScript,
    pub(crate) import: RoutedScript,
    pub(crate) webhook: RoutedScript,
    pub(crate) import_webhooks: RoutedScript,
}

/// A script on delivery records with its helpers in front: variadic
/// commands (`bulk.lua`), chunked values (`chunks.lua`), event data
/// (`data.lua`) and the history index (`index.lua`).
pub(crate) fn records_script(body: &str) -> String {
    format!(
        "{}\n{}\n{}\n{}\n{body}",
        include_str!("redis/lua/bulk.lua"),
        include_str!("redis/lua/chunks.lua"),
        include_str!("redis/lua/data.lua"),
        include_str!("redis/lua/index.lua")
    )
}

/// A script that takes rate limits, with the GCRA function (`rate.lua`) in
/// front.
pub(crate) fn rate_script(body: &str) -> String {
    format!("{}\n{body}", include_str!("redis/lua/rate.lua"))
}

impl Scripts {
    fn new(route_key: &str) -> Self {
        let script = |code| RoutedScript::new(code, route_key);
        // Scripts on delivery records: the variadic helper, chunked values
        // and the history index in front.
        let records = |body: &str| RoutedScript::new(&records_script(body), route_key);
        // Scripts that change webhooks: the change log's function in front.
        let logging =
            |body: &str| RoutedScript::new(&format!("{}\n{body}", include_str!("redis/lua/whlog.lua")), route_key);
        Scripts {
            claim: records(&rate_script(include_str!("redis/lua/claim.lua"))),
            complete: records(include_str!("redis/lua/complete.lua")),
            disable: logging(include_str!("redis/lua/disable.lua")),
            requeue: records(include_str!("redis/lua/requeue.lua")),
            dead_letter: records(include_str!("redis/lua/dead_letter.lua")),
            trim: records(include_str!("redis/lua/trim.lua")),
            purge: records(include_str!("redis/lua/purge.lua")),
            migrate_index: records(include_str!("redis/lua/migrate_index.lua")),
            circuit: logging(include_str!("redis/lua/circuit.lua")),
            stats: script(include_str!("redis/lua/stats.lua")),
            import: records(include_str!("redis/lua/import.lua")),
            webhook: logging(include_str!("redis/lua/webhook.lua")),
            import_webhooks: logging(include_str!("redis/lua/import_webhooks.lua")),
        }
    }
}

/// A store on one Redis or one Redis Cluster, under one key prefix.
pub struct RedisStore {
    pub(crate) conn: Conn,
    /// The prefix store-wide key names are built from: `P`, or `{P}` on a
    /// cluster.
    pub(crate) prefix: String,
    /// The configured prefix (`P`).
    name: String,
    /// On a Redis Cluster.
    cluster: bool,
    pub(crate) shards: Arc<Shards>,
    pub(crate) retention_ms: u64,
    pub(crate) scripts: Scripts,
    /// Webhook change log entries kept.
    pub(crate) webhook_log_cap: u64,
    /// Replicas that must confirm ingest and completion writes (`WAIT`).
    pub(crate) wait_replicas: u32,
    /// Deliveries the history keeps at most (0: no bound but retention).
    pub(crate) history_max: u64,
    /// Rate limits (`limits.rs`).
    limiter: Arc<limits::Limiter>,
    /// Where the next claim starts among the shards.
    next_shard: Arc<AtomicUsize>,
    ingest: Arc<ingest::Ingest>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

pub(crate) fn unavailable(e: ::redis::RedisError) -> StoreError {
    StoreError::Redis(Arc::new(e))
}

/// Deliveries a claim asks one shard for, at least (fewer shards are asked
/// when the budget is small, so each script does a useful amount of work).
const MIN_CLAIM_PER_SHARD: usize = 32;
/// How long ingest and completions wait for replicas (`WAIT`).
const WAIT_REPLICAS_TIMEOUT_MS: u64 = 2_000;

impl RedisStore {
    /// A store on the standalone Redis at `url` (not connected yet: the
    /// first command connects, and a lost connection is re-established on
    /// demand with backoff), with one shard.
    pub fn open(url: &str, prefix: &str, retention: Duration) -> Result<Self, StoreError> {
        let conn = Conn::single(url).map_err(|e| StoreError::Unavailable(format!("invalid store.url: {e}")))?;
        Ok(Self::with_conn(conn, prefix.to_owned(), prefix, retention, 1, false))
    }

    /// A store on the Redis Cluster that the seed nodes `nodes` belong to,
    /// with [`DEFAULT_CLUSTER_SHARDS`] shards. Connects in the background;
    /// needs a Tokio runtime.
    pub fn open_cluster(nodes: &[String], prefix: &str, retention: Duration) -> Result<Self, StoreError> {
        let conn =
            Conn::cluster(nodes).map_err(|e| StoreError::Unavailable(format!("invalid store.cluster_nodes: {e}")))?;
        Ok(Self::with_conn(
            conn,
            format!("{{{prefix}}}"),
            prefix,
            retention,
            DEFAULT_CLUSTER_SHARDS,
            true,
        ))
    }

    fn with_conn(conn: Conn, prefix: String, name: &str, retention: Duration, shards: usize, cluster: bool) -> Self {
        let retention_ms = retention.as_millis().max(1) as u64;
        let route_key = format!("{prefix}:q:first");
        let shards = Arc::new(Shards::new(&prefix, name, shards));
        let limiter = Arc::new(limits::Limiter::new(name, &prefix, cluster));
        RedisStore {
            ingest: ingest::Ingest::new(
                conn.clone(),
                shards.clone(),
                limiter.clone(),
                &route_key,
                retention_ms,
                0,
            ),
            limiter,
            cluster,
            next_shard: Arc::new(AtomicUsize::new(0)),
            shards,
            conn,
            prefix,
            name: name.to_owned(),
            retention_ms,
            scripts: Scripts::new(&route_key),
            webhook_log_cap: WEBHOOK_LOG_CAP,
            wait_replicas: 0,
            history_max: 0,
        }
    }

    /// Splits the per-delivery keys into `n` shards (1..=[`MAX_SHARDS`])
    /// instead of the default (1 on a standalone Redis,
    /// [`DEFAULT_CLUSTER_SHARDS`] on a cluster). Every gateway on the store
    /// must use the same count; [`RedisStore::check_layout`] refuses another.
    pub fn with_shards(self, n: usize) -> Self {
        let retention = Duration::from_millis(self.retention_ms);
        let (cap, wait, history) = (self.webhook_log_cap, self.wait_replicas, self.history_max);
        let mut s = Self::with_conn(self.conn, self.prefix, &self.name, retention, n, self.cluster);
        s.webhook_log_cap = cap;
        s.history_max = history;
        s.with_wait_replicas(wait)
    }

    /// Answers ingest and completions only once `n` replicas have their
    /// writes (Redis `WAIT`); 0 does not wait.
    pub fn with_wait_replicas(mut self, n: u32) -> Self {
        self.wait_replicas = n;
        self.ingest = ingest::Ingest::new(
            self.conn.clone(),
            self.shards.clone(),
            self.limiter.clone(),
            &self.route_key(),
            self.retention_ms,
            n,
        );
        self
    }

    /// Keeps at most `n` deliveries of history (spread evenly over the
    /// shards): past it the oldest finished ones are removed before their
    /// retention ends. 0 = no bound.
    pub fn with_history_max(mut self, n: u64) -> Self {
        self.history_max = n;
        self
    }

    /// Keeps `cap` webhook change log entries instead of
    /// [`WEBHOOK_LOG_CAP`] (at least 1).
    pub fn with_webhook_log_cap(mut self, cap: u64) -> Self {
        self.webhook_log_cap = cap.max(1);
        self
    }

    /// The number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    pub(crate) fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.prefix)
    }

    /// The key whose slot holds the store-wide keys (see the module docs).
    pub(crate) fn route_key(&self) -> String {
        self.key("q:first")
    }

    /// Records the shard count in a new store, and refuses to run on a
    /// store made with another one (its deliveries would not be found).
    pub async fn check_layout(&self) -> Result<(), StoreError> {
        let meta = self.key("meta");
        let n = self.shards.len();
        let stored: Option<usize> = ::redis::cmd("HGET")
            .arg(&meta)
            .arg("shards")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        let stored = match stored {
            Some(s) => s,
            None => {
                // A store from before shards were recorded used one shard,
                // under the store's own prefix.
                let old: u64 = ::redis::cmd("EXISTS")
                    .arg(
                        ["q:first", "q:retry", "leases", "dead", "idx:dlv"]
                            .map(|k| self.key(k))
                            .to_vec(),
                    )
                    .query_async(&mut self.conn.clone())
                    .await
                    .map_err(unavailable)?;
                let made = if old > 0 { 1 } else { n };
                let _: i64 = ::redis::cmd("HSETNX")
                    .arg(&meta)
                    .arg("shards")
                    .arg(made)
                    .query_async(&mut self.conn.clone())
                    .await
                    .map_err(unavailable)?;
                ::redis::cmd("HGET")
                    .arg(&meta)
                    .arg("shards")
                    .query_async::<Option<usize>>(&mut self.conn.clone())
                    .await
                    .map_err(unavailable)?
                    .unwrap_or(made)
            }
        };
        if stored == n {
            return Ok(());
        }
        Err(StoreError::Layout(format!(
            "the store under prefix \"{}\" was made with shards = {stored}, and this gateway is set to {n}; \
             set [store] shards = {stored}, or move the data to a store with the new count: stop the gateways, \
             `hookgate store export`, then `hookgate store import` into a new prefix (or an empty Redis) with the new shards",
            self.name
        )))
    }

    /// Waits until `wait_replicas` replicas have this connection's writes
    /// to `shard` (nothing when 0).
    pub(crate) async fn wait_for_replicas(&self, route: &str) -> Result<(), StoreError> {
        wait_for_replicas(&self.conn, route, self.wait_replicas).await
    }

    /// Every shard, in the order a claim asks them: from a start that
    /// moves by one each claim, so small claims take turns.
    fn claim_order(&self) -> Vec<usize> {
        let n = self.shards.len();
        let start = self.next_shard.fetch_add(1, Ordering::Relaxed);
        (0..n).map(|i| (start + i) % n).collect()
    }

    async fn claim_shard(&self, index: usize, share: usize, req: &ClaimRequest) -> Result<ClaimBatch, StoreError> {
        let shard = &self.shards.all()[index];
        let mut inv = self.scripts.claim.on(shard);
        inv.arg(share)
            .arg(req.retry.min(share))
            .arg(req.lease.as_millis() as u64)
            .arg(&req.owner);
        // The webhooks' rate limits, taken by the script where it can reach
        // their keys (`Limiter::shared_slot`).
        let limits: &[ClaimLimit] = if self.limiter.shared_slot() { &req.limits } else { &[] };
        inv.arg(limits.len());
        for l in limits {
            inv.arg(&l.webhook_id)
                .arg(self.limiter.key(&l.limit.key))
                .arg(l.limit.limit.interval_us)
                .arg(l.limit.limit.tolerance_us)
                .arg(l.at_most);
        }
        let reply: Value = inv.invoke_async(&mut self.conn.clone()).await.map_err(unavailable)?;
        decode::claim_batch(reply)
    }

    async fn complete_shard(&self, shard: &Shard, batch: &[&Completion]) -> Result<Vec<bool>, StoreError> {
        let mut inv = self.scripts.complete.on(shard);
        inv.arg(self.retention_ms).arg(batch.len());
        for c in batch {
            let (kind, delay) = match &c.outcome {
                Outcome::Succeeded => ("s", 0),
                Outcome::Filtered => ("f", 0),
                Outcome::Dead => ("d", 0),
                Outcome::Retry(d) => ("r", d.as_millis() as u64),
                Outcome::Defer(d) => ("w", d.as_millis() as u64),
            };
            let (attempt, number) = match &c.attempt {
                Some(a) => (attempt_text::encode(a), a.attempt),
                None => (String::new(), 0),
            };
            inv.arg(&c.delivery_id)
                .arg(&c.owner)
                .arg(kind)
                .arg(delay)
                .arg(attempt)
                .arg(number)
                .arg(&c.event_id)
                .arg(&c.webhook_id);
            match &c.payload {
                Some(p) => inv.arg("1").arg(p.as_ref()),
                None => inv.arg("0").arg(""),
            };
        }
        let reply: Value = inv.invoke_async(&mut self.conn.clone()).await.map_err(unavailable)?;
        if let Err(e) = self.wait_for_replicas(&shard.route).await {
            // The outcome is applied on the master; a failover before a
            // replica has it can only repeat a delivery, never lose one.
            tracing::warn!(error = %e, "completions were applied before enough replicas confirmed them");
        }
        match reply {
            Value::Array(items) if items.len() == batch.len() => {
                Ok(items.iter().map(|v| as_int(v) == Some(1)).collect())
            }
            other => Err(StoreError::Corrupt(format!("complete: unexpected reply {other:?}"))),
        }
    }
}

/// The default shard count on a Redis Cluster.
pub const DEFAULT_CLUSTER_SHARDS: usize = 16;

/// `WAIT n` on the node that holds `route`'s slot: the writes this
/// connection made there reach `n` replicas, or an error after a while.
pub(crate) async fn wait_for_replicas(conn: &Conn, route: &str, n: u32) -> Result<(), StoreError> {
    if n == 0 {
        return Ok(());
    }
    let acked = conn
        .wait(route, n, WAIT_REPLICAS_TIMEOUT_MS)
        .await
        .map_err(unavailable)?;
    if acked >= u64::from(n) {
        Ok(())
    } else {
        Err(StoreError::Unavailable(format!(
            "only {acked} of {n} replicas confirmed the write within {WAIT_REPLICAS_TIMEOUT_MS} ms"
        )))
    }
}

#[async_trait]
impl DeliveryQueue for RedisStore {
    async fn enqueue_owned(&self, input: Enqueue) -> Result<Stored, StoreError> {
        self.ingest.enqueue(input).await
    }

    async fn claim(&self, req: &ClaimRequest) -> Result<ClaimBatch, StoreError> {
        // Shards are asked in rounds: as many at once as the budget gives
        // each a useful share, then the next ones with what is left, until
        // the budget is used or every shard was asked.
        let mut remaining = req.first.max(req.retry);
        let mut order = self.claim_order().into_iter();
        let mut out = ClaimBatch::default();
        let mut failed = None;
        while remaining > 0 {
            let k = remaining.div_ceil(MIN_CLAIM_PER_SHARD).max(1);
            let round: Vec<usize> = order.by_ref().take(k).collect();
            if round.is_empty() {
                break;
            }
            let shares: Vec<(usize, usize)> = round
                .iter()
                .enumerate()
                .map(|(j, &i)| (i, remaining / round.len() + usize::from(j < remaining % round.len())))
                .filter(|(_, share)| *share > 0)
                .collect();
            let answers = join_all(shares.iter().map(|&(i, share)| self.claim_shard(i, share, req))).await;
            for answer in answers {
                match answer {
                    Ok(b) => {
                        remaining = remaining.saturating_sub(b.jobs.len());
                        out.taken.extend(b.taken);
                        out.jobs.extend(b.jobs);
                        out.next_due_in = match (out.next_due_in, b.next_due_in) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        };
                    }
                    Err(e) => failed = Some(e),
                }
            }
        }
        if let Some(e) = failed
            && out.jobs.is_empty()
        {
            return Err(e);
        }
        if order.next().is_some() {
            // Shards not asked this time may have due work: come back at once.
            out.next_due_in = Some(Duration::ZERO);
        }
        Ok(out)
    }

    async fn complete(&self, batch: &[Completion]) -> Result<Vec<bool>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let positions: Vec<(usize, &Completion)> = batch.iter().enumerate().collect();
        let groups = self.shards.group(positions, |(_, c)| c.delivery_id.as_str());
        let answers = join_all(groups.iter().map(|(shard, items)| {
            let cs: Vec<&Completion> = items.iter().map(|(_, c)| *c).collect();
            async move { self.complete_shard(shard, &cs).await }
        }))
        .await;
        let mut out = vec![false; batch.len()];
        for ((_, items), answer) in groups.iter().zip(answers) {
            for ((pos, _), applied) in items.iter().zip(answer?) {
                out[*pos] = applied;
            }
        }
        Ok(out)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.conn.ping(&self.route_key()).await.map_err(unavailable)
    }

    async fn queue_depths(&self) -> Result<QueueDepths, StoreError> {
        let answers = join_all(self.shards.all().iter().map(|shard| async move {
            ::redis::pipe()
                .cmd("ZCARD")
                .arg(shard.key("q:first"))
                .cmd("ZCARD")
                .arg(shard.key("q:retry"))
                .cmd("ZCARD")
                .arg(shard.key("leases"))
                .cmd("ZCARD")
                .arg(shard.key("dead"))
                .query_async::<(u64, u64, u64, u64)>(&mut self.conn.clone())
                .await
        }))
        .await;
        let mut d = QueueDepths {
            pending: 0,
            failed: 0,
            in_flight: 0,
            dead: 0,
        };
        for answer in answers {
            let (pending, failed, in_flight, dead) = answer.map_err(unavailable)?;
            d.pending += pending;
            d.failed += failed;
            d.in_flight += in_flight;
            d.dead += dead;
        }
        Ok(d)
    }
}
