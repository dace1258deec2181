//! Adds up this gateway's delivery statistics (`crate::stats`) in memory
//! and flushes them to the store every [`FLUSH_EVERY`], one batched write
//! for every webhook and minute seen since the last flush (never a store
//! call per delivery).
//!
//! While the store is unreachable the rows are kept and sent with the next
//! flush, up to [`MAX_PENDING_MINUTES`] minutes of them; older ones are
//! dropped with a warning (figures, never deliveries). A `kill -9` loses
//! at most the last [`FLUSH_EVERY`] of figures.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use foldhash::HashMap;
use tokio_util::sync::CancellationToken;

use crate::ids::now_ms;
use crate::stats::{AttemptClass, Counters, FLEET, Field, Row};
use crate::store::Store;

/// How often figures go to the store.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Minutes of unsent figures kept while the store is unreachable.
const MAX_PENDING_MINUTES: usize = 60;

/// Rows not sent yet: minute -> webhook id -> counters.
#[derive(Debug, Default)]
pub struct Tally {
    rows: Mutex<HashMap<u64, HashMap<String, Counters>>>,
}

impl Tally {
    fn with(&self, webhook: &str, f: impl FnOnce(&mut Counters)) {
        let minute = now_ms() / 60_000;
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        let minute_rows = rows.entry(minute).or_default();
        match minute_rows.get_mut(webhook) {
            Some(c) => f(c),
            None => {
                let mut c = Counters::default();
                f(&mut c);
                minute_rows.insert(webhook.to_owned(), c);
            }
        }
    }

    /// One attempt; `label` is the attempt metric's result label.
    pub fn attempt(&self, webhook: &str, label: &str, took: Duration) {
        if let Some(class) = AttemptClass::from_label(label) {
            self.with(webhook, |c| c.attempt(class, took));
        }
    }

    pub fn count(&self, webhook: &str, field: Field) {
        self.with(webhook, |c| c.bump(field));
    }

    /// Takes every row, with a fleet row per minute that sums them.
    fn take(&self) -> Vec<Row> {
        let rows = std::mem::take(&mut *self.rows.lock().unwrap_or_else(|e| e.into_inner()));
        let mut out = Vec::new();
        for (minute, hooks) in rows {
            let mut fleet = Counters::default();
            for (scope, counters) in hooks {
                fleet.add(&counters);
                out.push(Row {
                    scope,
                    minute,
                    counters,
                });
            }
            out.push(Row {
                scope: FLEET.to_owned(),
                minute,
                counters: fleet,
            });
        }
        out
    }

    /// Puts rows that could not be sent back (their fleet rows are made
    /// again on the next take), keeping the newest minutes only.
    fn restore(&self, rows: Vec<Row>) {
        let mut current = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        for row in rows.into_iter().filter(|r| r.scope != FLEET) {
            current
                .entry(row.minute)
                .or_default()
                .entry(row.scope)
                .or_default()
                .add(&row.counters);
        }
        if current.len() > MAX_PENDING_MINUTES {
            let mut minutes: Vec<u64> = current.keys().copied().collect();
            minutes.sort_unstable();
            let drop = minutes.len() - MAX_PENDING_MINUTES;
            for m in &minutes[..drop] {
                current.remove(m);
            }
            tracing::warn!(
                minutes = drop,
                "statistics older than an hour could not be stored and were dropped"
            );
        }
    }

    /// Sends what has added up; on failure keeps it for the next flush.
    pub async fn flush(&self, store: &dyn Store) -> bool {
        let rows = self.take();
        if rows.is_empty() {
            return true;
        }
        match store.add_stats(&rows).await {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(error = %crate::report::error_chain(&e), "statistics not stored yet; kept for the next flush");
                self.restore(rows);
                false
            }
        }
    }
}

/// Flushes every [`FLUSH_EVERY`] until `done`, then once more.
pub async fn run(tally: Arc<Tally>, store: Arc<dyn Store>, done: CancellationToken) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = done.cancelled() => break,
            _ = tick.tick() => {
                tally.flush(store.as_ref()).await;
            }
        }
    }
    tally.flush(store.as_ref()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_adds_a_fleet_row_per_minute_and_restore_keeps_figures() {
        let t = Tally::default();
        t.attempt("a", "success", Duration::from_millis(3));
        t.attempt("b", "http_5xx", Duration::from_millis(30));
        t.count("b", Field::Retries);
        t.attempt("a", "not-a-class", Duration::ZERO);
        let rows = t.take();
        assert_eq!(rows.len(), 3);
        let fleet = rows.iter().find(|r| r.scope == FLEET).unwrap();
        assert_eq!(fleet.counters.attempts(), 2);
        assert_eq!(fleet.counters.get(Field::Retries), 1);
        assert!(t.take().is_empty());
        t.restore(rows);
        let again = t.take();
        assert_eq!(again.len(), 3);
        let fleet = again.iter().find(|r| r.scope == FLEET).unwrap();
        assert_eq!(fleet.counters.attempts(), 2, "fleet rows are rebuilt, not doubled");
    }
}
