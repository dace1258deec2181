//! HTTPS for the listener: the server certificate (re-read when its files
//! change, so a renewal needs no restart and drops no connection), ALPN for
//! HTTP/2 and HTTP/1.1, and optional client certificates verified against
//! `[api] client_ca`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

use crate::tls::{TlsError, certified_key, provider, read_certs};

/// How often the certificate files are looked at for changes.
const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// The current certificate, swapped when the files change.
#[derive(Debug)]
struct Reloading {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

fn modified(paths: [&Path; 2]) -> Option<[SystemTime; 2]> {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some([m(paths[0])?, m(paths[1])?])
}

impl Reloading {
    /// Re-reads the files whenever their modification times change; a bad
    /// new pair is logged and the old certificate kept.
    async fn watch(self: Arc<Self>, stop: CancellationToken) {
        let mut seen = modified([&self.cert_path, &self.key_path]);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(RELOAD_EVERY) => {}
            }
            let now = modified([&self.cert_path, &self.key_path]);
            if now.is_none() || now == seen {
                continue;
            }
            seen = now;
            let (cert, key) = (self.cert_path.clone(), self.key_path.clone());
            match tokio::task::spawn_blocking(move || certified_key(&cert, &key)).await {
                Ok(Ok(ck)) => {
                    *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ck);
                    tracing::info!(cert = %self.cert_path.display(), "TLS certificate reloaded");
                }
                Ok(Err(e)) => tracing::warn!(
                    error = %crate::report::error_chain(&e),
                    "the changed TLS certificate cannot be used; keeping the previous one"
                ),
                Err(e) => tracing::warn!(error = %e, "reloading the TLS certificate failed"),
            }
        }
    }
}

/// Accepts TLS connections with the current certificate.
#[derive(Clone)]
pub struct TlsAcceptor {
    inner: tokio_rustls::TlsAcceptor,
    client_ca: bool,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("client_ca", &self.client_ca)
            .finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// An acceptor for `cert`/`key`, verifying optional client certificates
    /// against `client_ca`; the files are watched until `stop`.
    pub fn new(cert: &Path, key: &Path, client_ca: Option<&Path>, stop: CancellationToken) -> Result<Self, TlsError> {
        let reloading = Arc::new(Reloading {
            cert_path: cert.to_owned(),
            key_path: key.to_owned(),
            current: RwLock::new(Arc::new(certified_key(cert, key)?)),
        });
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in read_certs(path)? {
                    roots.add(c).map_err(|e| TlsError::ClientCa {
                        path: path.to_owned(),
                        source: Box::new(e),
                    })?;
                }
                // Optional at the TLS level, so health checks and metrics
                // work without one; `/api` requires it (see the listener).
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| TlsError::ClientCa {
                        path: path.to_owned(),
                        source: Box::new(e),
                    })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(reloading.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        tokio::spawn(reloading.watch(stop));
        Ok(TlsAcceptor {
            inner: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            client_ca: client_ca.is_some(),
        })
    }

    pub fn client_ca_configured(&self) -> bool {
        self.client_ca
    }

    pub fn accept(&self, stream: tokio::net::TcpStream) -> tokio_rustls::Accept<tokio::net::TcpStream> {
        self.inner.accept(stream)
    }
}
