//! Identifiers: `<prefix>_` + 26 Crockford base32 characters of a 48-bit
//! millisecond timestamp and 80 random bits (the ULID layout), so ids sort
//! by creation time as strings.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new id like `dlv_01JDZ3K4Q8W7X2M9N5R6T0V1YB`.
pub fn new_id(prefix: &str) -> String {
    encode(prefix, next_value())
}

/// Monotonic within this process (the ULID "monotonic" rule): an id made
/// in the same millisecond as the previous one is the previous one plus
/// one, so ids sort in creation order even within a millisecond.
fn next_value() -> u128 {
    static LAST: std::sync::Mutex<u128> = std::sync::Mutex::new(0);
    let ms = u128::from(now_ms() & ((1 << 48) - 1)) << 80;
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let value = if *last >> 80 == ms >> 80 && *last & ((1u128 << 80) - 1) < (1u128 << 79) {
        *last + 1
    } else {
        // A fresh millisecond (or a clock that went back): random low bits,
        // with the top one clear so increments cannot overflow into the time.
        (ms | (rand::random::<u128>() & ((1u128 << 79) - 1))).max(*last + 1)
    };
    *last = value;
    value
}

fn encode(prefix: &str, value: u128) -> String {
    let mut out = String::with_capacity(prefix.len() + 27);
    out.push_str(prefix);
    out.push('_');
    for i in (0..26).rev() {
        out.push(ALPHABET[((value >> (i * 5)) & 0x1f) as usize] as char);
    }
    out
}

/// Ids carry a 10-bit *bucket* in the middle of their random part (bits
/// 60..70: the 13th and 14th of the 26 characters), which the Redis store
/// maps to a shard (`bucket % shards`). An event's deliveries share its
/// bucket, so they live in its shard; an event with an idempotency key gets
/// the key's bucket, so the key and the event are written in one place.
pub const BUCKETS: u16 = 1024;
const BUCKET_SHIFT: u32 = 60;

/// A new id like [`new_id`] in `bucket` (taken modulo [`BUCKETS`]). Ids of
/// different buckets made in the same millisecond are not in creation
/// order (only the millisecond orders them).
pub fn new_id_in(prefix: &str, bucket: u16) -> String {
    let mask = u128::from(BUCKETS - 1) << BUCKET_SHIFT;
    let value = (next_value() & !mask) | (u128::from(bucket % BUCKETS) << BUCKET_SHIFT);
    encode(prefix, value)
}

/// The bucket of an id made by this module; 0 for any other string (ids
/// chosen by hand, as in tests, all share one bucket).
pub fn bucket(id: &str) -> u16 {
    let id = id.as_bytes();
    let body = id.iter().rposition(|&b| b == b'_').map_or(id, |i| &id[i + 1..]);
    let digit = |c: u8| DIGITS[usize::from(c)];
    if body.len() == 26
        && let (hi @ 0..32, lo @ 0..32) = (digit(body[12]), digit(body[13]))
    {
        return (u16::from(hi) << 5) | u16::from(lo);
    }
    0
}

/// The value of each [`ALPHABET`] character; 255 for any other byte.
const DIGITS: [u8; 256] = {
    let mut t = [255u8; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        t[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// The bucket an idempotency key (or any other string) hashes to.
pub fn key_bucket(key: &[u8]) -> u16 {
    // FNV-1a: stable across versions and hosts, unlike std's hasher.
    let mut h: u32 = 0x811c_9dc5;
    for &b in key {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (h % u32::from(BUCKETS)) as u16
}

/// A new event id: in the bucket of `idempotency_key` when there is one,
/// else anywhere.
pub fn new_event_id(idempotency_key: Option<&str>) -> String {
    match idempotency_key {
        Some(k) => new_id_in("evt", key_bucket(k.as_bytes())),
        None => new_id("evt"),
    }
}

/// Ids for `n` deliveries of `event_id`, in its bucket. The only delivery
/// of an event shares the event's 26 characters (`evt_X` -> `dlv_X`), so
/// the store can find the event from it.
pub fn delivery_ids(event_id: &str, n: usize) -> Vec<String> {
    match n {
        0 => Vec::new(),
        1 => vec![solo_delivery_id(event_id)],
        _ => {
            let b = bucket(event_id);
            (0..n).map(|_| new_id_in("dlv", b)).collect()
        }
    }
}

/// The id the only delivery of `event_id` has (see [`delivery_ids`]).
pub fn solo_delivery_id(event_id: &str) -> String {
    let body = event_id.strip_prefix("evt_").unwrap_or(event_id);
    let mut id = String::with_capacity(4 + body.len());
    id.push_str("dlv_");
    id.push_str(body);
    id
}

/// The event whose only delivery is `delivery_id` (the inverse of
/// [`solo_delivery_id`]).
pub fn solo_event_id(delivery_id: &str) -> String {
    let body = delivery_id.strip_prefix("dlv_").unwrap_or(delivery_id);
    format!("evt_{body}")
}

/// When an id made by this module was created (ms since the epoch); `None`
/// for other strings.
pub fn time_ms(id: &str) -> Option<u64> {
    let body = id.rsplit_once('_').map_or(id, |(_, b)| b).as_bytes();
    if body.len() != 26 {
        return None;
    }
    body[..10].iter().try_fold(0u64, |ms, &c| {
        let v = ALPHABET.iter().position(|&a| a == c)?;
        Some((ms << 5) | v as u64)
    })
}

/// The smallest id of `prefix` created at `ms`: every id created earlier
/// sorts below it (used to trim time-ordered indexes).
pub fn id_floor(prefix: &str, ms: u64) -> String {
    encode(prefix, u128::from(ms & ((1 << 48) - 1)) << 80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::disallowed_methods, reason = "a synchronous test")]
    fn ids_are_unique_prefixed_and_time_ordered() {
        let a = new_id("dlv");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id("dlv");
        assert!(a.starts_with("dlv_") && a.len() == 30);
        assert!(a < b, "{a} {b}");
        assert_eq!(solo_event_id(&solo_delivery_id("evt_X1")), "evt_X1");
        let t = time_ms(&a).expect("a time");
        assert!(t.abs_diff(now_ms()) < 5_000, "{t}");
        assert_eq!(time_ms(&id_floor("dlv", 1_764_755_000_123)), Some(1_764_755_000_123));
        assert_eq!(time_ms("dlv_handmade"), None);
        let floor = id_floor("dlv", now_ms());
        assert!(a < floor && floor.len() == a.len(), "{a} {floor}");
        let burst: Vec<String> = (0..1000).map(|_| new_id("d")).collect();
        assert!(
            burst.windows(2).all(|w| w[0] < w[1]),
            "ids made in the same ms keep their order"
        );
        let many: std::collections::HashSet<_> = (0..10_000).map(|_| new_id("x")).collect();
        assert_eq!(many.len(), 10_000);
    }

    #[test]
    fn buckets_are_kept_and_shared_by_an_events_deliveries() {
        for b in [0, 1, 31, 32, 517, BUCKETS - 1] {
            let id = new_id_in("evt", b);
            assert_eq!(bucket(&id), b, "{id}");
            assert_eq!(id.len(), 30);
        }
        let keyed = new_event_id(Some("order-17"));
        assert_eq!(bucket(&keyed), key_bucket(b"order-17"));
        assert_eq!(
            bucket(&new_event_id(Some("order-17"))),
            bucket(&keyed),
            "same key, same bucket"
        );
        let solo = delivery_ids(&keyed, 1);
        assert_eq!(solo, vec![format!("dlv_{}", &keyed[4..])]);
        let many = delivery_ids(&keyed, 50);
        assert_eq!(many.iter().collect::<std::collections::HashSet<_>>().len(), 50);
        assert!(
            many.iter()
                .all(|d| d.starts_with("dlv_") && bucket(d) == bucket(&keyed))
        );
        assert!(delivery_ids(&keyed, 0).is_empty());
        // Ids chosen by hand share bucket 0.
        assert_eq!(bucket("d1"), 0);
        assert_eq!(bucket("evt_not-an-id"), 0);
    }
}
