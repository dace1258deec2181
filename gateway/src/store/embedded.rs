//! The embedded store: everything the Redis backend holds, in one redb file
//! in a data folder, for a single gateway process (the sidecar default).
//!
//! * **Engine.** redb, measured against fjall on this machine with the
//!   load this store puts on it (3,000 transactions of 128 small records,
//!   half of them deleting the previous batch's keys, each transaction
//!   fsync'd): redb 269–273 tx/s (~35k records/s), fjall 322–346 tx/s
//!   (~43k records/s). Both are bound by the fsync, so group commit, not
//!   the engine, sets ingest throughput. redb is the choice: one file with
//!   ACID transactions across all tables (an event, its deliveries and
//!   every index change commit together or not at all), consistent
//!   snapshots for readers that never block the writer, no background
//!   compaction threads or memtables (memory stays bounded by its page
//!   cache), and a stable file format it checks and repairs on open.
//!   fjall's 20 % lead comes from its LSM journal, at the cost of
//!   compaction work and memory that grow with the data.
//! * **Writes** go through one writer thread in group commits (`writer`):
//!   the 202 of an ingest, a completion or a requeue is sent only after its
//!   commit is fsync'd, and concurrent callers share that fsync.
//! * **Reads** are redb read transactions on the blocking pool: a
//!   snapshot, never waiting for the writer, never on an async worker.
//! * **One owner per folder** (`open`): a lock file holds the owner's pid; a
//!   second process is refused with a message naming both. Within one
//!   process, opening the folder again returns the same store.
//! * **Semantics** are those of the Redis scripts, transition for
//!   transition (`claim`, `complete`, `ingest`); the conformance suite runs
//!   against both. Time is this machine's clock.
//!
//! Table layout: `tables`. Value layout: `codec`.

mod claim;
mod codec;
mod complete;
mod ingest;
mod open;
mod read;
mod registry;
mod retention;
mod stats;
mod tables;
mod transfer;
mod upgrade;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redb::{ReadTransaction, ReadableDatabase, ReadableTable};
use tokio::sync::mpsc;

use super::*;
use tables::{W, corrupt, storage};
use writer::{Call, Ctx, Op, Slot, Writer};

pub use open::{DATA_FILE, FORMAT, LOCK_FILE, OpenError};
pub use registry::wait_closed;
use registry::{OPEN, Running};

/// Sweeps per `purge_history` call at most (each a bounded transaction,
/// so other writes go between them); enough to catch up with any backlog a
/// minute of traffic leaves.
const MAX_SWEEPS: usize = 10_000;
/// How long an open waits for a store of this same process that is
/// closing to let go of the folder.
const REOPEN_WAIT: Duration = Duration::from_secs(5);

/// A store in one data folder.
pub struct EmbeddedStore {
    ops: mpsc::Sender<Op>,
    slot: Slot,
    folder: PathBuf,
    rate_cursor: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("folder", &self.folder)
            .finish_non_exhaustive()
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("embedded store: the writer has stopped".into())
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in `folder`. Blocks on file I/O
    /// (and on a repair after an unclean shutdown): call it from a blocking
    /// context.
    pub fn open(folder: &Path, retention: Duration) -> Result<Arc<Self>, OpenError> {
        Self::open_with_log(folder, retention, WEBHOOK_LOG_CAP)
    }

    /// [`EmbeddedStore::open`], keeping `webhook_log_cap` webhook change
    /// log entries instead of [`WEBHOOK_LOG_CAP`] (at least 1). A folder
    /// already open in this process keeps the cap it was opened with.
    pub fn open_with_log(folder: &Path, retention: Duration, webhook_log_cap: u64) -> Result<Arc<Self>, OpenError> {
        std::fs::create_dir_all(folder).map_err(|source| OpenError::Folder {
            path: folder.to_owned(),
            source,
        })?;
        let key = open::canonical(folder);
        let mut registry = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        registry.retain(|(_, w)| w.strong_count() > 0);
        if let Some(store) = registry.iter().find(|(k, _)| *k == key).and_then(|(_, w)| w.upgrade()) {
            return Ok(store);
        }
        let deadline = Instant::now() + REOPEN_WAIT;
        let lock = loop {
            match open::lock_folder(folder) {
                Err(OpenError::Locked { pid: Some(pid), .. })
                    if pid == std::process::id() && Instant::now() < deadline =>
                {
                    #[allow(clippy::disallowed_methods, reason = "open runs on a blocking thread")]
                    std::thread::sleep(Duration::from_millis(10));
                }
                other => break other?,
            }
        };
        let db = open::open_database(folder)?;
        open::prepare(folder, &db)?;
        let db = Arc::new(db);
        let slot: Slot = Arc::new(RwLock::new(Some(db.clone())));
        let (ops, rx) = mpsc::channel(writer::QUEUE);
        let writer = Writer {
            db: Some(db),
            slot: slot.clone(),
            path: folder.to_owned(),
            retention_ms: retention.as_millis().max(1) as u64,
            webhook_log_cap: webhook_log_cap.max(1),
            last_durable: Instant::now(),
            last_reopen: None,
            _lock: lock,
        };
        let running = Running::start();
        std::thread::Builder::new()
            .name("hookgate-store".into())
            .spawn(move || {
                writer.run(rx);
                drop(running);
            })
            .map_err(|source| OpenError::Io {
                path: folder.join(DATA_FILE),
                source,
            })?;
        let store = Arc::new(EmbeddedStore {
            ops,
            slot,
            folder: folder.to_owned(),
            rate_cursor: Arc::default(),
        });
        registry.push((key, Arc::downgrade(&store)));
        Ok(store)
    }

    /// The data folder.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Runs `f` in the writer's next group commit and waits for the commit.
    async fn write<T, F>(&self, durable: bool, weight: usize, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut W<'_>, &Ctx) -> Result<T, StoreError> + Send + 'static,
    {
        let (op, answer) = Call::op(durable, weight, f);
        self.ops.send(op).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Runs `f` on a read snapshot, on the blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let db = self
            .slot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| StoreError::Unavailable("embedded store: the data file is being reopened".into()))?;
        tokio::task::spawn_blocking(move || {
            let tx = db.begin_read().map_err(storage)?;
            f(&tx)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("embedded store: read task failed: {e}")))?
    }
}

#[async_trait]
impl DeliveryQueue for EmbeddedStore {
    async fn enqueue_owned(&self, input: Enqueue) -> Result<Stored, StoreError> {
        let weight = input.event.data.len();
        self.write(true, weight, move |w, ctx| ingest::enqueue(w, ctx, &input))
            .await
    }

    async fn claim(&self, req: &ClaimRequest) -> Result<ClaimBatch, StoreError> {
        let req = req.clone();
        self.write(false, 0, move |w, ctx| claim::claim(w, ctx.now, &req)).await
    }

    async fn complete(&self, batch: &[Completion]) -> Result<Vec<bool>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let batch = batch.to_vec();
        let weight = batch.iter().filter_map(|c| c.payload.as_ref()).map(|p| p.len()).sum();
        self.write(true, weight, move |w, ctx| {
            batch.iter().map(|c| complete::complete_one(w, ctx, c)).collect()
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if self.slot.read().unwrap_or_else(|e| e.into_inner()).is_some() {
            return Ok(());
        }
        // After a write failure: healthy again once a durable write works.
        self.write(true, 0, |w, ctx| {
            w.meta
                .insert("probe", ctx.now.to_le_bytes().as_slice())
                .map_err(storage)?;
            Ok(())
        })
        .await
    }

    async fn queue_depths(&self) -> Result<QueueDepths, StoreError> {
        self.read(read::queue_depths).await
    }
}

#[async_trait]
impl Records for EmbeddedStore {
    async fn delivery(&self, id: &str) -> Result<Option<DeliveryRecord>, StoreError> {
        let id = id.to_owned();
        self.read(move |tx| read::delivery(tx, &id)).await
    }

    async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<DeliveryRecord>, StoreError> {
        let (filter, cursor) = (filter.clone(), cursor.map(str::to_owned));
        self.read(move |tx| read::list_deliveries(tx, &filter, limit, cursor.as_deref()))
            .await
    }

    async fn list_dead(
        &self,
        webhook_id: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<DeliveryRecord>, StoreError> {
        let (webhook, cursor) = (webhook_id.map(str::to_owned), cursor.map(str::to_owned));
        self.read(move |tx| read::list_dead(tx, webhook.as_deref(), limit, cursor.as_deref()))
            .await
    }

    async fn requeue(&self, ids: &[String], from: &[Status]) -> Result<Vec<Requeue>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, from) = (ids.to_vec(), from.to_vec());
        self.write(true, 0, move |w, ctx| {
            ids.iter().map(|id| complete::requeue_one(w, ctx, id, &from)).collect()
        })
        .await
    }

    /// Removes what retention says is over (the retention given at open
    /// applies; `_retention` is the same value from the config).
    async fn purge_history(&self, _retention: Duration) -> Result<(), StoreError> {
        for _ in 0..MAX_SWEEPS {
            let cursor = self.rate_cursor.clone();
            let swept = self
                .write(false, 0, move |w, ctx| {
                    let mut cursor = cursor.lock().unwrap_or_else(|e| e.into_inner());
                    retention::sweep(w, ctx.now, &mut cursor)
                })
                .await?;
            if !swept.more {
                break;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl WebhookStore for EmbeddedStore {
    async fn disable_webhook(&self, webhook_id: &str, url: &str, reason: &str) -> Result<u64, StoreError> {
        let (id, url, reason) = (webhook_id.to_owned(), url.to_owned(), reason.to_owned());
        self.write(true, 0, move |w, ctx| complete::disable(w, ctx, &id, &url, &reason))
            .await
    }

    async fn load_webhooks(&self) -> Result<WebhookSet, StoreError> {
        self.read(read::load_webhooks).await
    }

    async fn webhook_changes(&self, since: &ChangeCursor, max: usize) -> Result<WebhookChanges, StoreError> {
        let since = since.clone();
        self.read(move |tx| read::webhook_changes(tx, &since, max)).await
    }

    async fn webhook(&self, id: &str) -> Result<Option<StoredWebhook>, StoreError> {
        let id = id.to_owned();
        self.read(move |tx| read::webhook(tx, &id)).await
    }

    async fn insert_webhook(&self, webhook: &StoredWebhook) -> Result<bool, StoreError> {
        let json = serde_json::to_vec(webhook).map_err(corrupt)?;
        let id = webhook.id.clone();
        self.write(true, 0, move |w, ctx| {
            if w.webhooks.get(id.as_str()).map_err(storage)?.is_some() {
                return Ok(false);
            }
            w.webhooks.insert(id.as_str(), json.as_slice()).map_err(storage)?;
            w.log_webhook_change(&id, ctx)?;
            Ok(true)
        })
        .await
    }

    async fn replace_webhook(&self, webhook: &StoredWebhook, clear_state: bool) -> Result<bool, StoreError> {
        let json = serde_json::to_vec(webhook).map_err(corrupt)?;
        let id = webhook.id.clone();
        self.write(true, 0, move |w, ctx| {
            // Only replace an existing entry: a concurrent DELETE wins.
            if w.webhooks.get(id.as_str()).map_err(storage)?.is_none() {
                return Ok(false);
            }
            w.webhooks.insert(id.as_str(), json.as_slice()).map_err(storage)?;
            if clear_state {
                w.webhook_state.remove(id.as_str()).map_err(storage)?;
                w.circuits.remove(id.as_str()).map_err(storage)?;
            }
            w.log_webhook_change(&id, ctx)?;
            Ok(true)
        })
        .await
    }

    async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(true, 0, move |w, ctx| {
            let removed = w.webhooks.remove(id.as_str()).map_err(storage)?.is_some();
            let state = w.webhook_state.remove(id.as_str()).map_err(storage)?.is_some();
            let circuit = w.circuits.remove(id.as_str()).map_err(storage)?.is_some();
            if removed || state || circuit {
                w.log_webhook_change(&id, ctx)?;
            }
            Ok(removed)
        })
        .await
    }
}

#[async_trait]
impl CircuitStore for EmbeddedStore {
    async fn swap_circuit(
        &self,
        webhook_id: &str,
        expected: Option<&Circuit>,
        new: Option<&Circuit>,
    ) -> Result<bool, StoreError> {
        let (id, expected, new) = (webhook_id.to_owned(), expected.copied(), new.copied());
        let new_json = new.map(|c| serde_json::to_vec(&c)).transpose().map_err(corrupt)?;
        self.write(true, 0, move |w, ctx| {
            let current = match w.circuits.get(id.as_str()).map_err(storage)? {
                Some(v) => Some(serde_json::from_slice::<Circuit>(v.value()).map_err(corrupt)?),
                None => None,
            };
            if current != expected {
                return Ok(false);
            }
            match &new_json {
                Some(json) => {
                    w.circuits.insert(id.as_str(), json.as_slice()).map_err(storage)?;
                }
                None => {
                    w.circuits.remove(id.as_str()).map_err(storage)?;
                }
            }
            w.log_webhook_change(&id, ctx)?;
            Ok(true)
        })
        .await
    }
}

#[async_trait]
impl RateLimiter for EmbeddedStore {
    async fn acquire(&self, reqs: &[RateRequest]) -> Result<Vec<RateDecision>, StoreError> {
        if reqs.is_empty() {
            return Ok(Vec::new());
        }
        let reqs = reqs.to_vec();
        self.write(false, 0, move |w, _| {
            let now = ingest::now_us();
            reqs.iter()
                .map(|r| ingest::gcra(w, &r.key, &r.limit, now).map(|s| s.decision))
                .collect()
        })
        .await
    }

    async fn acquire_with_state(&self, req: &RateRequest) -> Result<RateState, StoreError> {
        let req = req.clone();
        self.write(false, 0, move |w, _| {
            ingest::gcra(w, &req.key, &req.limit, ingest::now_us())
        })
        .await
    }
}

#[async_trait]
impl StatsStore for EmbeddedStore {
    async fn add_stats(&self, rows: &[crate::stats::Row]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        // Not fsync'd on its own: the next durable commit (within a second)
        // takes it along; a crash before loses at most those figures.
        let rows = rows.to_vec();
        self.write(false, 0, move |w, _| stats::add(w, &rows)).await
    }

    async fn read_stats(
        &self,
        scope: &str,
        granularity: crate::stats::Granularity,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, crate::stats::Counters)>, StoreError> {
        let scope = scope.to_owned();
        self.read(move |tx| stats::read(tx, &scope, granularity, from, to))
            .await
    }

    async fn stats_by_webhook(
        &self,
        granularity: crate::stats::Granularity,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<(Vec<(String, crate::stats::Counters)>, bool), StoreError> {
        self.read(move |tx| stats::by_webhook(tx, granularity, from, to, limit))
            .await
    }
}
