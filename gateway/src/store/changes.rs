//! The webhook change log: how every gateway keeps its copy of the webhooks
//! current by applying only what changed.
//!
//! Every change to a webhook, its state (disabled by a 410 or by failing)
//! or its circuit breaker takes the next number of a per-store sequence and
//! appends one entry `(seq, "seq:nonce:webhook id")` to a bounded log, in
//! the same atomic write as the change. Numbers are dense: entry `n + 1`
//! follows entry `n`. The nonce (the store's clock in µs) tells a number
//! reused after a Redis failover lost writes from the entry a gateway saw.
//!
//! A gateway remembers a [`ChangeCursor`] (the last number it applied and
//! that entry) and asks for the entries after it; it reloads just those
//! webhooks by id. [`judge`] decides, the same way for every backend, when
//! the log cannot bring a cursor up to date and the gateway must load
//! everything again ([`WebhookChanges::Resync`]):
//!
//! * the store's sequence is behind the cursor (the store was reset, or a
//!   failover lost the changes the gateway applied);
//! * the entry at the cursor is not the one the gateway saw (trimmed away,
//!   or the number was reused after such a loss);
//! * the next entry is not `seq + 1` (the entries after the cursor were
//!   trimmed, or a writer without a log made changes).

use std::collections::HashMap;

use crate::circuit::Circuit;
use crate::store::WebhookState;
use crate::webhooks::StoredWebhook;

/// Entries a store keeps by default. A gateway that falls further behind
/// than this (away for a while, or a burst of changes faster than it polls)
/// loads every webhook once instead.
pub const WEBHOOK_LOG_CAP: u64 = 10_000;

/// Where a gateway is in the change log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeCursor {
    /// The number of the last change applied (0: none yet).
    pub seq: u64,
    /// The log entry at `seq` as it was read; empty when there was none
    /// (`seq` 0, or a store written before it had a log).
    pub mark: String,
}

/// Everything the store holds about one webhook id, as it is now.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEntry {
    pub id: String,
    /// The API webhook; `None` if there is none with this id (deleted, or
    /// the id is a config webhook's).
    pub webhook: Option<StoredWebhook>,
    pub state: Option<WebhookState>,
    pub circuit: Option<Circuit>,
}

/// Every API webhook, webhook state and circuit breaker, and the log
/// position they reflect (one consistent read).
#[derive(Debug, Clone, Default)]
pub struct WebhookSet {
    pub cursor: ChangeCursor,
    pub webhooks: Vec<StoredWebhook>,
    pub states: HashMap<String, WebhookState>,
    pub circuits: HashMap<String, Circuit>,
}

/// What [`crate::store::WebhookStore::webhook_changes`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookChanges {
    /// The webhooks that changed after the cursor, each once and as it is
    /// now, and the cursor to ask from next. `more`: the log holds further
    /// entries than were asked for.
    Changed {
        entries: Vec<WebhookEntry>,
        cursor: ChangeCursor,
        more: bool,
    },
    /// The log cannot bring this cursor up to date: load everything.
    Resync,
}

/// A log entry's member: `seq:nonce:webhook id`.
pub fn mark(seq: u64, nonce: u64, webhook_id: &str) -> String {
    format!("{seq}:{nonce}:{webhook_id}")
}

/// The webhook id of a log entry.
pub fn mark_webhook(mark: &str) -> Option<&str> {
    let mut parts = mark.splitn(3, ':');
    parts.next()?.parse::<u64>().ok()?;
    parts.next()?;
    parts.next().filter(|id| !id.is_empty())
}

/// What a backend read from its log, in one consistent snapshot.
#[derive(Debug, Clone, Default)]
pub struct LogRead {
    /// The store's sequence now.
    pub current: u64,
    /// The entries numbered `since.seq` (zero or one).
    pub anchor: Vec<String>,
    /// Entries after `since.seq`, ascending, at most `max`.
    pub after: Vec<(u64, String)>,
}

/// What a log read means for a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judged {
    /// These webhook ids changed (each once, in log order); then ask from
    /// `cursor`.
    Apply {
        ids: Vec<String>,
        cursor: ChangeCursor,
        more: bool,
    },
    Resync,
}

/// Decides what `read` (made for `since`, asking for `max` entries) means:
/// see the module doc for when it is a resync.
pub fn judge(since: &ChangeCursor, read: LogRead, max: usize) -> Judged {
    if read.current < since.seq {
        return Judged::Resync;
    }
    let anchored = if since.mark.is_empty() {
        read.anchor.is_empty()
    } else {
        read.anchor.len() == 1 && read.anchor[0] == since.mark
    };
    if !anchored {
        return Judged::Resync;
    }
    if read.after.is_empty() {
        return if read.current == since.seq {
            Judged::Apply {
                ids: Vec::new(),
                cursor: since.clone(),
                more: false,
            }
        } else {
            Judged::Resync
        };
    }
    let mut ids: Vec<String> = Vec::with_capacity(read.after.len());
    let mut seen = std::collections::HashSet::new();
    for (expected, (seq, member)) in (since.seq + 1..).zip(&read.after) {
        let Some(id) = mark_webhook(member) else {
            return Judged::Resync;
        };
        if *seq != expected {
            return Judged::Resync;
        }
        if seen.insert(id) {
            ids.push(id.to_owned());
        }
    }
    let (last_seq, last_mark) = read.after[read.after.len() - 1].clone();
    Judged::Apply {
        ids,
        more: read.after.len() >= max && last_seq < read.current,
        cursor: ChangeCursor {
            seq: last_seq,
            mark: last_mark,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(seq: u64, mark: &str) -> ChangeCursor {
        ChangeCursor { seq, mark: mark.into() }
    }

    fn entries(from: u64, ids: &[&str]) -> Vec<(u64, String)> {
        ids.iter()
            .enumerate()
            .map(|(i, id)| (from + i as u64, mark(from + i as u64, 7, id)))
            .collect()
    }

    #[test]
    fn marks_name_their_webhook() {
        assert_eq!(mark_webhook(&mark(12, 99, "wh_A-b")), Some("wh_A-b"));
        for bad in ["", "12", "12:3", "x:3:wh", "12:3:"] {
            assert_eq!(mark_webhook(bad), None, "{bad}");
        }
    }

    #[test]
    fn changes_after_the_cursor_apply_once_each_in_order() {
        let since = cursor(4, &mark(4, 1, "a"));
        let read = LogRead {
            current: 7,
            anchor: vec![since.mark.clone()],
            after: entries(5, &["b", "a", "b"]),
        };
        assert_eq!(
            judge(&since, read, 10),
            Judged::Apply {
                ids: vec!["b".into(), "a".into()],
                cursor: cursor(7, &mark(7, 7, "b")),
                more: false
            }
        );
    }

    #[test]
    fn a_full_batch_below_the_head_asks_for_more() {
        let since = cursor(0, "");
        let read = LogRead {
            current: 5,
            anchor: vec![],
            after: entries(1, &["a", "b"]),
        };
        match judge(&since, read, 2) {
            Judged::Apply { more, cursor, .. } => assert!(more && cursor.seq == 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nothing_new_keeps_the_cursor() {
        let since = cursor(3, &mark(3, 1, "a"));
        let read = LogRead {
            current: 3,
            anchor: vec![since.mark.clone()],
            after: vec![],
        };
        assert_eq!(
            judge(&since, read, 10),
            Judged::Apply {
                ids: vec![],
                cursor: since.clone(),
                more: false
            }
        );
    }

    #[test]
    fn a_store_without_log_entries_up_to_the_cursor_continues_from_it() {
        // Written before the log existed: the counter is at 57, no entries.
        let since = cursor(57, "");
        let read = LogRead {
            current: 58,
            anchor: vec![],
            after: entries(58, &["a"]),
        };
        assert!(matches!(judge(&since, read, 10), Judged::Apply { .. }));
    }

    #[test]
    fn lost_trimmed_or_reused_entries_mean_resync() {
        let seen = mark(4, 1, "a");
        let since = cursor(4, &seen);
        let cases = [
            // The store is behind the cursor (reset, or a failover lost writes).
            LogRead {
                current: 3,
                anchor: vec![],
                after: vec![],
            },
            // Number 4 was reused after a failover: another entry.
            LogRead {
                current: 5,
                anchor: vec![mark(4, 2, "a")],
                after: entries(5, &["b"]),
            },
            // The cursor's entry was trimmed.
            LogRead {
                current: 20_000,
                anchor: vec![],
                after: entries(10_001, &["b"]),
            },
            // The entries after it were trimmed (or never written).
            LogRead {
                current: 9,
                anchor: vec![seen.clone()],
                after: entries(7, &["b"]),
            },
            LogRead {
                current: 9,
                anchor: vec![seen.clone()],
                after: vec![],
            },
            // A gap inside the batch.
            LogRead {
                current: 9,
                anchor: vec![seen.clone()],
                after: vec![(5, mark(5, 1, "b")), (7, mark(7, 1, "c"))],
            },
            // An unreadable entry.
            LogRead {
                current: 5,
                anchor: vec![seen.clone()],
                after: vec![(5, "garbage".into())],
            },
        ];
        for read in cases {
            assert_eq!(judge(&since, read.clone(), 10), Judged::Resync, "{read:?}");
        }
        // No entry was expected at the cursor, but there is one: the store
        // was replaced by one with its own history.
        let read = LogRead {
            current: 60,
            anchor: vec![mark(57, 1, "x")],
            after: entries(58, &["y"]),
        };
        assert_eq!(judge(&cursor(57, ""), read, 10), Judged::Resync);
    }
}
