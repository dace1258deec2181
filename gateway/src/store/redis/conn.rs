//! The connection the Redis store talks through: one standalone Redis or a
//! Redis Cluster (the redis crate's async cluster client). Both implement
//! `ConnectionLike`, so commands, pipelines and scripts run on either
//! unchanged.
//!
//! On a standalone Redis over plain TCP, commands (every script, `WAIT`,
//! `PING`, `SCAN`) go over a [`Lean`] connection of our own, and pipelines
//! (the reads of the API, the dashboard and the metrics, `store export`)
//! over the redis crate's [`ConnectionManager`]. No pipeline is followed by
//! a `WAIT`, so `WAIT` counts the writes it should: the scripts', on its own
//! connection. Over TLS, a Unix socket or RESP3, both go over the
//! [`ConnectionManager`].
//!
//! On the cluster, the client routes each command, pipeline and script by
//! its first key (scripts by `KEYS[1]`), follows MOVED/ASK redirects,
//! refreshes the slot map after a failover, reconnects, and
//! `Invocation::invoke_async` loads a script again where a node answers NOSCRIPT
//! (a promoted replica has not seen it). The two commands without a key
//! the store sends, `PING`, `WAIT` and `SCAN`, are sent here to the master of the
//! store's slot ([`Conn::ping`], [`Conn::scan`]).

use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use ::redis::io::tcp::TcpSettings;
use ::redis::{Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisFuture, RedisResult, Value};

use super::cluster::Cluster;
use super::lean::Lean;

/// Waiting for a TCP connection to the Redis (or to a cluster node).
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Waiting for one answer from a standalone Redis.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Sockets to Redis send each command at once (`TCP_NODELAY`). The redis
/// crate leaves Nagle's algorithm on, which holds a small write back while
/// an earlier one is unacknowledged: with many commands on one multiplexed
/// connection, a command could wait for the ACK of the one before it.
pub(super) fn tcp_settings() -> TcpSettings {
    TcpSettings::default().set_nodelay(true)
}

/// Where a standalone Redis is and how to reach it: `url` with
/// [`tcp_settings`].
fn connection_info(url: &str) -> RedisResult<ConnectionInfo> {
    Ok(url.into_connection_info()?.set_tcp_settings(tcp_settings()))
}

/// A standalone Redis or a Redis Cluster.
#[derive(Clone)]
pub(crate) enum Conn {
    /// A standalone Redis, everything over the redis crate's connection.
    Single(ConnectionManager),
    /// A standalone Redis over plain TCP: commands over the lean
    /// connection, pipelines over the redis crate's.
    Lean(Arc<Lean>, ConnectionManager),
    Cluster(Arc<Cluster>),
}

impl Conn {
    /// A standalone Redis at `url`. Not connected yet: the first command
    /// connects, and a lost connection is re-established by a later one
    /// (after a short backoff: `lean.rs`, the [`ConnectionManager`]).
    pub(crate) fn single(url: &str) -> RedisResult<Self> {
        let info = connection_info(url)?;
        let lean = Lean::for_info(&info, CONNECT_TIMEOUT, RESPONSE_TIMEOUT);
        let client = ::redis::Client::open(info)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            // A lost Redis fails commands fast (the API answers 503 with
            // Retry-After at once); the next command reconnects.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let manager = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(match lean {
            Some(lean) => Conn::Lean(Arc::new(lean), manager),
            None => Conn::Single(manager),
        })
    }

    /// A Redis Cluster found through the seed nodes `nodes`. Connects in
    /// the background (needs a Tokio runtime): commands sent before the
    /// cluster is reachable fail and later ones connect again.
    pub(crate) fn cluster(nodes: &[String]) -> RedisResult<Self> {
        Ok(Conn::Cluster(Cluster::connect(nodes)?))
    }

    /// `PING` to the Redis, or to the master serving `route_key`'s slot.
    pub(crate) async fn ping(&self, route_key: &str) -> RedisResult<()> {
        let cmd = ::redis::cmd("PING");
        let _: String = match self {
            Conn::Cluster(c) => ::redis::from_redis_value(c.routed(cmd, route_to(route_key)).await?)?,
            single => cmd.query_async(&mut single.clone()).await?,
        };
        Ok(())
    }

    /// `WAIT n timeout_ms` on the Redis, or on the master serving
    /// `route_key`'s slot: how many replicas have this connection's writes.
    pub(crate) async fn wait(&self, route_key: &str, n: u32, timeout_ms: u64) -> RedisResult<u64> {
        let mut cmd = ::redis::cmd("WAIT");
        cmd.arg(n).arg(timeout_ms);
        match self {
            Conn::Cluster(c) => Ok(::redis::from_redis_value(c.routed(cmd, route_to(route_key)).await?)?),
            single => cmd.query_async(&mut single.clone()).await,
        }
    }

    /// Every key matching `pattern` (a `SCAN` loop), on the Redis or on the
    /// master serving `route_key`'s slot: the keys of the store all live
    /// there on a cluster, so `pattern` must start with the store's prefix.
    pub(crate) async fn scan(&self, pattern: &str, route_key: &str) -> RedisResult<Vec<String>> {
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        loop {
            let mut cmd = ::redis::cmd("SCAN");
            cmd.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(500);
            let (next, batch): (u64, Vec<String>) = match self {
                Conn::Cluster(c) => ::redis::from_redis_value(c.routed(cmd, route_to(route_key)).await?)?,
                single => cmd.query_async(&mut single.clone()).await?,
            };
            keys.extend(batch);
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }
}

/// Routing to the master of `key`'s hash slot.
fn route_to(key: &str) -> RoutingInfo {
    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
        key_slot(key.as_bytes()),
        SlotAddr::Master,
    )))
}

/// The Redis Cluster hash slot of `key`: CRC16 (XMODEM) of its hash tag
/// (the part between the first `{` and the next `}`, if not empty) or of
/// the whole key, modulo 16384.
pub(crate) fn key_slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16_xmodem(tagged.unwrap_or(key)) % 16384
}

fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Lean(c, _) => Box::pin(c.request(cmd)),
            Conn::Cluster(c) => Box::pin(c.command(cmd)),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) | Conn::Lean(_, c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => Box::pin(c.pipeline(pipeline, offset, count)),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) | Conn::Lean(_, c) => c.get_db(),
            Conn::Cluster(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{connection_info, key_slot};

    #[test]
    fn connections_to_redis_send_commands_at_once() {
        for url in [
            "redis://127.0.0.1:6379/0",
            "redis://:secret@example.com:7000",
            "unix:///run/redis.sock",
        ] {
            let info = connection_info(url).unwrap();
            assert!(info.tcp_settings().nodelay(), "{url}");
        }
    }

    #[test]
    fn key_slots_match_redis() {
        // Values from CLUSTER KEYSLOT and the cluster specification.
        assert_eq!(key_slot(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"{hookgate}:q:first"), key_slot(b"hookgate"));
        assert_eq!(
            key_slot(b"{hookgate}:evt:{abc}"),
            key_slot(b"hookgate"),
            "first tag only"
        );
        assert_eq!(
            key_slot(b"foo{}{bar}"),
            key_slot(b"foo{}{bar}"),
            "an empty tag hashes the key"
        );
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
    }
}
