//! A webhook receiver on 127.0.0.1: records every request (time, headers,
//! body) and answers from a plan the test controls.

use rustls::pki_types::pem::PemObject;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub path: String,
    /// Header names lowercased; repeated headers joined with ", ".
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Received {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }
}

/// How to answer a request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    pub fn body(mut self, body: &str) -> Self {
        self.body = body.into();
        self
    }
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Debug)]
struct Inner {
    received: Mutex<Vec<Received>>,
    plan: Mutex<VecDeque<Reply>>,
    default: Mutex<Reply>,
}

/// The receiver; stops when dropped.
#[derive(Debug)]
pub struct Receiver {
    addr: SocketAddr,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
    scheme: &'static str,
}

async fn handle(State(inner): State<Arc<Inner>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut hs: Vec<(String, String)> = Vec::new();
    for (k, v) in &headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        match hs.iter_mut().find(|(n, _)| n == k.as_str()) {
            Some((_, existing)) => {
                existing.push_str(", ");
                existing.push_str(&v);
            }
            None => hs.push((k.as_str().to_owned(), v)),
        }
    }
    let reply = {
        let next = inner.plan.lock().unwrap().pop_front();
        next.unwrap_or_else(|| inner.default.lock().unwrap().clone())
    };
    inner.received.lock().unwrap().push(Received {
        at: Instant::now(),
        path: uri.path().to_owned(),
        headers: hs,
        body,
    });
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut resp = (StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK), reply.body).into_response();
    for (k, v) in reply.headers {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            axum::http::HeaderValue::from_str(&v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

impl Receiver {
    /// Starts a receiver answering 200 to everything.
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    /// Starts an HTTPS receiver with this server certificate; with
    /// `client_ca`, callers must present a certificate that CA signed.
    pub async fn start_tls(server: &crate::certs::Issued, client_ca: Option<&str>) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (chain, key) = server.chain_and_key();
        let builder = rustls::ServerConfig::builder();
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(pem) => {
                let mut roots = rustls::RootCertStore::empty();
                roots
                    .add(rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).expect("CA"))
                    .expect("CA root");
                let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                    .build()
                    .expect("verifier");
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(chain, key).expect("server config");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Self::serve(0, Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await
    }

    /// Starts a receiver on a given port (0 = any).
    pub async fn start_on(port: u16) -> Self {
        Self::serve(port, None).await
    }

    async fn serve(port: u16, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let inner = Arc::new(Inner {
            received: Mutex::new(Vec::new()),
            plan: Mutex::new(VecDeque::new()),
            default: Mutex::new(Reply::status(200)),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("receiver addr");
        let app = axum::Router::new().fallback(handle).with_state(inner.clone());
        let scheme = if tls.is_some() { "https" } else { "http" };
        let task = match tls {
            None => tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }),
            Some(acceptor) => tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (acceptor, app) = (acceptor.clone(), app.clone());
                    tokio::spawn(async move {
                        // A refused handshake (no or wrong client
                        // certificate) just ends the connection.
                        let Ok(tls) = acceptor.accept(stream).await else { return };
                        let service = hyper_util::service::TowerToHyperService::new(app);
                        let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                            .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                            .await;
                    });
                }
            }),
        };
        Receiver {
            addr,
            inner,
            task,
            scheme,
        }
    }

    /// `http(s)://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers every request not covered by the plan like this.
    pub fn set_default(&self, reply: Reply) {
        *self.inner.default.lock().unwrap() = reply;
    }

    /// Answers the next requests with these replies, in order.
    pub fn plan(&self, replies: impl IntoIterator<Item = Reply>) {
        self.inner.plan.lock().unwrap().extend(replies);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap().clone()
    }

    /// Requests received so far on `path`.
    pub fn received_on(&self, path: &str) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.path == path).collect()
    }

    /// Waits until at least `n` requests arrived on `path` (panics after `timeout`).
    pub async fn wait_for(&self, path: &str, n: usize, timeout: Duration) -> Vec<Received> {
        crate::wait_until(timeout, &format!("{n} requests on {path}"), || async {
            let got = self.received_on(path);
            (got.len() >= n).then_some(got)
        })
        .await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
