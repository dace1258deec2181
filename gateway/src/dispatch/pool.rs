//! Keep-alive connections to receivers: a small pool on hyper's
//! connection API ([`hyper::client::conn`]), one per client identity.
//!
//! Connections are kept per origin (`scheme://authority`). An HTTP/1.1
//! connection is lent to one request at a time and comes back once its
//! answer has been read to the end; an HTTP/2 one (chosen by ALPN) is shared
//! by every request to its origin. Up to `max_idle` HTTP/1.1 connections
//! wait per origin, the most recently used first; one unused for
//! [`IDLE_TIMEOUT`] is closed by a sweep. A request that a kept connection
//! could not take (the receiver had closed it) goes again on a new one, as
//! it was never sent.
//!
//! Why not hyper-util's pooled client: per request it spawned a task to
//! return the connection, hashed and cloned its key, and moved several large
//! futures; this pool costs one short lock to lend and one to return.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::http::header::{HOST, HeaderValue};
use hyper::http::{Request, Response, Uri};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower::Service as _;

use super::connector::Connector;

type Body = Full<Bytes>;
type BoxError = Box<dyn StdError + Send + Sync>;

/// How long an unused connection is kept.
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often idle connections are looked over.
const SWEEP_EVERY: Duration = Duration::from_secs(15);

/// Why a request could not be sent.
#[derive(Debug)]
pub(super) enum PoolError {
    /// No connection could be made.
    Connect(BoxError),
    /// The connection failed while sending or waiting for the answer.
    Send(hyper::Error),
}

/// The connections of one client identity.
#[derive(Clone)]
pub(super) struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    connector: Connector,
    origins: RwLock<HashMap<Box<str>, Arc<Origin>>>,
    max_idle: usize,
    sweeping: AtomicBool,
}

/// The connections to one origin.
struct Origin {
    idle: Mutex<Vec<Idle>>,
    /// `Host` for HTTP/1.1: the host, and the port unless it is the
    /// scheme's default.
    host: HeaderValue,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

enum Conn {
    H1 {
        tx: http1::SendRequest<Body>,
        proxied: bool,
    },
    H2(http2::SendRequest<Body>),
}

impl Conn {
    fn is_closed(&self) -> bool {
        match self {
            Conn::H1 { tx, .. } => tx.is_closed(),
            Conn::H2(tx) => tx.is_closed(),
        }
    }
}

/// A connection lent to one request; [`Lease::release`] returns it once
/// the answer has been read to the end. Dropped instead, it is closed.
pub(super) struct Lease {
    origin: Arc<Origin>,
    conn: Conn,
    max_idle: usize,
}

impl Lease {
    /// Back to the pool, for the next request to this origin.
    pub(super) fn release(self) {
        if let Conn::H1 { .. } = self.conn {
            self.origin.check_in(self.conn, self.max_idle);
        }
    }
}

impl Pool {
    pub(super) fn new(connector: Connector, max_idle: usize) -> Self {
        Pool {
            inner: Arc::new(Inner {
                connector,
                origins: RwLock::new(HashMap::new()),
                max_idle: max_idle.max(1),
                sweeping: AtomicBool::new(false),
            }),
        }
    }

    /// Sends `req` (its URI absolute) to `origin`, the URL up to its path,
    /// on a kept connection or a new one.
    pub(super) async fn send(
        &self,
        origin: &str,
        mut req: Request<Body>,
    ) -> Result<(Response<Incoming>, Lease), PoolError> {
        let target = self.origin(origin, req.uri()).map_err(PoolError::Connect)?;
        let uri = req.uri().clone();
        loop {
            let (mut conn, reused) = match target.check_out().await {
                Some(conn) => (conn, true),
                None => (self.connect(&target, &uri).await?, false),
            };
            prepare(&mut req, &conn, &uri, &target.host);
            let sent = match &mut conn {
                Conn::H1 { tx, .. } => tx.try_send_request(req).await,
                Conn::H2(tx) => tx.try_send_request(req).await,
            };
            match sent {
                Ok(resp) => {
                    let lease = Lease {
                        origin: target,
                        conn,
                        max_idle: self.inner.max_idle,
                    };
                    return Ok((resp, lease));
                }
                Err(mut e) => match e.take_message() {
                    // Never sent on a kept connection the receiver had
                    // closed: again, on another one.
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(PoolError::Send(e.into_error())),
                },
            }
        }
    }

    /// The connections kept for `origin`, made on first use.
    fn origin(&self, origin: &str, uri: &Uri) -> Result<Arc<Origin>, BoxError> {
        let read = self.inner.origins.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(o) = read.get(origin) {
            return Ok(o.clone());
        }
        drop(read);
        let host = host_header(uri)?;
        let mut write = self.inner.origins.write().unwrap_or_else(PoisonError::into_inner);
        let o = write.entry(origin.into()).or_insert_with(|| {
            Arc::new(Origin {
                idle: Mutex::new(Vec::new()),
                host,
            })
        });
        Ok(o.clone())
    }

    /// A new connection to `uri`'s origin: HTTP/2 when TLS negotiated it (then
    /// shared with other requests at once), else HTTP/1.1.
    async fn connect(&self, origin: &Arc<Origin>, uri: &Uri) -> Result<Conn, PoolError> {
        self.start_sweeping();
        let stream = self
            .inner
            .connector
            .clone()
            .call(uri.clone())
            .await
            .map_err(PoolError::Connect)?;
        let proxied = stream.proxied();
        if stream.negotiated_h2() {
            let (tx, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(stream)
                .await
                .map_err(|e| PoolError::Connect(Box::new(e)))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "outbound HTTP/2 connection ended");
                }
            });
            origin.check_in(Conn::H2(tx.clone()), self.inner.max_idle);
            Ok(Conn::H2(tx))
        } else {
            let (tx, conn) = http1::handshake(stream)
                .await
                .map_err(|e| PoolError::Connect(Box::new(e)))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "outbound connection ended");
                }
            });
            Ok(Conn::H1 { tx, proxied })
        }
    }

    #[cfg(test)]
    pub(super) fn sweep(&self, now: Instant) {
        self.inner.sweep(now);
    }

    /// Connections kept, over all origins.
    #[cfg(test)]
    pub(super) fn idle(&self) -> usize {
        let origins = self.inner.origins.read().unwrap_or_else(PoisonError::into_inner);
        origins.values().map(|o| o.lock().len()).sum()
    }

    /// Starts the sweep of idle connections, once; it ends with the pool.
    fn start_sweeping(&self) {
        if self.inner.sweeping.swap(true, Ordering::Relaxed) {
            return;
        }
        let pool = Arc::downgrade(&self.inner);
        tokio::spawn(sweep(pool));
    }
}

async fn sweep(pool: Weak<Inner>) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        let Some(inner) = pool.upgrade() else { return };
        inner.sweep(Instant::now());
    }
}

impl Inner {
    /// Closes connections unused for [`IDLE_TIMEOUT`] (or closed by the
    /// receiver) and forgets origins with none left and no request on the way.
    fn sweep(&self, now: Instant) {
        let mut origins = self.origins.write().unwrap_or_else(PoisonError::into_inner);
        origins.retain(|_, o| {
            let mut idle = o.lock();
            idle.retain(|i| !i.conn.is_closed() && now.duration_since(i.since) < IDLE_TIMEOUT);
            !idle.is_empty() || Arc::strong_count(o) > 1
        });
    }
}

impl Origin {
    fn lock(&self) -> MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A kept connection ready for a request: the most recently used
    /// HTTP/1.1 one, or a clone of the HTTP/2 one.
    async fn check_out(&self) -> Option<Conn> {
        loop {
            let mut conn = {
                let mut idle = self.lock();
                let last = idle.last_mut()?;
                if last.conn.is_closed() {
                    idle.pop();
                    continue;
                }
                if let Conn::H2(tx) = &last.conn {
                    let tx = tx.clone();
                    last.since = Instant::now();
                    return Some(Conn::H2(tx));
                }
                idle.pop()?.conn
            };
            // Returned as soon as its answer was read: the connection may
            // still be finishing it.
            if let Conn::H1 { tx, .. } = &mut conn
                && tx.ready().await.is_ok()
            {
                return Some(conn);
            }
        }
    }

    fn check_in(&self, conn: Conn, max_idle: usize) {
        if conn.is_closed() {
            return;
        }
        let mut idle = self.lock();
        let full = match conn {
            Conn::H1 { .. } => idle.len() >= max_idle,
            // One shared HTTP/2 connection is enough.
            Conn::H2(_) => idle
                .iter()
                .any(|i| matches!(i.conn, Conn::H2(_)) && !i.conn.is_closed()),
        };
        if !full {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }
}

/// The request as `conn` takes it: for HTTP/1.1 a `Host` header, and the
/// path alone unless it goes to a proxy; for HTTP/2 the absolute URI.
fn prepare(req: &mut Request<Body>, conn: &Conn, absolute: &Uri, host: &HeaderValue) {
    match conn {
        Conn::H1 { proxied, .. } => {
            req.headers_mut().entry(HOST).or_insert_with(|| host.clone());
            *req.uri_mut() = if *proxied {
                absolute.clone()
            } else {
                origin_form(absolute)
            };
        }
        Conn::H2(_) => *req.uri_mut() = absolute.clone(),
    }
}

/// `/path?query` of an absolute URI.
fn origin_form(uri: &Uri) -> Uri {
    match uri.path_and_query() {
        Some(pq) if pq.as_str() != "/" => Uri::from(pq.clone()),
        _ => Uri::from_static("/"),
    }
}

/// The host, with the port unless it is the scheme's default.
fn host_header(uri: &Uri) -> Result<HeaderValue, BoxError> {
    let host = uri.host().ok_or("the URL has no host")?;
    let default = match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    let value = match uri.port_u16() {
        Some(port) if port != default => HeaderValue::try_from(format!("{host}:{port}"))?,
        _ => HeaderValue::from_str(host)?,
    };
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_origin_form() {
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        assert_eq!(host_header(&uri("http://example.com/x")).unwrap(), "example.com");
        assert_eq!(host_header(&uri("http://example.com:80/x")).unwrap(), "example.com");
        assert_eq!(
            host_header(&uri("http://example.com:8080/x")).unwrap(),
            "example.com:8080"
        );
        assert_eq!(host_header(&uri("https://example.com:443/")).unwrap(), "example.com");
        assert_eq!(host_header(&uri("https://example.com:80/")).unwrap(), "example.com:80");
        assert_eq!(host_header(&uri("http://[::1]:9/")).unwrap(), "[::1]:9");
        assert_eq!(origin_form(&uri("http://example.com/a/b?c=d")), "/a/b?c=d");
        assert_eq!(origin_form(&uri("http://example.com")), "/");
        assert_eq!(origin_form(&uri("http://example.com/?q")), "/?q");
    }
}
