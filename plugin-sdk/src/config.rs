//! [`Config`]: the plugin's string map from the webhook configuration.

use std::str::FromStr;

use crate::Error;

/// The plugin's configuration, as given in the webhook's `config` table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    entries: Vec<(String, String)>,
}

impl Config {
    /// A config from key/value pairs (the first of duplicate keys wins).
    pub fn new(entries: Vec<(String, String)>) -> Self {
        Config { entries }
    }

    /// The value for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The value for `key`, or an error naming the missing key.
    pub fn require(&self, key: &str) -> Result<&str, Error> {
        self.get(key)
            .ok_or_else(|| Error::msg(format!("config `{key}` is required")))
    }

    /// The value for `key` parsed with [`FromStr`]; `Ok(None)` when absent.
    pub fn parse<T: FromStr>(&self, key: &str) -> Result<Option<T>, Error>
    where
        T::Err: std::fmt::Display,
    {
        self.get(key)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|e| Error::msg(format!("config `{key}` = {v:?}: {e}")))
            })
            .transpose()
    }

    /// Fails naming the first key not in `known` (catches typos in
    /// `validate_config`).
    pub fn check_keys(&self, known: &[&str]) -> Result<(), String> {
        match self.entries.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            Some((k, _)) => Err(format!(
                "unknown config key `{k}`; expected one of: {}",
                known.join(", ")
            )),
            None => Ok(()),
        }
    }

    /// All pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl From<Vec<(String, String)>> for Config {
    fn from(entries: Vec<(String, String)>) -> Self {
        Config::new(entries)
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for Config {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(iter: I) -> Self {
        Config::new(iter.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_require_parse_and_check_keys() {
        let c: Config = [("a", "1"), ("b", "x")].into_iter().collect();
        assert_eq!(c.get("a"), Some("1"));
        assert_eq!(c.parse::<u32>("a").unwrap(), Some(1));
        assert!(c.parse::<u32>("b").is_err());
        assert_eq!(c.parse::<u32>("zz").unwrap(), None);
        assert!(c.require("zz").unwrap_err().to_string().contains("`zz` is required"));
        assert!(c.check_keys(&["a", "b"]).is_ok());
        assert!(c.check_keys(&["a"]).unwrap_err().contains("unknown config key `b`"));
    }
}
