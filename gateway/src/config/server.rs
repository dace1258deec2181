//! `[server]` and the transport parts of `[api]`: the listen address, the
//! listener's limits and timeouts, and the TLS files, each checked the way
//! `serve` would use it (an address that cannot be listened on, a missing
//! or unreadable certificate, a key that does not fit), so `hookgate check`
//! refuses what `serve` would.

use std::net::ToSocketAddrs;
use std::path::Path;
use std::time::Duration;

use super::ctx::Ctx;
use super::raw::{RawApi, RawServer, S};
use super::{ServerConfig, TlsFiles};
use crate::tls;

pub(super) fn validate_server(ctx: &mut Ctx<'_>, raw: &RawServer, base_dir: &Path) -> ServerConfig {
    let listen = match &raw.listen {
        None => "127.0.0.1:8080".to_owned(),
        Some(s) => match ctx.string(s) {
            Some(v) if is_listen_address(&v) => v,
            Some(v) => {
                ctx.error(
                    s.span(),
                    format!("server.listen must be host:port (like \"127.0.0.1:8080\" or \"[::]:8443\"), got {v:?}"),
                );
                v
            }
            None => String::new(),
        },
    };
    let tls = match (&raw.tls_cert, &raw.tls_key) {
        (None, None) => None,
        (Some(cert), Some(key)) => tls_files(ctx, cert, key, base_dir),
        (Some(s), None) | (None, Some(s)) => {
            ctx.error(
                s.span(),
                "server.tls_cert and server.tls_key go together: set both or neither",
            );
            None
        }
    };
    ServerConfig {
        listen,
        max_body_bytes: ctx.int(raw.max_body_bytes.as_ref(), 1 << 20, 1..(1 << 28) + 1, "max_body_bytes"),
        tls,
        header_timeout: ctx.duration(
            raw.header_timeout.as_ref(),
            Duration::from_secs(10),
            "server.header_timeout",
        ),
        idle_timeout: ctx.duration(
            raw.idle_timeout.as_ref(),
            Duration::from_secs(60),
            "server.idle_timeout",
        ),
        body_timeout: ctx.duration(
            raw.body_timeout.as_ref(),
            Duration::from_secs(30),
            "server.body_timeout",
        ),
        max_connections: ctx.int(
            raw.max_connections.as_ref(),
            10_000,
            1..1_000_001,
            "server.max_connections",
        ),
        worker_threads: raw
            .worker_threads
            .as_ref()
            .map(|n| ctx.int(Some(n), 1, 1..1025, "server.worker_threads")),
    }
}

/// `[api] client_ca`: a readable CA bundle, and only with TLS on.
pub(super) fn validate_client_ca(
    ctx: &mut Ctx<'_>,
    raw: &RawApi,
    server: &ServerConfig,
    base_dir: &Path,
) -> Option<std::path::PathBuf> {
    let s = raw.client_ca.as_ref()?;
    let path = base_dir.join(ctx.string(s)?);
    if server.tls.is_none() {
        ctx.error(
            s.span(),
            "api.client_ca needs HTTPS: set server.tls_cert and server.tls_key too",
        );
        return None;
    }
    match tls::read_certs(&path) {
        Ok(_) => Some(path),
        Err(e) => {
            ctx.error(s.span(), format!("api.client_ca: {}", crate::report::error_chain(&e)));
            None
        }
    }
}

fn tls_files(ctx: &mut Ctx<'_>, cert: &S, key: &S, base_dir: &Path) -> Option<TlsFiles> {
    let files = TlsFiles {
        cert: base_dir.join(ctx.string(cert)?),
        key: base_dir.join(ctx.string(key)?),
    };
    match tls::certified_key(&files.cert, &files.key) {
        Ok(_) => Some(files),
        Err(e) => {
            let at = match e {
                tls::TlsError::Key { .. } => key.span(),
                tls::TlsError::Read { ref path, .. } | tls::TlsError::Empty { ref path, .. } if *path == files.key => {
                    key.span()
                }
                _ => cert.span(),
            };
            ctx.error(at, format!("server TLS: {}", crate::report::error_chain(&e)));
            None
        }
    }
}

/// Whether `v` is an address `serve` can bind: `ip:port` or `name:port`
/// with a name that resolves.
fn is_listen_address(v: &str) -> bool {
    if v.parse::<std::net::SocketAddr>().is_ok() {
        return true;
    }
    let Some((host, port)) = v.rsplit_once(':') else {
        return false;
    };
    !host.is_empty() && port.parse::<u16>().is_ok() && v.to_socket_addrs().is_ok_and(|mut a| a.next().is_some())
}
