//! Durations (`"250ms"`, `"5s"`, `"2m"`, `"7d"`) and sizes (`"32MiB"`).

use std::time::Duration;

/// A value that is not a duration or size.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UnitError {
    #[error("invalid duration {value:?} ({source}); use e.g. \"250ms\", \"5s\", \"2m\", \"7d\"")]
    Duration {
        value: String,
        #[source]
        source: humantime::DurationError,
    },
    #[error("invalid size {0:?}; use e.g. \"32MiB\", \"512KiB\" or a number of bytes")]
    Size(String),
}

/// Parses a duration like `"250ms"`, `"5s"`, `"2m"`, `"10h"` or `"7d"`.
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    humantime::parse_duration(s.trim()).map_err(|source| UnitError::Duration {
        value: s.to_owned(),
        source,
    })
}

/// Parses a size like `"32MiB"`, `"512KiB"`, `"1GiB"`, `"64MB"` or `"1048576"`.
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let bad = || UnitError::Size(s.to_owned());
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("10h"), Ok(Duration::from_secs(36_000)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("32MiB"), Ok(32 << 20));
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
        assert_eq!(parse_size("64MB"), Ok(64_000_000));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("3 bananas").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
    }
}
