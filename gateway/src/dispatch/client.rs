//! The one pooled outbound HTTP client: rustls, per-attempt timeouts, no
//! redirects, and the SSRF guard.
//!
//! The guard lives in the DNS resolver, so it checks exactly the addresses
//! the connection will use (there is no gap for DNS rebinding between a
//! check and the connect): names that resolve only to loopback, private,
//! link-local, multicast or unspecified addresses fail to connect, and the
//! refused ones are never offered to the connector. URLs with an IP literal
//! skip DNS, so they are checked before the request is sent.

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::dns::{Name, Resolve, Resolving};
use reqwest::header::HeaderMap;
use reqwest::{StatusCode, Url};

/// The most of a response body kept for the attempt record.
pub const RESPONSE_BODY_LIMIT: usize = 1024;
/// Response bytes read at most (beyond the kept ones, to reuse the connection).
const RESPONSE_DRAIN_LIMIT: usize = 64 * 1024;

/// Whether hookgate may connect to `ip` when private destinations are not
/// allowed.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let seg0 = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg0 & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg0 & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (seg0 & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || v6.segments()[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible ::a.b.c.d
        }
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    !(v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_multicast()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || o[0] == 0 // "this network"
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || o[0] >= 240) // reserved
}

fn describe(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() => "a loopback address",
        IpAddr::V6(v6) if v6.is_loopback() => "a loopback address",
        IpAddr::V4(v4) if v4.is_private() => "a private address",
        IpAddr::V4(v4) if v4.is_link_local() => "a link-local address",
        _ if ip.is_multicast() => "a multicast address",
        _ if ip.is_unspecified() => "an unspecified address",
        _ => "a non-public address",
    }
}

/// A destination the SSRF guard refused.
#[derive(Debug, Clone)]
pub struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Refused {}

fn refusal(ip: IpAddr) -> Refused {
    Refused(format!(
        "destination refused: {ip} is {} (set [delivery] allow_private_destinations = true to allow it)",
        describe(ip)
    ))
}

/// DNS resolution through the system resolver, minus refused addresses.
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| {
                    let ok = allow_private || is_public(a.ip());
                    if !ok {
                        refused.get_or_insert(a.ip());
                    }
                    ok
                })
                .collect();
            if allowed.is_empty() {
                let err: Box<dyn StdError + Send + Sync> = match refused {
                    Some(ip) => Box::new(refusal(ip)),
                    None => format!("{host} did not resolve to any address").into(),
                };
                return Err(err);
            }
            Ok(Box::new(allowed.into_iter()) as Box<dyn Iterator<Item = SocketAddr> + Send>)
        })
    }
}

/// Why sending failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The SSRF guard refused the destination.
    #[error(transparent)]
    Refused(Refused),
    #[error("timeout after {0:?}")]
    Timeout(Duration),
    /// The connection could not be made (the error has no URL in it).
    #[error("connect error")]
    Connect(#[source] reqwest::Error),
    /// The request failed after connecting (no URL in it either).
    #[error("request error")]
    Other(#[source] reqwest::Error),
}

impl SendError {
    /// The error with its causes, as recorded in an attempt.
    pub fn describe(&self) -> String {
        crate::report::error_chain(self)
    }
}

/// What came back.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// Up to [`RESPONSE_BODY_LIMIT`] bytes of the body.
    pub body: Bytes,
}

/// The pooled outbound client.
#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    allow_private: bool,
}

impl fmt::Debug for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbound")
            .field("allow_private", &self.allow_private)
            .finish()
    }
}

impl Outbound {
    /// A client keeping up to `pool_per_host` idle connections per host.
    pub fn new(allow_private: bool, pool_per_host: usize) -> Result<Self, reqwest::Error> {
        // reqwest is built without a default crypto provider: install ring's
        // (a no-op when one is installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .pool_max_idle_per_host(pool_per_host)
            .pool_idle_timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .no_proxy()
            .build()?;
        Ok(Outbound { client, allow_private })
    }

    /// Checks a URL's IP literal host (names are checked at resolution).
    pub fn check_literal(&self, url: &Url) -> Result<(), SendError> {
        if self.allow_private {
            return Ok(());
        }
        let ip = match url.host() {
            Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
            _ => return Ok(()),
        };
        if is_public(ip) {
            Ok(())
        } else {
            Err(SendError::Refused(refusal(ip)))
        }
    }

    /// POSTs `body` to `url`, all within `timeout` (connect, send, and
    /// reading the kept part of the answer).
    pub async fn post(
        &self,
        url: &Url,
        headers: HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Answer, SendError> {
        self.check_literal(url)?;
        let fut = async {
            let resp = self
                .client
                .post(url.clone())
                .headers(headers)
                .body(body)
                .send()
                .await
                .map_err(|e| classify(e, timeout))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = read_limited(resp).await;
            Ok(Answer { status, headers, body })
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(SendError::Timeout(timeout)),
        }
    }
}

/// Reads the first [`RESPONSE_BODY_LIMIT`] bytes of a body, draining a bit
/// more so the connection can be reused; errors just end the read.
async fn read_limited(mut resp: reqwest::Response) -> Bytes {
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while seen < RESPONSE_DRAIN_LIMIT {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = RESPONSE_BODY_LIMIT.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                seen += chunk.len();
            }
            _ => break,
        }
    }
    Bytes::from(kept)
}

fn classify(e: reqwest::Error, timeout: Duration) -> SendError {
    let mut source: Option<&(dyn StdError + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refused>() {
            return SendError::Refused(r.clone());
        }
        source = s.source();
    }
    if e.is_timeout() {
        return SendError::Timeout(timeout);
    }
    if e.is_connect() {
        SendError::Connect(e.without_url())
    } else {
        SendError::Other(e.without_url())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_and_private_addresses() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "224.0.0.1",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn ip_literals_are_checked_before_sending() {
        let guarded = Outbound::new(false, 1).unwrap();
        let err = guarded
            .check_literal(&Url::parse("http://127.0.0.1:9/x").unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
        assert!(guarded.check_literal(&Url::parse("http://[::1]/").unwrap()).is_err());
        assert!(guarded.check_literal(&Url::parse("http://8.8.8.8/").unwrap()).is_ok());
        let open = Outbound::new(true, 1).unwrap();
        assert!(open.check_literal(&Url::parse("http://127.0.0.1/").unwrap()).is_ok());
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused_at_resolution() {
        let guarded = Outbound::new(false, 1).unwrap();
        let err = guarded
            .post(
                &Url::parse("http://localhost:9/hook").unwrap(),
                HeaderMap::new(),
                Bytes::new(),
                Duration::from_secs(5),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Refused(_)), "{err:?}");
        assert!(err.to_string().contains("loopback"), "{err}");
    }
}
