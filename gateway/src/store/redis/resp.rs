//! Reading Redis's replies (RESP2) off a byte buffer, for [`super::lean`].
//!
//! [`frame`] says whether the buffer starts with a whole reply, and how long
//! it is, without building anything: it walks the headers and skips bulk
//! strings by their length, so a large reply that arrives over several
//! reads is looked at cheaply each time and decoded once. [`decode`] then
//! builds the reply as the redis crate's [`Value`], the type the store's
//! decoding already reads. Error replies are handed to the redis crate's own
//! parser, so `NOSCRIPT` and the other error kinds are classified exactly
//! as the crate classifies them.

use ::redis::Value;

/// Arrays nested deeper than this are refused as a protocol error (the
/// store's scripts answer two levels deep).
const MAX_DEPTH: usize = 16;

/// A reply that is not RESP2: the connection cannot be trusted any more.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Malformed(pub &'static str);

/// The length of the whole reply at the start of `buf`, or `None` if more
/// bytes are needed.
pub(crate) fn frame(buf: &[u8]) -> Result<Option<usize>, Malformed> {
    frame_at(buf, 0, 0)
}

fn frame_at(buf: &[u8], at: usize, depth: usize) -> Result<Option<usize>, Malformed> {
    let Some((kind, line, next)) = header(buf, at)? else {
        return Ok(None);
    };
    match kind {
        b'+' | b'-' | b':' => Ok(Some(next)),
        b'$' => match length(line)? {
            None => Ok(Some(next)),
            Some(n) => {
                let end = bulk_end(next, n)?;
                Ok((buf.len() >= end).then_some(end))
            }
        },
        b'*' => {
            if depth >= MAX_DEPTH {
                return Err(Malformed("arrays nested too deep"));
            }
            let mut at = next;
            for _ in 0..length(line)?.unwrap_or(0) {
                match frame_at(buf, at, depth + 1)? {
                    Some(end) => at = end,
                    None => return Ok(None),
                }
            }
            Ok(Some(at))
        }
        _ => Err(Malformed("unknown reply type")),
    }
}

/// Decodes the whole reply at the start of `buf` (as measured by [`frame`]).
pub(crate) fn decode(buf: &[u8]) -> Result<Value, Malformed> {
    decode_at(buf, 0).map(|(value, _)| value)
}

fn decode_at(buf: &[u8], at: usize) -> Result<(Value, usize), Malformed> {
    let Some((kind, line, next)) = header(buf, at)? else {
        return Err(Malformed("truncated reply"));
    };
    let value = match kind {
        b'+' if line == b"OK" => Value::Okay,
        b'+' => Value::SimpleString(String::from_utf8_lossy(line).into_owned()),
        b'-' => match ::redis::parse_redis_value(&buf[at..next]) {
            Ok(value) => value,
            Err(_) => return Err(Malformed("unreadable error reply")),
        },
        b':' => Value::Int(integer(line)?),
        b'$' => match length(line)? {
            None => Value::Nil,
            Some(n) => {
                let end = bulk_end(next, n)?;
                let body = buf.get(next..end - 2).ok_or(Malformed("truncated reply"))?;
                if buf.get(end - 2..end) != Some(b"\r\n") {
                    return Err(Malformed("bulk string without its line end"));
                }
                return Ok((Value::BulkString(body.to_vec()), end));
            }
        },
        b'*' => match length(line)? {
            None => Value::Nil,
            Some(n) => {
                let mut items = Vec::with_capacity(n.min(4096));
                let mut at = next;
                for _ in 0..n {
                    let (item, end) = decode_at(buf, at)?;
                    items.push(item);
                    at = end;
                }
                return Ok((Value::Array(items), at));
            }
        },
        _ => return Err(Malformed("unknown reply type")),
    };
    Ok((value, next))
}

/// A reply's first line: its type byte, the rest of the line, and where the
/// next line starts.
type Header<'a> = (u8, &'a [u8], usize);

/// The [`Header`] of the line at `at`; `None` if the line is not complete yet.
fn header(buf: &[u8], at: usize) -> Result<Option<Header<'_>>, Malformed> {
    let Some(rest) = buf.get(at..) else {
        return Ok(None);
    };
    let Some(cr) = rest.iter().position(|&b| b == b'\r') else {
        return Ok(None);
    };
    match rest.get(cr + 1) {
        None => Ok(None),
        Some(b'\n') if cr == 0 => Err(Malformed("an empty line")),
        Some(b'\n') => Ok(Some((rest[0], &rest[1..cr], at + cr + 2))),
        Some(_) => Err(Malformed("a line not ended by CRLF")),
    }
}

/// Redis's own limit on a string's length.
const MAX_BULK: usize = 512 << 20;

/// Where a bulk string of `n` bytes starting at `at` ends, its CRLF
/// included. A length past Redis's limit is malformed: never waited for,
/// never an overflow.
fn bulk_end(at: usize, n: usize) -> Result<usize, Malformed> {
    if n > MAX_BULK {
        return Err(Malformed("a bulk string longer than Redis allows"));
    }
    Ok(at + n + 2)
}

/// A bulk string's or array's length; `None` for -1 (nil).
fn length(line: &[u8]) -> Result<Option<usize>, Malformed> {
    match integer(line)? {
        -1 => Ok(None),
        n => usize::try_from(n).map(Some).map_err(|_| Malformed("a negative length")),
    }
}

/// A decimal integer, optionally negative (what RESP2 sends for integers
/// and lengths); parsed by hand, since replies hold several per item.
fn integer(line: &[u8]) -> Result<i64, Malformed> {
    const NOT: Malformed = Malformed("not an integer");
    let (negative, digits) = match line {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, line),
    };
    if digits.is_empty() || digits.len() > 19 {
        return Err(NOT);
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(NOT);
        }
        // Kept negative while parsing, so i64::MIN fits.
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_sub(i64::from(d - b'0')))
            .ok_or(NOT)?;
    }
    if negative { Ok(n) } else { n.checked_neg().ok_or(NOT) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `frame` and `decode` on `bytes`, checked against the redis crate's
    /// own parser.
    fn both(bytes: &[u8]) -> Value {
        assert_eq!(
            frame(bytes),
            Ok(Some(bytes.len())),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
        let value = decode(bytes).unwrap();
        assert_eq!(value, ::redis::parse_redis_value(bytes).unwrap());
        value
    }

    #[test]
    fn replies_decode_as_the_redis_crate_decodes_them() {
        assert_eq!(both(b"+OK\r\n"), Value::Okay);
        assert_eq!(both(b"+PONG\r\n"), Value::SimpleString("PONG".into()));
        assert_eq!(both(b":-42\r\n"), Value::Int(-42));
        assert_eq!(both(b"$5\r\nhe\r\no\r\n"), Value::BulkString(b"he\r\no".to_vec()));
        assert_eq!(both(b"$0\r\n\r\n"), Value::BulkString(Vec::new()));
        assert_eq!(both(b"$-1\r\n"), Value::Nil);
        assert_eq!(both(b"*-1\r\n"), Value::Nil);
        assert_eq!(both(b"*0\r\n"), Value::Array(Vec::new()));
        both(b"*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n+OK\r\n");
        let error = both(b"-NOSCRIPT No matching script. Please use EVAL.\r\n");
        let error = error.extract_error().unwrap_err();
        assert_eq!(
            error.kind(),
            ::redis::ErrorKind::Server(::redis::ServerErrorKind::NoScript)
        );
    }

    #[test]
    fn a_reply_cut_anywhere_needs_more_bytes() {
        let whole: &[u8] = b"*3\r\n:1\r\n*2\r\n$5\r\nhello\r\n$-1\r\n-ERR no\r\n";
        for cut in 0..whole.len() {
            assert_eq!(frame(&whole[..cut]), Ok(None), "cut at {cut}");
        }
        // A whole reply followed by the start of the next one.
        let mut two = whole.to_vec();
        two.extend_from_slice(b"$3\r\nab");
        assert_eq!(frame(&two), Ok(Some(whole.len())));
        assert_eq!(decode(&two).unwrap(), ::redis::parse_redis_value(whole).unwrap());
    }

    #[test]
    fn integers_parse_as_the_standard_library_parses_them() {
        for text in [
            "0",
            "7",
            "-1",
            "-0",
            "42",
            "9223372036854775807",
            "-9223372036854775808",
        ] {
            assert_eq!(integer(text.as_bytes()), Ok(text.parse::<i64>().unwrap()), "{text}");
        }
        for text in [
            "",
            "-",
            "+1",
            "1a",
            " 1",
            "9223372036854775808",
            "12345678901234567890",
            "--1",
        ] {
            assert_eq!(integer(text.as_bytes()), Err(Malformed("not an integer")), "{text}");
        }
    }

    #[test]
    fn what_is_not_resp2_is_refused() {
        assert_eq!(frame(b"?1\r\n"), Err(Malformed("unknown reply type")));
        assert_eq!(frame(b":1\rx"), Err(Malformed("a line not ended by CRLF")));
        assert_eq!(frame(b"$-2\r\n"), Err(Malformed("a negative length")));
        assert_eq!(frame(b"*x\r\n"), Err(Malformed("not an integer")));
        assert_eq!(frame(b"\r\n"), Err(Malformed("an empty line")));
        assert_eq!(
            frame(&b"*1\r\n".repeat(MAX_DEPTH + 1)),
            Err(Malformed("arrays nested too deep"))
        );
        assert!(
            decode(b"$2\r\nabc\r\n").is_err(),
            "a bulk string longer than its length"
        );
        // The largest length RESP can carry: refused, not waited for.
        let huge = format!("${}\r\nab\r\n", i64::MAX);
        let too_long = Malformed("a bulk string longer than Redis allows");
        assert_eq!(frame(huge.as_bytes()), Err(too_long));
        assert_eq!(
            decode(huge.as_bytes()).unwrap_err(),
            Malformed("a bulk string longer than Redis allows")
        );
    }
}
