//! Turning Redis replies into store types.

use std::collections::HashMap;
use std::time::Duration;

use ::redis::Value;
use bytes::Bytes;

use crate::store::{ClaimBatch, Job, RateDecision, StoreError};

pub fn as_bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.as_bytes().to_vec()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        _ => None,
    }
}

pub fn as_string(v: &Value) -> Option<String> {
    as_bytes(v).map(|b| String::from_utf8_lossy(&b).into_owned())
}

pub fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => as_string(other)?.parse().ok(),
    }
}

/// A HGETALL reply (RESP2 flat array or RESP3 map) as field -> bytes.
pub fn field_map(v: Value) -> HashMap<String, Vec<u8>> {
    let mut out = HashMap::new();
    match v {
        Value::Array(items) => {
            for pair in items.chunks(2) {
                if let [k, v] = pair
                    && let (Some(k), Some(v)) = (as_string(k), as_bytes(v))
                {
                    out.insert(k, v);
                }
            }
        }
        Value::Map(pairs) => {
            for (k, v) in pairs {
                if let (Some(k), Some(v)) = (as_string(&k), as_bytes(&v)) {
                    out.insert(k, v);
                }
            }
        }
        _ => {}
    }
    out
}

/// A value stored under `name` in a hash as `chunks.lua` writes it: one
/// field, or chunks `<c>0`, `<c>1`, ... with their count `<c>n`. `None`
/// when absent or torn.
pub fn chunked(f: &HashMap<String, Vec<u8>>, name: &str, c: &str) -> Option<Vec<u8>> {
    let Some(count) = f.get(&format!("{c}n")) else {
        return f.get(name).cloned();
    };
    let count: usize = std::str::from_utf8(count).ok()?.parse().ok()?;
    let mut out = Vec::with_capacity(count * 64);
    for i in 0..count {
        out.extend_from_slice(f.get(&format!("{c}{i}"))?);
    }
    Some(out)
}

/// The event data a record holds (`lua/data.lua`): its `data` field, the
/// chunks of a record written before data keys, or `key`, the value of its
/// data key (`S:dat:{id}`) read with it.
pub fn record_data(f: &HashMap<String, Vec<u8>>, key: Value) -> Option<Vec<u8>> {
    let key = match key {
        Value::BulkString(b) => Some(b),
        _ => None,
    };
    chunked(f, "data", "d").or(key)
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("claim: unexpected reply ({what})"))
}

/// Decodes the reply of `claim.lua`. The event data of a batch comes once
/// per event; a job whose event is gone is marked `data_missing`. A job's
/// last field is its webhook's rate limit as the script took it (a wait in
/// µs), or -1 when it took none.
pub fn claim_batch(reply: Value) -> Result<ClaimBatch, StoreError> {
    let Value::Array(items) = reply else {
        return Err(corrupt("not an array"));
    };
    let mut it = items.into_iter();
    let next = it
        .next()
        .and_then(|v| as_int(&v))
        .ok_or_else(|| corrupt("no next-due"))?;
    let mut data_by_event: HashMap<String, Bytes> = HashMap::new();
    let mut jobs = Vec::new();
    let mut taken = Vec::new();
    for job in it {
        let Value::Array(f) = job else {
            return Err(corrupt("job not an array"));
        };
        if f.len() != 10 {
            return Err(corrupt("job arity"));
        }
        taken.push(match as_int(&f[9]) {
            Some(wait) if wait >= 0 => Some(RateDecision::from_wait_us(wait)),
            _ => None,
        });
        let s = |i: usize| as_string(&f[i]).ok_or_else(|| corrupt("job field"));
        let n = |i: usize| as_int(&f[i]).and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
        let event_id = s(1)?;
        let data = match &f[8] {
            Value::Int(0) => data_by_event.get(&event_id).cloned(),
            Value::Nil => None,
            v => as_bytes(v).map(Bytes::from),
        };
        if let Some(d) = &data {
            data_by_event.entry(event_id.clone()).or_insert_with(|| d.clone());
        }
        jobs.push(Job {
            delivery_id: s(0)?,
            event_id,
            webhook_id: s(2)?,
            event_type: s(3)?,
            test: s(4)? == "1",
            attempts: n(5),
            retry_base: n(6),
            // Absent from records that leave it to the id (enqueue.lua).
            created_at_ms: match as_int(&f[7]) {
                Some(t) => t.max(0) as u64,
                None => crate::ids::time_ms(&as_string(&f[0]).unwrap_or_default()).unwrap_or(0),
            },
            data: data.unwrap_or_default(),
            data_missing: false,
        });
        if let Some(last) = jobs.last_mut() {
            last.data_missing = !data_by_event.contains_key(&last.event_id);
        }
    }
    Ok(ClaimBatch {
        jobs,
        next_due_in: u64::try_from(next).ok().map(Duration::from_millis),
        taken,
    })
}
