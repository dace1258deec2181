//! A real Redis Cluster on loopback: three masters and three replicas
//! (`redis-server --cluster-enabled yes`, joined by `redis-cli --cluster
//! create`), each on a free port with a free cluster-bus port, in a temp
//! folder, all killed on drop. No persistence (`--save ''`, no AOF): a
//! restarted node comes back empty and rejoins from its `nodes.conf`.
//!
//! A test can kill the master that serves a key; its replica is promoted
//! after `cluster-node-timeout` ([`NODE_TIMEOUT_MS`]).
//!
//! The methods that wait (start, [`RedisCluster::wait_healthy`],
//! [`RedisCluster::kill_master_of`]) block the calling thread: call them from
//! `tokio::task::spawn_blocking` while a gateway runs in the same runtime.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::{TempDir, free_port};

/// `cluster-node-timeout`: how long a master may be silent before its
/// replica takes over.
pub const NODE_TIMEOUT_MS: u64 = 2000;
/// Masters (each with one replica).
const MASTERS: usize = 3;

/// One cluster node, its process and ports.
#[derive(Debug)]
struct Node {
    port: u16,
    bus_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// A six-node Redis Cluster, killed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Mutex<Vec<Node>>,
    _dir: TempDir,
}

fn tool(var: &str, name: &str) -> PathBuf {
    let path = std::env::var_os(var).map_or_else(|| PathBuf::from(name), PathBuf::from);
    match Command::new(&path).arg("--version").output() {
        Ok(out) if out.status.success() => path,
        _ => panic!(
            "{name} not found (looked for {}). The Redis Cluster tests start their own cluster with \
             redis-server and redis-cli. Install both with `sudo apt-get install -y redis-server` \
             (Debian/Ubuntu; redis-cli comes with it) or set {var}=/path/to/{name}",
            path.display()
        ),
    }
}

impl RedisCluster {
    /// Starts six nodes, creates the cluster (one replica per master) and
    /// waits until every node reports `cluster_state:ok` and every replica
    /// is in sync with its master. Blocks for a few seconds.
    #[allow(clippy::disallowed_methods, reason = "synchronous set-up, before any gateway runs")]
    pub fn start() -> Self {
        let server = tool("REDIS_SERVER", "redis-server");
        let cli = tool("REDIS_CLI", "redis-cli");
        let dir = TempDir::new("redis-cluster");
        let mut nodes: Vec<Node> = (0..MASTERS * 2)
            .map(|_| {
                let port = free_port();
                let node_dir = dir.path().join(port.to_string());
                std::fs::create_dir_all(&node_dir).expect("create node folder");
                Node {
                    port,
                    bus_port: free_port(),
                    dir: node_dir,
                    child: None,
                }
            })
            .collect();
        for node in &mut nodes {
            node.spawn(&server);
        }
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let out = Command::new(&cli)
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster {
            nodes: Mutex::new(nodes),
            _dir: dir,
        };
        cluster.wait_healthy(Duration::from_secs(30));
        cluster
    }

    /// A cluster shared by the tests of this process that run at the same
    /// time (started by the first, killed when the last lets go). For tests
    /// that only read and write under their own key prefix; a test that
    /// kills nodes starts its own with [`RedisCluster::start`].
    pub fn shared() -> Arc<RedisCluster> {
        static SHARED: Mutex<Weak<RedisCluster>> = Mutex::new(Weak::new());
        let mut slot = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = slot.upgrade() {
            return c;
        }
        let c = Arc::new(RedisCluster::start());
        *slot = Arc::downgrade(&c);
        c
    }

    /// `redis://127.0.0.1:<port>` of every node: the seed list.
    pub fn urls(&self) -> Vec<String> {
        self.lock()
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Node>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ports of the nodes that run.
    fn live_ports(&self) -> Vec<u16> {
        self.lock()
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.port)
            .collect()
    }

    /// The port of the master serving `key`'s hash slot, as the running
    /// nodes see it (all of them must agree).
    pub fn master_of(&self, key: &str) -> u16 {
        let ports = self.live_ports();
        let slot: u16 = command(ports[0], &["CLUSTER", "KEYSLOT", key])
            .unwrap_or_else(|e| panic!("CLUSTER KEYSLOT: {e}"))
            .parse()
            .expect("CLUSTER KEYSLOT answers a number");
        let nodes = command(ports[0], &["CLUSTER", "NODES"]).unwrap_or_else(|e| panic!("CLUSTER NODES: {e}"));
        serving_master(&nodes, slot).unwrap_or_else(|| panic!("no master serves slot {slot}:\n{nodes}"))
    }

    /// How many keys match `pattern` on each master (port, count), masters
    /// in port order: where a store's keys live.
    pub fn keys_per_master(&self, pattern: &str) -> Vec<(u16, u64)> {
        let ports = self.live_ports();
        let nodes = command(ports[0], &["CLUSTER", "NODES"]).unwrap_or_else(|e| panic!("CLUSTER NODES: {e}"));
        let mut masters: Vec<u16> = nodes
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .filter(|f| f.len() > 8 && f[2].contains("master") && !f[2].contains("fail"))
            .filter_map(|f| node_port(f[1]))
            .collect();
        masters.sort_unstable();
        masters
            .into_iter()
            .map(|port| {
                let n = command(port, &["EVAL", "return #redis.call('KEYS', ARGV[1])", "0", pattern])
                    .unwrap_or_else(|e| panic!("KEYS on {port}: {e}"));
                (port, n.parse().expect("a count"))
            })
            .collect()
    }

    /// Kills (SIGKILL) the master serving `key`, and returns its port.
    /// Its replica takes over after about [`NODE_TIMEOUT_MS`]; see
    /// [`RedisCluster::wait_healthy`].
    pub fn kill_master_of(&self, key: &str) -> u16 {
        let port = self.master_of(key);
        self.kill(port);
        port
    }

    /// Kills the node on `port` (SIGKILL).
    pub fn kill(&self, port: u16) {
        if let Some(node) = self.lock().iter_mut().find(|n| n.port == port) {
            node.kill();
        }
    }

    /// Starts the node on `port` again (empty: no persistence); it rejoins
    /// the cluster from its `nodes.conf`, as a replica if it lost its slots.
    pub fn restart(&self, port: u16) {
        let server = tool("REDIS_SERVER", "redis-server");
        if let Some(node) = self.lock().iter_mut().find(|n| n.port == port) {
            node.kill();
            node.spawn(&server);
        }
    }

    /// Waits until every running node reports `cluster_state:ok` with all
    /// slots served, every master is served by a running node, and every
    /// running replica's link to its master is up. Panics after `timeout`.
    #[allow(clippy::disallowed_methods, reason = "a synchronous test helper")]
    pub fn wait_healthy(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let problem = self.health_problem();
            match problem {
                None => return,
                Some(p) => assert!(
                    Instant::now() < deadline,
                    "the Redis Cluster is not healthy after {timeout:?}: {p}"
                ),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn health_problem(&self) -> Option<String> {
        let ports = self.live_ports();
        for &port in &ports {
            let info = match command(port, &["CLUSTER", "INFO"]) {
                Ok(i) => i,
                Err(e) => return Some(format!("node {port}: {e}")),
            };
            if !info.contains("cluster_state:ok") || !info.contains("cluster_slots_ok:16384") {
                return Some(format!(
                    "node {port}: {}",
                    info.lines().take(3).collect::<Vec<_>>().join(" ")
                ));
            }
            let repl = match command(port, &["INFO", "replication"]) {
                Ok(r) => r,
                Err(e) => return Some(format!("node {port}: {e}")),
            };
            if repl.contains("role:slave") && !repl.contains("master_link_status:up") {
                return Some(format!("replica {port} is not in sync with its master"));
            }
            // Every node's view: exactly one running master per slot range.
            let nodes = match command(port, &["CLUSTER", "NODES"]) {
                Ok(n) => n,
                Err(e) => return Some(format!("node {port}: {e}")),
            };
            let serving: Vec<Option<u16>> = nodes
                .lines()
                .map(|line| line.split_whitespace().collect::<Vec<_>>())
                .filter(|f| f.len() > 8 && f[2].contains("master") && !f[2].contains("fail"))
                .map(|f| node_port(f[1]))
                .collect();
            if serving.len() != MASTERS || !serving.iter().all(|p| p.is_some_and(|p| ports.contains(&p))) {
                return Some(format!(
                    "node {port} sees masters {serving:?}, running nodes are {ports:?}"
                ));
            }
            // ...and every other running node is a replica.
            let replicas = nodes
                .lines()
                .filter(|l| {
                    l.split_whitespace()
                        .nth(2)
                        .is_some_and(|f| f.contains("slave") && !f.contains("fail"))
                })
                .count();
            if replicas != ports.len() - MASTERS {
                return Some(format!("node {port} sees {replicas} replicas"));
            }
        }
        None
    }
}

impl Node {
    #[allow(clippy::disallowed_methods, reason = "synchronous set-up, before any gateway runs")]
    fn spawn(&mut self, server: &Path) {
        let child = Command::new(server)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])
            .args(["--cluster-port", &self.bus_port.to_string()])
            .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            // Replicas sync at once (the default waits 5 s for more replicas).
            .args(["--repl-diskless-sync-delay", "0"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--daemonize", "no", "--protected-mode", "no", "--loglevel", "warning"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while command(self.port, &["PING"]).as_deref() != Ok("PONG") {
            assert!(
                Instant::now() < deadline,
                "redis-server (cluster node) did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in self.lock().iter_mut() {
            node.kill();
        }
    }
}

/// `127.0.0.1:7000@17000` -> 7000.
fn node_port(addr: &str) -> Option<u16> {
    addr.split('@').next()?.rsplit(':').next()?.parse().ok()
}

/// The port of the master that `CLUSTER NODES` says serves `slot`.
fn serving_master(nodes: &str, slot: u16) -> Option<u16> {
    nodes.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
            return None;
        }
        let serves = fields[8..].iter().any(|range| {
            let (lo, hi) = range.split_once('-').unwrap_or((range, range));
            matches!((lo.parse::<u16>(), hi.parse::<u16>()), (Ok(lo), Ok(hi)) if (lo..=hi).contains(&slot))
        });
        serves.then(|| node_port(fields[1])).flatten()
    })
}

/// Sends one command to the node on `port` and returns a simple, integer or
/// bulk-string reply as text (an error reply is `Err`).
fn command(port: u16, args: &[&str]) -> Result<String, String> {
    commands(port, &[args])?.pop().ok_or_else(|| "no reply".to_owned())
}

/// Sends `cmds` on ONE connection (what `WAIT` counts is the writes of its
/// own connection) and returns their replies in order; the first error
/// reply ends it.
fn commands(port: u16, cmds: &[&[&str]]) -> Result<Vec<String>, String> {
    let stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    let mut request = String::new();
    for args in cmds {
        request.push_str(&format!("*{}\r\n", args.len()));
        for a in *args {
            request.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
    }
    (&stream)
        .write_all(request.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut reader = BufReader::new(stream);
    let mut replies = Vec::with_capacity(cmds.len());
    for _ in cmds {
        let mut line = String::new();
        reader.read_line(&mut line).map_err(|e| format!("read: {e}"))?;
        let line = line.trim_end();
        let (kind, rest) = line.split_at(line.len().min(1));
        replies.push(match kind {
            "+" | ":" => rest.to_owned(),
            "-" => return Err(rest.to_owned()),
            "$" => {
                let len: usize = rest.parse().map_err(|_| format!("bad reply {line:?}"))?;
                let mut body = vec![0; len + 2];
                reader.read_exact(&mut body).map_err(|e| format!("read: {e}"))?;
                body.truncate(len);
                String::from_utf8_lossy(&body).into_owned()
            }
            _ => return Err(format!("unexpected reply {line:?}")),
        });
    }
    Ok(replies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serving_master_is_read_from_cluster_nodes() {
        let nodes = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7002@17002 master - 0 1 2 connected 5461-10922
c3 127.0.0.1:7003@17003 master,fail - 0 1 3 connected 10923-16383
d4 127.0.0.1:7004@17004 slave a1 0 1 1 connected
e5 127.0.0.1:7005@17005 master - 0 1 4 connected 12000 10923-11999
";
        assert_eq!(serving_master(nodes, 0), Some(7001));
        assert_eq!(serving_master(nodes, 5461), Some(7002));
        assert_eq!(serving_master(nodes, 12000), Some(7005), "a single slot");
        assert_eq!(serving_master(nodes, 11000), Some(7005), "not the failed master");
        assert_eq!(node_port("127.0.0.1:7000@17000"), Some(7000));
    }

    #[test]
    fn a_killed_master_is_replaced_by_its_replica_and_can_rejoin() {
        let started = Instant::now();
        let cluster = RedisCluster::start();
        let start_took = started.elapsed();
        assert_eq!(cluster.urls().len(), 6);
        let before = cluster.master_of("{k}");
        // SET and WAIT on one connection: WAIT counts that connection's
        // writes (on a fresh one it would answer at once).
        assert_eq!(
            commands(before, &[&["SET", "{k}", "v"], &["WAIT", "1", "2000"]]),
            Ok(vec!["OK".to_owned(), "1".to_owned()]),
            "the replica has it"
        );
        assert_eq!(cluster.kill_master_of("{k}"), before);
        let killed = Instant::now();
        cluster.wait_healthy(Duration::from_secs(30));
        let failover_took = killed.elapsed();
        let after = cluster.master_of("{k}");
        assert_ne!(after, before, "the replica took the slot over");
        assert_eq!(command(after, &["GET", "{k}"]).as_deref(), Ok("v"), "with the data");
        let restarted = Instant::now();
        cluster.restart(before);
        cluster.wait_healthy(Duration::from_secs(30));
        let rejoin_took = restarted.elapsed();
        assert_eq!(cluster.master_of("{k}"), after, "the old master rejoined as a replica");
        eprintln!("cluster start {start_took:?}, failover {failover_took:?}, rejoin {rejoin_took:?}");
    }
}
