//! Identifiers: `<prefix>_` + 26 Crockford base32 characters of a 48-bit
//! millisecond timestamp and 80 random bits (the ULID layout), so ids sort
//! by creation time as strings.

use crate::store::now_ms;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new id like `dlv_01JDZ3K4Q8W7X2M9N5R6T0V1YB`.
pub fn new_id(prefix: &str) -> String {
    let rand: u128 = rand::random::<u128>() & ((1u128 << 80) - 1);
    encode(prefix, (u128::from(now_ms() & ((1 << 48) - 1)) << 80) | rand)
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
    fn ids_are_unique_prefixed_and_time_ordered() {
        let a = new_id("dlv");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id("dlv");
        assert!(a.starts_with("dlv_") && a.len() == 30);
        assert!(a < b, "{a} {b}");
        let floor = id_floor("dlv", now_ms());
        assert!(a < floor && floor.len() == a.len(), "{a} {floor}");
        let many: std::collections::HashSet<_> = (0..10_000).map(|_| new_id("x")).collect();
        assert_eq!(many.len(), 10_000);
    }
}
