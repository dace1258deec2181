//! The compact text of an attempt record in a delivery hash.
//!
//! `<attempt> <startedAt> <durationMs> <status code or ->`, and only when
//! the attempt has an error, a response body or a filter reason, a newline
//! and those as JSON. A first-attempt success is about 21 bytes, so the
//! delivery hash stays in Redis's compact (listpack) encoding, where every
//! value must be at most 64 bytes. Records written by earlier versions are
//! whole JSON objects; [`decode`] reads both.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::store::AttemptRecord;

/// The parts of an attempt that are not numbers.
#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Rest {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    response_body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    filtered: Option<String>,
}

pub fn encode(a: &AttemptRecord) -> String {
    let mut out = String::with_capacity(32);
    let _ = write!(out, "{} {} {} ", a.attempt, a.started_at, a.duration_ms);
    match a.status_code {
        Some(code) => {
            let _ = write!(out, "{code}");
        }
        None => out.push('-'),
    }
    if a.error.is_some() || a.response_body.is_some() || a.filtered.is_some() {
        let rest = Rest {
            error: a.error.clone(),
            response_body: a.response_body.clone(),
            filtered: a.filtered.clone(),
        };
        out.push('\n');
        // Serializing strings into a String cannot fail.
        out.push_str(&serde_json::to_string(&rest).unwrap_or_default());
    }
    out
}

pub fn decode(raw: &[u8]) -> Result<AttemptRecord, String> {
    if raw.first() == Some(&b'{') {
        return serde_json::from_slice(raw).map_err(|e| e.to_string());
    }
    let text = std::str::from_utf8(raw).map_err(|e| e.to_string())?;
    let (head, rest) = text.split_once('\n').unwrap_or((text, ""));
    let mut parts = head.split(' ');
    let mut number = |what: &str| {
        parts
            .next()
            .ok_or_else(|| format!("no {what}"))
            .map(|p| p.parse::<u64>().map_err(|_| format!("bad {what} {p:?}")))
    };
    let attempt = number("attempt")??;
    let started_at = number("start")??;
    let duration_ms = number("duration")??;
    let status_code = match number("status")? {
        Ok(code) => Some(u16::try_from(code).map_err(|_| format!("bad status {code}"))?),
        Err(_) => None,
    };
    let rest: Rest = if rest.is_empty() {
        Rest::default()
    } else {
        serde_json::from_str(rest).map_err(|e| e.to_string())?
    };
    Ok(AttemptRecord {
        attempt: u32::try_from(attempt).map_err(|_| format!("bad attempt {attempt}"))?,
        started_at,
        duration_ms,
        status_code,
        error: rest.error,
        response_body: rest.response_body,
        filtered: rest.filtered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt() -> AttemptRecord {
        AttemptRecord {
            attempt: 1,
            started_at: 1_764_755_000_123,
            duration_ms: 2,
            status_code: Some(200),
            error: None,
            response_body: None,
            filtered: None,
        }
    }

    #[test]
    fn a_success_is_short_and_reads_back() {
        let a = attempt();
        let text = encode(&a);
        assert_eq!(text, "1 1764755000123 2 200");
        assert_eq!(decode(text.as_bytes()).unwrap(), a);
    }

    #[test]
    fn errors_bodies_and_filters_read_back() {
        let mut a = attempt();
        a.status_code = None;
        a.error = Some("connect: refused\nline two".into());
        a.response_body = Some("{\"x\": 1}".into());
        a.filtered = Some("plugin said no".into());
        let text = encode(&a);
        assert!(text.starts_with("1 1764755000123 2 -\n"), "{text}");
        assert_eq!(decode(text.as_bytes()).unwrap(), a);
    }

    #[test]
    fn json_records_of_earlier_versions_read() {
        let a = attempt();
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(decode(json.as_bytes()).unwrap(), a);
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in ["", "1 2", "x 1 2 200", "1 2 3 99999", "1 2 3 200\nnot json", "{"] {
            assert!(decode(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
