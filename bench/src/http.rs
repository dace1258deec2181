//! Minimal HTTP/1 plumbing on hyper, shared by every part of the tool so
//! that the gateway, the receiver and the ceiling sink are all driven and
//! served by exactly the same code.
//!
//! * [`Target`]: a `http://host:port` base URL, checked to be loopback.
//! * [`connect`]: one keep-alive client connection (TCP_NODELAY).
//! * [`spawn_server`]: an accept loop serving every connection with a handler.
//! * [`request_once`]: a one-shot request, for setup calls.

use std::convert::Infallible;
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Request and response bodies: whole buffers.
pub type Body = Full<Bytes>;

/// How long a connect may take before it counts as an error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a one-shot setup request may take.
const ONCE_TIMEOUT: Duration = Duration::from_secs(30);

/// A base URL on a loopback address.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// The `Host` header value.
    pub host: String,
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
        })
    }

    /// The target for a socket address this process bound.
    pub fn local(addr: SocketAddr) -> Self {
        Target {
            addr,
            host: addr.to_string(),
        }
    }

    /// `http://host:port`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.host)
    }
}

/// Opens one HTTP/1 keep-alive connection to `addr`.
pub async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Body>> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .with_context(|| format!("connect to {addr}: timed out"))?
        .with_context(|| format!("connect to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
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
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of file descriptors or similar: back off briefly.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// One request on a fresh connection: `(status, body)`.
pub async fn request_once(
    target: &Target,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let fut = async {
        let mut sender = connect(target.addr).await?;
        let mut req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header("host", &target.host);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = sender.send_request(req.body(Body::new(body))?).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, body))
    };
    tokio::time::timeout(ONCE_TIMEOUT, fut)
        .await
        .with_context(|| format!("{method} {path}: no answer within {ONCE_TIMEOUT:?}"))?
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
