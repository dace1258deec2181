//! The listener: plain HTTP or HTTPS (rustls, HTTP/1.1 and HTTP/2 by ALPN),
//! held against bad clients.
//!
//! * At most `[server] max_connections` connections are served at once;
//!   past that, new ones wait in the kernel's backlog.
//! * A connection must finish its TLS handshake and send a complete request
//!   head within `header_timeout`, and a request body within `body_timeout`
//!   of the head; one that sits idle (no request in flight) longer than
//!   `idle_timeout` is closed.
//! * With `[server] tls_cert`/`tls_key`, the certificate is re-read when the
//!   files change ([`tls`]); open connections keep the one they started with.
//! * With `[api] client_ca`, `/api/*` callers must also present a client
//!   certificate signed by that CA (on top of their bearer token); other
//!   routes (health, metrics, dashboard page) do not need one.
//!
//! On shutdown the listener stops accepting, each connection is asked to
//! finish its current request and close, and [`serve`] returns once all
//! have, or after the grace period.

pub mod tls;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::IntoResponse;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{Api, ApiError, BodyTimeout, ErrorCode};
use crate::config::ServerConfig;
pub use tls::TlsAcceptor;

/// How the listener protects itself.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
}

impl From<&ServerConfig> for Limits {
    fn from(c: &ServerConfig) -> Self {
        Limits {
            header_timeout: c.header_timeout,
            idle_timeout: c.idle_timeout,
            body_timeout: c.body_timeout,
            max_connections: c.max_connections,
        }
    }
}

/// Set on each request: whether its connection presented a client
/// certificate that the configured client CA verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCertificate(pub bool);

/// Serves `app` on `listener` until `shutdown`, then drains for at most
/// `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Api,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let connections = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: pause, go on.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (app, tls, shutdown) = (app.clone(), tls.clone(), shutdown.clone());
        connections.spawn(async move {
            connection(stream, peer, app, tls, limits, shutdown).await;
            drop(permit);
        });
    }
    connections.close();
    if tokio::time::timeout(grace, connections.wait()).await.is_err() {
        tracing::warn!("some connections were still open after the shutdown grace period");
    }
    Ok(())
}

/// What the watchdog of one connection knows.
struct Activity {
    started: Instant,
    /// Milliseconds after `started` of the last request start or end.
    last_ms: AtomicU64,
    /// Requests being answered now.
    active: AtomicUsize,
    /// Requests received so far.
    seen: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        self.last_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long until the connection may be closed as idle, if it can't be
    /// now: the first request must come within `header_timeout` of the
    /// connection, later ones within `idle_timeout` of the last answer.
    fn idle_deadline(&self, limits: &Limits) -> Option<Duration> {
        if self.active.load(Ordering::Acquire) > 0 {
            return Some(limits.idle_timeout);
        }
        let limit = if self.seen.load(Ordering::Acquire) == 0 {
            limits.header_timeout
        } else {
            limits.idle_timeout
        };
        let idle = self
            .started
            .elapsed()
            .saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)));
        limit.checked_sub(idle).filter(|d| !d.is_zero())
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Api,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    match tls {
        None => serve_io(TokioIo::new(stream), peer, app, None, limits, shutdown).await,
        Some(acceptor) => {
            let handshake = tokio::time::timeout(limits.header_timeout, acceptor.accept(stream));
            match handshake.await {
                Ok(Ok(tls_stream)) => {
                    let verified = acceptor.client_ca_configured().then(|| {
                        ClientCertificate(
                            tls_stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .is_some_and(|c| !c.is_empty()),
                        )
                    });
                    serve_io(TokioIo::new(tls_stream), peer, app, verified, limits, shutdown).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

async fn serve_io<I>(
    io: TokioIo<I>,
    peer: SocketAddr,
    app: Api,
    client_cert: Option<ClientCertificate>,
    limits: Limits,
    shutdown: CancellationToken,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity {
        started: Instant::now(),
        last_ms: AtomicU64::new(0),
        active: AtomicUsize::new(0),
        seen: AtomicU64::new(0),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            let (app, activity) = (app.clone(), activity.clone());
            activity.seen.fetch_add(1, Ordering::AcqRel);
            activity.active.fetch_add(1, Ordering::AcqRel);
            activity.touch();
            async move {
                req.extensions_mut().insert(ConnectInfo(peer));
                let resp = if client_cert == Some(ClientCertificate(false)) && req.uri().path().starts_with("/api") {
                    ApiError::new(
                        ErrorCode::Unauthorized,
                        "a client certificate signed by [api] client_ca is required for /api",
                    )
                    .into_response()
                } else {
                    if let Some(c) = client_cert {
                        req.extensions_mut().insert(c);
                    }
                    let req = req.map(|b| Body::new(TimedBody::new(b, limits.body_timeout)));
                    app.call(req).await
                };
                activity.active.fetch_sub(1, Ordering::AcqRel);
                activity.touch();
                Ok::<_, std::convert::Infallible>(resp)
            }
        })
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new()).max_concurrent_streams(256);
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        let watchdog = async {
            loop {
                match activity.idle_deadline(&limits) {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => return,
                }
            }
        };
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = shutdown.cancelled(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            () = watchdog => {
                tracing::debug!(%peer, "closing an idle connection");
                return;
            }
        }
    }
}

/// A request body that fails with [`BodyTimeout`] if it has not arrived
/// whole by its deadline.
struct TimedBody {
    inner: Incoming,
    limit: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl TimedBody {
    fn new(inner: Incoming, limit: Duration) -> Self {
        TimedBody {
            inner,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
        }
    }
}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(self.limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
