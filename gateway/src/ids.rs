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
}
