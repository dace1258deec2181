//! Queue shards: the per-delivery keys (records, queues, leases, dead
//! letters, history indexes, idempotency keys) are split into `shards`
//! groups, each under a prefix of its own. On a Redis Cluster each prefix
//! is a hash tag (`{P:3:41}`), so one shard's keys share a slot and each
//! script touches one slot; the tags are chosen so their slots are spread
//! evenly over 0..16384, so a cluster whose masters own equal slot ranges
//! gets an equal share of the shards.
//!
//! An id's shard is its bucket (`ids::bucket`) modulo the shard count: an
//! event's deliveries and its idempotency key are in its shard. With one
//! shard the prefix is the store's own (`P`, or `{P}` on a cluster): the
//! key names of stores made before shards existed.

use super::conn::key_slot;
use crate::ids;

/// Shards at most (a shard is at least one bucket).
pub const MAX_SHARDS: usize = ids::BUCKETS as usize;
const SLOTS: usize = 16_384;

/// One shard: the prefix its keys are built from and the key that routes
/// its scripts (see `RoutedScript`).
#[derive(Debug, Clone)]
pub(crate) struct Shard {
    /// Its place among the store's shards.
    pub(crate) index: usize,
    pub(crate) prefix: String,
    pub(crate) route: String,
}

impl Shard {
    fn new(index: usize, prefix: String) -> Self {
        let route = format!("{prefix}:q:first");
        Shard { index, prefix, route }
    }

    pub(crate) fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.prefix)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Shards {
    shards: Vec<Shard>,
}

impl Shards {
    /// `n` shards (1..=[`MAX_SHARDS`]) of the store whose own prefix is
    /// `store_prefix` (as keys use it: `P` or `{P}`) and whose configured
    /// prefix is `name`.
    pub(crate) fn new(store_prefix: &str, name: &str, n: usize) -> Self {
        let n = n.clamp(1, MAX_SHARDS);
        if n == 1 {
            return Shards {
                shards: vec![Shard::new(0, store_prefix.to_owned())],
            };
        }
        let shards = (0..n)
            .map(|i| {
                let (lo, hi) = (i * SLOTS / n, (i + 1) * SLOTS / n);
                // The first salt whose tag lands in this shard's slot range:
                // about n tries, the same on every gateway.
                let tag = (0u32..)
                    .map(|salt| format!("{name}:{i}:{salt}"))
                    .find(|tag| (lo..hi).contains(&(key_slot(tag.as_bytes()) as usize)))
                    .unwrap_or_else(|| format!("{name}:{i}"));
                Shard::new(i, format!("{{{tag}}}"))
            })
            .collect();
        Shards { shards }
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.len()
    }

    pub(crate) fn all(&self) -> &[Shard] {
        &self.shards
    }

    pub(crate) fn index_of(&self, id: &str) -> usize {
        usize::from(ids::bucket(id)) % self.shards.len()
    }

    /// The shard that holds `id` (an event or delivery id).
    pub(crate) fn of(&self, id: &str) -> &Shard {
        &self.shards[self.index_of(id)]
    }

    /// `items` grouped by the shard of `id(item)`, in shard order, each
    /// group in the items' order.
    pub(crate) fn group<T>(
        &self,
        items: impl IntoIterator<Item = T>,
        id: impl Fn(&T) -> &str,
    ) -> Vec<(&Shard, Vec<T>)> {
        let mut groups: Vec<Vec<T>> = (0..self.shards.len()).map(|_| Vec::new()).collect();
        for it in items {
            let i = self.index_of(id(&it));
            groups[i].push(it);
        }
        self.shards.iter().zip(groups).filter(|(_, g)| !g.is_empty()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shard_keeps_the_stores_own_prefix() {
        let s = Shards::new("hookgate", "hookgate", 1);
        assert_eq!(s.len(), 1);
        assert_eq!(s.of("dlv_01JDZ3K4Q8W7X2M9N5R6T0V1YB").prefix, "hookgate");
        assert_eq!(s.all()[0].route, "hookgate:q:first");
    }

    #[test]
    fn shard_tags_spread_over_the_slot_space_and_are_stable() {
        for n in [2, 3, 16, 64] {
            let s = Shards::new("{hg}", "hg", n);
            for (i, shard) in s.all().iter().enumerate() {
                let slot = key_slot(shard.route.as_bytes()) as usize;
                assert!(
                    (i * SLOTS / n..(i + 1) * SLOTS / n).contains(&slot),
                    "{n}: {shard:?} {slot}"
                );
                assert_eq!(
                    key_slot(shard.key("dlv:x").as_bytes()),
                    key_slot(shard.route.as_bytes())
                );
            }
            let again = Shards::new("{hg}", "hg", n);
            assert_eq!(
                s.all().iter().map(|x| &x.prefix).collect::<Vec<_>>(),
                again.all().iter().map(|x| &x.prefix).collect::<Vec<_>>()
            );
        }
        // Three masters with equal slot ranges get 5 or 6 of 16 shards each.
        let s = Shards::new("{hg}", "hg", 16);
        let mut per_master = [0; 3];
        for shard in s.all() {
            per_master[key_slot(shard.route.as_bytes()) as usize * 3 / SLOTS] += 1;
        }
        assert!(per_master.iter().all(|&c| (5..=6).contains(&c)), "{per_master:?}");
    }

    #[test]
    fn an_events_deliveries_are_in_its_shard() {
        let s = Shards::new("{hg}", "hg", 16);
        for _ in 0..50 {
            let e = ids::new_event_id(Some(&ids::new_id("k")));
            for d in ids::delivery_ids(&e, 3).iter().chain(&ids::delivery_ids(&e, 1)) {
                assert_eq!(s.index_of(d), s.index_of(&e));
            }
        }
        let groups = s.group(["a", "b", "c", "a"], |x| x);
        assert_eq!(groups.iter().map(|(_, g)| g.len()).sum::<usize>(), 4);
    }
}
