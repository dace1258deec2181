//! The shared GCRA limiter (`gcra.lua`), for webhooks and API tokens.

use std::time::Duration;

use async_trait::async_trait;

use super::{RedisStore, unavailable};
use crate::store::*;

impl RedisStore {
    async fn gcra(&self, reqs: &[RateRequest]) -> Result<Vec<RateState>, StoreError> {
        let mut inv = self.scripts.gcra.prepare_invoke();
        inv.arg(&self.prefix).arg(reqs.len());
        for r in reqs {
            inv.arg(&r.key).arg(r.limit.interval_us).arg(r.limit.tolerance_us);
        }
        let flat: Vec<i64> = inv.invoke_async(&mut self.conn.clone()).await.map_err(unavailable)?;
        if flat.len() != reqs.len() * 3 {
            return Err(StoreError::Corrupt("gcra: unexpected reply length".into()));
        }
        Ok(rate_states(&flat).collect())
    }
}

/// The states in a `gcra.lua` reply (three integers per request).
pub(super) fn rate_states(flat: &[i64]) -> impl Iterator<Item = RateState> + '_ {
    flat.chunks(3).map(|c| RateState {
        decision: if c[0] <= 0 {
            RateDecision::Allow
        } else {
            RateDecision::Wait(Duration::from_micros(c[0] as u64))
        },
        tat_us: c[1].max(0) as u64,
        now_us: c[2].max(0) as u64,
    })
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
