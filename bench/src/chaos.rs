//! `hookgate-chaos`: two gateways on one store under steady load while
//! things break, and what that cost: events accepted (202), deliveries
//! that arrived, lost (accepted but never delivered: must be 0), duplicates
//! (the same `X-Delivery-ID` answered 2xx twice: only around crashes and
//! timeouts), how long the backlog took to drain after the load, and the
//! API's answers while the store was down (503 with `Retry-After`, fast).
//!
//! Scenarios (each with its own Redis, gateways and receiver, all on
//! loopback, every wait bounded):
//!
//! * `gateway-kill`: `kill -9` one gateway every few seconds and start it
//!   again (alternating between the two).
//! * `redis-restart`: `kill -9` the standalone Redis (append-only file,
//!   fsync on every write) a third into the load, start it again 2 s later.
//! * `receiver-faults`: the receiver answers 500, then answers after the
//!   gateway's timeout, then drops connections, then answers slowly, each
//!   for a while, then recovers.
//! * `cluster-failover`: the gateways run on a local Redis Cluster (3
//!   masters + 3 replicas, append-only file with fsync on every write);
//!   the master holding the most keys is killed a third into the load, its
//!   replica takes over, and the killed node is started again and rejoins
//!   as a replica ([`failover`]). `--wait-replicas N` writes
//!   `[store] wait_replicas = N` into the gateways' config.
//!
//! `--short` is the size `.ci/run` runs (via `bench/tests/chaos.rs`); the
//! default is the full suite (see BENCHMARKS.md for its figures).

pub mod failover;
pub mod fleet;
pub mod producer;
pub mod receiver;

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use serde::Serialize;

use crate::cluster::Cluster;
use fleet::{Gateway, Redis, cluster_store, standalone_store};
use producer::{ProducerSpec, produce};
use receiver::{Fault, FaultReceiver};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    GatewayKill,
    RedisRestart,
    ReceiverFaults,
    ClusterFailover,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::GatewayKill => "gateway-kill",
            Scenario::RedisRestart => "redis-restart",
            Scenario::ReceiverFaults => "receiver-faults",
            Scenario::ClusterFailover => "cluster-failover",
        }
    }
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "hookgate-chaos",
    about = "Chaos scenarios against two hookgate gateways on one Redis (or a local Redis Cluster)"
)]
pub struct ChaosArgs {
    /// Scenarios to run, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "gateway-kill,redis-restart,receiver-faults,cluster-failover"
    )]
    pub scenarios: Vec<Scenario>,
    /// The CI size: a few hundred events, faults a second or two apart.
    #[arg(long)]
    pub short: bool,
    /// Events per scenario (default 3000, or 400 with --short).
    #[arg(long)]
    pub events: Option<usize>,
    /// Events per second (default 100).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// The gateway binary.
    #[arg(long, default_value = "target/release/hookgate")]
    pub gateway_bin: PathBuf,
    /// The redis-server binary.
    #[arg(long, default_value = "redis-server")]
    pub redis_server: String,
    /// cluster-failover: write `[store] wait_replicas = N` into the
    /// gateways' config (0: leave it out). Needs a gateway that knows it.
    #[arg(long, default_value_t = 0)]
    pub wait_replicas: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Keep each scenario's folder (gateway logs, Redis files) and say
    /// where it is; without it a folder is kept only when its run failed.
    #[arg(long)]
    pub keep: bool,
}

impl ChaosArgs {
    fn events(&self) -> usize {
        self.events.unwrap_or(if self.short { 400 } else { 3000 })
    }

    /// Time between gateway kills, and how long each receiver fault lasts.
    fn beat(&self) -> Duration {
        if self.short {
            Duration::from_millis(1500)
        } else {
            Duration::from_secs(4)
        }
    }
}

/// What one scenario cost.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    pub scenario: &'static str,
    /// Events answered 202 (one delivery each).
    pub accepted: usize,
    /// Events the producer gave up on (never acknowledged, so not lost).
    pub given_up: u64,
    /// Accepted deliveries that arrived (answered 2xx at least once).
    pub delivered: usize,
    /// Accepted deliveries that never arrived.
    pub lost: usize,
    /// Extra 2xx answers to a delivery id already delivered.
    pub duplicates: u64,
    /// Deliveries that arrived without the producer holding a 202 for them.
    pub unacknowledged_arrivals: usize,
    /// From the end of the load until the last delivery arrived; `None`
    /// when the backlog did not drain within the wait.
    pub drain_seconds: Option<f64>,
    /// Posts by answer (the producer retries on the other gateway).
    pub answers: std::collections::BTreeMap<String, u64>,
    /// The slowest 503 answer, ms (the API must answer at once, not hang).
    pub max_503_ms: u64,
    /// The slowest post, ms, whatever its answer (a post with no answer
    /// counts the producer's wait, 5 s).
    pub max_post_ms: u64,
    /// 503 answers without `Retry-After`.
    pub answers_503_without_retry_after: u64,
    /// What the chaos did (kills, outage length, fault phases).
    pub chaos: String,
    /// Whether anything needed a person: only if something was lost or the
    /// backlog did not drain by itself.
    pub needed_a_person: bool,
    pub seconds: f64,
}

impl ScenarioReport {
    /// Whether the documented guarantee held.
    pub fn held(&self) -> bool {
        self.lost == 0 && self.drain_seconds.is_some() && self.answers_503_without_retry_after == 0
    }
}

impl fmt::Display for ScenarioReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "scenario {} ({:.0} s): {}", self.scenario, self.seconds, self.chaos)?;
        writeln!(
            f,
            "  accepted {}  delivered {}  lost {}  duplicates {}  given up {}  unacknowledged arrivals {}",
            self.accepted, self.delivered, self.lost, self.duplicates, self.given_up, self.unacknowledged_arrivals
        )?;
        match self.drain_seconds {
            Some(s) => writeln!(f, "  backlog drained {s:.1} s after the load ended")?,
            None => writeln!(f, "  backlog NOT drained")?,
        }
        let answers: Vec<String> = self.answers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        writeln!(
            f,
            "  posts {}; slowest post {} ms; slowest 503 {} ms; 503 without Retry-After {}",
            answers.join(", "),
            self.max_post_ms,
            self.max_503_ms,
            self.answers_503_without_retry_after
        )?;
        writeln!(
            f,
            "  needed a person: {}",
            if self.needed_a_person { "YES" } else { "no" }
        )
    }
}

/// The store a scenario runs on.
enum Store {
    Standalone(Redis),
    Cluster(Cluster),
}

/// Runs one scenario from start to report.
pub async fn run_scenario(args: &ChaosArgs, scenario: Scenario) -> anyhow::Result<ScenarioReport> {
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!(
        "hookgate-chaos-{}-{}-{}",
        scenario.name(),
        std::process::id(),
        started.elapsed().as_nanos() ^ u128::from(rand_u32())
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let result = run_in(args, scenario, &dir, started).await;
    if result.is_ok() && !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    } else if result.is_ok() {
        eprintln!("hookgate-chaos: {} kept in {}", scenario.name(), dir.display());
    } else {
        eprintln!("hookgate-chaos: logs kept in {}", dir.display());
    }
    result
}

fn rand_u32() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

async fn run_in(
    args: &ChaosArgs,
    scenario: Scenario,
    dir: &std::path::Path,
    started: Instant,
) -> anyhow::Result<ScenarioReport> {
    let gateway_bin = std::fs::canonicalize(&args.gateway_bin).with_context(|| {
        format!(
            "gateway binary not found at {}: build it with `cargo build --release -p hookgate` or pass --gateway-bin",
            args.gateway_bin.display()
        )
    })?;
    let mut store = match scenario {
        Scenario::ClusterFailover => Store::Cluster(failover::start_cluster(&args.redis_server, dir).await?),
        _ => Store::Standalone(Redis::start(&args.redis_server, dir).await?),
    };
    let store_toml = match &store {
        Store::Standalone(r) => standalone_store(&r.url()),
        Store::Cluster(c) => cluster_store(&c.urls(), args.wait_replicas),
    };
    let rx = FaultReceiver::start()?;
    let timeout = Duration::from_secs(1);
    let mut gateways = vec![
        Gateway::start(&gateway_bin, dir, "gateway-a", &store_toml, rx.addr(), timeout).await?,
        Gateway::start(&gateway_bin, dir, "gateway-b", &store_toml, rx.addr(), timeout).await?,
    ];
    let targets = Arc::new(gateways.iter().map(|g| g.target.clone()).collect::<Vec<_>>());
    let events = args.events();
    let load_time = Duration::from_secs_f64(events as f64 / args.rate);
    let spec = ProducerSpec {
        events,
        rate: args.rate,
        give_up_after: Duration::from_secs(30),
        run: format!("{}-{}", scenario.name(), rand_u32()),
    };
    let producer = tokio::spawn(produce(targets, spec));

    let beat = args.beat();
    let chaos = match (scenario, &mut store) {
        (Scenario::GatewayKill, _) => {
            let mut kills = 0usize;
            loop {
                tokio::time::sleep(beat).await;
                if producer.is_finished() {
                    break;
                }
                gateways[kills % 2].restart().await?;
                kills += 1;
            }
            format!(
                "{kills} gateway kills (kill -9, then started again), one every {} ms",
                beat.as_millis()
            )
        }
        (Scenario::RedisRestart, Store::Standalone(redis)) => {
            tokio::time::sleep(load_time / 3).await;
            redis.kill();
            let down = Instant::now();
            tokio::time::sleep(Duration::from_secs(2)).await;
            redis.restart().await?;
            format!(
                "Redis killed (kill -9; append-only file, fsync always) and back after {:.1} s",
                down.elapsed().as_secs_f64()
            )
        }
        (Scenario::ReceiverFaults, _) => {
            let phases = [
                Fault::Status500,
                Fault::Hang(timeout + Duration::from_millis(500)),
                Fault::Drop,
                Fault::Slow(Duration::from_millis(300)),
            ];
            tokio::time::sleep(beat / 2).await;
            for f in phases {
                rx.set(f);
                tokio::time::sleep(beat).await;
            }
            rx.set(Fault::None);
            let names: Vec<String> = phases.iter().map(|f| f.name()).collect();
            format!(
                "receiver {}, {} ms each, then recovers",
                names.join("; "),
                beat.as_millis()
            )
        }
        (Scenario::ClusterFailover, Store::Cluster(cluster)) => {
            tokio::time::sleep(load_time / 3).await;
            let f = failover::kill_master_and_rejoin(cluster).await?;
            let waited = match args.wait_replicas {
                0 => "gateways without wait_replicas".to_owned(),
                n => format!("gateways with wait_replicas = {n}"),
            };
            format!("{}; {waited}", f.describe())
        }
        (Scenario::RedisRestart, Store::Cluster(_)) | (Scenario::ClusterFailover, Store::Standalone(_)) => {
            anyhow::bail!("{} started on the wrong kind of store", scenario.name())
        }
    };
    let produced = producer.await.context("the producer task failed")?;
    let load_end = Instant::now();

    // Wait for the backlog: everything accepted, or no progress for long.
    let expected: HashSet<&String> = produced.accepted.iter().collect();
    let wait = Duration::from_secs(if args.short { 60 } else { 180 });
    let drained = loop {
        let got = rx.delivered();
        if expected.iter().all(|id| got.contains_key(*id)) {
            break true;
        }
        if load_end.elapsed() > wait {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Late duplicates (a lease expiring after a kill) show up a little later.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = rx.delivered();
    let delivered = expected.iter().filter(|id| got.contains_key(**id)).count();
    let lost = expected.len() - delivered;
    let duplicates = got.values().map(|&n| u64::from(n.saturating_sub(1))).sum();
    let unacknowledged_arrivals = got.keys().filter(|id| !expected.contains(id)).count();
    let drain_seconds = drained.then(|| {
        rx.last_new()
            .map_or(0.0, |t| t.saturating_duration_since(load_end).as_secs_f64())
    });
    drop(gateways);
    drop(store);
    Ok(ScenarioReport {
        scenario: scenario.name(),
        accepted: expected.len(),
        given_up: produced.given_up,
        delivered,
        lost,
        duplicates,
        unacknowledged_arrivals,
        drain_seconds,
        answers: produced.answers,
        max_503_ms: produced.max_503.as_millis() as u64,
        max_post_ms: produced.max_post.as_millis() as u64,
        answers_503_without_retry_after: produced.without_retry_after,
        chaos,
        needed_a_person: lost > 0 || !drained,
        seconds: started.elapsed().as_secs_f64(),
    })
}
