//! The byte layout of the embedded store's values: little-endian integers,
//! strings and byte strings prefixed by a `u32` length, a version byte
//! first in every record. Compact, with no schema to carry, and every read
//! checked: a short or malformed value is a [`CodecError`], never a panic.

use crate::store::{AttemptRecord, Status};

/// A value that does not decode.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unreadable {what} record")]
pub struct CodecError {
    pub what: &'static str,
}

/// Appends fields to a value.
#[derive(Debug, Default)]
pub struct Enc(pub Vec<u8>);

impl Enc {
    pub fn with_version(version: u8) -> Self {
        Enc(vec![version])
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Format 1 event records (tests write them to check the upgrade).
    #[cfg(test)]
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        // Values are bounded far below 4 GiB (request bodies, ids).
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(&v[..v.len().min(u32::MAX as usize)]);
        self
    }
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
    pub fn opt_str(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            Some(s) => self.u8(1).str(s),
            None => self.u8(0),
        }
    }
}

/// Reads fields back in the order they were written.
#[derive(Debug)]
pub struct Dec<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Dec<'a> {
    /// Starts reading a value of kind `what`, checking its version byte.
    pub fn new(buf: &'a [u8], what: &'static str, version: u8) -> Result<Self, CodecError> {
        let mut d = Dec { buf, what };
        if d.u8()? != version {
            return Err(d.err());
        }
        Ok(d)
    }
    fn err(&self) -> CodecError {
        CodecError { what: self.what }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.buf.len() < n {
            return Err(self.err());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        self.take(N)?.try_into().map_err(|_| self.err())
    }
    pub fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }
    pub fn bool(&mut self) -> Result<bool, CodecError> {
        Ok(self.u8()? != 0)
    }
    pub fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64, CodecError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub fn string(&mut self) -> Result<String, CodecError> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err())
    }
    pub fn opt_string(&mut self) -> Result<Option<String>, CodecError> {
        match self.u8()? {
            0 => Ok(None),
            _ => self.string().map(Some),
        }
    }
}

const V1: u8 = 1;
const V2: u8 = 2;

/// An event as stored: written once at ingest, never changed after. What
/// changes as its deliveries finish is its [`EventState`], kept apart so
/// that finishing a delivery does not rewrite the event's data.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRec {
    pub event_type: String,
    pub data: Vec<u8>,
    pub test: bool,
    pub created_at: u64,
}

impl EventRec {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::with_version(V2);
        e.str(&self.event_type)
            .bytes(&self.data)
            .bool(self.test)
            .u64(self.created_at);
        e.0
    }
    pub fn decode(buf: &[u8]) -> Result<Self, CodecError> {
        Self::decode_any(buf).map(|(rec, _)| rec)
    }
    /// Decodes either layout: version 2, or version 1 (store format 1),
    /// which carried the event's state at its end and returns it too.
    pub fn decode_any(buf: &[u8]) -> Result<(Self, Option<EventState>), CodecError> {
        let version = buf.first().copied().unwrap_or(0);
        let mut d = Dec::new(buf, "event", if version == V1 { V1 } else { V2 })?;
        let rec = EventRec {
            event_type: d.string()?,
            data: d.bytes()?.to_vec(),
            test: d.bool()?,
            created_at: d.u64()?,
        };
        let state = if version == V1 {
            Some(EventState {
                pending: d.i64()?,
                expires_at: d.u64()?,
            })
        } else {
            None
        };
        Ok((rec, state))
    }
}

/// What changes of an event after ingest: how many of its deliveries are
/// not final yet, and when retention removes it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EventState {
    /// Deliveries of it that are not final yet.
    pub pending: i64,
    /// When retention removes it (0: not scheduled).
    pub expires_at: u64,
}

impl EventState {
    pub fn encode(&self) -> [u8; 17] {
        let mut out = [0u8; 17];
        out[0] = V1;
        out[1..9].copy_from_slice(&self.pending.to_le_bytes());
        out[9..].copy_from_slice(&self.expires_at.to_le_bytes());
        out
    }
    pub fn decode(buf: &[u8]) -> Result<Self, CodecError> {
        let mut d = Dec::new(buf, "event state", V1)?;
        Ok(EventState {
            pending: d.i64()?,
            expires_at: d.u64()?,
        })
    }
}

fn status_code(s: Status) -> u8 {
    match s {
        Status::Pending => 0,
        Status::Succeeded => 1,
        Status::Failed => 2,
        Status::Dead => 3,
        Status::Filtered => 4,
    }
}

fn status_from(code: u8) -> Option<Status> {
    Some(match code {
        0 => Status::Pending,
        1 => Status::Succeeded,
        2 => Status::Failed,
        3 => Status::Dead,
        4 => Status::Filtered,
        _ => return None,
    })
}

/// A delivery as stored (its attempt log and custom payload live in their
/// own tables).
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRec {
    pub event: String,
    pub webhook: String,
    pub event_type: String,
    pub test: bool,
    pub status: Status,
    /// Attempts made (stale outcomes are logged but not counted).
    pub attempts: u32,
    pub retry_base: u32,
    pub created_at: u64,
    pub updated_at: u64,
    /// When it is due (0: not queued).
    pub due: u64,
    /// The claimer holding it ("" when not leased) and until when.
    pub lease: String,
    pub lease_until: u64,
    /// Entries in its attempt log.
    pub log_len: u32,
    /// A plugin changed the body: it is in the payloads table.
    pub custom_payload: bool,
    /// When retention removes it (0: not scheduled).
    pub expires_at: u64,
}

impl DeliveryRec {
    pub fn is_live(&self) -> bool {
        matches!(self.status, Status::Pending | Status::Failed)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::with_version(V1);
        e.str(&self.event)
            .str(&self.webhook)
            .str(&self.event_type)
            .bool(self.test)
            .u8(status_code(self.status))
            .u32(self.attempts)
            .u32(self.retry_base)
            .u64(self.created_at)
            .u64(self.updated_at)
            .u64(self.due)
            .str(&self.lease)
            .u64(self.lease_until)
            .u32(self.log_len)
            .bool(self.custom_payload)
            .u64(self.expires_at);
        e.0
    }

    pub fn decode(buf: &[u8]) -> Result<Self, CodecError> {
        let mut d = Dec::new(buf, "delivery", V1)?;
        Ok(DeliveryRec {
            event: d.string()?,
            webhook: d.string()?,
            event_type: d.string()?,
            test: d.bool()?,
            status: status_from(d.u8()?).ok_or(CodecError { what: "delivery" })?,
            attempts: d.u32()?,
            retry_base: d.u32()?,
            created_at: d.u64()?,
            updated_at: d.u64()?,
            due: d.u64()?,
            lease: d.string()?,
            lease_until: d.u64()?,
            log_len: d.u32()?,
            custom_payload: d.bool()?,
            expires_at: d.u64()?,
        })
    }
}

pub fn encode_attempt(a: &AttemptRecord) -> Vec<u8> {
    let mut e = Enc::with_version(V1);
    e.u32(a.attempt).u64(a.started_at).u64(a.duration_ms);
    match a.status_code {
        Some(c) => e.u8(1).u32(u32::from(c)),
        None => e.u8(0),
    };
    e.opt_str(a.error.as_deref())
        .opt_str(a.response_body.as_deref())
        .opt_str(a.filtered.as_deref());
    e.0
}

pub fn decode_attempt(buf: &[u8]) -> Result<AttemptRecord, CodecError> {
    let mut d = Dec::new(buf, "attempt", V1)?;
    let attempt = d.u32()?;
    let started_at = d.u64()?;
    let duration_ms = d.u64()?;
    let status_code = match d.u8()? {
        0 => None,
        _ => Some(u16::try_from(d.u32()?).map_err(|_| CodecError { what: "attempt" })?),
    };
    Ok(AttemptRecord {
        attempt,
        started_at,
        duration_ms,
        status_code,
        error: d.opt_string()?,
        response_body: d.opt_string()?,
        filtered: d.opt_string()?,
    })
}

/// `(reason, url)` of a webhook disabled by a 410.
pub fn encode_state(reason: &str, url: &str) -> Vec<u8> {
    let mut e = Enc::with_version(V1);
    e.str(reason).str(url);
    e.0
}

pub fn decode_state(buf: &[u8]) -> Result<(String, String), CodecError> {
    let mut d = Dec::new(buf, "webhook state", V1)?;
    Ok((d.string()?, d.string()?))
}

/// An idempotency key's remembered answer.
pub fn encode_idempotency(expires_at: u64, fingerprint: &str, answer: &str) -> Vec<u8> {
    let mut e = Enc::with_version(V1);
    e.u64(expires_at).str(fingerprint).str(answer);
    e.0
}

pub fn decode_idempotency(buf: &[u8]) -> Result<(u64, String, String), CodecError> {
    let mut d = Dec::new(buf, "idempotency", V1)?;
    Ok((d.u64()?, d.string()?, d.string()?))
}

/// A rate limit's theoretical arrival time (µs) and when the entry may go.
pub fn encode_rate(tat_us: u64, expires_at: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&tat_us.to_le_bytes());
    out[8..].copy_from_slice(&expires_at.to_le_bytes());
    out
}

pub fn decode_rate(buf: &[u8]) -> Result<(u64, u64), CodecError> {
    let err = CodecError { what: "rate limit" };
    let tat: [u8; 8] = buf.get(..8).and_then(|b| b.try_into().ok()).ok_or(err.clone())?;
    let exp: [u8; 8] = buf.get(8..16).and_then(|b| b.try_into().ok()).ok_or(err)?;
    Ok((u64::from_le_bytes(tat), u64::from_le_bytes(exp)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery() -> DeliveryRec {
        DeliveryRec {
            event: "evt_1".into(),
            webhook: "w".into(),
            event_type: "a.b".into(),
            test: true,
            status: Status::Failed,
            attempts: 3,
            retry_base: 1,
            created_at: 10,
            updated_at: 20,
            due: 30,
            lease: "owner".into(),
            lease_until: 40,
            log_len: 4,
            custom_payload: true,
            expires_at: 0,
        }
    }

    #[test]
    fn records_round_trip() {
        let d = delivery();
        assert_eq!(DeliveryRec::decode(&d.encode()).unwrap(), d);
        let e = EventRec {
            event_type: "a".into(),
            data: b"{\"x\":1}".to_vec(),
            test: false,
            created_at: 5,
        };
        assert_eq!(EventRec::decode_any(&e.encode()).unwrap(), (e.clone(), None));
        let state = EventState {
            pending: -1,
            expires_at: 9,
        };
        assert_eq!(EventState::decode(&state.encode()).unwrap(), state);
        let a = AttemptRecord {
            attempt: 2,
            started_at: 7,
            duration_ms: 8,
            status_code: Some(503),
            error: Some("HTTP 503".into()),
            response_body: None,
            filtered: None,
        };
        assert_eq!(decode_attempt(&encode_attempt(&a)).unwrap(), a);
        assert_eq!(decode_rate(&encode_rate(1, 2)).unwrap(), (1, 2));
        assert_eq!(
            decode_idempotency(&encode_idempotency(3, "f", "a")).unwrap(),
            (3, "f".into(), "a".into())
        );
    }

    #[test]
    fn damaged_values_are_errors_not_panics() {
        let bytes = delivery().encode();
        for n in 0..bytes.len() {
            assert!(DeliveryRec::decode(&bytes[..n]).is_err(), "prefix of {n} bytes");
        }
        let mut wrong_version = bytes.clone();
        wrong_version[0] = 9;
        assert!(DeliveryRec::decode(&wrong_version).is_err());
        assert!(decode_rate(&[1, 2, 3]).is_err());
        let state = EventState::default().encode();
        for n in 0..state.len() {
            assert!(EventState::decode(&state[..n]).is_err(), "prefix of {n} bytes");
        }
    }

    /// Store format 1 kept an event's state at the end of its record; such
    /// records still decode, and give their state for the upgrade.
    #[test]
    fn a_format_1_event_record_decodes_with_its_state() {
        let mut v1 = Enc::with_version(V1);
        v1.str("a.b").bytes(b"{}").bool(true).u64(5).i64(2).u64(0);
        let (rec, state) = EventRec::decode_any(&v1.0).unwrap();
        assert_eq!(
            rec,
            EventRec {
                event_type: "a.b".into(),
                data: b"{}".to_vec(),
                test: true,
                created_at: 5,
            }
        );
        assert_eq!(
            state,
            Some(EventState {
                pending: 2,
                expires_at: 0
            })
        );
        assert!(
            EventRec::decode_any(&v1.0[..v1.0.len() - 1]).is_err(),
            "a format-1 record cut short"
        );
    }
}
