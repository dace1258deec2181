//! The pooled outbound HTTP client: rustls with the public roots plus
//! `[delivery] ca_file`, one client per client identity (mutual TLS with
//! receivers), an optional egress proxy, per-attempt timeouts, no
//! redirects, and the SSRF guard ([`super::ssrf`]).

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{StatusCode, Url};

use super::ssrf::{GuardedResolver, Refused, check_destination};
use crate::config::DeliveryConfig;

/// The most of a response body kept for the attempt record.
pub const RESPONSE_BODY_LIMIT: usize = 1024;
/// Response bytes read at most (beyond the kept ones, to reuse the connection).
const RESPONSE_DRAIN_LIMIT: usize = 64 * 1024;

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
    /// The webhook names a client identity that `[delivery]` does not define.
    #[error("client identity {0:?} is not defined in [[delivery.client_identities]]")]
    UnknownIdentity(String),
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

/// Why the outbound client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("cannot read TLS files")]
    Tls(#[from] crate::tls::TlsError),
    #[error("client identity {name:?} is not usable")]
    Identity {
        name: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("egress proxy {0:?} is not usable")]
    Proxy(String, #[source] reqwest::Error),
    #[error("cannot build the outbound HTTP client")]
    Client(#[source] reqwest::Error),
}

/// The pooled outbound clients: one without a client certificate, one per
/// client identity.
#[derive(Clone)]
pub struct Outbound {
    plain: reqwest::Client,
    identities: Arc<HashMap<String, reqwest::Client>>,
    allow_private: bool,
    proxied: bool,
}

impl fmt::Debug for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbound")
            .field("allow_private", &self.allow_private)
            .field("proxied", &self.proxied)
            .field("identities", &self.identities.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Outbound {
    /// Clients for `[delivery]`, keeping up to `pool_per_host` idle
    /// connections per host each.
    pub fn new(d: &DeliveryConfig, pool_per_host: usize) -> Result<Self, OutboundError> {
        // reqwest is built without a default crypto provider: install ring's
        // (a no-op when one is installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let roots: Vec<reqwest::Certificate> = match &d.egress.ca_file {
            None => Vec::new(),
            Some(path) => crate::tls::read_certs(path)?
                .iter()
                .filter_map(|c| reqwest::Certificate::from_der(c).ok())
                .collect(),
        };
        let proxy = match &d.egress.proxy {
            None => None,
            Some(url) => {
                let mut p = reqwest::Proxy::all(url.as_str()).map_err(|e| OutboundError::Proxy(url.to_string(), e))?;
                if !d.egress.no_proxy.is_empty() {
                    p = p.no_proxy(reqwest::NoProxy::from_string(&d.egress.no_proxy.join(",")));
                }
                Some((p, url.host_str().map(str::to_owned)))
            }
        };
        let build = |identity: Option<reqwest::Identity>| {
            let mut b = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .dns_resolver(Arc::new(GuardedResolver {
                    allow_private: d.allow_private_destinations,
                    proxy_host: proxy.as_ref().and_then(|(_, h)| h.clone()),
                }))
                .pool_max_idle_per_host(pool_per_host)
                .pool_idle_timeout(Duration::from_secs(60))
                .connect_timeout(Duration::from_secs(10))
                .tcp_nodelay(true);
            if !roots.is_empty() {
                b = b.tls_certs_merge(roots.iter().cloned());
            }
            b = match &proxy {
                Some((p, _)) => b.proxy(p.clone()),
                None => b.no_proxy(),
            };
            if let Some(id) = identity {
                b = b.identity(id);
            }
            b.build()
        };
        let plain = build(None).map_err(OutboundError::Client)?;
        let mut identities = HashMap::new();
        for id in &d.egress.client_identities {
            let mut pem =
                std::fs::read(&id.cert).map_err(|e| OutboundError::Tls(crate::tls::TlsError::io(&id.cert, e)))?;
            pem.push(b'\n');
            pem.extend(std::fs::read(&id.key).map_err(|e| OutboundError::Tls(crate::tls::TlsError::io(&id.key, e)))?);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|source| OutboundError::Identity {
                name: id.name.clone(),
                source,
            })?;
            let client = build(Some(identity)).map_err(|source| OutboundError::Identity {
                name: id.name.clone(),
                source,
            })?;
            identities.insert(id.name.clone(), client);
        }
        Ok(Outbound {
            plain,
            identities: Arc::new(identities),
            allow_private: d.allow_private_destinations,
            proxied: proxy.is_some(),
        })
    }

    /// POSTs `body` to `url`, all within `timeout` (connect, send, and
    /// reading the kept part of the answer).
    /// With `identity`, the client presents that client certificate.
    pub async fn post(
        &self,
        url: &Url,
        identity: Option<&str>,
        headers: HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Answer, SendError> {
        let client = match identity {
            None => &self.plain,
            Some(name) => self
                .identities
                .get(name)
                .ok_or_else(|| SendError::UnknownIdentity(name.to_owned()))?,
        };
        let fut = async {
            check_destination(url, self.allow_private, self.proxied)
                .await
                .map_err(SendError::Refused)?;
            let resp = client
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

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused_at_resolution() {
        let config = crate::config::Config::parse(
            "[api]\ntokens = [\"token-0123456789\"]\n[store]\nbackend = \"redis\"\n",
            std::path::Path::new("c.toml"),
            &|_| None,
        )
        .unwrap();
        let guarded = Outbound::new(&config.delivery, 1).unwrap();
        for url in ["http://localhost:9/hook", "http://127.0.0.1:9/hook"] {
            let url = Url::parse(url).unwrap();
            let err = guarded
                .post(&url, None, HeaderMap::new(), Bytes::new(), Duration::from_secs(5))
                .await
                .unwrap_err();
            assert!(matches!(err, SendError::Refused(_)), "{err:?}");
            assert!(err.to_string().contains("loopback"), "{err}");
        }
        let err = guarded
            .post(
                &Url::parse("http://8.8.8.8/").unwrap(),
                Some("nobody"),
                HeaderMap::new(),
                Bytes::new(),
                Duration::from_secs(5),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::UnknownIdentity(_)), "{err:?}");
    }
}
