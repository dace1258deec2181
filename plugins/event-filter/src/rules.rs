//! Rules: parsing them from the plugin config and evaluating them on a JSON
//! document.

use std::cmp::Ordering;

use hookgate_plugin_sdk::{Config, pointer};
use serde_json::{Map, Value};

/// A comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    In,
    Exists,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Op {
    fn parse(s: &str) -> Result<Op, String> {
        Ok(match s {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "in" => Op::In,
            "exists" => Op::Exists,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            other => {
                return Err(format!(
                    "unknown op {other:?}; expected one of eq, ne, in, exists, gt, gte, lt, lte"
                ));
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::In => "in",
            Op::Exists => "exists",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Lt => "lt",
            Op::Lte => "lte",
        }
    }
}

/// An expected value, with its config text when it came from a flat
/// `value = "..."` string (so `value = "42"` also matches the string "42").
#[derive(Clone, Debug, PartialEq)]
struct Expected {
    value: Value,
    text: Option<String>,
}

impl Expected {
    fn literal(text: &str) -> Expected {
        let value = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()));
        Expected {
            value,
            text: Some(text.to_owned()),
        }
    }

    fn matches(&self, actual: &Value) -> bool {
        if *actual == self.value {
            return true;
        }
        if let (Value::Number(a), Value::Number(b)) = (actual, &self.value) {
            return a.as_f64().is_some() && a.as_f64() == b.as_f64();
        }
        matches!((actual, &self.text), (Value::String(a), Some(t)) if a == t)
    }
}

/// One `field op value` test.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    field: String,
    op: Op,
    expected: Vec<Expected>,
}

impl Rule {
    fn new(field: &str, op: Op, expected: Vec<Expected>) -> Result<Rule, String> {
        pointer::validate_field(field)?;
        let problem = match (op, expected.first().map(|e| &e.value)) {
            (Op::Exists, None | Some(Value::Bool(_))) => None,
            (Op::Exists, Some(_)) => Some("`exists` takes no value, or true/false"),
            (Op::In, _) if expected.is_empty() => Some("`in` needs a non-empty list of values"),
            (Op::In, _) => None,
            (_, None) => Some("this op needs a value"),
            (Op::Gt | Op::Gte | Op::Lt | Op::Lte, Some(Value::Number(_) | Value::String(_))) => None,
            (Op::Gt | Op::Gte | Op::Lt | Op::Lte, Some(_)) => Some("this op compares with a number or a string"),
            (Op::Eq | Op::Ne, Some(_)) => None,
        };
        if let Some(problem) = problem {
            return Err(format!("{field} {}: {problem}", op.name()));
        }
        Ok(Rule {
            field: field.to_owned(),
            op,
            expected,
        })
    }

    /// Whether the rule holds for `doc`.
    pub fn holds(&self, doc: &Value) -> bool {
        let actual = doc.pointer(&self.field);
        let first = self.expected.first();
        match self.op {
            Op::Exists => actual.is_some() == first.is_none_or(|e| e.value == Value::Bool(true)),
            Op::Eq => actual.is_some_and(|a| first.is_some_and(|e| e.matches(a))),
            Op::Ne => !actual.is_some_and(|a| first.is_some_and(|e| e.matches(a))),
            Op::In => actual.is_some_and(|a| self.expected.iter().any(|e| e.matches(a))),
            Op::Gt => self.compare(actual) == Some(Ordering::Greater),
            Op::Gte => matches!(self.compare(actual), Some(Ordering::Greater | Ordering::Equal)),
            Op::Lt => self.compare(actual) == Some(Ordering::Less),
            Op::Lte => matches!(self.compare(actual), Some(Ordering::Less | Ordering::Equal)),
        }
    }

    fn compare(&self, actual: Option<&Value>) -> Option<Ordering> {
        match (actual?, &self.expected.first()?.value) {
            (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
            (Value::String(a), Value::String(b)) => Some(a.as_str().cmp(b.as_str())),
            _ => None,
        }
    }

    /// `field op value`, for drop reasons (the configured value, never the
    /// event's data).
    pub fn describe(&self) -> String {
        let values: Vec<String> = self.expected.iter().map(|e| e.value.to_string()).collect();
        let value = match (self.op, values.len()) {
            (Op::In, _) => format!(" [{}]", values.join(", ")),
            (_, 0) => String::new(),
            _ => format!(" {}", values.join(", ")),
        };
        let mut text = format!("{} {}{value}", self.field, self.op.name());
        if text.len() > 200 {
            let mut end = 200;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push('…');
        }
        text
    }
}

/// The rules a config describes: either `rules` (a JSON array of
/// `{field, op, value}` objects) or a single `field`/`op`/`value`.
pub fn rules_from_config(config: &Config) -> Result<Vec<Rule>, String> {
    config.check_keys(&["field", "op", "value", "rules"])?;
    if let Some(rules) = config.get("rules") {
        if ["field", "op", "value"].iter().any(|k| config.get(k).is_some()) {
            return Err("use either `rules` or `field`/`op`/`value`, not both".into());
        }
        let parsed: Value = serde_json::from_str(rules).map_err(|e| format!("`rules` is not valid JSON: {e}"))?;
        let Value::Array(items) = parsed else {
            return Err("`rules` must be a JSON array of {field, op, value} objects".into());
        };
        if items.is_empty() {
            return Err("`rules` must not be empty".into());
        }
        return items
            .iter()
            .enumerate()
            .map(|(i, item)| rule_from_json(item).map_err(|e| format!("rules[{i}]: {e}")))
            .collect();
    }
    let field = config
        .get("field")
        .ok_or("config needs `field` and `op` (or `rules`)")?;
    let op = Op::parse(config.get("op").ok_or("config needs `op`")?)?;
    let expected = match (op, config.get("value")) {
        (_, None) => Vec::new(),
        (Op::In, Some(text)) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(items)) => items.into_iter().map(|value| Expected { value, text: None }).collect(),
            _ => text.split(',').map(|t| Expected::literal(t.trim())).collect(),
        },
        (_, Some(text)) => vec![Expected::literal(text)],
    };
    Ok(vec![Rule::new(field, op, expected)?])
}

fn rule_from_json(item: &Value) -> Result<Rule, String> {
    let Value::Object(map) = item else {
        return Err("must be an object {field, op, value}".into());
    };
    if let Some(key) = map.keys().find(|k| !["field", "op", "value"].contains(&k.as_str())) {
        return Err(format!("unknown key `{key}`"));
    }
    let field = string(map, "field")?;
    let op = Op::parse(string(map, "op")?)?;
    let expected = match (op, map.get("value")) {
        (_, None) => Vec::new(),
        (Op::In, Some(Value::Array(items))) => items
            .iter()
            .map(|v| Expected {
                value: v.clone(),
                text: None,
            })
            .collect(),
        (Op::In, Some(_)) => return Err("`in` needs an array value".into()),
        (_, Some(v)) => vec![Expected {
            value: v.clone(),
            text: None,
        }],
    };
    Rule::new(field, op, expected)
}

fn string<'a>(map: &'a Map<String, Value>, key: &str) -> Result<&'a str, String> {
    map.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("`{key}` must be a string"))
}
