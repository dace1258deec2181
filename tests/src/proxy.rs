//! A small HTTP proxy on 127.0.0.1 for tests: `CONNECT host:port` tunnels
//! (https destinations) and absolute-form requests (`POST http://host/...`,
//! http destinations) are passed to the destination byte for byte. It
//! records each target it was asked for. With [`Proxy::start_tls`] clients
//! reach the proxy itself over TLS (an `https://` proxy).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The proxy; stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    tls: bool,
    targets: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start() -> Self {
        Self::serve(None).await
    }

    /// A proxy reached over TLS with `server`'s certificate. It offers
    /// HTTP/2 as well as HTTP/1.1 by ALPN, so a client that offered HTTP/2
    /// to it would get it, and fail: a proxy is spoken to in HTTP/1.1.
    pub async fn start_tls(server: &crate::certs::Issued) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (chain, key) = server.chain_and_key();
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("proxy TLS config");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Self::serve(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let targets = Arc::new(Mutex::new(Vec::new()));
        let seen = targets.clone();
        let secure = tls.is_some();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let seen = seen.clone();
                match &tls {
                    None => {
                        tokio::spawn(tunnel(client, seen));
                    }
                    Some(acceptor) => {
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            if let Ok(client) = acceptor.accept(client).await {
                                tunnel(client, seen).await;
                            }
                        });
                    }
                }
            }
        });
        Proxy {
            addr,
            tls: secure,
            targets,
            task,
        }
    }

    /// `http://127.0.0.1:<port>`, or `https://` for [`Self::start_tls`].
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Every target asked for so far: `host:port` for CONNECT, the URL for
    /// absolute-form requests.
    pub fn targets(&self) -> Vec<String> {
        self.targets.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn tunnel<S: AsyncRead + AsyncWrite + Unpin>(mut client: S, seen: Arc<Mutex<Vec<String>>>) {
    // Read the request head.
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 * 1024 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut first = text.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or("").to_owned());
    seen.lock().unwrap().push(target.clone());
    if method == "CONNECT" {
        let Ok(mut upstream) = TcpStream::connect(&target).await else {
            let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
            return;
        };
        if client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .is_ok()
        {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
        return;
    }
    // Absolute form: http://host:port/path. The destination server accepts
    // absolute-form request lines, so the bytes go through unchanged.
    let authority = target
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("")
        .to_owned();
    let Ok(mut upstream) = TcpStream::connect(&authority).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
        return;
    };
    if upstream.write_all(&head).await.is_ok() {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    }
}
