//! The command line: load shape, scenario flags, what to run against, and
//! output format. [`Args::check`] rejects contradictory or unsafe flags
//! before anything starts.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Parser, ValueEnum};
use serde::Serialize;

/// The store backend the gateway runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreKind {
    Redis,
    /// The embedded store, in a data folder in the run's folder.
    Embedded,
    /// A local Redis Cluster (3 masters + 3 replicas) started for the run;
    /// the gateway gets its nodes as `[store] cluster_nodes`.
    RedisCluster,
}

impl StoreKind {
    /// Whether the gateway runs on Redis (standalone or cluster).
    pub fn is_redis(self) -> bool {
        matches!(self, StoreKind::Redis | StoreKind::RedisCluster)
    }
}

/// Whether the gateway's two HTTP legs speak TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Plain HTTP on both legs.
    Off,
    /// HTTPS on both legs: ingest and delivery.
    On,
    /// Plain first, then HTTPS, back to back, side by side.
    Both,
}

/// Which plugin chain each webhook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginMode {
    None,
    /// A plugin that forwards the event unchanged (`--plugin-wasm`).
    PassThrough,
    /// A redaction plugin (`--plugin-wasm`), configured to redact `/pad`.
    Redact,
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "hookgate-bench",
    version,
    about = "Load benchmark for hookgate: ingest and end-to-end delivery throughput, latency, CPU, memory and \
             Redis commands per delivery, next to this machine's loopback ceiling.",
    after_help = "Build the gateway first: cargo build --release -p hookgate"
)]
pub struct Args {
    /// Events to send (measured phase).
    #[arg(long, default_value_t = 20_000)]
    pub events: usize,
    /// Events sent first and waited for, not measured (connections, scripts, caches).
    #[arg(long, default_value_t = 500)]
    pub warmup: usize,
    /// Connections sending events (and the ceiling's connections).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Fixed send rate, events per second; closed loop when omitted.
    #[arg(long)]
    pub rate: Option<f64>,
    /// No event is sent later than this many seconds into the measured phase.
    #[arg(long, default_value_t = 60)]
    pub max_seconds: u64,
    /// After sending, wait at most this long for every delivery to arrive.
    #[arg(long, default_value_t = 120)]
    pub drain_seconds: u64,

    /// Store backend; a comma-separated list runs the scenario once per
    /// backend, back to back, and compares them side by side.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "redis")]
    pub store: Vec<StoreKind>,
    /// `[store] shards = N` in the spawned gateway's config (Redis runs
    /// only); left out of the config when not given.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub shards: Option<u32>,
    /// Before the measured phase, fill the store with this many finished
    /// deliveries through the gateway (the same load, closed loop, not
    /// measured). A comma-separated list runs the scenario once per count
    /// and compares them side by side (`--history 0,1000000`).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub history: Vec<usize>,
    /// The `--history` fill stops sending after this many seconds (and waits
    /// at most as long again for its deliveries).
    #[arg(long, default_value_t = 1800)]
    pub history_max_seconds: u64,
    /// HTTPS on both legs with certificates from a CA made for the run: the
    /// gateway serves its listener over TLS (the driver trusts the run's CA)
    /// and delivers to an HTTPS receiver (`[delivery] ca_file`). `both` runs
    /// plain, then TLS, and compares them side by side (per store).
    #[arg(long, value_enum, num_args = 0..=1, default_value = "off", default_missing_value = "on")]
    pub tls: TlsMode,
    /// `[store] retention` of the spawned gateway (short for a soak).
    #[arg(long, default_value = "1h")]
    pub retention: String,
    /// With the embedded store: sample the data folder's size this often.
    #[arg(long, default_value_t = 1000)]
    pub disk_sample_ms: u64,
    /// Plugin chain on every webhook.
    #[arg(long, value_enum, default_value_t = PluginMode::None)]
    pub plugins: PluginMode,
    /// The plugin component for --plugins pass-through|redact.
    #[arg(long)]
    pub plugin_wasm: Option<PathBuf>,
    /// Webhooks subscribed to the event type (deliveries per event).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub fanout: u32,
    /// Bytes of event data (the body each delivery carries).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(12..=1_000_000))]
    pub payload: u64,
    /// The receiver waits this long before answering.
    #[arg(long, default_value_t = 0)]
    pub slow_receiver_ms: u64,
    /// Share of deliveries the receiver answers 500 (0..1); the gateway retries them.
    #[arg(long, default_value_t = 0.0)]
    pub fail_ratio: f64,
    /// Share of requests whose X-Hub-Signature the receiver verifies.
    #[arg(long, default_value_t = 0.01)]
    pub verify_share: f64,
    /// `[delivery] concurrency` of the spawned gateway.
    #[arg(long, default_value_t = 256)]
    pub gateway_concurrency: u32,
    /// `[server] worker_threads` of the spawned gateway; left out of the
    /// config (one thread per CPU) when not given.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub gateway_threads: Option<u32>,
    /// Webhooks to create through the API before the load (none matches
    /// its events): times per create, update, rotation and delete, and the
    /// gateways' CPU per change (see BENCHMARKS.md). A comma-separated list
    /// runs the scenario once per count and compares them side by side.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub webhooks: Vec<usize>,
    /// Connections creating the `--webhooks`.
    #[arg(long, default_value_t = 4)]
    pub webhook_create_concurrency: usize,
    /// Updates, rotations and deletes timed at the start and at the end of
    /// creating the `--webhooks`.
    #[arg(long, default_value_t = 300)]
    pub webhook_ops: usize,

    /// The gateway binary to spawn.
    #[arg(long, default_value = "target/release/hookgate")]
    pub gateway_bin: PathBuf,
    /// Use an already running gateway instead (webhooks are created through its API and deleted after).
    #[arg(long)]
    pub gateway_url: Option<String>,
    /// With --gateway-url: its pid, for CPU and memory figures.
    #[arg(long)]
    pub gateway_pid: Option<u32>,
    /// With --gateway-url: an API token it accepts.
    #[arg(long, env = "HOOKGATE_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Use this Redis instead of starting one (loopback only; with --gateway-url, the gateway's Redis).
    #[arg(long)]
    pub redis_url: Option<String>,
    /// The redis-server binary to start.
    #[arg(long, default_value = "redis-server")]
    pub redis_server: String,
    /// Start Redis (every node of a cluster) with an append-only file (fsync every second).
    #[arg(long)]
    pub redis_aof: bool,
    /// The spawned gateway's RUST_LOG.
    #[arg(long, default_value = "warn")]
    pub gateway_log: String,

    /// Before starting, wait up to this many seconds for the machine to be
    /// quiet (under 15% busy over 2 s); 0 starts at once.
    #[arg(long, default_value_t = 0)]
    pub wait_quiet: u64,
    /// Run again (up to this many times) when other load disturbed the
    /// measured phase; the report says so either way.
    #[arg(long, default_value_t = 0)]
    pub retry_disturbed: u32,

    /// Requests for each ceiling measurement (one before, one after the run).
    #[arg(long, default_value_t = 20_000)]
    pub ceiling_requests: usize,
    /// Skip the ceiling measurement.
    #[arg(long)]
    pub no_ceiling: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// A name for this scenario in the report.
    #[arg(long)]
    pub label: Option<String>,
    /// Keep the run's folder (config, gateway log) instead of removing it.
    #[arg(long)]
    pub keep: bool,
}

impl Args {
    /// Rejects flags that cannot work together.
    pub fn check(&self) -> anyhow::Result<()> {
        if !(0.0..1.0).contains(&self.fail_ratio) {
            bail!("--fail-ratio must be at least 0 and below 1, got {}", self.fail_ratio);
        }
        if !(0.0..=1.0).contains(&self.verify_share) {
            bail!("--verify-share must be between 0 and 1, got {}", self.verify_share);
        }
        if self.rate.is_some_and(|r| !r.is_finite() || r <= 0.0) {
            bail!("--rate must be a positive number of events per second");
        }
        if self.events == 0 || self.concurrency == 0 {
            bail!("--events and --concurrency must be at least 1");
        }
        match (self.plugins, &self.plugin_wasm) {
            (PluginMode::None, _) => {}
            (mode, None) => bail!(
                "--plugins {} needs --plugin-wasm PATH: the plugin component to load",
                mode.to_possible_value().map_or("?".into(), |v| v.get_name().to_owned())
            ),
            (_, Some(p)) if !p.is_file() => bail!("--plugin-wasm {}: no such file", p.display()),
            _ => {}
        }
        if self.store.is_empty() {
            bail!("--store needs at least one of redis, embedded, redis-cluster");
        }
        if self.store.contains(&StoreKind::RedisCluster) && (self.redis_url.is_some() || self.gateway_url.is_some()) {
            bail!("--store redis-cluster starts its own cluster and gateway: drop --redis-url and --gateway-url");
        }
        if self.shards.is_some() && !self.store.iter().any(|s| s.is_redis()) {
            bail!("--shards is a Redis store setting: add redis or redis-cluster to --store");
        }
        if self.gateway_threads.is_some() && self.gateway_url.is_some() {
            bail!("--gateway-threads goes into the config of a gateway this tool spawns; drop --gateway-url");
        }
        if self.shards.is_some() && self.gateway_url.is_some() {
            bail!("--shards goes into the config of a gateway this tool spawns; drop --gateway-url");
        }
        if self.history.is_empty() {
            bail!("--history needs at least one count (0: none)");
        }
        if self.gateway_url.is_some() && self.store.len() > 1 {
            bail!("--gateway-url runs against one gateway: give one --store");
        }
        if self.gateway_url.is_some() && self.tls != TlsMode::Off {
            bail!(
                "--tls needs a gateway this tool spawns (it makes the certificates and the gateway's config); \
                 drop --gateway-url"
            );
        }
        if self.gateway_pid.is_some() && self.gateway_url.is_none() {
            bail!("--gateway-pid goes with --gateway-url (a spawned gateway's pid is known)");
        }
        if self.gateway_url.is_some() && self.webhooks.iter().any(|&n| n > 0) {
            bail!(
                "--webhooks needs a gateway this tool spawns (it creates and measures many webhooks); drop --gateway-url"
            );
        }
        if self.webhooks.is_empty() {
            bail!("--webhooks needs at least one count (0: none)");
        }
        if self.gateway_url.is_some() && self.token.is_none() {
            bail!("--gateway-url needs --token (or HOOKGATE_API_TOKEN): an API token the gateway accepts");
        }
        Ok(())
    }

    /// The webhooks of this run (the first of `--webhooks`).
    pub fn webhook_count(&self) -> usize {
        self.webhooks.first().copied().unwrap_or(0)
    }

    /// The finished deliveries stored before the load (the first of `--history`).
    pub fn history_count(&self) -> usize {
        self.history.first().copied().unwrap_or(0)
    }

    /// The store of this run (the first of `--store`).
    pub fn store_kind(&self) -> StoreKind {
        self.store.first().copied().unwrap_or(StoreKind::Redis)
    }

    /// These arguments for one backend of `--store`.
    pub fn for_store(&self, kind: StoreKind) -> Args {
        Args {
            store: vec![kind],
            ..self.clone()
        }
    }

    /// The runs `--store`, `--webhooks`, `--history` and `--tls` ask for,
    /// in order: every store, every webhook count, every history count,
    /// each plain before TLS with `--tls both`.
    pub fn runs(&self) -> Vec<Args> {
        let modes: &[TlsMode] = match self.tls {
            TlsMode::Both => &[TlsMode::Off, TlsMode::On],
            TlsMode::Off => &[TlsMode::Off],
            TlsMode::On => &[TlsMode::On],
        };
        let or_zero = |v: &[usize]| if v.is_empty() { vec![0] } else { v.to_vec() };
        let (counts, histories) = (or_zero(&self.webhooks), or_zero(&self.history));
        let mut out = Vec::new();
        for &kind in &self.store {
            for &n in &counts {
                for &h in &histories {
                    for &tls in modes {
                        out.push(Args {
                            tls,
                            webhooks: vec![n],
                            history: vec![h],
                            ..self.for_store(kind)
                        });
                    }
                }
            }
        }
        out
    }

    /// Whether this run speaks TLS (after [`Args::runs`] split `both`).
    pub fn tls_on(&self) -> bool {
        self.tls == TlsMode::On
    }

    /// Verify every n-th request's signature.
    pub fn verify_every(&self) -> u64 {
        if self.verify_share <= 0.0 {
            0
        } else {
            (1.0 / self.verify_share).round().max(1.0) as u64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        Args::parse_from(std::iter::once("hookgate-bench").chain(extra.iter().copied()))
    }

    #[test]
    fn plugins_need_a_wasm_path() {
        let err = args(&["--plugins", "redact"]).check().unwrap_err().to_string();
        assert!(err.contains("--plugin-wasm"), "{err}");
        assert!(
            args(&["--plugins", "pass-through", "--plugin-wasm", "/nonexistent.wasm"])
                .check()
                .is_err()
        );
        assert!(args(&[]).check().is_ok());
    }

    #[test]
    fn stores_are_a_list() {
        let a = args(&["--store", "embedded,redis"]);
        assert_eq!(a.store, [StoreKind::Embedded, StoreKind::Redis]);
        assert_eq!(a.for_store(StoreKind::Redis).store_kind(), StoreKind::Redis);
        assert_eq!(args(&[]).store_kind(), StoreKind::Redis);
        assert!(
            args(&[
                "--store",
                "embedded,redis",
                "--gateway-url",
                "http://127.0.0.1:1",
                "--token",
                "t"
            ])
            .check()
            .is_err()
        );
    }

    #[test]
    fn tls_modes_split_into_runs() {
        assert_eq!(args(&[]).tls, TlsMode::Off);
        assert_eq!(args(&["--tls"]).tls, TlsMode::On);
        let runs = args(&["--tls", "both", "--store", "redis,embedded"]).runs();
        let shape: Vec<_> = runs.iter().map(|a| (a.store_kind(), a.tls_on())).collect();
        assert_eq!(
            shape,
            [
                (StoreKind::Redis, false),
                (StoreKind::Redis, true),
                (StoreKind::Embedded, false),
                (StoreKind::Embedded, true)
            ]
        );
        assert_eq!(args(&["--tls", "on"]).runs().len(), 1);
        let attached = ["--gateway-url", "http://127.0.0.1:1", "--token", "t"];
        assert!(args(&attached).check().is_ok());
        let err = args(&[&attached[..], &["--tls"]].concat()).check().unwrap_err();
        assert!(err.to_string().contains("--tls"), "{err}");
    }

    #[test]
    fn webhook_counts_split_into_runs() {
        assert_eq!(args(&[]).webhook_count(), 0);
        let runs = args(&["--webhooks", "0,50000", "--store", "redis,embedded"]).runs();
        let shape: Vec<_> = runs.iter().map(|a| (a.store_kind(), a.webhook_count())).collect();
        assert_eq!(
            shape,
            [
                (StoreKind::Redis, 0),
                (StoreKind::Redis, 50_000),
                (StoreKind::Embedded, 0),
                (StoreKind::Embedded, 50_000)
            ]
        );
        let attached = ["--gateway-url", "http://127.0.0.1:1", "--token", "t"];
        assert!(args(&[&attached[..], &["--webhooks", "10"]].concat()).check().is_err());
        assert!(args(&[&attached[..], &["--webhooks", "0"]].concat()).check().is_ok());
    }

    #[test]
    fn cluster_store_shards_and_history() {
        let a = args(&["--store", "redis,redis-cluster", "--history", "0,1000000"]);
        assert!(a.check().is_ok());
        let shape: Vec<_> = a.runs().iter().map(|r| (r.store_kind(), r.history_count())).collect();
        assert_eq!(
            shape,
            [
                (StoreKind::Redis, 0),
                (StoreKind::Redis, 1_000_000),
                (StoreKind::RedisCluster, 0),
                (StoreKind::RedisCluster, 1_000_000)
            ]
        );
        assert_eq!(args(&[]).shards, None);
        assert_eq!(args(&["--shards", "16"]).shards, Some(16));
        assert!(Args::try_parse_from(["hookgate-bench", "--shards", "0"]).is_err());
        assert!(args(&["--store", "embedded", "--shards", "4"]).check().is_err());
        assert!(
            args(&["--store", "embedded,redis-cluster", "--shards", "4"])
                .check()
                .is_ok()
        );
        let err = args(&["--store", "redis-cluster", "--redis-url", "redis://127.0.0.1:6379"])
            .check()
            .unwrap_err();
        assert!(err.to_string().contains("redis-cluster"), "{err}");
        assert!(StoreKind::RedisCluster.is_redis() && !StoreKind::Embedded.is_redis());
    }

    #[test]
    fn gateway_threads_go_into_a_spawned_gateway_only() {
        assert_eq!(args(&[]).gateway_threads, None);
        assert_eq!(args(&["--gateway-threads", "1"]).gateway_threads, Some(1));
        assert!(Args::try_parse_from(["hookgate-bench", "--gateway-threads", "0"]).is_err());
        assert!(Args::try_parse_from(["hookgate-bench", "--gateway-threads", "1025"]).is_err());
        let err = args(&["--gateway-threads", "1", "--gateway-url", "http://127.0.0.1:8080"])
            .check()
            .unwrap_err();
        assert!(err.to_string().contains("--gateway-threads"), "{err}");
    }

    #[test]
    fn ratios_are_checked() {
        assert!(args(&["--fail-ratio", "1.0"]).check().is_err());
        assert!(args(&["--fail-ratio", "0.1"]).check().is_ok());
        assert_eq!(args(&[]).verify_every(), 100);
        assert_eq!(args(&["--verify-share", "1"]).verify_every(), 1);
        assert_eq!(args(&["--verify-share", "0"]).verify_every(), 0);
    }
}
