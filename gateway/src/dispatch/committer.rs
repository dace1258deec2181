//! Writes attempt outcomes to the store in batches.
//!
//! Attempts send their [`Completion`] here and move on; this task drains
//! whatever has queued up (up to [`MAX_BATCH`]) and applies it in one store
//! call. A batch of one, while outcomes arrive less than a millisecond
//! apart, first waits [`pace::WAIT`] for the next few (`crate::pace`): at a
//! moderate rate that is several outcomes per store call instead of one.
//! While the store is unreachable the batch is kept and retried with
//! backoff; the bounded channel makes attempts wait rather than pile up.
//! After a commit that scheduled a retry or put a delivery back, it wakes
//! the claim loop, since that may now be due sooner than the loop planned
//! to look. Final outcomes alone do not: they make nothing due.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::pace::{self, Pacer};
use crate::store::{Completion, Outcome};

const MAX_BATCH: usize = 512;

pub(super) async fn run(shared: Arc<Shared>, mut rx: mpsc::Receiver<Completion>, done: CancellationToken) {
    let mut batch: Vec<Completion> = Vec::with_capacity(MAX_BATCH);
    let pace = Pacer::default();
    loop {
        if batch.is_empty() {
            tokio::select! {
                biased;
                msg = rx.recv() => match msg {
                    Some(c) => {
                        batch.push(c);
                        let streaming = pace.arrived(Instant::now());
                        if streaming && rx.is_empty() && !done.is_cancelled() {
                            tokio::time::sleep(pace::WAIT).await;
                        }
                    }
                    None => return,
                },
                () = done.cancelled() => {
                    // Attempts are over: take what is left and finish.
                    while let Ok(c) = rx.try_recv() {
                        batch.push(c);
                    }
                    if batch.is_empty() {
                        return;
                    }
                }
            }
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        match shared.store.complete(&batch).await {
            Ok(applied) => {
                shared.health.ok();
                let stale = applied.iter().filter(|a| !**a).count();
                if stale > 0 {
                    tracing::debug!(
                        stale,
                        "outcomes for leases no longer held were recorded as attempts only"
                    );
                }
                let due_again = batch
                    .iter()
                    .any(|c| matches!(c.outcome, Outcome::Retry(_) | Outcome::Defer(_)));
                batch.clear();
                if due_again {
                    shared.wake.notify_one();
                }
            }
            Err(e) => {
                let wait = shared.health.failed("recording delivery outcomes", &e);
                tokio::time::sleep(wait).await;
            }
        }
    }
}
