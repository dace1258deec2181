//! The bench's own Redis Cluster (`--store redis-cluster`, chaos
//! `cluster-failover`): six real `redis-server` nodes on loopback made
//! into 3 masters + 3 replicas, snapshots of every node, and the
//! failover fault: the master with the most keys is killed, its replica
//! takes over with the data, and the killed node rejoins as a replica.
//! Needs `redis-server` on the PATH (as the chaos test does).

use hookgate_bench::chaos::failover;
use hookgate_bench::cluster::{MASTERS, slot_range};
use hookgate_bench::redis::{command, info, snapshot};

/// A tag whose hash slot is in master `i`'s third of the slots.
async fn key_on_master(any: std::net::SocketAddr, i: usize) -> String {
    let (lo, hi) = slot_range(i, MASTERS);
    for n in 0..10_000 {
        let key = format!("{{t{n}}}:k");
        let slot: u32 = command(any, &["CLUSTER", "KEYSLOT", &key])
            .await
            .unwrap()
            .parse()
            .unwrap();
        if (lo..=hi).contains(&slot) {
            return key;
        }
    }
    panic!("no key found for master {i}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_starts_splits_slots_and_survives_a_master_kill() {
    let dir = std::env::temp_dir().join(format!("hookgate-bench-cluster-test-{}", std::process::id()));
    let mut cluster = failover::start_cluster("redis-server", &dir)
        .await
        .expect("the cluster starts");
    let addrs = cluster.addrs();
    assert_eq!(addrs.len(), 2 * MASTERS);
    assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    let masters = cluster.masters().await.unwrap();
    assert_eq!(masters.len(), MASTERS, "{masters:?}");

    // Keys on the master of the last third, more of them than anywhere else.
    let busy_key = key_on_master(addrs[0], 2).await;
    let busy = addrs[2];
    for i in 0..50 {
        let key = format!("{busy_key}{i}");
        assert_eq!(command(busy, &["SET", &key, "v"]).await.unwrap(), "OK");
    }
    let other = key_on_master(addrs[0], 0).await;
    assert_eq!(command(addrs[0], &["SET", &other, "v"]).await.unwrap(), "OK");
    // Its replica has them: (WAIT would count only a fresh connection's
    // writes, none) its acknowledged offset reaches the master's.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let repl = info(busy, "replication").await.unwrap();
        let field = |name: &str| {
            repl.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
        };
        let master: Option<u64> = field("master_repl_offset:").and_then(|v| v.parse().ok());
        let replica: Option<u64> = field("slave0:").and_then(|v| {
            v.split(',')
                .find_map(|kv| kv.strip_prefix("offset="))
                .and_then(|o| o.parse().ok())
        });
        if master.is_some() && master == replica {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replica never caught up: {repl}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(cluster.busiest_master().await.unwrap(), busy);

    let snaps: Vec<_> = {
        let mut v = Vec::new();
        for &a in &addrs {
            v.push(snapshot(a).await.unwrap());
        }
        v
    };
    assert_eq!(snaps.iter().filter(|s| s.master).count(), MASTERS);
    assert!(snaps[2].used_memory > 0 && snaps[2].calls.get("set").copied() == Some(50));
    assert!(
        snaps[5]
            .calls
            .keys()
            .all(|k| !k.starts_with("cluster") && k != "replconf")
    );

    let f = failover::kill_master_and_rejoin(&mut cluster)
        .await
        .expect("the cluster heals");
    assert_eq!(f.killed, busy);
    let now = cluster.masters().await.unwrap();
    assert_eq!(now.len(), MASTERS);
    assert!(!now.contains(&busy), "its replica took over: {now:?}");
    assert!(info(busy, "replication").await.unwrap().contains("role:slave"));
    let new_master = *now.iter().find(|m| !masters.contains(m)).expect("a promoted replica");
    let got = command(new_master, &["GET", &format!("{busy_key}49")]).await.unwrap();
    assert_eq!(got, "v", "with the data");
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}
