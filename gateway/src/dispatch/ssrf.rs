//! The SSRF guard: hookgate never connects to loopback, private,
//! link-local, multicast or unspecified addresses unless
//! `allow_private_destinations` is set.
//!
//! Without a proxy the guard lives in the DNS resolver, so it checks exactly
//! the addresses the connection will use (no gap for DNS rebinding between
//! a check and the connect), and URLs with an IP literal are checked before
//! sending. Through an egress proxy the proxy resolves the name: the
//! destination is resolved and checked here first ([`check_destination`]),
//! so a proxy never becomes a way into loopback or private networks (a name
//! whose DNS answer changes between our check and the proxy's lookup is the
//! one gap left, and the proxy's own policy should close it).

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;
use url::Url;

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

pub(super) fn refusal(ip: IpAddr) -> Refused {
    Refused(format!(
        "destination refused: {ip} is {} (set [delivery] allow_private_destinations = true to allow it)",
        describe(ip)
    ))
}

/// DNS resolution through the system resolver, minus refused addresses.
/// The egress proxy's own host is exempt (a proxy usually is internal);
/// destinations reached through it are checked by [`check_destination`].
#[derive(Clone)]
pub(super) struct GuardedResolver {
    pub(super) allow_private: bool,
    pub(super) proxy_host: Option<Arc<str>>,
}

type Resolving = Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, BoxError>> + Send>>;
type BoxError = Box<dyn StdError + Send + Sync>;

impl tower::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Resolving;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Resolving {
        let allow_private = self.allow_private
            || self
                .proxy_host
                .as_deref()
                .is_some_and(|p| p.eq_ignore_ascii_case(name.as_str()));
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
                let err: BoxError = match refused {
                    Some(ip) => Box::new(refusal(ip)),
                    None => format!("{host} did not resolve to any address").into(),
                };
                return Err(err);
            }
            Ok(allowed.into_iter())
        })
    }
}

/// Checks a destination before it is sent: an IP literal always, and a
/// name too when `resolve` (the request goes through a proxy that will
/// resolve it).
pub async fn check_destination(url: &Url, allow_private: bool, resolve: bool) -> Result<(), Refused> {
    if allow_private {
        return Ok(());
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(url::Host::Domain(name)) if resolve => {
            let port = url.port_or_known_default().unwrap_or(443);
            let addrs = tokio::net::lookup_host((name, port))
                .await
                .map_err(|e| Refused(format!("destination refused: {name} does not resolve ({e})")))?;
            for a in addrs {
                if !is_public(a.ip()) {
                    return Err(refusal(a.ip()));
                }
            }
            return Ok(());
        }
        _ => return Ok(()),
    };
    if is_public(ip) { Ok(()) } else { Err(refusal(ip)) }
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

    #[tokio::test]
    async fn destinations_are_checked_before_sending() {
        let url = |s: &str| Url::parse(s).unwrap();
        let err = check_destination(&url("http://127.0.0.1:9/x"), false, false)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
        assert!(check_destination(&url("http://[::1]/"), false, false).await.is_err());
        assert!(check_destination(&url("http://8.8.8.8/"), false, false).await.is_ok());
        assert!(check_destination(&url("http://127.0.0.1/"), true, false).await.is_ok());
        // Names: only when a proxy will resolve them (else the resolver does).
        assert!(
            check_destination(&url("http://localhost:9/"), false, false)
                .await
                .is_ok()
        );
        let err = check_destination(&url("http://localhost:9/"), false, true)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
    }
}
