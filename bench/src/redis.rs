//! Redis for the run: a `redis-server` child on a free port (killed on
//! drop), or an existing one on loopback, and `INFO` snapshots of it over a
//! few lines of RESP (command counts, CPU, memory, role).
//!
//! `INFO commandstats` counts the commands scripts run as well as the ones
//! clients send, so the report gives both the total and the `evalsha` count:
//! every store operation of the gateway on its hot path is one `EVALSHA`, so
//! `evalsha` per delivery is its round trips per delivery. Housekeeping is
//! left out of the counts ([`HOUSEKEEPING`]): this tool's `INFO`, clients'
//! `PING`s and `CLUSTER` topology queries, and replication's own traffic.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A `redis-server` this tool started; killed on drop.
pub struct RedisProc {
    child: Child,
    pub addr: SocketAddr,
}

impl Drop for RedisProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `redis-server` (`bin`) on loopback `port` with its files in `dir`: no
/// snapshots, in the foreground, quiet. Add the append-only and cluster
/// options, then [`start`] it.
pub fn server_command(bin: &str, port: u16, dir: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", ""])
        .arg("--dir")
        .arg(dir)
        .args(["--daemonize", "no", "--protected-mode", "no", "--loglevel", "warning"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// Starts a [`server_command`]; a missing binary says how to install it.
pub fn start(mut cmd: Command, bin: &str) -> anyhow::Result<Child> {
    cmd.spawn()
        .with_context(|| format!("cannot start {bin}: install it (`sudo apt-get install -y redis-server`)"))
}

impl RedisProc {
    /// Starts `bin` on a free loopback port with its files in `dir`, no
    /// snapshots, and an append-only file (fsync every second) if `aof`.
    pub async fn spawn(bin: &str, dir: &Path, aof: bool) -> anyhow::Result<Self> {
        let port = crate::port::free()?;
        let mut cmd = server_command(bin, port, dir);
        cmd.args([
            "--appendonly",
            if aof { "yes" } else { "no" },
            "--appendfsync",
            "everysec",
        ]);
        let child = start(cmd, bin).context("or pass --redis-url")?;
        let proc = RedisProc {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while info(proc.addr, "server").await.is_err() {
            if Instant::now() > deadline {
                bail!("{bin} did not answer on {} within 10 s", proc.addr);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(proc)
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }
}

/// The address of `redis://host:port[/db]` (no credentials), loopback only.
pub fn parse_url(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url
        .strip_prefix("redis://")
        .with_context(|| format!("{url}: expected redis://host:port"))?;
    if rest.contains('@') {
        bail!("{url}: credentials are not supported by hookgate-bench's INFO reader");
    }
    let hostport = rest.split('/').next().unwrap_or(rest);
    Ok(crate::http::Target::parse(&format!("http://{hostport}"))
        .with_context(|| format!("--redis-url {url}"))?
        .addr)
}

/// Longest wait for one command's answer.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends one command to `addr` and returns a simple, integer or bulk-string
/// reply as text; an error reply is an error. Bounded by [`COMMAND_TIMEOUT`].
pub async fn command(addr: SocketAddr, args: &[&str]) -> anyhow::Result<String> {
    let fut = async {
        let mut stream = TcpStream::connect(addr).await?;
        let mut request = format!("*{}\r\n", args.len());
        for a in args {
            request.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        stream.write_all(request.as_bytes()).await?;
        let mut reader = BufReader::new(stream);
        let mut header = String::new();
        reader.read_line(&mut header).await?;
        let line = header.trim_end();
        let (kind, rest) = line.split_at(line.len().min(1));
        match kind {
            "+" | ":" => Ok(rest.to_owned()),
            "-" => bail!("{rest}"),
            "$" => {
                let len: usize = rest.parse().with_context(|| format!("unexpected reply: {line}"))?;
                let mut body = vec![0u8; len + 2];
                reader.read_exact(&mut body).await?;
                body.truncate(len);
                Ok(String::from_utf8_lossy(&body).into_owned())
            }
            _ => bail!("unexpected reply: {line}"),
        }
    };
    let name = args.first().copied().unwrap_or_default();
    tokio::time::timeout(COMMAND_TIMEOUT, fut)
        .await
        .with_context(|| format!("{name} on {addr}: no answer within {COMMAND_TIMEOUT:?}"))?
        .with_context(|| format!("{name} on {addr}"))
}

/// The text of `INFO <section>`.
pub async fn info(addr: SocketAddr, section: &str) -> anyhow::Result<String> {
    command(addr, &["INFO", section]).await
}

/// What Redis said at one moment.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RedisSnapshot {
    /// Calls per command (`cmdstat_<name>`), [`HOUSEKEEPING`] excluded.
    pub calls: BTreeMap<String, u64>,
    /// used_cpu_user + used_cpu_sys.
    pub cpu_s: f64,
    /// Bytes the allocator holds for data, buffers and overhead.
    pub used_memory: u64,
    pub used_memory_peak: u64,
    pub pid: Option<u32>,
    /// `role:master` (a standalone Redis is one).
    pub master: bool,
}

fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

/// Reads command counts, CPU, memory, pid and role.
pub async fn snapshot(addr: SocketAddr) -> anyhow::Result<RedisSnapshot> {
    let stats = info(addr, "commandstats").await?;
    let cpu = info(addr, "cpu").await?;
    let memory = info(addr, "memory").await?;
    let server = info(addr, "server").await?;
    let replication = info(addr, "replication").await?;
    let num = |t: &str, k: &str| field(t, k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let int = |t: &str, k: &str| field(t, k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Ok(RedisSnapshot {
        calls: parse_commandstats(&stats),
        cpu_s: num(&cpu, "used_cpu_user") + num(&cpu, "used_cpu_sys"),
        used_memory: int(&memory, "used_memory"),
        used_memory_peak: int(&memory, "used_memory_peak"),
        pid: field(&server, "process_id").and_then(|v| v.parse().ok()),
        master: field(&replication, "role") == Some("master"),
    })
}

/// Commands that are not the gateway's store traffic: this tool's `INFO`,
/// clients' `PING`s and `CLUSTER ...` topology queries (`cluster|slots`,
/// `cluster|nodes`, ...), and replication's handshake and acknowledgements.
pub const HOUSEKEEPING: &[&str] = &["info", "ping", "cluster", "replconf", "psync", "sync"];

fn housekeeping(name: &str) -> bool {
    let base = name.split('|').next().unwrap_or(name);
    HOUSEKEEPING.contains(&base)
}

/// `cmdstat_evalsha:calls=12,usec=...` lines -> `{"evalsha": 12}`.
fn parse_commandstats(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?.parse().ok()?;
            (!housekeeping(name)).then(|| (name.to_owned(), calls))
        })
        .collect()
}

/// Command calls between two snapshots, per command (only those that grew).
pub fn calls_between(before: &RedisSnapshot, after: &RedisSnapshot) -> BTreeMap<String, u64> {
    after
        .calls
        .iter()
        .filter_map(|(k, &v)| {
            let d = v.saturating_sub(before.calls.get(k).copied().unwrap_or(0));
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commandstats_and_excludes_info() {
        let text = "# Commandstats\r\ncmdstat_evalsha:calls=12,usec=30,usec_per_call=2.5,rejected_calls=0,failed_calls=0\r\n\
                    cmdstat_info:calls=3,usec=1\r\ncmdstat_config|resetstat:calls=1,usec=5\r\n\
                    cmdstat_cluster|slots:calls=9,usec=1\r\ncmdstat_ping:calls=4,usec=1\r\n\
                    cmdstat_replconf:calls=7,usec=1\r\ncmdstat_wait:calls=2,usec=1\r\n";
        let m = parse_commandstats(text);
        assert_eq!(m.get("evalsha"), Some(&12));
        assert_eq!(m.get("config|resetstat"), Some(&1));
        assert_eq!(m.get("wait"), Some(&2), "WAIT is the gateway's own");
        assert_eq!(m.len(), 3, "info, cluster|slots, ping and replconf left out: {m:?}");
    }

    #[test]
    fn redis_urls_must_be_loopback() {
        assert_eq!(parse_url("redis://127.0.0.1:6379").unwrap().port(), 6379);
        assert_eq!(parse_url("redis://127.0.0.1:6380/0").unwrap().port(), 6380);
        assert!(parse_url("redis://10.1.2.3:6379").is_err());
        assert!(parse_url("redis://:pw@127.0.0.1:6379").is_err());
    }
}
