//! Payload signatures, pure functions over (secret, id, timestamp, body).
//!
//! Two schemes, both HMAC-SHA256 over the exact body bytes sent:
//!
//! * `X-Hub-Signature: sha256=<lowercase hex>` (GitHub style), keyed with the
//!   secret's UTF-8 bytes.
//! * Standard Webhooks (`webhook-signature: v1,<base64>`) over
//!   `"{id}.{timestamp}.{body}"`, keyed with the base64-decoded bytes of a
//!   `whsec_` secret (what the standard verifiers expect) or else the secret's
//!   UTF-8 bytes. During a secret rotation the header carries one signature
//!   per active secret, space-separated.
//!
//! Verification helpers are here too: the tests use them, and receivers
//! written in Rust can copy them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Prefix of generated secrets, as in the Standard Webhooks spec.
pub const WHSEC_PREFIX: &str = "whsec_";

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length")
}

/// Lowercase hex of a SHA-256 digest. `hex::encode_to_slice` into a stack
/// buffer: a quarter of the time of `hex::encode`, which builds the string a
/// character at a time (this runs for every attempt and every API request).
pub fn digest_hex(digest: &[u8; 32]) -> String {
    let mut out = String::with_capacity(64);
    push_hex(&mut out, digest);
    out
}

fn push_hex(out: &mut String, digest: &[u8; 32]) {
    let mut buf = [0u8; 64];
    // 32 bytes always fill exactly 64 hex digits, all ASCII.
    let _ = hex::encode_to_slice(digest, &mut buf);
    out.push_str(std::str::from_utf8(&buf).unwrap_or_default());
}

/// `sha256=<hex>`: the `X-Hub-Signature` value for `body` under `secret`.
pub fn hub_signature(secret: &str, body: &[u8]) -> String {
    let mut m = mac(secret.as_bytes());
    m.update(body);
    let mut out = String::with_capacity(71);
    push_hub(&mut out, m);
    out
}

/// Appends `sha256=<hex>` of the finished MAC `m`.
fn push_hub(out: &mut String, m: HmacSha256) {
    out.push_str("sha256=");
    push_hex(out, &m.finalize().into_bytes().into());
}

/// Appends `v1,<base64>` of the finished MAC `m`.
fn push_v1(out: &mut String, m: HmacSha256) {
    out.push_str("v1,");
    B64.encode_string(m.finalize().into_bytes(), out);
}

/// Whether `header` is a valid `X-Hub-Signature` of `body` under `secret`
/// (constant-time comparison).
pub fn verify_hub(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(digits) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(given) = hex::decode(digits) else {
        return false;
    };
    let mut m = mac(secret.as_bytes());
    m.update(body);
    m.verify_slice(&given).is_ok()
}

/// The HMAC key the Standard Webhooks scheme uses for `secret`: the decoded
/// bytes of a `whsec_<base64>` secret, otherwise the secret's UTF-8 bytes.
pub fn standard_key(secret: &str) -> Vec<u8> {
    if let Some(encoded) = secret.strip_prefix(WHSEC_PREFIX)
        && let Ok(bytes) = B64.decode(encoded)
    {
        return bytes;
    }
    secret.as_bytes().to_vec()
}

/// A secret's two HMAC keys, made once when the secret is loaded. HMAC
/// hashes the padded key before any message byte, so signing from a copy of
/// a keyed state skips two SHA-256 blocks per signature, and a `whsec_`
/// secret's base64 is decoded once instead of on every attempt.
#[derive(Clone)]
pub struct SigningKeys {
    hub: HmacSha256,
    standard: HmacSha256,
}

impl SigningKeys {
    pub fn new(secret: &str) -> Self {
        SigningKeys {
            hub: mac(secret.as_bytes()),
            standard: mac(&standard_key(secret)),
        }
    }

    /// Appends `sha256=<hex>`, the `X-Hub-Signature` value of `body`.
    pub fn push_hub(&self, out: &mut String, body: &[u8]) {
        let mut m = self.hub.clone();
        m.update(body);
        push_hub(out, m);
    }

    /// Appends `v1,<base64>`, one Standard Webhooks signature of `body`.
    pub fn push_standard(&self, out: &mut String, msg_id: &str, timestamp: i64, body: &[u8]) {
        let mut m = self.standard.clone();
        update_standard(&mut m, msg_id, timestamp, body);
        push_v1(out, m);
    }
}

/// `v1,<base64>`: one Standard Webhooks signature of `body`.
pub fn standard_signature(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut out = String::with_capacity(47);
    push_v1(&mut out, standard_mac(key, msg_id, timestamp, body));
    out
}

/// The Standard Webhooks MAC over `msg_id.timestamp.body`, before finalizing.
fn standard_mac(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut m = mac(key);
    update_standard(&mut m, msg_id, timestamp, body);
    m
}

/// Feeds `msg_id.timestamp.body` (what the Standard Webhooks scheme signs).
fn update_standard(m: &mut HmacSha256, msg_id: &str, timestamp: i64, body: &[u8]) {
    m.update(msg_id.as_bytes());
    m.update(b".");
    m.update(itoa::Buffer::new().format(timestamp).as_bytes());
    m.update(b".");
    m.update(body);
}

/// Whether any `v1,` entry of a `webhook-signature` header verifies under
/// `secret` (constant-time per entry).
pub fn verify_standard(secret: &str, msg_id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let key = standard_key(secret);
    header.split(' ').any(|entry| {
        let Some(sig) = entry.strip_prefix("v1,") else {
            return false;
        };
        let Ok(given) = B64.decode(sig) else {
            return false;
        };
        standard_mac(&key, msg_id, timestamp, body).verify_slice(&given).is_ok()
    })
}

/// A fresh `whsec_` secret: 24 random bytes, base64.
pub fn generate_secret() -> String {
    let bytes: [u8; 24] = rand::random();
    format!("{WHSEC_PREFIX}{}", B64.encode(bytes))
}

/// Constant-time equality for tokens and other short secrets.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector published with the Standard Webhooks specification.
    #[test]
    fn standard_webhooks_published_vector() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let ts = 1_614_265_330;
        let body = br#"{"test": 2432232314}"#;
        let sig = standard_signature(&standard_key(secret), id, ts, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify_standard(secret, id, ts, body, &sig));
        assert!(!verify_standard(secret, id, ts + 1, body, &sig));
    }

    /// RFC 4231 test case 2 ("Jefe"), as a hub signature.
    #[test]
    fn hub_signature_rfc4231_case2() {
        let sig = hub_signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(verify_hub("Jefe", b"what do ya want for nothing?", &sig));
        assert!(verify_hub(
            "Jefe",
            b"what do ya want for nothing?",
            &sig.to_uppercase().replace("SHA256=", "sha256=")
        ));
        assert!(!verify_hub("jefe", b"what do ya want for nothing?", &sig));
        assert!(!verify_hub("Jefe", b"what do ya want for nothing?", "sha1=abc"));
        assert!(!verify_hub("Jefe", b"x", "sha256=zz"));
    }

    #[test]
    fn non_whsec_secret_keys_with_utf8_bytes() {
        assert_eq!(standard_key("plain-secret"), b"plain-secret");
        // A whsec_ prefix with invalid base64 falls back to the raw bytes.
        assert_eq!(standard_key("whsec_!!"), b"whsec_!!");
    }

    /// Prepared keys sign exactly as the one-shot functions do, for a
    /// `whsec_` secret (base64-decoded key) and a plain one, and for the
    /// published Standard Webhooks vector.
    #[test]
    fn prepared_keys_sign_like_the_one_shot_functions() {
        for secret in ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "plain-secret", "Jefe"] {
            let keys = SigningKeys::new(secret);
            for body in [&b""[..], b"{}", br#"{"test": 2432232314}"#, &[7u8; 3000]] {
                let mut hub = String::new();
                keys.push_hub(&mut hub, body);
                assert_eq!(hub, hub_signature(secret, body));
                let mut std = String::new();
                keys.push_standard(&mut std, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body);
                let expected = standard_signature(
                    &standard_key(secret),
                    "msg_p5jXN8AQM9LWM0D4loKWxJek",
                    1_614_265_330,
                    body,
                );
                assert_eq!(std, expected);
            }
        }
        let mut std = String::new();
        SigningKeys::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").push_standard(
            &mut std,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(std, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn generated_secrets_are_whsec_with_24_bytes() {
        let s = generate_secret();
        assert!(s.starts_with(WHSEC_PREFIX));
        assert_eq!(standard_key(&s).len(), 24);
        assert_ne!(s, generate_secret());
    }

    #[test]
    fn flipping_any_body_byte_breaks_both_signatures() {
        let body = br#"{"order":42,"total":"19.99"}"#.to_vec();
        let hub = hub_signature("s3cret-key", &body);
        let std = standard_signature(&standard_key("s3cret-key"), "dlv_x", 7, &body);
        for i in 0..body.len() {
            let mut flipped = body.clone();
            flipped[i] ^= 0x01;
            assert!(!verify_hub("s3cret-key", &flipped, &hub));
            assert!(!verify_standard("s3cret-key", "dlv_x", 7, &flipped, &std));
        }
    }
}
