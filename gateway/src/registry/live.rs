//! The live set of webhooks a gateway holds: by id, in listing order, and
//! indexed for matching. Changed one webhook at a time, so applying a
//! change costs the same with 50,000 webhooks as with 10.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use foldhash::HashMap;

use super::index::MatchIndex;
use crate::webhooks::{Webhook, is_valid_webhook_id};

/// A webhook's place in listings: config webhooks first, in definition
/// order, then API webhooks by creation time (then id). Its text form is
/// the `cursor` of `GET /api/webhooks`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PageKey {
    /// 0: config, 1: API.
    group: u8,
    /// Config: position in config.toml; API: created at (unix ms).
    n: u64,
    id: String,
}

impl PageKey {
    pub fn config(position: u64, id: &str) -> Self {
        PageKey {
            group: 0,
            n: position,
            id: id.to_owned(),
        }
    }

    pub fn api(created_at_ms: u64, id: &str) -> Self {
        PageKey {
            group: 1,
            n: created_at_ms,
            id: id.to_owned(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key [`PageKey`]'s `Display` wrote, or `None`.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.splitn(3, '.');
        let group = match parts.next()? {
            "0" => 0,
            "1" => 1,
            _ => return None,
        };
        let n = parts
            .next()
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))?;
        let n = n.parse().ok()?;
        let id = parts.next().filter(|id| is_valid_webhook_id(id))?;
        Some(PageKey {
            group,
            n,
            id: id.to_owned(),
        })
    }
}

impl fmt::Display for PageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.group, self.n, self.id)
    }
}

/// Every webhook, three ways.
#[derive(Debug, Default)]
pub struct Live {
    by_id: HashMap<String, (PageKey, Arc<Webhook>)>,
    order: BTreeMap<PageKey, Arc<Webhook>>,
    index: MatchIndex<Arc<Webhook>>,
}

impl Live {
    /// Adds or replaces the webhook `key.id()`.
    pub fn put(&mut self, key: PageKey, hook: Arc<Webhook>) {
        self.remove(key.id());
        self.index.insert(&key, &hook.events, &hook);
        self.order.insert(key.clone(), hook.clone());
        self.by_id.insert(key.id.clone(), (key, hook));
    }

    /// Removes a webhook, if there is one with this id.
    pub fn remove(&mut self, id: &str) {
        if let Some((key, hook)) = self.by_id.remove(id) {
            self.order.remove(&key);
            self.index.remove(&key, &hook.events);
        }
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Webhook>> {
        self.by_id.get(id).map(|(_, h)| h)
    }

    /// Every webhook, in listing order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Webhook>> {
        self.order.values()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// The enabled webhooks an event of this type (a test event or not)
    /// goes to, in listing order.
    pub fn matching(&self, event_type: &str, test: bool) -> Vec<Arc<Webhook>> {
        self.index
            .matching(event_type)
            .into_iter()
            .filter(|(_, h)| h.enabled && h.test_mode == test)
            .map(|(_, h)| h.clone())
            .collect()
    }

    /// Up to `limit` webhooks after `after` in listing order, and the key
    /// to continue from if there are more.
    pub fn page(&self, after: Option<&PageKey>, limit: usize) -> (Vec<Arc<Webhook>>, Option<PageKey>) {
        let lower = after.map_or(Bound::Unbounded, |k| Bound::Excluded(k.clone()));
        let mut items: Vec<(&PageKey, &Arc<Webhook>)> = self
            .order
            .range((lower, Bound::Unbounded))
            .take(limit.saturating_add(1))
            .collect();
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|(k, _)| (*k).clone())
        } else {
            None
        };
        (items.into_iter().map(|(_, h)| h.clone()).collect(), next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// Webhooks `(id, events, extra TOML)` as config.toml would give them.
    fn hooks(defs: &[(&str, &str, &str)]) -> Vec<Webhook> {
        let mut toml = String::from("[api]\ntokens = [\"tok-0123456789\"]\n[store]\nbackend = \"redis\"\n");
        for (id, events, extra) in defs {
            toml.push_str(&format!(
                "[[webhooks]]\nid = \"{id}\"\nurl = \"https://e.com/{id}\"\nevents = {events}\nsecret = \"secret-0123456789\"\n{extra}\n"
            ));
        }
        Config::parse(&toml, std::path::Path::new("c.toml"), &|_| None)
            .unwrap()
            .webhooks
    }

    fn ids(list: &[Arc<Webhook>]) -> Vec<&str> {
        list.iter().map(|w| w.id.as_str()).collect()
    }

    #[test]
    fn puts_replace_removes_forget_and_pages_follow_the_keys() {
        let defs = hooks(&[
            ("a", r#"["t.x"]"#, ""),
            ("b", r#"["t.*"]"#, ""),
            ("c", r#"["*"]"#, "test_mode = true"),
            ("d", r#"["t.x"]"#, ""),
        ]);
        let mut live = Live::default();
        for (i, w) in defs.iter().enumerate() {
            live.put(PageKey::api(10 - i as u64, &w.id), Arc::new(w.clone()));
        }
        assert_eq!(live.len(), 4);
        assert_eq!(ids(&live.matching("t.x", false)), ["d", "b", "a"], "in key order");
        assert_eq!(
            ids(&live.matching("t.x", true)),
            ["c"],
            "test events reach test-mode webhooks only"
        );
        // Replacing a webhook moves it in the index: no stale entries.
        let moved = Webhook {
            events: vec![crate::webhooks::EventPattern::parse("u.y").unwrap()],
            ..defs[0].clone()
        };
        live.put(PageKey::api(10, "a"), Arc::new(moved));
        assert_eq!(ids(&live.matching("t.x", false)), ["d", "b"]);
        assert_eq!(ids(&live.matching("u.y", false)), ["a"]);
        let disabled = Webhook {
            enabled: false,
            ..defs[3].clone()
        };
        live.put(PageKey::api(7, "d"), Arc::new(disabled));
        assert_eq!(ids(&live.matching("t.x", false)), ["b"], "disabled ones get nothing");
        live.remove("b");
        live.remove("nope");
        assert!(live.matching("t.x", false).is_empty());
        assert!(live.get("b").is_none() && live.get("a").is_some());

        let (first, next) = live.page(None, 2);
        assert_eq!(ids(&first), ["d", "c"]);
        let (rest, end) = live.page(next.as_ref(), 2);
        assert_eq!(ids(&rest), ["a"]);
        assert_eq!(end, None);
        assert_eq!(live.iter().count(), 3);
    }

    #[test]
    fn page_keys_round_trip_and_reject_anything_else() {
        for key in [
            PageKey::config(3, "orders"),
            PageKey::api(1_700_000_000_000, "wh_01K-x_y"),
        ] {
            assert_eq!(PageKey::parse(&key.to_string()), Some(key.clone()), "{key}");
        }
        for bad in [
            "",
            "2.1.a",
            "1.x.a",
            "1.5",
            "1.5.",
            "1.5.a b",
            "0.-1.a",
            "1.+5.a",
            "1.99999999999999999999999.a",
        ] {
            assert_eq!(PageKey::parse(bad), None, "{bad}");
        }
        assert!(PageKey::config(99, "z") < PageKey::api(0, "a"));
    }
}
