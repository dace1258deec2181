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
    while next_batch(&mut batch, &mut rx, &pace, &done).await {
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

/// Makes `batch` the next one to write: a batch kept after a failed write
/// is topped up, an empty one waits for its [`first`] item. False when
/// there is nothing more to write.
async fn next_batch<T>(batch: &mut Vec<T>, rx: &mut mpsc::Receiver<T>, pace: &Pacer, done: &CancellationToken) -> bool {
    if batch.is_empty() && !first(batch, rx, pace, done).await {
        return false;
    }
    top_up(batch, rx);
    true
}

/// Waits for the first item of a batch; in a stream (items less than
/// [`pace::WINDOW`] apart) with nothing else queued, waits [`pace::WAIT`]
/// more for company. After `done`, nothing waits: queued items are still
/// taken, one batch at a time. False when there is nothing more to write.
async fn first<T>(batch: &mut Vec<T>, rx: &mut mpsc::Receiver<T>, pace: &Pacer, done: &CancellationToken) -> bool {
    tokio::select! {
        biased;
        msg = rx.recv() => match msg {
            Some(item) => {
                batch.push(item);
                let streaming = pace.arrived(Instant::now());
                if streaming && rx.is_empty() && !done.is_cancelled() {
                    tokio::time::sleep(pace::WAIT).await;
                }
                true
            }
            None => false,
        },
        // Attempts are over and nothing is queued (the channel comes
        // first), but for one sent since it was looked at.
        () = done.cancelled() => rx.try_recv().map(|item| batch.push(item)).is_ok(),
    }
}

/// Adds whatever has queued up, to at most [`MAX_BATCH`] items.
fn top_up<T>(batch: &mut Vec<T>, rx: &mut mpsc::Receiver<T>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A pacer for which every arrival from now on reads as part of a stream.
    fn streaming() -> Pacer {
        let pace = Pacer::default();
        pace.arrived(Instant::now() + Duration::from_secs(3600));
        pace
    }

    /// Sends 1 now and 2 from a task that runs only once the caller yields.
    fn one_then_another(tx: &mpsc::Sender<u32>) {
        tx.try_send(1).unwrap();
        let tx = tx.clone();
        tokio::spawn(async move { tx.send(2).await.unwrap() });
    }

    /// A channel holding `0..n`, all queued at once.
    fn queued(n: usize) -> (mpsc::Sender<usize>, mpsc::Receiver<usize>) {
        let (tx, rx) = mpsc::channel(n);
        for i in 0..n {
            tx.try_send(i).unwrap();
        }
        (tx, rx)
    }

    async fn batch_of(pace: &Pacer, done: &CancellationToken) -> Vec<u32> {
        let (tx, mut rx) = mpsc::channel(8);
        one_then_another(&tx);
        let mut batch = Vec::new();
        assert!(first(&mut batch, &mut rx, pace, done).await);
        top_up(&mut batch, &mut rx);
        batch
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_outcome_in_a_stream_waits_to_share_its_batch() {
        let done = CancellationToken::new();
        assert_eq!(batch_of(&streaming(), &done).await, vec![1, 2]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_lone_outcome_is_not_held_back() {
        let done = CancellationToken::new();
        assert_eq!(batch_of(&Pacer::default(), &done).await, vec![1]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn after_shutdown_began_nothing_waits() {
        let done = CancellationToken::new();
        done.cancel();
        // The queued outcome is still taken (the channel comes first).
        assert_eq!(batch_of(&streaming(), &done).await, vec![1]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn shutdown_with_nothing_queued_ends_the_writer() {
        let done = CancellationToken::new();
        done.cancel();
        let (_tx, mut rx) = mpsc::channel::<u32>(8);
        let mut batch = Vec::new();
        assert!(!first(&mut batch, &mut rx, &streaming(), &done).await);
        assert!(batch.is_empty());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn after_shutdown_every_queued_outcome_is_taken_a_batch_at_a_time() {
        let done = CancellationToken::new();
        let (_tx, mut rx) = queued(MAX_BATCH + 3);
        done.cancel();
        // As `run` takes them, each batch written.
        let mut sizes = Vec::new();
        let mut batch = Vec::new();
        while next_batch(&mut batch, &mut rx, &streaming(), &done).await {
            sizes.push(batch.len());
            batch.clear();
        }
        assert_eq!(sizes, vec![MAX_BATCH, 3]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_batch_kept_after_a_failed_write_is_topped_up_not_replaced() {
        let done = CancellationToken::new();
        let (_tx, mut rx) = queued(MAX_BATCH + 8);
        let mut batch = Vec::new();
        assert!(next_batch(&mut batch, &mut rx, &streaming(), &done).await);
        assert_eq!(batch.len(), MAX_BATCH);
        // The write failed: `run` keeps the batch and takes it again.
        batch.truncate(10);
        let kept = batch.clone();
        assert!(next_batch(&mut batch, &mut rx, &streaming(), &done).await);
        assert_eq!(batch[..10], kept[..], "the kept outcomes come first, unchanged");
        assert_eq!(batch.len(), 18, "with the 8 still queued after them");
        assert_eq!(batch[10..], (MAX_BATCH..MAX_BATCH + 8).collect::<Vec<_>>()[..]);
    }
}
