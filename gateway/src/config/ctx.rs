//! Reading values out of the raw model: `env:` indirection, units and
//! ranges, with every error kept with its position.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use super::ConfigError;
use super::raw::{N, S};
use super::units::{parse_duration, parse_size};

/// Collects errors while reading values out of the raw model.
pub(super) struct Ctx<'a> {
    pub(super) src: &'a str,
    pub(super) path: &'a Path,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
    pub(super) errors: Vec<ConfigError>,
}

impl Ctx<'_> {
    /// 1-based line and column of a byte offset.
    pub(super) fn position(&self, offset: usize) -> (usize, usize) {
        line_col(self.src, offset)
    }

    pub(super) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, col) = line_col(self.src, span.start);
        self.errors.push(ConfigError {
            path: self.path.to_owned(),
            line,
            col,
            message: message.into(),
        });
    }

    /// A string value, with `env:NAME` resolved.
    pub(super) fn string(&mut self, s: &S) -> Option<String> {
        let v = s.get_ref();
        match v.strip_prefix("env:") {
            None => Some(v.clone()),
            Some(name) => match (self.env)(name) {
                Some(val) => Some(val),
                None => {
                    self.error(s.span(), format!("environment variable {name} is not set"));
                    None
                }
            },
        }
    }

    pub(super) fn duration(&mut self, s: Option<&S>, default: Duration, key: &str) -> Duration {
        let Some(s) = s else { return default };
        let Some(v) = self.string(s) else {
            return default;
        };
        match parse_duration(&v) {
            Ok(d) if d.is_zero() => {
                self.error(s.span(), format!("{key} must be greater than zero"));
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.error(s.span(), format!("{key}: {e}"));
                default
            }
        }
    }

    /// A size of at least 1 MiB (`"32MiB"`), or the default.
    pub(super) fn size(&mut self, s: Option<&S>, default: u64, key: &str) -> u64 {
        let Some(s) = s else { return default };
        match self.string(s).map(|v| parse_size(&v)) {
            Some(Ok(n)) if n >= 1 << 20 => n,
            Some(Ok(_)) => {
                self.error(s.span(), format!("{key} must be at least 1MiB"));
                default
            }
            Some(Err(e)) => {
                self.error(s.span(), format!("{key}: {e}"));
                default
            }
            None => default,
        }
    }

    /// An integer in `range`, or the default.
    pub(super) fn int<T: TryFrom<i64> + Copy>(&mut self, n: Option<&N>, default: T, range: Range<i64>, key: &str) -> T {
        let Some(n) = n else { return default };
        let v = *n.get_ref();
        if !range.contains(&v) {
            self.error(
                n.span(),
                format!("{key} must be between {} and {}, got {v}", range.start, range.end - 1),
            );
            return default;
        }
        T::try_from(v).unwrap_or(default)
    }
}

/// 1-based line and column (in characters) of byte `offset` in `src`.
pub(super) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..src.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// A parser message with quoted values taken out (`invalid type: string
/// "tok-123", expected a sequence` -> `invalid type: string, expected a
/// sequence`): a value in the wrong place may be a secret.
pub(super) fn hide_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(" \"") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('"') {
            Some(end) => rest = &after[end + 1..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}
