//! Free loopback ports for the children the bench starts (Redis nodes,
//! cluster buses, gateways).
//!
//! A port is found by binding `127.0.0.1:0` and letting go of it, so the
//! kernel may hand the same port out again to the next caller: a cluster
//! once got one port for two of its nodes, and the second node's
//! `CLUSTER SET-CONFIG-EPOCH` then reached the first node again ("config
//! epoch is already non-zero"). [`free`] never gives one port out twice in
//! a process.

use std::collections::BTreeSet;
use std::sync::Mutex;

use anyhow::{Context, bail};

/// Ports already given out by this process.
static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// How many ports the kernel may offer that were given out already before
/// [`free`] gives up.
const TRIES: usize = 1000;

/// A port on 127.0.0.1 that was free a moment ago and that this process
/// has not given out before.
pub fn free() -> anyhow::Result<u16> {
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..TRIES {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("find a free port on 127.0.0.1")?
            .port();
        if given.insert(port) {
            return Ok(port);
        }
    }
    bail!("no free port on 127.0.0.1 that this process has not used already ({TRIES} tries)")
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// Two thousand binds of `127.0.0.1:0` in a row get some port twice
    /// from the kernel (about a hundred repeats on the development machine).
    #[test]
    fn never_gives_a_port_twice() {
        let ports: Vec<u16> = (0..2000).map(|_| free().unwrap()).collect();
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
        assert!(ports.iter().all(|&p| p != 0));
    }
}
