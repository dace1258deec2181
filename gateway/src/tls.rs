//! TLS material from files: PEM certificate chains and private keys, read
//! and checked the same way for the listener, client CAs, extra trusted
//! roots and client identities.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{path} holds no {what}")]
    Empty { path: PathBuf, what: &'static str },
    #[error("the key in {path} does not fit its certificate, or is of an unsupported type")]
    Key {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("the client CA in {path} is not usable")]
    ClientCa {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("TLS settings")]
    Config(#[source] rustls::Error),
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl TlsError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        TlsError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Reads a PEM certificate chain.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            path: path.to_owned(),
            what: "PEM certificate",
        });
    }
    Ok(certs)
}

/// Reads a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| match source {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Empty {
            path: path.to_owned(),
            what: "PEM private key",
        },
        source => TlsError::Read {
            path: path.to_owned(),
            source,
        },
    })
}

/// The process's rustls crypto provider (ring unless one is installed).
pub fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// Loads and checks a certificate and its key.
pub fn certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = read_certs(cert)?;
    let der = read_key(key)?;
    let ck = CertifiedKey::from_der(chain, der, &provider()).map_err(|source| TlsError::Key {
        path: key.to_owned(),
        source,
    })?;
    Ok(ck)
}
