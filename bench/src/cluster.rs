//! A local Redis Cluster for `--store redis-cluster` and the chaos
//! scenario `cluster-failover`: three masters and three replicas, each a
//! `redis-server --cluster-enabled yes` child on a free loopback port with
//! a free cluster-bus port and its own folder (`nodes.conf`, append-only
//! file), all killed on drop.
//!
//! The cluster is made the way `redis-cli --cluster create` makes it, with
//! plain commands (so only `redis-server` is needed): distinct config
//! epochs, a third of the slots per master (`CLUSTER ADDSLOTSRANGE`), one
//! `CLUSTER MEET` per node, then `CLUSTER REPLICATE` for each replica.
//! Every wait is bounded.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::redis::{command, server_command, start};

/// Masters (each with one replica).
pub const MASTERS: usize = 3;
/// Hash slots of a Redis Cluster.
const SLOTS: u32 = 16384;

/// Persistence of every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aof {
    /// No persistence: a restarted node comes back empty.
    Off,
    /// `appendonly yes`, `appendfsync everysec`.
    EverySec,
    /// `appendonly yes`, `appendfsync always`: a `kill -9` loses nothing
    /// the node acknowledged.
    Always,
}

/// How to start the cluster.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub redis_server: String,
    /// The nodes' folders go under it.
    pub dir: PathBuf,
    /// `cluster-node-timeout`: how long a master may be silent before its
    /// replica takes over.
    pub node_timeout: Duration,
    pub aof: Aof,
}

/// One node: ports, folder, process.
#[derive(Debug)]
struct Node {
    port: u16,
    bus_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn spawn(&mut self, spec: &ClusterSpec) -> anyhow::Result<()> {
        self.kill();
        let (appendonly, fsync) = match spec.aof {
            Aof::Off => ("no", "everysec"),
            Aof::EverySec => ("yes", "everysec"),
            Aof::Always => ("yes", "always"),
        };
        let mut cmd = server_command(&spec.redis_server, self.port, &self.dir);
        cmd.args(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])
            .args(["--cluster-port", &self.bus_port.to_string()])
            .args(["--cluster-node-timeout", &spec.node_timeout.as_millis().to_string()])
            .args(["--appendonly", appendonly, "--appendfsync", fsync])
            // Replicas sync at once (the default waits 5 s for more replicas).
            .args(["--repl-diskless-sync-delay", "0"]);
        let child = start(cmd, &spec.redis_server)?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL: only what the append-only file holds survives.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A six-node Redis Cluster on loopback, killed on drop.
#[derive(Debug)]
pub struct Cluster {
    spec: ClusterSpec,
    nodes: Vec<Node>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
    }
}

/// Waits up to `timeout` until the node at `addr` answers `PING` (and has
/// loaded its data).
async fn wait_answering(addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if command(addr, &["PING"]).await.is_ok_and(|p| p == "PONG") {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("redis-server (cluster node) did not answer on {addr} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Slots `lo..=hi` of master `i` of `n`.
pub fn slot_range(i: usize, n: usize) -> (u32, u32) {
    let lo = SLOTS * i as u32 / n as u32;
    let hi = SLOTS * (i as u32 + 1) / n as u32 - 1;
    (lo, hi)
}

impl Cluster {
    /// Starts six nodes, makes them a cluster (nodes 0..3 masters, 3..6
    /// their replicas) and waits until it is healthy.
    pub async fn start(spec: ClusterSpec) -> anyhow::Result<Self> {
        let mut nodes = Vec::with_capacity(2 * MASTERS);
        for _ in 0..2 * MASTERS {
            let port = crate::port::free()?;
            let dir = spec.dir.join(format!("node-{port}"));
            std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
            nodes.push(Node {
                port,
                bus_port: crate::port::free()?,
                dir,
                child: None,
            });
        }
        let mut cluster = Cluster { spec, nodes };
        for n in &mut cluster.nodes {
            n.spawn(&cluster.spec)?;
        }
        for n in &cluster.nodes {
            wait_answering(n.addr(), Duration::from_secs(10)).await?;
        }
        cluster.create().await?;
        cluster.wait_healthy(Duration::from_secs(60)).await?;
        Ok(cluster)
    }

    async fn create(&self) -> anyhow::Result<()> {
        for (i, n) in self.nodes.iter().enumerate() {
            command(n.addr(), &["CLUSTER", "SET-CONFIG-EPOCH", &(i + 1).to_string()]).await?;
        }
        for (i, n) in self.nodes.iter().take(MASTERS).enumerate() {
            let (lo, hi) = slot_range(i, MASTERS);
            command(
                n.addr(),
                &["CLUSTER", "ADDSLOTSRANGE", &lo.to_string(), &hi.to_string()],
            )
            .await?;
        }
        let first = self.nodes[0].addr();
        for n in &self.nodes[1..] {
            let (port, bus) = (n.port.to_string(), n.bus_port.to_string());
            command(first, &["CLUSTER", "MEET", "127.0.0.1", &port, &bus]).await?;
        }
        // A replica can follow its master once it knows it.
        let deadline = Instant::now() + Duration::from_secs(30);
        for (i, replica) in self.nodes[MASTERS..].iter().enumerate() {
            let master_id = command(self.nodes[i].addr(), &["CLUSTER", "MYID"]).await?;
            loop {
                match command(replica.addr(), &["CLUSTER", "REPLICATE", &master_id]).await {
                    Ok(_) => break,
                    Err(e) if Instant::now() > deadline => {
                        return Err(e.context("the cluster's nodes did not meet within 30 s"));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }
        Ok(())
    }

    /// `redis://127.0.0.1:<port>` of every node: the seed list.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| format!("redis://{}", n.addr())).collect()
    }

    /// Every node's address (running or not).
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(Node::addr).collect()
    }

    fn live(&self) -> Vec<SocketAddr> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(Node::addr)
            .collect()
    }

    /// The masters serving slots, as the first running node sees them.
    pub async fn masters(&self) -> anyhow::Result<Vec<SocketAddr>> {
        let first = *self.live().first().context("no cluster node runs")?;
        let nodes = command(first, &["CLUSTER", "NODES"]).await?;
        Ok(serving_masters(&nodes))
    }

    /// The master holding the most keys (`DBSIZE`): on a store that keeps
    /// everything in one slot, the one with all of it.
    pub async fn busiest_master(&self) -> anyhow::Result<SocketAddr> {
        let mut best = None;
        for m in self.masters().await? {
            let keys: u64 = command(m, &["DBSIZE"]).await?.parse().context("DBSIZE answer")?;
            if best.is_none_or(|(_, k)| keys > k) {
                best = Some((m, keys));
            }
        }
        best.map(|(m, _)| m).context("the cluster has no master")
    }

    /// `kill -9` the node at `addr`.
    pub fn kill(&mut self, addr: SocketAddr) {
        if let Some(n) = self.nodes.iter_mut().find(|n| n.addr() == addr) {
            n.kill();
        }
    }

    /// Starts the node at `addr` again on the same port and folder (its
    /// `nodes.conf` and append-only file) and waits until it answers; it
    /// rejoins the cluster (as a replica if its replica took over).
    pub async fn restart(&mut self, addr: SocketAddr) -> anyhow::Result<()> {
        let spec = self.spec.clone();
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.addr() == addr)
            .with_context(|| format!("no cluster node at {addr}"))?;
        node.spawn(&spec)?;
        wait_answering(addr, Duration::from_secs(30)).await
    }

    /// Waits up to `timeout` until every running node says
    /// `cluster_state:ok` with all slots served by [`MASTERS`] running
    /// masters, every other running node is a replica, and every replica's
    /// link to its master is up.
    pub async fn wait_healthy(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let problem = match self.health_problem().await {
                Ok(p) => p,
                Err(e) => Some(format!("{e:#}")),
            };
            let Some(problem) = problem else {
                return Ok(());
            };
            if Instant::now() > deadline {
                bail!("the Redis Cluster is not healthy after {timeout:?}: {problem}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn health_problem(&self) -> anyhow::Result<Option<String>> {
        let live = self.live();
        for &addr in &live {
            let info = command(addr, &["CLUSTER", "INFO"]).await?;
            if !info.contains("cluster_state:ok") || !info.contains("cluster_slots_ok:16384") {
                let head: Vec<&str> = info.lines().take(3).collect();
                return Ok(Some(format!("node {addr}: {}", head.join(" "))));
            }
            let repl = command(addr, &["INFO", "replication"]).await?;
            if repl.contains("role:slave") && !repl.contains("master_link_status:up") {
                return Ok(Some(format!("replica {addr} is not in sync with its master")));
            }
            let nodes = command(addr, &["CLUSTER", "NODES"]).await?;
            let masters = serving_masters(&nodes);
            if masters.len() != MASTERS || !masters.iter().all(|m| live.contains(m)) {
                return Ok(Some(format!(
                    "node {addr} sees masters {masters:?}, running nodes are {live:?}"
                )));
            }
            let replicas = nodes
                .lines()
                .filter_map(|l| l.split_whitespace().nth(2))
                .filter(|flags| flags.contains("slave") && !flags.contains("fail"))
                .count();
            if replicas != live.len() - MASTERS {
                return Ok(Some(format!("node {addr} sees {replicas} replicas")));
            }
        }
        Ok(None)
    }
}

/// `127.0.0.1:7000@17000` -> the address.
fn node_addr(field: &str) -> Option<SocketAddr> {
    field.split('@').next()?.parse().ok()
}

/// The masters `CLUSTER NODES` lists as serving slots and not failed, in
/// address order.
pub fn serving_masters(nodes: &str) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = nodes
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 8 && f[2].contains("master") && !f[2].contains("fail"))
        .filter_map(|f| node_addr(f[1]))
        .collect();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_split_in_thirds_without_gaps() {
        let ranges: Vec<_> = (0..3).map(|i| slot_range(i, 3)).collect();
        assert_eq!(ranges[0].0, 0);
        assert_eq!(ranges[2].1, SLOTS - 1);
        assert_eq!(ranges[0].1 + 1, ranges[1].0);
        assert_eq!(ranges[1].1 + 1, ranges[2].0);
        assert_eq!(ranges, [(0, 5460), (5461, 10921), (10922, 16383)]);
    }

    #[test]
    fn serving_masters_skip_failed_and_slotless_nodes() {
        let nodes = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7002@17002 master - 0 1 2 connected 5461-10922
c3 127.0.0.1:7003@17003 master,fail - 0 1 3 connected 10923-16383
d4 127.0.0.1:7004@17004 slave a1 0 1 1 connected
e5 127.0.0.1:7005@17005 master - 0 1 4 connected 10923-16383
f6 127.0.0.1:7006@17006 master - 0 1 0 connected
";
        let ports: Vec<u16> = serving_masters(nodes).iter().map(SocketAddr::port).collect();
        assert_eq!(ports, [7001, 7002, 7005]);
    }
}
