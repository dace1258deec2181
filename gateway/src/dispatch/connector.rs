//! How an outbound connection is made: TCP through the SSRF-guarded
//! resolver ([`super::ssrf`]), then TLS with rustls for `https`; through the
//! egress proxy, an `http` destination is asked of the proxy in absolute
//! form and an `https` one through a `CONNECT` tunnel, TLS end to end.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::http::Uri;
use hyper::http::uri::Scheme;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tower::Service as _;

use super::ssrf::GuardedResolver;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Makes the connections of one pooled client.
#[derive(Clone)]
pub(super) struct Connector {
    tcp: HttpConnector<GuardedResolver>,
    tls: TlsConnector,
    /// TLS to an `https://` proxy itself: HTTP/1.1 only, as `CONNECT` and
    /// absolute-form requests need.
    proxy_tls: TlsConnector,
    proxy: Option<Arc<Matcher>>,
}

impl Connector {
    pub(super) fn new(resolver: GuardedResolver, tls: Arc<rustls::ClientConfig>, proxy: Option<Arc<Matcher>>) -> Self {
        let mut tcp = HttpConnector::new_with_resolver(resolver);
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(Duration::from_secs(10)));
        let mut to_proxy = (*tls).clone();
        to_proxy.alpn_protocols = vec![b"http/1.1".to_vec()];
        Connector {
            tcp,
            tls: TlsConnector::from(tls),
            proxy_tls: TlsConnector::from(Arc::new(to_proxy)),
            proxy,
        }
    }
}

impl tower::Service<Uri> for Connector {
    type Response = Stream;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Connecting {
        let via = self.proxy.as_ref().and_then(|m| m.intercept(&dst));
        let this = self.clone();
        Box::pin(async move {
            let https = dst.scheme() == Some(&Scheme::HTTPS);
            match via {
                None if https => {
                    let io = this.tcp.clone().call(dst.clone()).await?;
                    let s = this.tls.connect(server_name(&dst)?, io.into_inner()).await?;
                    Ok(Stream::new(Io::Tls(Box::new(TokioIo::new(s)))))
                }
                None => Ok(Stream::new(Io::Plain(this.tcp.clone().call(dst).await?))),
                Some(proxy) if https => {
                    let to_proxy = this.clone();
                    let leg = tower::service_fn(move |proxy: Uri| to_proxy.to_proxy(proxy));
                    let mut tunnel = Tunnel::new(proxy.uri().clone(), leg);
                    if let Some(auth) = proxy.basic_auth() {
                        tunnel = tunnel.with_auth(auth.clone());
                    }
                    let io = tunnel.call(dst.clone()).await?;
                    let s = this.tls.connect(server_name(&dst)?, TokioIo::new(io)).await?;
                    Ok(Stream::new(Io::Tunneled(Box::new(TokioIo::new(s)))))
                }
                Some(proxy) => {
                    let mut leg = this.to_proxy(proxy.uri().clone()).await?;
                    leg.proxied = true;
                    Ok(leg)
                }
            }
        })
    }
}

type Connecting = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

impl Connector {
    /// A connection to the egress proxy itself (TLS for an `https://` one);
    /// for a `CONNECT` tunnel, the leg the tunnel is asked on.
    fn to_proxy(&self, proxy: Uri) -> Connecting {
        let this = self.clone();
        Box::pin(async move {
            let io = this.tcp.clone().call(proxy.clone()).await?;
            if proxy.scheme() == Some(&Scheme::HTTPS) {
                let s = this.proxy_tls.connect(server_name(&proxy)?, io.into_inner()).await?;
                Ok(Stream::new(Io::Tls(Box::new(TokioIo::new(s)))))
            } else {
                Ok(Stream::new(Io::Plain(io)))
            }
        })
    }
}

fn server_name(uri: &Uri) -> Result<ServerName<'static>, BoxError> {
    let host = uri.host().ok_or("the URL has no host")?;
    // `[::1]` in a URI is `::1` as a server name.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok(ServerName::try_from(host.to_owned())?)
}

/// An outbound connection: plain TCP (to a destination or to the proxy),
/// TLS, or TLS through a proxy's tunnel.
pub(super) struct Stream {
    io: Io,
    /// To the egress proxy for an `http` destination: requests go in
    /// absolute form.
    proxied: bool,
}

enum Io {
    Plain(TokioIo<TcpStream>),
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
    Tunneled(Box<TokioIo<TlsStream<TokioIo<Stream>>>>),
}

impl Stream {
    /// A stream to a destination, or to the proxy for a `CONNECT` tunnel.
    fn new(io: Io) -> Self {
        Stream { io, proxied: false }
    }
}

impl Stream {
    /// Whether TLS negotiated HTTP/2 (by ALPN).
    pub(super) fn negotiated_h2(&self) -> bool {
        let alpn = match &self.io {
            Io::Plain(_) => None,
            Io::Tls(s) => s.inner().get_ref().1.alpn_protocol(),
            Io::Tunneled(s) => s.inner().get_ref().1.alpn_protocol(),
        };
        alpn == Some(b"h2")
    }

    /// To the egress proxy for an `http` destination: requests go in
    /// absolute form.
    pub(super) fn proxied(&self) -> bool {
        self.proxied
    }
}

/// Runs `$e` on whichever stream `$io` holds, pinned as `$s`.
macro_rules! each {
    ($io:expr, $s:ident => $e:expr) => {
        match $io {
            Io::Plain($s) => $e,
            Io::Tls($s) => $e,
            Io::Tunneled($s) => $e,
        }
    };
}

impl Read for Stream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        each!(&mut self.io, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl Write for Stream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        each!(&mut self.io, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(&mut self.io, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        each!(&self.io, s => s.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(&mut self.io, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(&mut self.io, s => Pin::new(s).poll_shutdown(cx))
    }
}
