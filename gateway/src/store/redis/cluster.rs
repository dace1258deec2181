//! The Redis Cluster connection with a watchdog.
//!
//! The redis crate's cluster client follows failovers by itself, but its
//! connection task can stall for good while it refreshes the slot map after
//! a master is lost: it then answers every request with a timeout while the
//! cluster itself is healthy again (seen in three of five runs of the
//! failover chaos scenario, with redis 1.8.1 and 1.8.2). A gateway must not
//! need a restart for
//! that, so the watchdog here replaces the connection (a new client task
//! that discovers the cluster from the seed nodes) once requests have kept
//! failing without any answer for [`STALL`]. Requests already sent on the
//! old connection end with their own timeouts; later ones use the new one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use ::redis::cluster_async::ClusterConnection;
use ::redis::cluster_routing::RoutingInfo;
use ::redis::{Cmd, Pipeline, RedisError, RedisResult, Value};

use super::conn::CONNECT_TIMEOUT;

/// A whole request with its retries and redirects gives up after this, so
/// a caller never waits longer while the cluster elects a new master (it
/// gets an error and the API a 503). Shorter limits (1 s, two retries) were
/// tried: the client then did not follow the failover and the gateways
/// answered 503 long after the replica had taken over.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long requests may keep failing with no answer from any node before
/// the connection is replaced. While a master fails over, the other
/// masters still answer (the gateway asks every shard all the time), so
/// only a stalled client or a cluster that is down altogether goes this
/// long without any answer, and a new connection is harmless for the
/// latter. Longer than one request's timeout, so a single slow request
/// never counts as a stall.
pub(super) const STALL: Duration = Duration::from_secs(6);
/// A request cancelled by its caller (an ingest deadline) after this long
/// without an answer counts as a failure.
const CANCELLED_AFTER: Duration = Duration::from_secs(1);

/// A cluster connection that is replaced when it stalls.
pub(crate) struct Cluster {
    client: ClusterClient,
    current: Mutex<ClusterConnection>,
    health: Mutex<Health>,
    stall: Duration,
}

/// When the connection last answered, and since when requests fail.
struct Health {
    last_answer: Instant,
    failing_since: Option<Instant>,
    replacements: u64,
}

impl Cluster {
    /// A connection to the cluster found through the seed `nodes`.
    /// Connects in the background (needs a Tokio runtime).
    pub(crate) fn connect(nodes: &[String]) -> RedisResult<Arc<Self>> {
        Self::with_stall(nodes, STALL)
    }

    fn with_stall(nodes: &[String], stall: Duration) -> RedisResult<Arc<Self>> {
        let client = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(REQUEST_TIMEOUT)
            .overall_response_timeout(Some(REQUEST_TIMEOUT))
            .tcp_settings(super::conn::tcp_settings())
            .build()?;
        let first = open(&client);
        Ok(Arc::new(Cluster {
            client,
            current: Mutex::new(first),
            health: Mutex::new(Health {
                last_answer: Instant::now(),
                failing_since: None,
                replacements: 0,
            }),
            stall,
        }))
    }

    /// The connection to send the next request on.
    fn conn(&self) -> ClusterConnection {
        self.current.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many times the connection was replaced.
    #[cfg(test)]
    fn replacements(&self) -> u64 {
        self.health.lock().unwrap_or_else(|p| p.into_inner()).replacements
    }

    fn answered(&self) {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        h.last_answer = Instant::now();
        h.failing_since = None;
    }

    /// A request failed without an answer from Redis: replaces the
    /// connection when that has gone on for `stall` with no answer at all.
    fn failed(&self) {
        let now = Instant::now();
        let replace = {
            let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
            let since = *h.failing_since.get_or_insert(now);
            let stalled = now.duration_since(since) >= self.stall && now.duration_since(h.last_answer) >= self.stall;
            if stalled {
                // The next replacement waits for another full stall.
                h.failing_since = None;
                h.last_answer = now;
                h.replacements += 1;
            }
            stalled
        };
        if replace {
            tracing::warn!(
                stalled_for_secs = self.stall.as_secs(),
                "Redis Cluster: no answer on any request for a while; replacing the cluster connection"
            );
            let fresh = open(&self.client);
            *self.current.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
        }
    }

    /// Runs `request` on the current connection and notes how it went.
    pub(crate) async fn run<T, F, Fut>(&self, request: F) -> RedisResult<T>
    where
        F: FnOnce(ClusterConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let mut watch = Watch {
            cluster: self,
            started: Instant::now(),
            done: false,
        };
        let result = request(self.conn()).await;
        watch.done = true;
        match &result {
            Err(e) if no_answer(e) => self.failed(),
            _ => self.answered(),
        }
        result
    }

    pub(crate) async fn command(&self, cmd: &Cmd) -> RedisResult<Value> {
        self.run(|mut c| async move { ::redis::aio::ConnectionLike::req_packed_command(&mut c, cmd).await })
            .await
    }

    pub(crate) async fn pipeline(&self, pipeline: &Pipeline, offset: usize, count: usize) -> RedisResult<Vec<Value>> {
        self.run(|mut c| async move {
            ::redis::aio::ConnectionLike::req_packed_commands(&mut c, pipeline, offset, count).await
        })
        .await
    }

    pub(crate) async fn routed(&self, cmd: Cmd, routing: RoutingInfo) -> RedisResult<Value> {
        self.run(|mut c| async move { c.route_command(cmd, routing).await })
            .await
    }
}

/// A fresh connection task for `client`.
fn open(client: &ClusterClient) -> ClusterConnection {
    let config = ClusterConfig::new()
        .set_connection_timeout(CONNECT_TIMEOUT)
        .set_response_timeout(REQUEST_TIMEOUT);
    client.get_pending_async_connection_with_config(config)
}

/// Errors that mean Redis did not answer (as opposed to an answer that is
/// an error, such as a script's).
fn no_answer(e: &RedisError) -> bool {
    e.is_timeout()
        || e.is_io_error()
        || e.is_connection_dropped()
        || e.kind() == ::redis::ErrorKind::ClusterConnectionNotFound
}

/// Counts a request its caller gave up on after [`CANCELLED_AFTER`] as a
/// failure (a caller's deadline may always be shorter than the client's).
struct Watch<'a> {
    cluster: &'a Cluster,
    started: Instant,
    done: bool,
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        if !self.done && self.started.elapsed() >= CANCELLED_AFTER {
            self.cluster.failed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_that_never_answers_is_replaced_after_the_stall() {
        // A seed node that accepts connections and never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let seed = format!("redis://{}", silent.local_addr().unwrap());
        let cluster = Cluster::with_stall(&[seed], Duration::from_secs(1)).unwrap();
        let ping = ::redis::cmd("PING");
        for _ in 0..2 {
            // Callers that give up (as an ingest deadline does) count too.
            let r = tokio::time::timeout(Duration::from_millis(1200), cluster.command(&ping)).await;
            assert!(r.is_err(), "the silent node answered: {r:?}");
        }
        assert_eq!(cluster.replacements(), 1, "replaced once the stall had lasted a second");
        let r = tokio::time::timeout(Duration::from_millis(1200), cluster.command(&ping)).await;
        assert!(r.is_err());
        assert_eq!(
            cluster.replacements(),
            1,
            "the next replacement waits for another stall"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_replaced_connection_serves_the_cluster_and_answers_end_a_stall() {
        let redis = hookgate_testkit::RedisCluster::shared();
        let cluster = Cluster::with_stall(&redis.urls(), Duration::from_millis(200)).unwrap();
        let mut set = ::redis::cmd("SET");
        set.arg("{watchdog}:k").arg("v1");
        cluster.command(&set).await.unwrap();
        // Failures with an answer in between: no stall.
        cluster.failed();
        tokio::time::sleep(Duration::from_millis(250)).await;
        cluster.command(&set).await.unwrap();
        cluster.failed();
        assert_eq!(cluster.replacements(), 0, "an answer ends a stall");
        // Failures only, for longer than the stall: replaced.
        tokio::time::sleep(Duration::from_millis(250)).await;
        cluster.failed();
        assert_eq!(cluster.replacements(), 1);
        let mut get = ::redis::cmd("GET");
        get.arg("{watchdog}:k");
        let v: String = ::redis::from_redis_value(cluster.command(&get).await.unwrap()).unwrap();
        assert_eq!(v, "v1", "the new connection found the cluster by itself");
    }
}
