//! The one rule set for webhook definitions. [`check`] validates a
//! [`WebhookSpec`] and compiles what the live webhook needs; config.toml
//! (which reports `PATH:LINE:COL`) and the API (which answers 422 naming the
//! field) both call it and only differ in how they show a [`Field`].

use std::fmt;
use std::time::Duration;

use super::{EventPattern, WebhookSpec};

/// Secret length in bytes.
pub const SECRET_LEN: std::ops::RangeInclusive<usize> = 8..=256;
/// Name length in bytes (after trimming).
pub const NAME_LEN: std::ops::RangeInclusive<usize> = 1..=256;
/// `rate_limit_per_minute` of a webhook.
pub const RATE_LIMIT: std::ops::RangeInclusive<u32> = 1..=60_000_000;
/// Most retries a webhook may ask for.
pub const MAX_RETRIES: u32 = 10;

/// A field of a webhook definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Name,
    Url,
    Events,
    /// One entry of `events`.
    Event(usize),
    Secret,
    RateLimitPerMinute,
    MaxRetries,
    Timeout,
    /// One extra header, by name.
    Header(String),
    ClientIdentity,
    PluginPath(usize),
    PluginSha256(usize),
}

impl Field {
    /// The field as the API names it (`plugins[0].sha256`).
    pub fn api_name(&self) -> String {
        match self {
            Field::Name => "name".into(),
            Field::Url => "url".into(),
            Field::Events => "events".into(),
            Field::Event(i) => format!("events[{i}]"),
            Field::Secret => "secret".into(),
            Field::RateLimitPerMinute => "rateLimitPerMinute".into(),
            Field::MaxRetries => "maxRetries".into(),
            Field::Timeout => "timeoutMs".into(),
            Field::Header(h) => format!("headers.{h}"),
            Field::ClientIdentity => "clientIdentity".into(),
            Field::PluginPath(i) => format!("plugins[{i}].path"),
            Field::PluginSha256(i) => format!("plugins[{i}].sha256"),
        }
    }

    /// The key as config.toml names it, when a message should start with it
    /// (errors on list entries point at the entry and need no name).
    pub fn config_name(&self) -> Option<&'static str> {
        match self {
            Field::Name => Some("name"),
            Field::Url => Some("url"),
            Field::Events => Some("events"),
            Field::Secret => Some("secret"),
            Field::RateLimitPerMinute => Some("rate_limit_per_minute"),
            Field::MaxRetries => Some("max_retries"),
            Field::Timeout => Some("timeout"),
            Field::ClientIdentity => Some("client_identity"),
            Field::PluginPath(_) => Some("path"),
            Field::PluginSha256(_) => Some("sha256"),
            Field::Event(_) | Field::Header(_) => None,
        }
    }
}

/// One broken rule: the field and what is wrong with it (a phrase that
/// reads after the field's name, never containing a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: Field,
    pub problem: String,
}

impl Invalid {
    fn new(field: Field, problem: impl Into<String>) -> Self {
        Invalid {
            field,
            problem: problem.into(),
        }
    }

    /// The message as config.toml errors show it.
    pub fn config_message(&self) -> String {
        match self.field.config_name() {
            Some(name) => format!("{name} {}", self.problem),
            None => self.problem.clone(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field.api_name(), self.problem)
    }
}

/// Bounds that depend on the rest of the configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bounds<'a> {
    /// The longest per-attempt timeout allowed (API webhooks: leases are
    /// sized for the longest timeout in config.toml); `None`: any.
    pub max_timeout: Option<Duration>,
    /// The client identities config.toml defines; `None`: not checked.
    pub identities: Option<&'a [String]>,
}

/// What [`check`] compiles out of a valid spec.
#[derive(Debug, Clone)]
pub struct Checked {
    pub url: reqwest::Url,
    pub events: Vec<EventPattern>,
}

/// Checks every rule; all broken ones come back, in field order.
pub fn check(spec: &WebhookSpec, secret: Option<&str>, bounds: Bounds<'_>) -> Result<Checked, Vec<Invalid>> {
    let mut bad = Vec::new();
    if !NAME_LEN.contains(&spec.name.trim().len()) {
        bad.push(Invalid::new(Field::Name, "must be 1 to 256 characters"));
    }
    let url = parse_url(&spec.url)
        .map_err(|p| bad.push(Invalid::new(Field::Url, p)))
        .ok();
    if spec.events.is_empty() {
        bad.push(Invalid::new(Field::Events, "must list at least one pattern"));
    }
    let mut events = Vec::with_capacity(spec.events.len());
    for (i, e) in spec.events.iter().enumerate() {
        match EventPattern::parse(e) {
            Ok(p) => events.push(p),
            Err(p) => bad.push(Invalid::new(Field::Event(i), p)),
        }
    }
    if let Some(s) = secret
        && let Err(p) = check_secret(s)
    {
        bad.push(Invalid::new(Field::Secret, p));
    }
    if let Some(r) = spec.rate_limit_per_minute
        && !RATE_LIMIT.contains(&r)
    {
        bad.push(Invalid::new(
            Field::RateLimitPerMinute,
            format!("must be between {} and {}", RATE_LIMIT.start(), RATE_LIMIT.end()),
        ));
    }
    if let Some(m) = spec.max_retries
        && m > MAX_RETRIES
    {
        bad.push(Invalid::new(
            Field::MaxRetries,
            format!("must be between 0 and {MAX_RETRIES}"),
        ));
    }
    if let Some(t) = spec.timeout_ms {
        let max = bounds.max_timeout.map_or(u64::MAX, |d| d.as_millis() as u64);
        if t == 0 {
            bad.push(Invalid::new(Field::Timeout, "must be greater than zero"));
        } else if t > max {
            bad.push(Invalid::new(
                Field::Timeout,
                format!("must be between 1 and {max} (the longest timeout in config.toml)"),
            ));
        }
    }
    for (k, v) in &spec.headers {
        if let Err(p) = check_header(k, v) {
            bad.push(Invalid::new(Field::Header(k.clone()), p));
        }
    }
    if let (Some(name), Some(known)) = (&spec.client_identity, bounds.identities)
        && !known.contains(name)
    {
        let problem = if known.is_empty() {
            "names no client identity: config.toml defines none ([[delivery.client_identities]])".to_owned()
        } else {
            format!(
                "must name one of the client identities in config.toml: {}",
                known.join(", ")
            )
        };
        bad.push(Invalid::new(Field::ClientIdentity, problem));
    }
    for (i, p) in spec.plugins.iter().enumerate() {
        if p.path.trim().is_empty() {
            bad.push(Invalid::new(Field::PluginPath(i), "must name a .wasm component"));
        }
        if let Some(h) = &p.sha256
            && !is_sha256_hex(h)
        {
            bad.push(Invalid::new(Field::PluginSha256(i), "must be 64 hex digits"));
        }
    }
    match url {
        Some(url) if bad.is_empty() => Ok(Checked { url, events }),
        _ => Err(bad),
    }
}

/// A signing secret's rule (shared by create, update and rotation).
pub fn check_secret(s: &str) -> Result<(), String> {
    if SECRET_LEN.contains(&s.len()) {
        Ok(())
    } else {
        Err(format!(
            "must be {} to {} bytes long",
            SECRET_LEN.start(),
            SECRET_LEN.end()
        ))
    }
}

/// A webhook URL: absolute http(s) with a host, no credentials.
pub fn parse_url(v: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(v).map_err(|e| format!("is not a valid URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("must be http or https, got {:?}", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must have a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials; use headers instead".into());
    }
    Ok(url)
}

/// One extra static header: a legal name that hookgate does not own, and a
/// legal value (never echoed: it may be a credential).
pub fn check_header(name: &str, value: &str) -> Result<(), String> {
    if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("invalid header name {name:?}"));
    }
    if is_reserved_header(name) {
        return Err(format!("header {name:?} is set by hookgate and cannot be overridden"));
    }
    if reqwest::header::HeaderValue::from_str(value).is_err() {
        return Err(format!("invalid value for header {name:?}"));
    }
    Ok(())
}

/// Whether `s` is a SHA-256 in hex.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `id` is a valid webhook id: `[a-zA-Z0-9_-]{1,64}`.
pub fn is_valid_webhook_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// What the API shows instead of a sensitive header's value.
pub const MASKED: &str = "********";

/// Whether a header's value is a credential the API must not show after
/// the webhook was created: `Authorization`, `Proxy-Authorization`,
/// `Cookie`, and any name with "key", "token", "secret", "auth", "session"
/// or "password" in it.
pub fn is_sensitive_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "cookie"
        || ["auth", "key", "token", "secret", "session", "password", "signature"]
            .iter()
            .any(|w| n.contains(w))
}

/// A header value as the API shows it.
pub fn shown_header_value<'a>(name: &str, value: &'a str) -> &'a str {
    if is_sensitive_header(name) { MASKED } else { value }
}

/// Headers a webhook's static `headers` may not set: hookgate owns them.
pub fn is_reserved_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "content-length"
            | "host"
            | "transfer-encoding"
            | "connection"
            | "x-webhook-id"
            | "x-delivery-id"
            | "x-delivery-attempt"
            | "x-event-type"
            | "x-hub-signature"
            | "x-webhook-timestamp"
            | "x-webhook-test"
            | "webhook-id"
            | "webhook-timestamp"
            | "webhook-signature"
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::webhooks::PluginRef;

    fn spec() -> WebhookSpec {
        WebhookSpec {
            name: "Orders".into(),
            url: "https://example.com/hook".into(),
            events: vec!["order.*".into()],
            test_mode: false,
            enabled: true,
            rate_limit_per_minute: None,
            max_retries: None,
            timeout_ms: None,
            headers: BTreeMap::new(),
            client_identity: None,
            plugins: vec![],
        }
    }

    fn fields(r: Result<Checked, Vec<Invalid>>) -> Vec<String> {
        r.err().unwrap_or_default().iter().map(|i| i.field.api_name()).collect()
    }

    #[test]
    fn a_valid_spec_compiles() {
        let c = check(&spec(), Some("whsec_0123456789"), Bounds::default()).unwrap();
        assert_eq!(c.url.as_str(), "https://example.com/hook");
        assert_eq!(c.events, vec![EventPattern::Prefix("order.".into())]);
    }

    #[test]
    fn every_broken_rule_is_reported_with_its_field() {
        let mut s = spec();
        s.name = "  ".into();
        s.url = "ftp://x".into();
        s.events = vec!["Bad Type".into()];
        s.rate_limit_per_minute = Some(0);
        s.max_retries = Some(11);
        s.timeout_ms = Some(20_000);
        s.headers.insert("X-Hub-Signature".into(), "forged".into());
        s.plugins.push(PluginRef {
            path: " ".into(),
            config: BTreeMap::new(),
            on_error: None,
            sha256: Some("zz".into()),
            timeout: None,
            max_memory: None,
        });
        s.client_identity = Some("partner-b".into());
        let known = ["partner-a".to_owned()];
        let bounds = Bounds {
            max_timeout: Some(Duration::from_secs(10)),
            identities: Some(&known),
        };
        let errs = check(&s, Some("short"), bounds).unwrap_err();
        let names: Vec<String> = errs.iter().map(|i| i.field.api_name()).collect();
        assert_eq!(
            names,
            [
                "name",
                "url",
                "events[0]",
                "secret",
                "rateLimitPerMinute",
                "maxRetries",
                "timeoutMs",
                "headers.X-Hub-Signature",
                "clientIdentity",
                "plugins[0].path",
                "plugins[0].sha256"
            ]
        );
        let text: String = errs.iter().map(|i| format!("{i}\n{}\n", i.config_message())).collect();
        assert!(!text.contains("forged") && !text.contains("short"), "{text}");
        assert!(text.contains("secret must be 8 to 256 bytes long"), "{text}");
    }

    #[test]
    fn limits_are_inclusive() {
        let mut s = spec();
        s.rate_limit_per_minute = Some(60_000_000);
        s.max_retries = Some(10);
        s.timeout_ms = Some(10_000);
        let bounds = Bounds {
            max_timeout: Some(Duration::from_secs(10)),
            identities: None,
        };
        assert!(check(&s, Some(&"s".repeat(256)), bounds).is_ok());
        assert_eq!(fields(check(&s, Some(&"s".repeat(257)), bounds)), ["secret"]);
        s.events.clear();
        assert_eq!(fields(check(&s, None, bounds)), ["events"]);
    }

    #[test]
    fn urls_need_http_a_host_and_no_credentials() {
        assert!(parse_url("http://h:1/p").is_ok());
        assert!(parse_url("https://u:p@h/").unwrap_err().contains("credentials"));
        assert!(parse_url("mailto:x@y").is_err());
        assert!(parse_url("not a url").unwrap_err().starts_with("is not a valid URL"));
    }

    #[test]
    fn sensitive_header_values_are_masked() {
        for name in [
            "Authorization",
            "cookie",
            "X-Api-Key",
            "X-Auth-Token",
            "Client-Secret",
            "Proxy-Authorization",
        ] {
            assert_eq!(shown_header_value(name, "s3cr3t"), MASKED, "{name}");
        }
        for name in ["X-Team", "Accept", "X-Request-Source"] {
            assert_eq!(shown_header_value(name, "billing"), "billing", "{name}");
        }
    }

    #[test]
    fn webhook_ids() {
        assert!(is_valid_webhook_id("orders_v2-A"));
        assert!(is_valid_webhook_id(&"a".repeat(64)));
        assert!(!is_valid_webhook_id(&"a".repeat(65)));
        assert!(!is_valid_webhook_id(""));
        assert!(!is_valid_webhook_id("a b"));
        assert!(!is_valid_webhook_id("a/b"));
    }
}
