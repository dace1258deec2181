//! The one writer: a dedicated thread that applies every change to the
//! embedded store, in group commits.
//!
//! Callers send an [`Op`] over a bounded channel and await its answer. The
//! thread takes whatever has queued up (at most [`MAX_OPS`] operations or
//! [`MAX_BYTES`] of event data) and commits it in at most two write
//! transactions; only then does it answer each caller. Operations a caller
//! must find on disk after a crash (ingest, completions, requeues, webhook
//! changes, imports) share ONE durable (fsync'd) commit, the group commit.
//! Claims, rate-limit checks and retention sweeps go first, in a commit
//! without fsync, and are answered at once: losing one in a crash changes
//! nothing a caller was promised (a claim lost is a delivery in flight at
//! the crash: it is handed out again), and the next durable commit, at most
//! [`DURABLE_EVERY`] later, persists it too.
//!
//! An operation that fails (unreadable data) spoils the shared transaction:
//! it is rolled back and every operation of the batch is applied again in a
//! transaction of its own, so only the faulty one gets the error. A storage
//! failure (disk full, I/O error) answers the whole batch
//! `StoreError::Unavailable`; redb wants the file reopened after an I/O
//! error, so the writer closes it (once readers let go) and reopens it
//! before the next batch, at most every [`REOPEN_EVERY`]. Nothing committed
//! is lost that way, and the store recovers on its own once the disk does.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redb::{Database, Durability};
use tokio::sync::{mpsc, oneshot};

use super::open::{OpenError, open_database};
use super::tables::W;
use crate::store::{StoreError, now_ms};

/// Operations per transaction at most.
pub const MAX_OPS: usize = 1024;
/// Event data per transaction at most (a batch always takes one operation).
pub const MAX_BYTES: usize = 8 << 20;
/// Operations waiting at most; callers wait for room beyond that.
pub const QUEUE: usize = 4096;
/// Non-durable commits are followed by a durable one within this long.
pub const DURABLE_EVERY: Duration = Duration::from_secs(1);
/// After a storage failure, the file is reopened at most this often.
pub const REOPEN_EVERY: Duration = Duration::from_millis(200);

/// What every operation sees while it is applied.
pub struct Ctx {
    pub now: u64,
    pub retention_ms: u64,
    /// Webhook change log entries kept.
    pub webhook_log_cap: u64,
}

/// One change, applied inside a shared write transaction.
pub trait Apply: Send {
    /// Applies the change; an error spoils the transaction (see the module doc).
    fn apply(&mut self, w: &mut W<'_>, ctx: &Ctx) -> Result<(), StoreError>;
    /// Whether the caller may only be answered once the change is on disk.
    fn durable(&self) -> bool;
    /// Bytes of event data it writes, for the batch bound.
    fn weight(&self) -> usize {
        0
    }
    /// Sends the answer: its result after a commit, or `err`.
    fn answer(self: Box<Self>, err: Option<StoreError>);
}

pub type Op = Box<dyn Apply>;

/// An operation made from a closure; its result goes back to the caller
/// after the commit.
pub struct Call<T, F> {
    f: F,
    durable: bool,
    weight: usize,
    out: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Call<T, F>
where
    T: Send + 'static,
    F: FnMut(&mut W<'_>, &Ctx) -> Result<T, StoreError> + Send + 'static,
{
    pub fn op(durable: bool, weight: usize, f: F) -> (Op, oneshot::Receiver<Result<T, StoreError>>) {
        let (reply, rx) = oneshot::channel();
        let call = Call {
            f,
            durable,
            weight,
            out: None,
            reply,
        };
        (Box::new(call), rx)
    }
}

impl<T, F> Apply for Call<T, F>
where
    T: Send + 'static,
    F: FnMut(&mut W<'_>, &Ctx) -> Result<T, StoreError> + Send + 'static,
{
    fn apply(&mut self, w: &mut W<'_>, ctx: &Ctx) -> Result<(), StoreError> {
        let v = (self.f)(w, ctx)?;
        self.out = Some(Ok(v));
        Ok(())
    }
    fn durable(&self) -> bool {
        self.durable
    }
    fn weight(&self) -> usize {
        self.weight
    }
    fn answer(self: Box<Self>, err: Option<StoreError>) {
        let result = match (err, self.out) {
            (Some(e), _) => Err(e),
            (None, Some(out)) => out,
            (None, None) => Err(StoreError::Unavailable("embedded store: operation not applied".into())),
        };
        let _ = self.reply.send(result);
    }
}

/// The open database, shared with readers; `None` while the writer
/// reopens it after a storage failure.
pub type Slot = Arc<RwLock<Option<Arc<Database>>>>;

/// The writer thread's state.
pub struct Writer {
    pub db: Option<Arc<Database>>,
    pub slot: Slot,
    pub path: std::path::PathBuf,
    pub retention_ms: u64,
    pub webhook_log_cap: u64,
    pub last_durable: Instant,
    pub last_reopen: Option<Instant>,
    /// Held for the life of the thread: the folder's owner lock.
    pub _lock: std::fs::File,
}

impl Writer {
    /// Runs until every sender is gone, then closes the database cleanly.
    pub fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        while let Some(first) = rx.blocking_recv() {
            let mut weight = first.weight();
            let mut batch = vec![first];
            while batch.len() < MAX_OPS && weight < MAX_BYTES {
                match rx.try_recv() {
                    Ok(op) => {
                        weight += op.weight();
                        batch.push(op);
                    }
                    Err(_) => break,
                }
            }
            self.run_batch(batch);
        }
        self.set_slot(None);
        self.db = None;
    }

    fn set_slot(&self, db: Option<Arc<Database>>) {
        *self.slot.write().unwrap_or_else(|e| e.into_inner()) = db;
    }

    /// Commits a batch as two transactions: first what needs no fsync
    /// (claims, rate limits, sweeps), answered as soon as it is applied,
    /// then what callers must find on disk, answered after the fsync. So a
    /// claim never waits for the disk behind a burst of ingest.
    fn run_batch(&mut self, batch: Vec<Op>) {
        let (durable, quick): (Vec<Op>, Vec<Op>) = batch.into_iter().partition(|op| op.durable());
        let durable_follows = !durable.is_empty();
        for (group, fsync) in [(quick, false), (durable, true)] {
            if !group.is_empty() {
                self.run_group(
                    group,
                    fsync || (!durable_follows && self.last_durable.elapsed() >= DURABLE_EVERY),
                );
            }
        }
    }

    fn run_group(&mut self, mut group: Vec<Op>, fsync: bool) {
        if let Err(e) = self.ensure_open() {
            for op in group {
                op.answer(Some(e.clone()));
            }
            return;
        }
        match self.commit(&mut group, fsync) {
            Ok(()) => {
                for op in group {
                    op.answer(None);
                }
            }
            Err(e) if e.is_unavailable() => {
                self.broken(&e);
                for op in group {
                    op.answer(Some(e.clone()));
                }
            }
            Err(e) if group.len() == 1 => {
                for op in group {
                    op.answer(Some(e.clone()));
                }
            }
            Err(_) => {
                // One of them is faulty: each alone, so only it fails.
                for op in group {
                    let mut one = vec![op];
                    let result = self.ensure_open().and_then(|()| self.commit(&mut one, fsync));
                    if let Err(e) = &result
                        && e.is_unavailable()
                    {
                        self.broken(e);
                    }
                    for op in one {
                        op.answer(result.clone().err());
                    }
                }
            }
        }
    }

    /// Applies `ops` in one transaction and commits it.
    fn commit(&mut self, ops: &mut [Op], durable: bool) -> Result<(), StoreError> {
        let db = self
            .db
            .clone()
            .ok_or_else(|| StoreError::Unavailable("embedded store: not open".into()))?;
        let mut tx = db.begin_write().map_err(super::tables::storage)?;
        if !durable {
            tx.set_durability(Durability::None).map_err(super::tables::storage)?;
        }
        let ctx = Ctx {
            now: now_ms(),
            retention_ms: self.retention_ms,
            webhook_log_cap: self.webhook_log_cap,
        };
        let applied = {
            let mut w = W::open(&tx)?;
            ops.iter_mut().try_for_each(|op| op.apply(&mut w, &ctx))
        };
        if let Err(e) = applied {
            let _ = tx.abort();
            return Err(e);
        }
        tx.commit().map_err(super::tables::storage)?;
        if durable {
            self.last_durable = Instant::now();
        }
        Ok(())
    }

    /// A storage failure: readers stop using the file; it is reopened
    /// before the next batch.
    fn broken(&mut self, e: &StoreError) {
        if self.db.is_some() {
            tracing::warn!(error = %e, path = %self.path.display(), "embedded store write failed; reopening the data file before the next write");
        }
        self.set_slot(None);
    }

    /// Reopens the database after a storage failure (at most every
    /// [`REOPEN_EVERY`]).
    fn ensure_open(&mut self) -> Result<(), StoreError> {
        let healthy = self.slot.read().unwrap_or_else(|e| e.into_inner()).is_some();
        if healthy && self.db.is_some() {
            return Ok(());
        }
        if self.last_reopen.is_some_and(|t| t.elapsed() < REOPEN_EVERY) {
            return Err(StoreError::Unavailable(
                "embedded store: the data file is being reopened after a write failure".into(),
            ));
        }
        self.last_reopen = Some(Instant::now());
        if let Some(old) = self.db.take() {
            // Readers hold the old handle only for one read; wait for them
            // (bounded) so the file can be opened again.
            let deadline = Instant::now() + Duration::from_secs(5);
            while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
                #[allow(clippy::disallowed_methods, reason = "the writer's own thread, not an async one")]
                std::thread::sleep(Duration::from_millis(2));
            }
            drop(old);
        }
        match open_database(&self.path) {
            Ok(db) => {
                let db = Arc::new(db);
                self.db = Some(db.clone());
                self.set_slot(Some(db));
                tracing::info!(path = %self.path.display(), "embedded store reopened; writes resume");
                Ok(())
            }
            Err(e) => Err(match e {
                OpenError::Io { .. } | OpenError::Database { .. } => StoreError::Unavailable(e.to_string()),
                other => StoreError::Corrupt(other.to_string()),
            }),
        }
    }
}
