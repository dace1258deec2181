//! The CloudEvents `time` attribute without a clock: hookgate event ids are
//! `<prefix>_` + a ULID, whose first 48 bits are the creation time in unix
//! milliseconds. Ids of any other shape give no `time` (it is optional).

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// RFC 3339 UTC time encoded in a ULID-style event id, if it has one.
pub fn from_event_id(id: &str) -> Option<String> {
    let ulid = id.rsplit('_').next()?;
    if ulid.len() != 26 {
        return None;
    }
    let mut ms: u64 = 0;
    for b in ulid.bytes().take(10) {
        let digit = CROCKFORD.iter().position(|c| *c == b.to_ascii_uppercase())?;
        ms = (ms << 5) | digit as u64;
    }
    if ms >> 48 != 0 {
        return None;
    }
    let (secs, millis) = (ms / 1000, ms % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    if !(2000..=2200).contains(&y) {
        return None;
    }
    Some(format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    ))
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day)
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_ulid_times() {
        // 01HV5Z3K4Q = 1712818605207 ms.
        assert_eq!(
            from_event_id("evt_01HV5Z3K4Q8W7X2M9N5R6T0V1Y").as_deref(),
            Some("2024-04-11T06:56:45.207Z")
        );
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(from_event_id("evt_123"), None);
        assert_eq!(from_event_id("evt_0000000000ZZZZZZZZZZZZZZZZ"), None);
        assert_eq!(from_event_id("evt_01HV5Z3K4U8W7X2M9N5R6T0V1Y"), None);
    }
}
