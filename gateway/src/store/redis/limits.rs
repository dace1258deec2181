//! The shared GCRA limiter (`gcra.lua`), for webhooks and API tokens.

use async_trait::async_trait;

use super::conn::{Conn, key_slot};
use super::{RedisStore, RoutedScript, unavailable};
use crate::store::*;

/// The GCRA script and where its keys live. On a standalone Redis the
/// state of key `k` is `P:rl:k` and one call takes a whole batch. On a
/// cluster it is `{P:rl:k}`, a hash tag of its own, so the rate limits of
/// many webhooks and tokens spread over the masters instead of all landing
/// on the store-wide slot; a batch is one call per slot.
pub(super) struct Limiter {
    script: RoutedScript,
    prefix: String,
    cluster: bool,
}

impl Limiter {
    /// `name` is the configured prefix (`P`), `prefix` the store-wide one
    /// (`P` or `{P}`).
    pub(super) fn new(name: &str, prefix: &str, cluster: bool) -> Self {
        Limiter {
            script: RoutedScript::new(
                &super::rate_script(include_str!("lua/gcra.lua")),
                &format!("{prefix}:q:first"),
            ),
            prefix: if cluster { name.to_owned() } else { prefix.to_owned() },
            cluster,
        }
    }

    /// Whether other scripts may take these limits themselves: on a
    /// standalone Redis every key is reachable from any script; on a
    /// cluster a limit's key is in a slot of its own.
    pub(super) fn shared_slot(&self) -> bool {
        !self.cluster
    }

    /// The key that holds `k`'s state.
    pub(super) fn key(&self, k: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + k.len() + 6);
        if self.cluster {
            key.push('{');
        }
        key.push_str(&self.prefix);
        key.push_str(":rl:");
        key.push_str(k);
        if self.cluster {
            key.push('}');
        }
        key
    }

    /// Checks (and takes) each request in order; states in the same order.
    pub(super) async fn check(&self, conn: &Conn, reqs: &[&RateRequest]) -> Result<Vec<RateState>, StoreError> {
        let keys: Vec<String> = reqs.iter().map(|r| self.key(&r.key)).collect();
        let mut groups: Vec<(u16, Vec<usize>)> = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let slot = if self.cluster { key_slot(k.as_bytes()) } else { 0 };
            match groups.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, g)) => g.push(i),
                None => groups.push((slot, vec![i])),
            }
        }
        let calls = futures_util::future::join_all(groups.iter().map(|(_, g)| {
            let mut inv = self.script.on_key(&keys[g[0]]);
            inv.arg(g.len());
            for &i in g {
                inv.arg(&keys[i])
                    .arg(reqs[i].limit.interval_us)
                    .arg(reqs[i].limit.tolerance_us);
            }
            async move { inv.invoke_async::<Vec<i64>>(&mut conn.clone()).await }
        }))
        .await;
        let mut out: Vec<Option<RateState>> = vec![None; reqs.len()];
        for ((_, g), flat) in groups.iter().zip(calls) {
            let flat = flat.map_err(unavailable)?;
            if flat.len() != g.len() * 3 {
                return Err(StoreError::Corrupt("gcra: unexpected reply length".into()));
            }
            for (&i, state) in g.iter().zip(rate_states(&flat)) {
                out[i] = Some(state);
            }
        }
        out.into_iter()
            .map(|s| s.ok_or_else(|| StoreError::Corrupt("gcra: short reply".into())))
            .collect()
    }
}

impl RedisStore {
    async fn gcra(&self, reqs: &[RateRequest]) -> Result<Vec<RateState>, StoreError> {
        let refs: Vec<&RateRequest> = reqs.iter().collect();
        self.limiter.check(&self.conn, &refs).await
    }
}

#[async_trait]
impl RateLimiter for RedisStore {
    async fn acquire(&self, reqs: &[RateRequest]) -> Result<Vec<RateDecision>, StoreError> {
        if reqs.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.gcra(reqs).await?.into_iter().map(|s| s.decision).collect())
    }

    async fn acquire_with_state(&self, req: &RateRequest) -> Result<RateState, StoreError> {
        self.gcra(std::slice::from_ref(req))
            .await?
            .pop()
            .ok_or_else(|| StoreError::Corrupt("gcra: empty reply".into()))
    }
}

/// The states in a `gcra.lua` reply (three integers per request).
pub(super) fn rate_states(flat: &[i64]) -> impl Iterator<Item = RateState> + '_ {
    flat.chunks(3).map(|c| RateState {
        decision: RateDecision::from_wait_us(c[0]),
        tat_us: c[1].max(0) as u64,
        now_us: c[2].max(0) as u64,
    })
}
