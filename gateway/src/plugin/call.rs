//! One plugin call: a warm instance from the version's pool (or a fresh
//! store and instance), this call's limits and deadline, call the export,
//! classify what happened, check the output, and give the instance back to
//! the pool only if the call returned normally (see [`super::warm`]).
//!
//! Creating a fresh instance has its own budget ([`INSTANTIATE_BUDGET`] or
//! the call's `timeout`, whichever is longer); the call's `timeout` then
//! starts when the export is called. Each deadline is enforced twice: the
//! epoch callback traps guest code that is still running at the deadline
//! (yielding to the runtime on every tick before that), and a timer drops
//! the whole future a few ticks later, which also ends a guest waiting
//! inside a WASI host call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmtime::{Store, Trap, UpdateDeadline};

use super::bindings::{Event, HostState, Plugin, Verdict};
use super::limits::{MAX_OUTPUT_BYTES, MAX_OUTPUT_HEADERS};
use super::output::{MAX_LINE, truncate};
use super::registry;
use super::warm::Warm;
use super::{PluginError, PluginHandle, PluginHost, PluginInput, PluginLimits, PluginVerdict};

/// Extra time the timer allows past the epoch deadline, so CPU-bound guests
/// are stopped by the (cheaper, cleaner) epoch trap.
const TIMER_GRACE: Duration = Duration::from_millis(5);

/// The least time a fresh instance may take to be created, apart from the
/// call's own `timeout`: mapping the 10-20 MiB memory image of a JavaScript
/// or Python plugin is milliseconds of host work, and on a busy machine
/// (say, 32 fresh instances at once after a start or a reload) it must not
/// use up a 100 ms budget meant for the plugin's code. Guest code that runs
/// while instantiating (start functions) is bounded by it too.
const INSTANTIATE_BUDGET: Duration = Duration::from_secs(1);

enum Op<'a> {
    Handle(Event, &'a [(String, String)]),
    Validate(&'a [(String, String)]),
}

enum Answer {
    Handle(Result<Verdict, String>),
    Validate(Result<(), String>),
}

pub(crate) async fn handle(
    host: &PluginHost,
    plugin: &PluginHandle,
    input: PluginInput<'_>,
    config: &[(String, String)],
    limits: PluginLimits,
) -> Result<PluginVerdict, PluginError> {
    let event = Event {
        id: input.event_id.to_owned(),
        event_type: input.event_type.to_owned(),
        webhook_id: input.webhook_id.to_owned(),
        headers: input.headers,
        body: input.body.to_vec(),
    };
    plugin.note_config(config, limits);
    match run(host, plugin, Op::Handle(event, config), limits).await? {
        Answer::Handle(Ok(verdict)) => check_output(verdict),
        Answer::Handle(Err(message)) => Err(PluginError::Guest(truncate(&message, MAX_LINE).to_owned())),
        Answer::Validate(_) => Err(PluginError::Trap("unexpected answer".into())),
    }
}

pub(crate) async fn validate(
    host: &PluginHost,
    plugin: &PluginHandle,
    config: &[(String, String)],
    limits: PluginLimits,
) -> Result<(), PluginError> {
    plugin.note_config(config, limits);
    let loaded = registry::refresh(host, plugin).await;
    validate_on(host, plugin, loaded, config, limits).await
}

/// `validate-config` of one version of the plugin (a reload checks a new
/// version before it runs).
pub(crate) async fn validate_on(
    host: &PluginHost,
    plugin: &PluginHandle,
    loaded: Arc<registry::Loaded>,
    config: &[(String, String)],
    limits: PluginLimits,
) -> Result<(), PluginError> {
    match run_on(host, plugin, loaded, Op::Validate(config), limits).await? {
        Answer::Validate(Ok(())) => Ok(()),
        Answer::Validate(Err(message)) => Err(PluginError::Config(truncate(&message, MAX_LINE).to_owned())),
        Answer::Handle(_) => Err(PluginError::Trap("unexpected answer".into())),
    }
}

async fn run(
    host: &PluginHost,
    plugin: &PluginHandle,
    op: Op<'_>,
    limits: PluginLimits,
) -> Result<Answer, PluginError> {
    let loaded = registry::refresh(host, plugin).await;
    run_on(host, plugin, loaded, op, limits).await
}

async fn run_on(
    host: &PluginHost,
    plugin: &PluginHandle,
    loaded: Arc<registry::Loaded>,
    op: Op<'_>,
    limits: PluginLimits,
) -> Result<Answer, PluginError> {
    limits.check()?;
    let inner = &host.inner;
    let _permit = inner
        .permits
        .acquire()
        .await
        .map_err(|_| PluginError::Load("plugin host is shut down".into()))?;
    let _active = inner.ticker.enter();

    let (mut store, instance, calls) = match loaded.warm.take(limits.max_memory) {
        Some(Warm { store, plugin, calls }) => (store, Some(plugin), calls),
        None => {
            let state = HostState::new(plugin.0.name.clone(), limits.max_memory, plugin.0.log_budget.clone());
            let mut store = Store::new(&inner.engine, state);
            store.limiter(|s| &mut s.limiter);
            (store, None, 0)
        }
    };
    // Per call: this call's memory cap, no error remembered from an earlier
    // call, a fresh deadline.
    let state = store.data_mut();
    state.limiter.begin_call(limits.max_memory);
    state.log.last_error = None;

    let instance = match instance {
        Some(instance) => instance,
        None => {
            let budget = limits.timeout.max(INSTANTIATE_BUDGET);
            arm_deadline(&mut store, budget);
            let made = tokio::time::timeout(budget + TIMER_GRACE, loaded.pre.instantiate_async(&mut store)).await;
            match made {
                Ok(Ok(instance)) => instance,
                Err(_elapsed) => return Err(PluginError::Timeout(budget)),
                Ok(Err(e)) => {
                    let state = store.data_mut();
                    state.log.flush_streams(&state.stdout, &state.stderr);
                    let limits = PluginLimits {
                        timeout: budget,
                        ..limits
                    };
                    return Err(classify(&e, store.data(), limits));
                }
            }
        }
    };
    arm_deadline(&mut store, limits.timeout);
    let outcome = tokio::time::timeout(limits.timeout + TIMER_GRACE, invoke(&mut store, &instance, op)).await;
    let state = store.data_mut();
    state.log.flush_streams(&state.stdout, &state.stderr);
    // Every path but a clean return drops the store here, instance and all:
    // after a timer timeout the call was abandoned half-way, after a trap
    // the instance is poisoned.
    let answer = match outcome {
        Err(_elapsed) => return Err(PluginError::Timeout(limits.timeout)),
        Ok(Err(e)) => return Err(classify(&e, store.data(), limits)),
        Ok(Ok(answer)) => answer,
    };
    plugin.note_memory(store.data().limiter.total() as u64);
    let guest_error = matches!(answer, Answer::Handle(Err(_)) | Answer::Validate(Err(_)));
    // Interpreters (JavaScript, Python) turn a refused memory growth into an
    // exception the plugin reports as its error: that is the memory limit.
    if guest_error && store.data().limiter.exhausted {
        return Err(PluginError::Memory(limits.max_memory));
    }
    // A refused memory growth the guest survived, or a guest error, may have
    // left the guest half-way through something: not worth keeping. Nor is
    // an instance of a version a reload has replaced meanwhile.
    if !guest_error && !store.data().limiter.exhausted && Arc::ptr_eq(&loaded, &plugin.current()) {
        loaded.warm.put(Warm {
            store,
            plugin: instance,
            calls: calls.saturating_add(1),
        });
    }
    Ok(answer)
}

/// Arms the epoch callback: yield to the runtime on every tick, trap once
/// `budget` from now has passed.
fn arm_deadline(store: &mut Store<HostState>, budget: Duration) {
    let deadline = Instant::now() + budget;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        Ok(if Instant::now() >= deadline {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::Yield(1)
        })
    });
}

/// Calls the export on a ready instance.
async fn invoke(store: &mut Store<HostState>, plugin: &Plugin, op: Op<'_>) -> wasmtime::Result<Answer> {
    Ok(match op {
        Op::Handle(event, config) => Answer::Handle(plugin.call_handle(&mut *store, &event, &config.to_vec()).await?),
        Op::Validate(config) => Answer::Validate(plugin.call_validate_config(&mut *store, &config.to_vec()).await?),
    })
}

/// Maps a wasmtime error to the closed error enum.
fn classify(e: &wasmtime::Error, state: &HostState, limits: PluginLimits) -> PluginError {
    let trap = e.downcast_ref::<Trap>();
    if matches!(trap, Some(Trap::Interrupt)) {
        return PluginError::Timeout(limits.timeout);
    }
    if state.limiter.exhausted || e.downcast_ref::<wasmtime::OutOfMemory>().is_some() {
        return PluginError::Memory(limits.max_memory);
    }
    let what = match trap {
        Some(trap) => trap.to_string(),
        None => first_line(&format!("{e:#}")),
    };
    // The SDK's panic hook logs the panic message at error level; other
    // toolchains print it to stderr.
    let said = state.log.last_error.clone().or_else(|| state.stderr.last_line());
    PluginError::Trap(match said {
        Some(said) => format!("{what}; the plugin said: {said}"),
        None => what,
    })
}

fn first_line(s: &str) -> String {
    truncate(s.lines().next().unwrap_or(""), MAX_LINE).to_owned()
}

/// Refuses outputs the gateway will not send: too large, too many headers,
/// or headers that are not valid HTTP.
fn check_output(verdict: Verdict) -> Result<PluginVerdict, PluginError> {
    let f = match verdict {
        Verdict::Drop(reason) => {
            return Ok(PluginVerdict::Drop {
                reason: truncate(&reason, MAX_LINE).to_owned(),
            });
        }
        Verdict::Forward(f) => f,
    };
    let size = f.body.len() + f.headers.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>();
    if size > MAX_OUTPUT_BYTES {
        return Err(PluginError::Guest(format!(
            "output of {size} bytes is over the {} MiB limit",
            MAX_OUTPUT_BYTES >> 20
        )));
    }
    if f.headers.len() > MAX_OUTPUT_HEADERS {
        return Err(PluginError::Guest(format!(
            "{} headers is over the limit of {MAX_OUTPUT_HEADERS}",
            f.headers.len()
        )));
    }
    for (name, value) in &f.headers {
        if name.is_empty() || !name.bytes().all(is_token_char) {
            return Err(PluginError::Guest(format!(
                "invalid header name {:?}",
                truncate(name, 100)
            )));
        }
        if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(PluginError::Guest(format!("invalid value for header {name:?}")));
        }
    }
    Ok(PluginVerdict::Forward {
        body: Bytes::from(f.body),
        headers: f.headers,
    })
}

/// RFC 9110 `tchar`.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::super::bindings::ForwardRequest;
    use super::*;

    fn forward(body: Vec<u8>, headers: &[(&str, &str)]) -> Verdict {
        Verdict::Forward(ForwardRequest {
            body,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        })
    }

    #[test]
    fn outputs_are_checked() {
        assert!(check_output(forward(b"{}".to_vec(), &[("content-type", "application/json")])).is_ok());
        let err = |v| match check_output(v) {
            Err(PluginError::Guest(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(err(forward(vec![0; MAX_OUTPUT_BYTES + 1], &[])).contains("limit"));
        assert!(err(forward(vec![], &[("bad name", "v")])).contains("invalid header name"));
        assert!(err(forward(vec![], &[("x", "a\r\nb")])).contains("invalid value"));
        let many: Vec<(String, String)> = (0..=MAX_OUTPUT_HEADERS)
            .map(|i| (format!("x-{i}"), "v".into()))
            .collect();
        assert!(
            err(Verdict::Forward(ForwardRequest {
                body: vec![],
                headers: many
            }))
            .contains("headers")
        );
        let long_reason = "r".repeat(10_000);
        assert!(
            matches!(check_output(Verdict::Drop(long_reason)), Ok(PluginVerdict::Drop { reason }) if reason.len() == MAX_LINE)
        );
    }
}
