//! TLS for `--tls`: a private CA made for the run, one server certificate
//! for 127.0.0.1 for the gateway and one for the receiver, the gateway's
//! PEM files in the run's folder, the receiver's rustls acceptor and the
//! driver's connector (trusting only the run's CA).
//!
//! Both sides offer HTTP/1.1 only by ALPN, so a TLS run differs from a plain
//! one by TLS alone (the gateway would otherwise pick HTTP/2 for
//! deliveries). Connections are counted where they are accepted or opened
//! ([`ConnCounters`]), with full and resumed handshakes apart: that is the
//! check that the handshake is not paid per request.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::HandshakeKind;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::Serialize;

/// The ALPN protocol both sides offer.
const HTTP1: &[u8] = b"http/1.1";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate and its key.
struct Leaf {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key_pem: String,
    key_der: Vec<u8>,
}

/// The run's CA and the two server certificates it signed.
pub struct Material {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    gateway: Leaf,
    receiver: Leaf,
}

/// Where [`Material::write`] put the gateway's files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA certificate (the gateway's `[delivery] ca_file`).
    pub ca: PathBuf,
    /// The gateway's `[server] tls_cert` and `tls_key`.
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Material {
    /// A fresh CA (ECDSA P-256, like both leaves) and two leaves for
    /// 127.0.0.1 and localhost.
    pub fn generate() -> anyhow::Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "hookgate-bench run CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?).context("make the run's CA")?;
        let leaf = |name: &str| -> anyhow::Result<Leaf> {
            let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            let key = KeyPair::generate()?;
            let cert = params
                .signed_by(&key, &issuer)
                .with_context(|| format!("sign the {name} certificate"))?;
            Ok(Leaf {
                cert_pem: cert.pem(),
                cert_der: cert.der().clone(),
                key_pem: key.serialize_pem(),
                key_der: key.serialize_der(),
            })
        };
        Ok(Material {
            gateway: leaf("hookgate-bench gateway")?,
            receiver: leaf("hookgate-bench receiver")?,
            ca_pem: issuer.pem(),
            ca_der: issuer.der().clone(),
        })
    }

    /// Writes the CA certificate and the gateway's pair into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<TlsFiles> {
        let files = TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("gateway.pem"),
            key: dir.join("gateway.key"),
        };
        for (path, text) in [
            (&files.ca, &self.ca_pem),
            (&files.cert, &self.gateway.cert_pem),
            (&files.key, &self.gateway.key_pem),
        ] {
            std::fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
        }
        Ok(files)
    }

    /// The receiver's server side (its own certificate, HTTP/1.1 only).
    pub fn acceptor(&self) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.receiver.key_der.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![self.receiver.cert_der.clone()], key)
            .context("the receiver's certificate")?;
        config.alpn_protocols = vec![HTTP1.to_vec()];
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }

    /// The driver's client side: trusts only the run's CA, offers HTTP/1.1,
    /// and resumes sessions (rustls' default in-memory cache).
    pub fn connector(&self) -> anyhow::Result<Connector> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).context("the run's CA certificate")?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![HTTP1.to_vec()];
        Ok(Connector(tokio_rustls::TlsConnector::from(Arc::new(config))))
    }
}

/// The driver's TLS connector.
#[derive(Clone)]
pub struct Connector(pub tokio_rustls::TlsConnector);

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connector")
    }
}

/// Connections seen by one end, and how their TLS handshakes went.
#[derive(Debug, Default)]
pub struct ConnCounters {
    connections: AtomicU64,
    tls_full: AtomicU64,
    tls_resumed: AtomicU64,
    tls_failed: AtomicU64,
}

/// A reading of [`ConnCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ConnStats {
    /// TCP connections accepted (server) or opened (client).
    pub connections: u64,
    /// TLS handshakes completed in full.
    pub tls_full: u64,
    /// TLS handshakes that resumed an earlier session.
    pub tls_resumed: u64,
    /// TLS handshakes that failed.
    pub tls_failed: u64,
}

impl ConnStats {
    /// `self - earlier`, field by field.
    pub fn since(&self, earlier: &ConnStats) -> ConnStats {
        ConnStats {
            connections: self.connections.saturating_sub(earlier.connections),
            tls_full: self.tls_full.saturating_sub(earlier.tls_full),
            tls_resumed: self.tls_resumed.saturating_sub(earlier.tls_resumed),
            tls_failed: self.tls_failed.saturating_sub(earlier.tls_failed),
        }
    }

    /// Adds another reading (the driver's workers count apart).
    pub fn add(&mut self, other: &ConnStats) {
        self.connections += other.connections;
        self.tls_full += other.tls_full;
        self.tls_resumed += other.tls_resumed;
        self.tls_failed += other.tls_failed;
    }
}

impl ConnCounters {
    pub fn connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a handshake's outcome: `Some(kind)` when it completed.
    pub fn handshake(&self, kind: Option<HandshakeKind>) {
        let counter = match kind {
            Some(HandshakeKind::Resumed) => &self.tls_resumed,
            Some(_) => &self.tls_full,
            None => &self.tls_failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn read(&self) -> ConnStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ConnStats {
            connections: get(&self.connections),
            tls_full: get(&self.tls_full),
            tls_resumed: get(&self.tls_resumed),
            tls_failed: get(&self.tls_failed),
        }
    }
}
