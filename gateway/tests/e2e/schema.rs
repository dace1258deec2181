//! The subset of JSON Schema (2020-12, as OpenAPI 3.1 uses it) that
//! `openapi.json` is written in: a validator for answers, and generators of
//! valid and invalid instances for requests.
//!
//! Keywords: `$ref`, `type` (one or a list), `enum`, `const`, `properties`,
//! `required`, `additionalProperties`, `propertyNames`, `items`, `minItems`,
//! `maxItems`, `minLength`, `maxLength`, `minimum`, `maximum`, `pattern`,
//! `not`; `example` and `default` feed the generator. Any other keyword in
//! the document fails the test, so the document cannot use a constraint this
//! file would silently ignore.

use regex::Regex;
use serde_json::{Map, Value, json};

const KNOWN: &[&str] = &[
    "$ref",
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "propertyNames",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "pattern",
    "not",
    "example",
    "default",
    "description",
    "format",
];

/// The OpenAPI document.
pub struct Doc(pub Value);

/// Gives a property a fixed valid value (e.g. `url` -> the test receiver).
pub type Overrides<'a> = &'a dyn Fn(&str) -> Option<Value>;

fn types(s: &Value) -> Vec<&str> {
    match &s["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("openapi.json: bad pattern {pattern:?}: {e}"))
}

impl Doc {
    /// Follows `$ref` chains (`#/components/...`).
    pub fn resolve<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        while let Some(r) = v.get("$ref").and_then(Value::as_str) {
            let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("external $ref {r}"));
            v = self.0.pointer(pointer).unwrap_or_else(|| panic!("dangling $ref {r}"));
        }
        v
    }

    /// Checks `value` against `schema`. `strict`: objects may not carry
    /// properties the schema does not list (answers must be fully described).
    pub fn validate(&self, schema: &Value, value: &Value, at: &str, strict: bool) -> Result<(), String> {
        let s = self.resolve(schema);
        let Some(obj) = s.as_object() else {
            return Err(format!("{at}: schema is not an object"));
        };
        if let Some(k) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(format!("{at}: the test does not know the schema keyword {k:?}"));
        }
        let fail = |what: String| Err(format!("{at}: {what} (value {value})"));
        let ts = types(s);
        let actual = type_of(value);
        if !ts.is_empty()
            && !ts
                .iter()
                .any(|t| *t == actual || (*t == "number" && actual == "integer"))
        {
            return fail(format!("type {actual}, expected {ts:?}"));
        }
        if let Some(list) = s.get("enum").and_then(Value::as_array)
            && !list.contains(value)
        {
            return fail(format!("not one of {list:?}"));
        }
        if let Some(c) = s.get("const")
            && c != value
        {
            return fail(format!("not {c}"));
        }
        if let Some(not) = s.get("not")
            && self.validate(not, value, at, false).is_ok()
        {
            return fail(format!("matches `not` {not}"));
        }
        match value {
            Value::String(text) => {
                let chars = text.chars().count() as u64;
                if s.get("minLength").and_then(Value::as_u64).is_some_and(|m| chars < m) {
                    return fail("shorter than minLength".into());
                }
                if s.get("maxLength").and_then(Value::as_u64).is_some_and(|m| chars > m) {
                    return fail("longer than maxLength".into());
                }
                if let Some(p) = s.get("pattern").and_then(Value::as_str)
                    && !regex(p).is_match(text)
                {
                    return fail(format!("does not match {p}"));
                }
            }
            Value::Number(n) => {
                let x = n.as_f64().unwrap_or(f64::NAN);
                if s.get("minimum").and_then(Value::as_f64).is_some_and(|m| x < m) {
                    return fail("below minimum".into());
                }
                if s.get("maximum").and_then(Value::as_f64).is_some_and(|m| x > m) {
                    return fail("above maximum".into());
                }
            }
            Value::Array(items) => {
                let n = items.len() as u64;
                if s.get("minItems").and_then(Value::as_u64).is_some_and(|m| n < m) {
                    return fail("fewer than minItems".into());
                }
                if s.get("maxItems").and_then(Value::as_u64).is_some_and(|m| n > m) {
                    return fail("more than maxItems".into());
                }
                if let Some(item) = s.get("items") {
                    for (i, v) in items.iter().enumerate() {
                        self.validate(item, v, &format!("{at}[{i}]"), strict)?;
                    }
                }
            }
            Value::Object(map) => self.validate_object(s, map, at, strict)?,
            _ => {}
        }
        Ok(())
    }

    fn validate_object(&self, s: &Value, map: &Map<String, Value>, at: &str, strict: bool) -> Result<(), String> {
        let props = s.get("properties").and_then(Value::as_object);
        for r in s.get("required").and_then(Value::as_array).into_iter().flatten() {
            let r = r.as_str().unwrap_or_default();
            if !map.contains_key(r) {
                return Err(format!("{at}: missing required {r:?}"));
            }
        }
        for (k, v) in map {
            if let Some(names) = s.get("propertyNames") {
                self.validate(names, &json!(k), &format!("{at} key {k:?}"), strict)?;
            }
            match (props.and_then(|p| p.get(k)), s.get("additionalProperties")) {
                (Some(p), _) => self.validate(p, v, &format!("{at}.{k}"), strict)?,
                (None, Some(Value::Bool(false))) => return Err(format!("{at}: property {k:?} is not allowed")),
                (None, Some(extra)) if extra.is_object() => self.validate(extra, v, &format!("{at}.{k}"), strict)?,
                (None, _) if strict && props.is_some() => {
                    return Err(format!("{at}: property {k:?} is not in the document"));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A valid instance: the schema's `example` or `default`, else the least
    /// value that satisfies it. Objects get their required properties and
    /// every optional one that has an example.
    pub fn valid(&self, schema: &Value, over: Overrides<'_>) -> Value {
        let s = self.resolve(schema);
        if let Some(v) = s.get("example").or_else(|| s.get("default")).or_else(|| s.get("const")) {
            return v.clone();
        }
        if let Some(first) = s.get("enum").and_then(|e| e.get(0)) {
            return first.clone();
        }
        let ts = types(s);
        match ts.iter().copied().find(|t| *t != "null") {
            Some("object") => {
                let mut out = Map::new();
                let required: Vec<&str> = s
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                for (k, p) in s.get("properties").and_then(Value::as_object).into_iter().flatten() {
                    if let Some(v) = over(k) {
                        out.insert(k.clone(), v);
                    } else if required.contains(&k.as_str()) || self.has_example(p) {
                        out.insert(k.clone(), self.valid(p, over));
                    }
                }
                Value::Object(out)
            }
            Some("array") => {
                let n = s.get("minItems").and_then(Value::as_u64).unwrap_or(0);
                Value::Array((0..n).map(|_| self.valid(&s["items"], over)).collect())
            }
            Some("string") => {
                assert!(
                    s.get("pattern").is_none(),
                    "openapi.json: a string with a pattern needs an example: {s}"
                );
                let n = s.get("minLength").and_then(Value::as_u64).unwrap_or(1).max(1);
                json!("x".repeat(n as usize))
            }
            Some("integer") => json!(s.get("minimum").and_then(Value::as_i64).unwrap_or(1)),
            Some("boolean") => json!(true),
            _ => json!({}),
        }
    }

    fn has_example(&self, schema: &Value) -> bool {
        let s = self.resolve(schema);
        s.get("example").is_some()
    }

    /// Values that break one constraint of `schema` each, with a label.
    pub fn invalid(&self, schema: &Value, over: Overrides<'_>) -> Vec<(String, Value)> {
        let s = self.resolve(schema);
        let ts = types(s);
        let mut out: Vec<(String, Value)> = Vec::new();
        if !ts.is_empty() {
            for (label, v) in [
                ("a string", json!("zz-wrong-type")),
                ("an integer", json!(1234567)),
                ("a fraction", json!(1.5)),
                ("a boolean", json!(true)),
                ("an array", json!(["zz"])),
                ("an object", json!({"zz": 1})),
                ("null", Value::Null),
            ] {
                if self.validate(s, &v, "", false).is_err() && !ts.contains(&type_of(&v)) {
                    out.push((format!("wrong type: {label}"), v));
                }
            }
        }
        if s.get("enum").is_some() {
            out.push(("not in enum".into(), json!("zz-not-a-member")));
        }
        if ts.contains(&"string") {
            let base = match s.get("pattern").is_some() && !self.has_example(s) {
                true => String::new(),
                false => self.valid(s, over).as_str().map(str::to_owned).unwrap_or_default(),
            };
            if let Some(min) = s.get("minLength").and_then(Value::as_u64)
                && min > 0
            {
                let short: String = base.chars().take(min as usize - 1).collect();
                out.push(("shorter than minLength".into(), json!(short)));
            }
            if let Some(max) = s.get("maxLength").and_then(Value::as_u64) {
                out.push(("longer than maxLength".into(), json!("x".repeat(max as usize + 1))));
            }
            if let Some(p) = s.get("pattern").and_then(Value::as_str) {
                let re = regex(p);
                let bad = [
                    "Not Valid!",
                    " ",
                    "a b",
                    "\u{e9}t\u{e9}",
                    "ftp://x",
                    "..",
                    "x",
                    "line\nbreak",
                ]
                .into_iter()
                .find(|c| !re.is_match(c))
                .unwrap_or_else(|| panic!("no candidate breaks pattern {p}"));
                out.push((format!("does not match {p}"), json!(bad)));
            }
        }
        if ts.contains(&"integer") {
            if let Some(min) = s.get("minimum").and_then(Value::as_i64) {
                out.push(("below minimum".into(), json!(min - 1)));
            }
            if let Some(max) = s.get("maximum").and_then(Value::as_i64) {
                out.push(("above maximum".into(), json!(max + 1)));
            }
        }
        if ts.contains(&"array") {
            let item = self.valid(&s["items"], over);
            if let Some(min) = s.get("minItems").and_then(Value::as_u64)
                && min > 0
            {
                out.push((
                    "fewer than minItems".into(),
                    json!(vec![item.clone(); min as usize - 1]),
                ));
            }
            if let Some(max) = s.get("maxItems").and_then(Value::as_u64) {
                out.push(("more than maxItems".into(), json!(vec![item.clone(); max as usize + 1])));
            }
            for (label, bad) in self.invalid(&s["items"], over) {
                out.push((format!("item {label}"), json!([bad])));
            }
        }
        if ts.contains(&"object") {
            out.extend(self.invalid_object(s, over));
        }
        out
    }

    fn invalid_object(&self, s: &Value, over: Overrides<'_>) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        let base = self.valid(s, over);
        let Value::Object(base) = base else { return out };
        let with = |k: &str, v: Value| {
            let mut m = base.clone();
            m.insert(k.to_owned(), v);
            Value::Object(m)
        };
        for r in s.get("required").and_then(Value::as_array).into_iter().flatten() {
            let r = r.as_str().unwrap_or_default();
            let mut m = base.clone();
            m.remove(r);
            out.push((format!("missing required {r}"), Value::Object(m)));
        }
        if s.get("additionalProperties") == Some(&Value::Bool(false)) {
            out.push(("unknown property".into(), with("zzUnknown", json!(1))));
        }
        if let Some(names) = s.pointer("/not/required").and_then(Value::as_array) {
            let props = &s["properties"];
            let mut m = base.clone();
            for n in names.iter().filter_map(Value::as_str) {
                m.insert(n.to_owned(), self.valid(&props[n], over));
            }
            out.push((format!("all of {names:?} together"), Value::Object(m)));
        }
        for (k, p) in s.get("properties").and_then(Value::as_object).into_iter().flatten() {
            for (label, bad) in self.invalid(p, over) {
                out.push((format!("{k}: {label}"), with(k, bad)));
            }
        }
        if let Some(extra) = s.get("additionalProperties").filter(|e| e.is_object()) {
            for (label, bad) in self.invalid(extra, over) {
                out.push((format!("a value: {label}"), with("X-Zz", bad)));
            }
            let ok = self.valid(extra, over);
            if let Some(p) = s.pointer("/propertyNames/pattern").and_then(Value::as_str) {
                let bad = ["Not Valid!", "a b", "\u{e9}"]
                    .into_iter()
                    .find(|c| !regex(p).is_match(c))
                    .unwrap_or_else(|| panic!("no candidate breaks pattern {p}"));
                out.push((format!("a key not matching {p}"), with(bad, ok.clone())));
            }
            for name in s
                .pointer("/propertyNames/not/enum")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = name.as_str().unwrap_or_default();
                out.push((format!("reserved key {name}"), with(name, ok.clone())));
            }
        }
        out
    }
}
