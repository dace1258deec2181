//! Test harness for hookgate's integration tests: a real `redis-server` on a
//! free port that a test can kill and restart, a real Redis Cluster (three
//! masters, three replicas) on loopback, a real HTTP receiver on 127.0.0.1
//! that records what arrives and answers as the test says, and an OTLP/HTTP
//! endpoint that keeps the spans a gateway exports.

#![forbid(unsafe_code)]

pub mod certs;
pub mod otlp;
pub mod proxy;
mod receiver;
mod redis_cluster;
mod redis_server;
pub mod scripts;
pub mod wasm;

use std::future::Future;
use std::time::{Duration, Instant};

pub use receiver::{Received, Receiver, Reply};
pub use redis_cluster::{NODE_TIMEOUT_MS, RedisCluster};
pub use redis_server::RedisServer;

/// A free TCP port on 127.0.0.1 (bound and released).
pub fn free_port() -> u16 {
    // The kernel may hand the same free port to two callers that bind and
    // release it one after the other (tests starting Redis Clusters side by
    // side did get one node's port twice, and two clusters met). Within
    // this process no port is handed out twice.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("no free port on 127.0.0.1");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
    panic!("no port on 127.0.0.1 that this process has not handed out already");
}

/// A fresh empty folder under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("hookgate-{tag}-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A number unique within this process (for key prefixes and names).
pub fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Polls `check` every 20 ms until it returns `Some`, or panics with `what`
/// after `timeout`.
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
