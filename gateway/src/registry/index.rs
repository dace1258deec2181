//! Event matching without a scan: webhooks indexed by what they subscribe
//! to. An event of type `a.b.c` looks at the exact bucket `a.b.c`, the
//! prefix buckets `a.` and `a.b.` (patterns `a.*` and `a.b.*`) and the
//! `*` bucket — as many lookups as the type has segments, however many
//! webhooks there are. Buckets are ordered by [`PageKey`], so matches come
//! out in the registry's order (config webhooks first, then API ones by
//! creation).

use std::collections::{BTreeMap, HashMap};

use super::live::PageKey;
use crate::webhooks::EventPattern;

type Bucket<V> = BTreeMap<PageKey, V>;

/// Values (webhooks) by the patterns they were inserted with.
#[derive(Debug)]
pub struct MatchIndex<V> {
    exact: HashMap<String, Bucket<V>>,
    /// Keyed by the prefix with its dot (`a.b.` for `a.b.*`).
    prefix: HashMap<String, Bucket<V>>,
    all: Bucket<V>,
}

impl<V> Default for MatchIndex<V> {
    fn default() -> Self {
        MatchIndex {
            exact: HashMap::new(),
            prefix: HashMap::new(),
            all: BTreeMap::new(),
        }
    }
}

impl<V: Clone> MatchIndex<V> {
    /// Adds `value` under each of `patterns`.
    pub fn insert(&mut self, key: &PageKey, patterns: &[EventPattern], value: &V) {
        for p in patterns {
            let bucket = match p {
                EventPattern::All => &mut self.all,
                EventPattern::Prefix(s) => self.prefix.entry(s.clone()).or_default(),
                EventPattern::Exact(s) => self.exact.entry(s.clone()).or_default(),
            };
            bucket.insert(key.clone(), value.clone());
        }
    }

    /// Removes what [`MatchIndex::insert`] added with the same key and
    /// patterns.
    pub fn remove(&mut self, key: &PageKey, patterns: &[EventPattern]) {
        fn out<V>(map: &mut HashMap<String, Bucket<V>>, name: &str, key: &PageKey) {
            if let Some(bucket) = map.get_mut(name) {
                bucket.remove(key);
                if bucket.is_empty() {
                    map.remove(name);
                }
            }
        }
        for p in patterns {
            match p {
                EventPattern::All => {
                    self.all.remove(key);
                }
                EventPattern::Prefix(s) => out(&mut self.prefix, s, key),
                EventPattern::Exact(s) => out(&mut self.exact, s, key),
            }
        }
    }

    /// Every value with a pattern that matches `event_type`, once each, in
    /// key order.
    pub fn matching(&self, event_type: &str) -> Vec<(&PageKey, &V)> {
        let mut out: Vec<(&PageKey, &V)> = Vec::new();
        if let Some(b) = self.exact.get(event_type) {
            out.extend(b.iter());
        }
        for (dot, _) in event_type.match_indices('.') {
            if let Some(b) = self.prefix.get(&event_type[..=dot]) {
                out.extend(b.iter());
            }
        }
        out.extend(self.all.iter());
        out.sort_unstable_by(|a, b| a.0.cmp(b.0));
        out.dedup_by(|a, b| a.0 == b.0);
        out
    }

    /// Buckets in use (removal leaves none behind).
    #[cfg(test)]
    pub fn buckets(&self) -> usize {
        self.exact.len() + self.prefix.len() + usize::from(!self.all.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(p: &[&str]) -> Vec<EventPattern> {
        p.iter().map(|s| EventPattern::parse(s).unwrap()).collect()
    }

    fn names<'a>(m: &[(&PageKey, &'a &'static str)]) -> Vec<&'a str> {
        m.iter().map(|(_, v)| **v).collect()
    }

    #[test]
    fn exact_prefix_and_all_match_like_the_patterns_do() {
        let mut idx = MatchIndex::default();
        let hooks = [
            ("exact", vec!["task.completed"]),
            ("task", vec!["task.*"]),
            ("deep", vec!["task.completed.*"]),
            ("other", vec!["order.*", "order.created"]),
            ("all", vec!["*"]),
            ("both", vec!["task.completed", "task.*"]),
        ];
        for (i, (name, p)) in hooks.iter().enumerate() {
            idx.insert(&PageKey::api(i as u64, name), &patterns(p), name);
        }
        assert_eq!(
            names(&idx.matching("task.completed")),
            ["exact", "task", "all", "both"],
            "each once, in key order"
        );
        assert_eq!(
            names(&idx.matching("task.completed.late")),
            ["task", "deep", "all", "both"]
        );
        assert_eq!(names(&idx.matching("task")), ["all"]);
        assert_eq!(names(&idx.matching("tasks.x")), ["all"]);
        assert_eq!(names(&idx.matching("order.created")), ["other", "all"]);
        // The same verdicts as the patterns themselves, for every hook and type.
        for t in [
            "task.completed",
            "task.completed.late",
            "task",
            "order.created",
            "order.x.y",
            "z",
        ] {
            let expected: Vec<&str> = hooks
                .iter()
                .filter(|(_, p)| patterns(p).iter().any(|p| p.matches(t)))
                .map(|(n, _)| *n)
                .collect();
            assert_eq!(names(&idx.matching(t)), expected, "{t}");
        }
    }

    #[test]
    fn removal_takes_out_every_entry_and_empty_buckets() {
        let mut idx = MatchIndex::default();
        let (a, b) = (PageKey::api(1, "a"), PageKey::api(2, "b"));
        let pa = patterns(&["x.y", "x.*", "*"]);
        let pb = patterns(&["x.y"]);
        idx.insert(&a, &pa, &"a");
        idx.insert(&b, &pb, &"b");
        idx.remove(&a, &pa);
        assert_eq!(names(&idx.matching("x.y")), ["b"]);
        assert_eq!(idx.buckets(), 1);
        idx.remove(&b, &pb);
        assert!(idx.matching("x.y").is_empty());
        assert_eq!(idx.buckets(), 0);
    }

    #[test]
    fn config_keys_come_before_api_keys() {
        let mut idx = MatchIndex::default();
        idx.insert(&PageKey::api(1, "api"), &patterns(&["*"]), &"api");
        idx.insert(&PageKey::config(5, "cfg"), &patterns(&["a.b"]), &"cfg");
        assert_eq!(names(&idx.matching("a.b")), ["cfg", "api"]);
    }
}
