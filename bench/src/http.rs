//! Minimal HTTP/1 plumbing on hyper, shared by every part of the tool so
//! that the gateway, the receiver and the ceiling sink are all driven and
//! served by exactly the same code.
//!
//! * [`Target`]: a `http://host:port` base URL, checked to be loopback, and
//!   with `--tls` the connector that makes it `https://`.
//! * [`connect`]: one keep-alive client connection (TCP_NODELAY, TLS when
//!   the target has a connector), counted.
//! * [`spawn_server`]: an accept loop serving every connection with a
//!   handler; [`spawn_server_with`] also terminates TLS and counts
//!   connections and handshakes.
//! * [`request_once`]: a one-shot request, for setup calls.

use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::tls::{ConnCounters, Connector};

/// Request and response bodies: whole buffers.
pub type Body = Full<Bytes>;

/// How long a connect may take before it counts as an error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a server waits for a client's TLS handshake.
const TLS_ACCEPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a one-shot setup request may take.
const ONCE_TIMEOUT: Duration = Duration::from_secs(30);

/// A base URL on a loopback address.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// The `Host` header value.
    pub host: String,
    /// Speak TLS with this connector (an `https://` target).
    pub tls: Option<Connector>,
}

impl Target {
    /// Parses `http://host:port` (a trailing `/` allowed). Refuses anything
    /// that does not resolve to loopback addresses only: this tool never
    /// sends traffic elsewhere.
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("{url}: only http:// URLs are supported");
        };
        let host = rest.trim_end_matches('/');
        if host.is_empty() || host.contains('/') || host.contains('@') {
            bail!("{url}: expected http://host:port with no path");
        }
        let addrs: Vec<SocketAddr> = host
            .to_socket_addrs()
            .with_context(|| format!("{url}: cannot resolve {host} (is the port given?)"))?
            .collect();
        let Some(addr) = addrs.first().copied() else {
            bail!("{url}: {host} resolves to no address");
        };
        if addrs.iter().any(|a| !a.ip().is_loopback()) {
            bail!("{url}: refusing a non-loopback target; hookgate-bench only sends traffic to 127.0.0.0/8 or ::1");
        }
        Ok(Target {
            addr,
            host: host.to_owned(),
            tls: None,
        })
    }

    /// The target for a socket address this process bound.
    pub fn local(addr: SocketAddr) -> Self {
        Target {
            addr,
            host: addr.to_string(),
            tls: None,
        }
    }

    /// The same target over TLS.
    pub fn with_tls(self, connector: Connector) -> Self {
        Target {
            tls: Some(connector),
            ..self
        }
    }

    /// `http://host:port`, or `https://` with TLS.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.host)
    }
}

/// Opens one HTTP/1 keep-alive connection to `target` (over TLS when it
/// has a connector), counting it and its TLS handshake in `counters`.
pub async fn connect(target: &Target, counters: &ConnCounters) -> anyhow::Result<SendRequest<Body>> {
    let addr = target.addr;
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .with_context(|| format!("connect to {addr}: timed out"))?
        .with_context(|| format!("connect to {addr}"))?;
    stream.set_nodelay(true)?;
    counters.connection();
    let Some(tls) = &target.tls else {
        return handshake(stream, addr).await;
    };
    let name = ServerName::IpAddress(addr.ip().into());
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, tls.0.connect(name, stream)).await {
        Ok(Ok(s)) => s,
        failed => {
            counters.handshake(None);
            let reason = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".to_owned(),
            };
            bail!("TLS handshake with {addr}: {reason}");
        }
    };
    counters.handshake(stream.get_ref().1.handshake_kind());
    handshake(stream, addr).await
}

async fn handshake<IO>(io: IO, addr: SocketAddr) -> anyhow::Result<SendRequest<Body>>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .with_context(|| format!("HTTP handshake with {addr}"))?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the peer closes.
        let _ = conn.await;
    });
    Ok(sender)
}

/// A response with `status` and no body.
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Body::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// Listens on a free port of 127.0.0.1 with a deep accept queue (many
/// connections arrive at once when a run starts).
pub fn listen_loopback() -> anyhow::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    Ok(socket.listen(4096)?)
}

/// Serves every connection accepted on `listener` with `handler`, until the
/// returned task is aborted.
pub fn spawn_server<F, Fut>(listener: TcpListener, handler: F) -> JoinHandle<()>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    spawn_server_with(listener, None, Arc::default(), handler)
}

/// [`spawn_server`], over TLS when `tls` is given, counting connections and
/// TLS handshakes in `counters`.
pub fn spawn_server_with<F, Fut>(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    counters: Arc<ConnCounters>,
    handler: F,
) -> JoinHandle<()>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    spawn_server_abortable(listener, tls, counters, move |req| {
        let answer = handler(req);
        async move { Some(answer.await) }
    })
}

/// Like [`spawn_server_with`], but a handler answering `None` drops the
/// connection without a response (what a crashing receiver does to the
/// sender: the request fails with the connection closed).
pub fn spawn_server_abortable<F, Fut>(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    counters: Arc<ConnCounters>,
    handler: F,
) -> JoinHandle<()>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Option<Response<Body>>> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of file descriptors or similar: back off briefly.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            counters.connection();
            let (handler, tls, counters) = (handler.clone(), tls.clone(), counters.clone());
            tokio::spawn(async move {
                let Some(tls) = tls else {
                    return serve(stream, handler).await;
                };
                match tokio::time::timeout(TLS_ACCEPT_TIMEOUT, tls.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        counters.handshake(stream.get_ref().1.handshake_kind());
                        serve(stream, handler).await;
                    }
                    _ => counters.handshake(None),
                }
            });
        }
    })
}

/// Serves HTTP/1 on one connection until it closes.
async fn serve<IO, F, Fut>(io: IO, handler: F)
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Option<Response<Body>>> + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let handler = handler.clone();
        async move { handler(req).await.ok_or(Dropped) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// A handler's "no answer": hyper closes the connection.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose")
    }
}

impl std::error::Error for Dropped {}

/// One request on a fresh connection: `(status, body)`.
pub async fn request_once(
    target: &Target,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let (status, _, body) = request_full(target, method, path, headers, body, ONCE_TIMEOUT).await?;
    Ok((status, body))
}

/// One request on a fresh connection, answered within `timeout`:
/// `(status, headers, body)`.
pub async fn request_full(
    target: &Target,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
    timeout: Duration,
) -> anyhow::Result<(StatusCode, hyper::HeaderMap, Bytes)> {
    let fut = async {
        let mut sender = connect(target, &ConnCounters::default()).await?;
        let mut req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header("host", &target.host);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = sender.send_request(req.body(Body::new(body))?).await?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        anyhow::Ok((parts.status, parts.headers, body))
    };
    tokio::time::timeout(timeout, fut)
        .await
        .with_context(|| format!("{method} {path}: no answer within {timeout:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_must_be_loopback() {
        let t = Target::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(t.addr.port(), 8080);
        assert_eq!(t.host, "127.0.0.1:8080");
        assert!(Target::parse("http://localhost:9").is_ok());
        assert!(Target::parse("http://10.0.0.1:80").is_err());
        assert!(Target::parse("http://192.168.1.1:80").is_err());
        assert!(Target::parse("https://127.0.0.1:80").is_err());
        assert!(Target::parse("http://127.0.0.1:80/api").is_err());
    }
}
