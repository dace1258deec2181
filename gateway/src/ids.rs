//! Identifiers: `<prefix>_` + 26 Crockford base32 characters of a 48-bit
//! millisecond timestamp and 80 random bits (the ULID layout), so ids sort
//! by creation time as strings.

use crate::store::now_ms;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new id like `dlv_01JDZ3K4Q8W7X2M9N5R6T0V1YB`.
pub fn new_id(prefix: &str) -> String {
    let rand: u128 = rand::random::<u128>() & ((1u128 << 80) - 1);
    let value = (u128::from(now_ms() & ((1 << 48) - 1)) << 80) | rand;
    let mut out = String::with_capacity(prefix.len() + 27);
    out.push_str(prefix);
    out.push('_');
    for i in (0..26).rev() {
        out.push(ALPHABET[((value >> (i * 5)) & 0x1f) as usize] as char);
    }
    out
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
        let many: std::collections::HashSet<_> = (0..10_000).map(|_| new_id("x")).collect();
        assert_eq!(many.len(), 10_000);
    }
}
