//! The Redis figures of a report, from every node's readings before and
//! after the measured phase: one node for a standalone Redis, six for a
//! cluster. Commands and memory are summed over the masters (a replica
//! replays its master's writes: counting it too would count them twice),
//! CPU over every node, and on a cluster each master's share of the
//! commands shows how evenly the store spreads over the cluster.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Serialize;

use crate::redis::{RedisSnapshot, calls_between};
use crate::report::per;

/// One node's readings.
#[derive(Debug, Clone)]
pub struct NodeReadings {
    pub addr: SocketAddr,
    pub before: RedisSnapshot,
    pub after: RedisSnapshot,
}

impl NodeReadings {
    /// A master before and after (a failover in between makes it neither).
    fn master(&self) -> bool {
        self.before.master && self.after.master
    }
}

/// One master's part of the commands.
#[derive(Debug, Clone, Serialize)]
pub struct MasterShare {
    pub addr: String,
    pub commands: u64,
    /// Of all masters' commands, 0..1.
    pub share: f64,
    /// This master's commands by name (what makes one busier than another).
    pub by_command: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct RedisFigures {
    /// Redis processes read (1, or 6 on a cluster) and masters among them.
    pub nodes: usize,
    /// All commands on the masters, including those run inside scripts.
    pub commands_per_delivery: f64,
    /// EVALSHA calls: the gateway's store round trips.
    pub evalsha_per_delivery: f64,
    pub by_command_per_delivery: BTreeMap<String, f64>,
    /// CPU of every Redis process (= ms per delivery).
    pub cpu_s_per_1000_deliveries: f64,
    /// Sum of the masters' `used_memory_peak`.
    pub used_memory_peak_mib: f64,
    /// Masters' `used_memory` after the load (every delivery final) minus
    /// before it.
    pub used_memory_delta_bytes: i64,
    /// That per delivery of the measured phase.
    pub bytes_per_delivery: Option<f64>,
    /// Whether the gateway said nothing was pending or in flight when the
    /// memory was read (`None`: it did not say).
    pub settled: Option<bool>,
    /// Each master's share of the commands.
    pub masters: Vec<MasterShare>,
}

/// Shares of every master between these (inclusive) meet the cluster
/// target.
pub const SHARE_TARGET: (f64, f64) = (0.25, 0.42);

impl RedisFigures {
    pub fn new(nodes: &[NodeReadings], delivered: u64, settled: Option<bool>) -> Option<Self> {
        if nodes.is_empty() {
            return None;
        }
        let masters: Vec<&NodeReadings> = nodes.iter().filter(|n| n.master()).collect();
        let mut calls: BTreeMap<String, u64> = BTreeMap::new();
        let mut per_master = Vec::with_capacity(masters.len());
        for m in &masters {
            let c = calls_between(&m.before, &m.after);
            for (k, &v) in &c {
                *calls.entry(k.clone()).or_default() += v;
            }
            per_master.push((m.addr, c));
        }
        let total: u64 = calls.values().sum();
        let cpu_s: f64 = nodes.iter().map(|n| n.after.cpu_s - n.before.cpu_s).sum();
        let delta: i64 = masters
            .iter()
            .map(|m| m.after.used_memory as i64 - m.before.used_memory as i64)
            .sum();
        Some(RedisFigures {
            nodes: nodes.len(),
            commands_per_delivery: per(total as f64, delivered),
            evalsha_per_delivery: per(calls.get("evalsha").copied().unwrap_or(0) as f64, delivered),
            by_command_per_delivery: calls
                .iter()
                .map(|(k, &v)| (k.clone(), per(v as f64, delivered)))
                .collect(),
            cpu_s_per_1000_deliveries: per(cpu_s, delivered) * 1000.0,
            used_memory_peak_mib: masters.iter().map(|m| m.after.used_memory_peak).sum::<u64>() as f64
                / (1024.0 * 1024.0),
            used_memory_delta_bytes: delta,
            bytes_per_delivery: (delivered > 0).then(|| delta as f64 / delivered as f64),
            settled,
            masters: per_master
                .into_iter()
                .map(|(addr, by_command)| {
                    let commands = by_command.values().sum::<u64>();
                    MasterShare {
                        addr: addr.to_string(),
                        commands,
                        share: per(commands as f64, total),
                        by_command,
                    }
                })
                .collect(),
        })
    }

    /// `33/34/33%`: the masters' shares, in node order.
    pub fn shares_text(&self) -> String {
        let parts: Vec<String> = self.masters.iter().map(|m| format!("{:.0}", m.share * 100.0)).collect();
        format!("{}%", parts.join("/"))
    }

    /// Whether every master's share is within [`SHARE_TARGET`]; `None`
    /// with fewer than two masters.
    pub fn shares_even(&self) -> Option<bool> {
        (self.masters.len() > 1).then(|| {
            self.masters
                .iter()
                .all(|m| (SHARE_TARGET.0..=SHARE_TARGET.1).contains(&m.share))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(evalsha: u64, hset: u64, cpu_s: f64, mem: u64, master: bool) -> RedisSnapshot {
        RedisSnapshot {
            calls: [("evalsha".to_owned(), evalsha), ("hset".to_owned(), hset)].into(),
            cpu_s,
            used_memory: mem,
            used_memory_peak: mem,
            pid: None,
            master,
        }
    }

    fn node(port: u16, before: RedisSnapshot, after: RedisSnapshot) -> NodeReadings {
        NodeReadings {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            before,
            after,
        }
    }

    #[test]
    fn masters_are_summed_replicas_only_count_for_cpu() {
        let nodes = [
            node(7000, snap(0, 0, 1.0, 1000, true), snap(100, 200, 2.0, 5000, true)),
            node(7001, snap(0, 0, 1.0, 1000, true), snap(100, 100, 1.5, 3000, true)),
            node(7002, snap(0, 0, 1.0, 1000, true), snap(0, 100, 1.5, 1000, true)),
            // A replica replays its master's writes: not counted as commands.
            node(7003, snap(0, 0, 0.0, 1000, false), snap(0, 300, 0.5, 5000, false)),
        ];
        let f = RedisFigures::new(&nodes, 100, Some(true)).unwrap();
        assert_eq!(f.nodes, 4);
        assert_eq!(f.commands_per_delivery, 6.0);
        assert_eq!(f.evalsha_per_delivery, 2.0);
        assert_eq!(f.by_command_per_delivery.get("hset"), Some(&4.0));
        assert!((f.cpu_s_per_1000_deliveries - 25.0).abs() < 1e-9, "2.5 s over 100");
        assert_eq!(f.used_memory_delta_bytes, 6000);
        assert_eq!(f.bytes_per_delivery, Some(60.0));
        assert_eq!(f.shares_text(), "50/33/17%");
        assert_eq!(f.masters[0].by_command.get("hset"), Some(&200));
        assert_eq!(f.masters[2].by_command.get("evalsha"), None, "only commands that grew");
        assert_eq!(f.shares_even(), Some(false));
        let even = [
            node(7000, snap(0, 0, 0.0, 0, true), snap(33, 0, 0.0, 0, true)),
            node(7001, snap(0, 0, 0.0, 0, true), snap(34, 0, 0.0, 0, true)),
            node(7002, snap(0, 0, 0.0, 0, true), snap(33, 0, 0.0, 0, true)),
        ];
        assert_eq!(RedisFigures::new(&even, 10, None).unwrap().shares_even(), Some(true));
    }

    #[test]
    fn one_standalone_node_and_no_node() {
        let one = [node(6379, snap(5, 0, 0.0, 2000, true), snap(10, 0, 0.0, 1000, true))];
        let f = RedisFigures::new(&one, 5, None).unwrap();
        assert_eq!(f.commands_per_delivery, 1.0);
        assert_eq!(
            f.bytes_per_delivery,
            Some(-200.0),
            "memory can shrink; reported as it is"
        );
        assert_eq!(f.shares_even(), None);
        assert_eq!(RedisFigures::new(&one, 0, None).unwrap().bytes_per_delivery, None);
        assert!(RedisFigures::new(&[], 5, None).is_none());
    }
}
