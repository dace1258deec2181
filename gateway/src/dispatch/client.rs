//! The pooled outbound HTTP client: [`super::pool`]'s keep-alive
//! connections made by [`super::connector`], rustls with the system's roots plus `[delivery]
//! ca_file`, one pool per client identity (mutual TLS with receivers), an
//! optional egress proxy, per-attempt timeouts, no redirects (hyper follows
//! none), and the SSRF guard ([`super::ssrf`]).

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::http::header::{HeaderMap, HeaderValue, PROXY_AUTHORIZATION};
use hyper::http::{Method, Request, StatusCode, Uri};
use hyper_util::client::proxy::matcher::Matcher;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use url::{Position, Url};

use super::connector::Connector;
use super::pool::{Pool, PoolError};
use super::ssrf::{GuardedResolver, Refused, check_destination};
use crate::config::DeliveryConfig;

type BoxError = Box<dyn StdError + Send + Sync>;

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
    Connect(#[source] BoxError),
    /// The request failed after connecting (no URL in it either).
    #[error("request error")]
    Other(#[source] BoxError),
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
        source: rustls::Error,
    },
    #[error("cannot set up TLS for deliveries")]
    Client(#[source] rustls::Error),
}

/// The pooled outbound clients: one without a client certificate, one per
/// client identity.
#[derive(Clone)]
pub struct Outbound {
    plain: Pool,
    identities: Arc<HashMap<String, Pool>>,
    allow_private: bool,
    proxy: Option<Arc<Matcher>>,
}

impl fmt::Debug for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbound")
            .field("allow_private", &self.allow_private)
            .field("proxied", &self.proxy.is_some())
            .field("identities", &self.identities.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Outbound {
    /// Clients for `[delivery]`, keeping up to `pool_per_host` idle
    /// connections per host each.
    pub fn new(d: &DeliveryConfig, pool_per_host: usize) -> Result<Self, OutboundError> {
        // The process's other clients (traces) are built without a default
        // crypto provider: install ring's (a no-op when one is installed).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let roots: Vec<CertificateDer<'static>> = match &d.egress.ca_file {
            None => Vec::new(),
            Some(path) => crate::tls::read_certs(path)?,
        };
        let proxy = d.egress.proxy.as_ref().map(|url| {
            Arc::new(
                Matcher::builder()
                    .all(url.to_string())
                    .no(d.egress.no_proxy.join(","))
                    .build(),
            )
        });
        let resolver = GuardedResolver {
            allow_private: d.allow_private_destinations,
            proxy_host: d.egress.proxy.as_ref().and_then(|u| u.host_str()).map(Arc::from),
        };
        let build = |identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>| {
            let tls = tls_config(&roots, identity)?;
            let connector = Connector::new(resolver.clone(), Arc::new(tls), proxy.clone());
            Ok::<_, rustls::Error>(Pool::new(connector, pool_per_host))
        };
        let plain = build(None).map_err(OutboundError::Client)?;
        let mut identities = HashMap::new();
        for id in &d.egress.client_identities {
            let chain = crate::tls::read_certs(&id.cert)?;
            let key = crate::tls::read_key(&id.key)?;
            let client = build(Some((chain, key))).map_err(|source| OutboundError::Identity {
                name: id.name.clone(),
                source,
            })?;
            identities.insert(id.name.clone(), client);
        }
        Ok(Outbound {
            plain,
            identities: Arc::new(identities),
            allow_private: d.allow_private_destinations,
            proxy,
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
        let pool = match identity {
            None => &self.plain,
            Some(name) => self
                .identities
                .get(name)
                .ok_or_else(|| SendError::UnknownIdentity(name.to_owned()))?,
        };
        let fut = async {
            check_destination(url, self.allow_private, self.proxy.is_some())
                .await
                .map_err(SendError::Refused)?;
            let uri: Uri = url.as_str().parse().map_err(|e| SendError::Other(Box::new(e)))?;
            let proxy_auth = self.proxy_auth(&uri);
            let mut req = Request::new(Full::new(body));
            *req.method_mut() = Method::POST;
            *req.uri_mut() = uri;
            *req.headers_mut() = headers;
            if let Some(auth) = proxy_auth {
                req.headers_mut().insert(PROXY_AUTHORIZATION, auth);
            }
            let origin = &url[..Position::BeforePath];
            let (resp, lease) = pool.send(origin, req).await.map_err(|e| classify(e, timeout))?;
            let (parts, body) = resp.into_parts();
            let (body, whole) = read_limited(body).await;
            if whole {
                lease.release();
            }
            Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(SendError::Timeout(timeout)),
        }
    }

    /// Closes the connections idle for the idle timeout at `now` (the pools
    /// do this themselves every few seconds).
    #[cfg(test)]
    pub(super) fn sweep_idle(&self, now: std::time::Instant) {
        self.plain.sweep(now);
        for pool in self.identities.values() {
            pool.sweep(now);
        }
    }

    /// Connections kept idle in the pool without a client identity.
    #[cfg(test)]
    pub(super) fn idle_connections(&self) -> usize {
        self.plain.idle()
    }

    /// The proxy's credentials, for an `http` destination sent through it
    /// (an `https` one carries them in its `CONNECT`).
    fn proxy_auth(&self, uri: &Uri) -> Option<HeaderValue> {
        if uri.scheme_str() != Some("http") {
            return None;
        }
        self.proxy.as_ref()?.intercept(uri)?.basic_auth().cloned()
    }
}

/// rustls for deliveries: the system's roots plus `roots`, HTTP/2 or 1.1 by
/// ALPN, and a client certificate with `identity`.
fn tls_config(
    roots: &[CertificateDer<'static>],
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = crate::tls::provider();
    let verifier = if roots.is_empty() {
        rustls_platform_verifier::Verifier::new(provider.clone())?
    } else {
        rustls_platform_verifier::Verifier::new_with_extra_roots(roots.iter().cloned(), provider.clone())?
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Reads the first [`RESPONSE_BODY_LIMIT`] bytes of a body, draining up to
/// [`RESPONSE_DRAIN_LIMIT`] so the connection can be reused; errors just end
/// the read. Also says whether the body was read to its end (only then is the
/// connection reused).
async fn read_limited(mut body: hyper::body::Incoming) -> (Bytes, bool) {
    let mut kept = Vec::new();
    let mut seen = 0usize;
    let whole = loop {
        match body.frame().await {
            None => break true,
            Some(Err(_)) => break false,
            Some(Ok(frame)) => {
                let Ok(chunk) = frame.into_data() else { continue };
                let room = RESPONSE_BODY_LIMIT.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                seen += chunk.len();
                if seen > RESPONSE_DRAIN_LIMIT {
                    break false;
                }
            }
        }
    };
    (Bytes::from(kept), whole)
}

fn classify(e: PoolError, timeout: Duration) -> SendError {
    let cause: &(dyn StdError + 'static) = match &e {
        PoolError::Connect(e) => &**e,
        PoolError::Send(e) => e,
    };
    let mut source = Some(cause);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refused>() {
            return SendError::Refused(r.clone());
        }
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return SendError::Timeout(timeout);
        }
        source = s.source();
    }
    match e {
        PoolError::Connect(e) => SendError::Connect(e),
        PoolError::Send(e) => SendError::Other(Box::new(e)),
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
