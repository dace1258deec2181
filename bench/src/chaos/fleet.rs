//! What a chaos scenario runs: a standalone `redis-server` with an
//! append-only file fsync'd on every write (so a `kill -9` of Redis loses
//! nothing it acknowledged), or a Redis Cluster ([`crate::cluster`]), two
//! gateway processes on it, and the receiver; each process can be killed
//! with SIGKILL and started again on the same port and files.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::gateway::GatewayProc;
use crate::http::Target;
use crate::redis::{info, server_command, start};

/// The API token of the chaos gateways.
pub const TOKEN: &str = "hookgate-chaos-token-0123456789";
/// The event type the chaos webhook subscribes to.
pub const EVENT_TYPE: &str = "chaos.event";

/// A `redis-server` that can be killed and started again on its port.
pub struct Redis {
    bin: String,
    dir: PathBuf,
    pub addr: SocketAddr,
    child: Option<Child>,
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Redis {
    pub async fn start(bin: &str, dir: &Path) -> anyhow::Result<Self> {
        let mut r = Redis {
            bin: bin.to_owned(),
            dir: dir.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], crate::port::free()?)),
            child: None,
        };
        r.restart().await?;
        Ok(r)
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// SIGKILL, no shutdown save: only what the AOF holds survives.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it (again) on the same port and folder; waits until it answers.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        let mut cmd = server_command(&self.bin, self.addr.port(), &self.dir);
        cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        let child = start(cmd, &self.bin)?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        // Answers INFO once the AOF is loaded.
        while info(self.addr, "persistence")
            .await
            .map_or(true, |i| i.contains("loading:1"))
        {
            if Instant::now() > deadline {
                bail!("{} did not answer on {} within 20 s", self.bin, self.addr);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

/// One gateway of the pair: its config and process.
pub struct Gateway {
    pub target: Target,
    bin: PathBuf,
    config: PathBuf,
    /// Logs go to `<log_stem>-<start number>.log`.
    log_stem: PathBuf,
    proc: Option<GatewayProc>,
    pub restarts: u32,
}

impl Gateway {
    /// Writes its config (`store`: the `[store]` lines, `delivery_timeout`
    /// per attempt) and starts it.
    pub async fn start(
        bin: &Path,
        dir: &Path,
        name: &str,
        store: &str,
        receiver: SocketAddr,
        delivery_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let listen = SocketAddr::from(([127, 0, 0, 1], crate::port::free()?));
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, config_toml(listen, store, receiver, delivery_timeout))?;
        let mut g = Gateway {
            target: Target::local(listen),
            bin: bin.to_owned(),
            config,
            log_stem: dir.join(name),
            proc: None,
            restarts: 0,
        };
        g.launch().await?;
        Ok(g)
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        // GatewayProc's drop sends SIGKILL and reaps it.
        self.proc = None;
    }

    /// `kill -9`, then start it again and wait until it is healthy.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.restarts += 1;
        self.launch().await
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let log = PathBuf::from(format!("{}-{}.log", self.log_stem.display(), self.restarts));
        let mut p = GatewayProc::spawn(&self.bin, &self.config, "warn", &log)?;
        p.wait_healthy(&self.target, Duration::from_secs(30)).await?;
        self.proc = Some(p);
        Ok(())
    }
}

/// The `[store]` lines for a standalone Redis.
pub fn standalone_store(url: &str) -> String {
    format!("[store]\nbackend = \"redis\"\nurl = \"{url}\"\nprefix = \"chaos\"\n")
}

/// The `[store]` lines for a Redis Cluster (`nodes`: seed URLs), with
/// `wait_replicas = N` when `wait_replicas` > 0.
pub fn cluster_store(nodes: &[String], wait_replicas: u32) -> String {
    let nodes: Vec<String> = nodes.iter().map(|n| format!("\"{n}\"")).collect();
    let mut t = format!(
        "[store]\nbackend = \"redis\"\ncluster_nodes = [{}]\nprefix = \"chaos\"\n",
        nodes.join(", ")
    );
    if wait_replicas > 0 {
        t.push_str(&format!("wait_replicas = {wait_replicas}\n"));
    }
    t
}

/// The chaos gateways' config: `store` (its `[store]` lines), one webhook
/// to the receiver, short retry waits and a short circuit-breaker
/// cool-down so faults clear within seconds, a lease short enough that a
/// killed gateway's deliveries are handed out again quickly.
pub fn config_toml(listen: SocketAddr, store: &str, receiver: SocketAddr, timeout: Duration) -> String {
    format!(
        r#"[server]
listen = "{listen}"

[api]
tokens = ["{TOKEN}"]
rate_limit_per_minute = 60000000

{store}
[delivery]
allow_private_destinations = true
timeout = "{timeout_ms}ms"
retry_base = "200ms"
retry_factor = 2
retry_max_delay = "3s"
max_retries = 10
rate_limit_per_minute = 60000000
rate_limit_burst = 100000
circuit_cooldown = "1s"
circuit_max_cooldown = "2s"

[[webhooks]]
id = "chaos"
url = "http://{receiver}/hook"
events = ["{EVENT_TYPE}"]
secret = "hookgate-chaos-secret-0123456789"
"#,
        timeout_ms = timeout.as_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_lines_for_standalone_and_cluster() {
        let rx = "127.0.0.1:9".parse().unwrap();
        let gw = "127.0.0.1:8".parse().unwrap();
        let one = config_toml(
            gw,
            &standalone_store("redis://127.0.0.1:6379"),
            rx,
            Duration::from_secs(1),
        );
        assert!(one.contains(
            "[store]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\nprefix = \"chaos\"\n\n[delivery]"
        ));
        let nodes = ["redis://127.0.0.1:7000".to_owned(), "redis://127.0.0.1:7001".to_owned()];
        let c = config_toml(gw, &cluster_store(&nodes, 0), rx, Duration::from_secs(1));
        assert!(c.contains(
            "cluster_nodes = [\"redis://127.0.0.1:7000\", \"redis://127.0.0.1:7001\"]\nprefix = \"chaos\"\n\n"
        ));
        assert!(!c.contains("wait_replicas") && !c.contains("url = \"redis"));
        assert!(cluster_store(&nodes, 1).ends_with("prefix = \"chaos\"\nwait_replicas = 1\n"));
    }
}
