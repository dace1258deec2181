//! The `cluster-failover` scenario's cluster and its fault: a local 3 + 3
//! Redis Cluster with an append-only file fsync'd on every write on every
//! node; a third into the load the master holding the most keys is killed
//! with SIGKILL, its replica takes over (after `cluster-node-timeout`),
//! and the killed node is started again on the same port and folder (its
//! `nodes.conf` and append-only file), where it rejoins as a replica.
//!
//! Replication is asynchronous: a write the master acknowledged but had
//! not yet sent to its replica is gone after the failover (the rejoining
//! node drops its own copy and syncs from the new master), whatever the
//! append-only file held. Only a gateway that waits for a replica's
//! acknowledgement (`[store] wait_replicas`, `--wait-replicas`) closes
//! that window, so the scenario reports `lost` as it is either way.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::cluster::{Aof, Cluster, ClusterSpec};
use crate::redis::info;

/// `cluster-node-timeout` of the scenario's cluster.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for the replica to take over, and for the killed node to
/// rejoin.
const HEAL_MAX: Duration = Duration::from_secs(60);

/// Starts the scenario's cluster with its files in `dir/cluster`.
pub async fn start_cluster(redis_server: &str, dir: &Path) -> anyhow::Result<Cluster> {
    Cluster::start(ClusterSpec {
        redis_server: redis_server.to_owned(),
        dir: dir.join("cluster"),
        node_timeout: NODE_TIMEOUT,
        aof: Aof::Always,
    })
    .await
}

/// What the fault did, and how long the cluster took to heal.
#[derive(Debug, Clone)]
pub struct Failover {
    pub killed: SocketAddr,
    /// From the kill until a replica served every slot of the killed master.
    pub taken_over: Duration,
    /// From the restart until the killed node was back as a replica, in sync.
    pub rejoined: Duration,
}

impl Failover {
    pub fn describe(&self) -> String {
        format!(
            "cluster master {} (the one with the most keys) killed (kill -9; append-only file, fsync always on \
             every node); its replica took over after {:.1} s; started again, it rejoined as a replica after {:.1} s",
            self.killed,
            self.taken_over.as_secs_f64(),
            self.rejoined.as_secs_f64()
        )
    }
}

/// Kills the busiest master, waits for its replica to take over, starts it
/// again and waits until it is a replica in sync.
pub async fn kill_master_and_rejoin(cluster: &mut Cluster) -> anyhow::Result<Failover> {
    let killed = cluster.busiest_master().await?;
    cluster.kill(killed);
    let at = Instant::now();
    cluster.wait_healthy(HEAL_MAX).await?;
    let taken_over = at.elapsed();
    cluster.restart(killed).await?;
    let at = Instant::now();
    cluster.wait_healthy(HEAL_MAX).await?;
    let rejoined = at.elapsed();
    let role = info(killed, "replication").await?;
    if !role.contains("role:slave") {
        bail!("the killed master {killed} came back as a master, not a replica");
    }
    Ok(Failover {
        killed,
        taken_over,
        rejoined,
    })
}
