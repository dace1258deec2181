//! The circuit breaker's I/O (the policy is [`crate::circuit`]): counting
//! consecutive failures per webhook in this gateway, opening, probing and
//! closing through compare-and-swap in the store, and disabling a webhook
//! that has failed for `disable_after`, or that answered 410 Gone, with an
//! operational event so its owners learn of it.

use std::sync::Arc;

use super::Shared;
use super::attempt::Verdict;
use crate::circuit::{Circuit, CircuitState};
use crate::metrics;
use crate::operational::{self, reason};
use crate::store::now_ms;
use crate::webhooks::Webhook;

/// Whether an attempt's result says the endpoint is failing (the breaker's
/// kind of failure), healthy, or neither.
fn health(verdict: &Verdict) -> Option<bool> {
    match verdict {
        Verdict::Success => Some(true),
        Verdict::Timeout | Verdict::Connect => Some(false),
        Verdict::Http { status, .. } if *status >= 500 => Some(false),
        // The receiver answered: it is up, whatever it thought of the request.
        Verdict::Http { .. } | Verdict::Gone => Some(true),
        Verdict::Cancelled => None,
    }
}

async fn swap(shared: &Shared, hook: &Webhook, from: Option<&Circuit>, to: Option<&Circuit>) -> bool {
    match shared.store.swap_circuit(&hook.id, from, to).await {
        Ok(true) => {
            let state = to.map_or(CircuitState::Closed, |c| c.state);
            metrics::circuit_transition(&hook.id, state);
            if let Err(e) = shared.registry.refresh(shared.store.as_ref()).await {
                tracing::debug!(error = %e, "could not reload webhooks");
            }
            true
        }
        Ok(false) => false,
        Err(e) => {
            tracing::warn!(webhook_id = %hook.id, error = %e, "could not record a circuit breaker change");
            false
        }
    }
}

/// Takes the probe of an open breaker; the half-open state if this gateway
/// won it.
pub(super) async fn try_probe(shared: &Shared, hook: &Webhook) -> Option<Circuit> {
    let open = hook.circuit?;
    let probing = open.probing(now_ms(), shared.lease);
    swap(shared, hook, Some(&open), Some(&probing)).await.then_some(probing)
}

/// Folds one attempt's result into the breaker.
pub(super) async fn observe(shared: &Arc<Shared>, hook: &Webhook, verdict: &Verdict, probe: Option<Circuit>) {
    let Some(healthy) = health(verdict) else { return };
    let policy = shared.config.delivery.breaker;
    let now = now_ms();
    if let Some(probing) = probe {
        if healthy {
            if swap(shared, hook, Some(&probing), None).await {
                tracing::info!(webhook_id = %hook.id, "endpoint answered the probe; circuit closed");
            }
        } else if probing.failing_too_long(now, &policy) {
            disable(
                shared,
                hook,
                "every attempt failed for [delivery] disable_after",
                reason::FAILING,
            )
            .await;
        } else {
            let reopened = probing.reopened(now, &policy);
            if swap(shared, hook, Some(&probing), Some(&reopened)).await {
                tracing::warn!(
                    webhook_id = %hook.id,
                    cooldown_ms = reopened.cooldown_ms,
                    "probe failed; circuit open again"
                );
            }
        }
        return;
    }
    let tripped = {
        let mut failures = shared.failures.lock().unwrap_or_else(|e| e.into_inner());
        if healthy {
            failures.remove(&hook.id);
            false
        } else {
            let n = failures.entry(hook.id.clone()).or_default();
            *n += 1;
            let tripped = *n >= policy.failures;
            if tripped {
                failures.remove(&hook.id);
            }
            tripped
        }
    };
    if tripped && hook.circuit.is_none() {
        let open = Circuit::opened(now, &policy);
        if swap(shared, hook, None, Some(&open)).await {
            tracing::warn!(
                webhook_id = %hook.id,
                failures = policy.failures,
                cooldown_ms = open.cooldown_ms,
                "endpoint keeps failing; circuit open"
            );
        }
    }
}

/// Disables the webhook everywhere (its pending deliveries become dead
/// letters) and tells the subscribers of `hookgate.webhook.disabled`.
pub(super) async fn disable(shared: &Arc<Shared>, hook: &Webhook, why: &str, code: &str) {
    match shared.store.disable_webhook(&hook.id, hook.url.as_str(), code).await {
        Ok(moved) => {
            tracing::warn!(webhook_id = %hook.id, moved, reason = code, "{why}; webhook disabled, pending deliveries dead-lettered");
        }
        Err(e) => {
            tracing::warn!(webhook_id = %hook.id, error = %e, "{why}; could not record the webhook as disabled");
            return;
        }
    }
    if let Err(e) = shared.registry.refresh(shared.store.as_ref()).await {
        tracing::debug!(error = %e, "could not reload webhooks");
    }
    match operational::emit(
        shared.store.as_ref(),
        &shared.registry,
        operational::WEBHOOK_DISABLED,
        &hook.id,
        code,
    )
    .await
    {
        Ok(n) if n > 0 => shared.wake.notify_one(),
        Ok(_) => {}
        Err(e) => tracing::warn!(webhook_id = %hook.id, error = %e, "could not emit hookgate.webhook.disabled"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transport_failures_and_5xx_count_against_an_endpoint() {
        let http = |status| Verdict::Http {
            status,
            retry_after: None,
        };
        assert_eq!(health(&Verdict::Success), Some(true));
        assert_eq!(health(&http(404)), Some(true));
        assert_eq!(health(&http(429)), Some(true));
        assert_eq!(health(&http(500)), Some(false));
        assert_eq!(health(&http(503)), Some(false));
        assert_eq!(health(&Verdict::Timeout), Some(false));
        assert_eq!(health(&Verdict::Connect), Some(false));
        assert_eq!(health(&Verdict::Cancelled), None);
    }
}
