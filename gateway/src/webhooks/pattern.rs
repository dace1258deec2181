//! Event types and the patterns webhooks subscribe with.

use std::fmt;

/// Whether `s` is a valid event type: `^[a-z0-9_]+(\.[a-z0-9_]+)*$`.
pub fn is_valid_event_type(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

/// One entry of a webhook's `events`: an exact type, `prefix.*` or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventPattern {
    /// `*`: every event.
    All,
    /// `task.*`: every type that starts with `task.` (stored with the dot).
    Prefix(String),
    /// `task.completed`.
    Exact(String),
}

impl EventPattern {
    /// Parses a pattern, or says what is wrong with it.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "*" {
            return Ok(EventPattern::All);
        }
        if let Some(prefix) = s.strip_suffix(".*") {
            if is_valid_event_type(prefix) {
                return Ok(EventPattern::Prefix(format!("{prefix}.")));
            }
        } else if is_valid_event_type(s) {
            return Ok(EventPattern::Exact(s.to_owned()));
        }
        Err(format!(
            "invalid event pattern {s:?}: use an event type like \"task.completed\", a prefix like \"task.*\", or \"*\""
        ))
    }

    /// Whether an event of type `event_type` matches.
    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            EventPattern::All => true,
            EventPattern::Prefix(p) => event_type.starts_with(p.as_str()),
            EventPattern::Exact(e) => e == event_type,
        }
    }
}

impl fmt::Display for EventPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventPattern::All => f.write_str("*"),
            EventPattern::Prefix(p) => write!(f, "{p}*"),
            EventPattern::Exact(e) => f.write_str(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types() {
        for ok in ["a", "task.completed", "a_b.c1.d_2", "0"] {
            assert!(is_valid_event_type(ok), "{ok}");
        }
        for bad in ["", ".", "a.", ".a", "a..b", "Task", "a-b", "a b", "a.*", "é"] {
            assert!(!is_valid_event_type(bad), "{bad}");
        }
    }

    #[test]
    fn patterns_parse_match_and_display() {
        let all = EventPattern::parse("*").unwrap();
        let prefix = EventPattern::parse("task.*").unwrap();
        let exact = EventPattern::parse("task.completed").unwrap();
        assert!(all.matches("anything.at.all"));
        assert!(prefix.matches("task.completed") && prefix.matches("task.a.b"));
        assert!(!prefix.matches("task") && !prefix.matches("tasks.x"));
        assert!(exact.matches("task.completed") && !exact.matches("task.completed.x"));
        assert_eq!(prefix.to_string(), "task.*");
        for bad in ["task*", "*.task", "ta sk", "", "task.", "Task.*"] {
            assert!(EventPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
