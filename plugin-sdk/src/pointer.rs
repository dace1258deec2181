//! JSON Pointer (RFC 6901) helpers over `serde_json::Value`: validate, get,
//! remove and replace by pointer. `serde_json::Value::pointer` covers reads;
//! these add the writes plugins need.

use serde_json::Value;

/// Splits a pointer into unescaped reference tokens (`""` is the whole
/// document and has none).
pub fn parse(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!("JSON pointer {pointer:?} must start with `/`"));
    };
    rest.split('/')
        .map(|t| unescape(t).ok_or_else(|| format!("JSON pointer {pointer:?}: `~` must be followed by 0 or 1")))
        .collect()
}

fn unescape(token: &str) -> Option<String> {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Checks a pointer's syntax; the empty pointer (the whole document) is
/// refused, since the plugins that take pointers name a field.
pub fn validate_field(pointer: &str) -> Result<(), String> {
    if pointer.is_empty() {
        return Err("JSON pointer must name a field (e.g. `/customer/email`), not be empty".into());
    }
    parse(pointer).map(|_| ())
}

/// The value at `pointer`, if any.
pub fn get<'a>(value: &'a Value, pointer: &str) -> Option<&'a Value> {
    value.pointer(pointer)
}

/// The parent container of the pointed-to value and the last token.
fn parent_mut<'a>(value: &'a mut Value, pointer: &str) -> Option<(&'a mut Value, String)> {
    let mut tokens = parse(pointer).ok()?;
    let last = tokens.pop()?;
    let mut current = value;
    for token in &tokens {
        current = match current {
            Value::Object(map) => map.get_mut(token)?,
            Value::Array(items) => items.get_mut(array_index(token)?)?,
            _ => return None,
        };
    }
    Some((current, last))
}

fn array_index(token: &str) -> Option<usize> {
    if token.len() > 1 && token.starts_with('0') {
        return None;
    }
    token.parse().ok()
}

/// Removes the value at `pointer` (an array element is removed and later
/// ones shift down); returns it, or `None` if there was nothing there.
pub fn remove(value: &mut Value, pointer: &str) -> Option<Value> {
    let (parent, last) = parent_mut(value, pointer)?;
    match parent {
        Value::Object(map) => map.shift_remove(&last),
        Value::Array(items) => {
            let i = array_index(&last)?;
            (i < items.len()).then(|| items.remove(i))
        }
        _ => None,
    }
}

/// Replaces the value at `pointer` if there is one; returns the old value.
pub fn replace(value: &mut Value, pointer: &str, new: Value) -> Option<Value> {
    let (parent, last) = parent_mut(value, pointer)?;
    let slot = match parent {
        Value::Object(map) => map.get_mut(&last)?,
        Value::Array(items) => items.get_mut(array_index(&last)?)?,
        _ => return None,
    };
    Some(std::mem::replace(slot, new))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parse_unescapes_and_rejects_bad_syntax() {
        assert_eq!(parse("/a~1b/c~0d/0").unwrap(), vec!["a/b", "c~d", "0"]);
        assert_eq!(parse("").unwrap(), Vec::<String>::new());
        assert!(parse("a").is_err());
        assert!(parse("/a~2").is_err());
        assert!(validate_field("").is_err());
    }

    #[test]
    fn remove_and_replace_keep_key_order() {
        let mut v = json!({"a": 1, "b": {"c": [1, 2, 3], "d": "x"}, "e": 5});
        assert_eq!(remove(&mut v, "/b/c/1"), Some(json!(2)));
        assert_eq!(remove(&mut v, "/b/c/9"), None);
        assert_eq!(remove(&mut v, "/a"), Some(json!(1)));
        assert_eq!(remove(&mut v, "/zz/y"), None);
        assert_eq!(replace(&mut v, "/b/d", json!("***")), Some(json!("x")));
        assert_eq!(replace(&mut v, "/b/new", json!(1)), None);
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"b":{"c":[1,3],"d":"***"},"e":5}"#
        );
    }
}
