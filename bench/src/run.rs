//! One scenario from start to report: ceiling, receiver, Redis and gateway
//! (started here or attached to), warm-up, the measured load, the drain,
//! snapshots before and after, ceiling again, then the figures.
//! With `--tls`, a CA made for the run signs the gateway's and the
//! receiver's certificates, and both legs speak HTTPS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::ceiling::{self, Ceiling};
use crate::cli::{Args, PluginMode, StoreKind, TlsMode};
use crate::clock::Clock;
use crate::cluster::{Aof, Cluster, ClusterSpec};
use crate::disk;
use crate::driver::{self, LoadSpec};
use crate::fleet;
use crate::gateway::{self, ConfigSpec, GatewayProc, StoreSpec};
use crate::history;
use crate::http::Target;
use crate::procfs::{self, ProcSample};
use crate::receiver::{Receiver, ReceiverOptions};
use crate::redis::{self, RedisProc, RedisSnapshot};
use crate::redis_figures::NodeReadings;
use crate::report::{Measured, Report};
use crate::settle;
use crate::stats;
use crate::tls;

/// Longest time any ceiling measurement may take.
const CEILING_MAX_TIME: Duration = Duration::from_secs(30);
/// Warm-up deliveries must all arrive within this long.
const WARMUP_DRAIN: Duration = Duration::from_secs(60);
/// The drain gives up when nothing arrives for this long.
const DRAIN_STALL: Duration = Duration::from_secs(30);
/// After the drain, the gateway gets this long to record every delivery
/// as final before Redis is read.
const SETTLE_MAX: Duration = Duration::from_secs(30);
/// `cluster-node-timeout` of `--store redis-cluster` (long enough that a
/// busy 2-core machine does not fail a master over by mistake).
const BENCH_NODE_TIMEOUT: Duration = Duration::from_secs(5);

/// A folder for the run's files; removed on drop unless kept.
struct RunDir {
    path: PathBuf,
    keep: bool,
}

impl RunDir {
    fn create(keep: bool) -> anyhow::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!("hookgate-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("create {}", path.display()))?;
        Ok(RunDir { path, keep })
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// What the load runs against. Fields drop in order: gateway before Redis.
pub struct Stack {
    gateway: Option<GatewayProc>,
    _redis: Option<RedisProc>,
    _cluster: Option<Cluster>,
    target: Target,
    token: String,
    event_type: String,
    gateway_pid: Option<u32>,
    /// The Redis processes to read: one, or every node of a cluster.
    redis_nodes: Vec<SocketAddr>,
    /// The embedded store's data folder (a spawned gateway's).
    data_dir: Option<PathBuf>,
    /// Webhooks created through the API of an attached gateway.
    api_webhooks: Vec<String>,
    /// A spawned gateway's config file and listen address (for a second
    /// gateway on the same store).
    config: Option<(PathBuf, SocketAddr)>,
}

impl Stack {
    /// A gateway (or anything answering like one) already running at
    /// `target` with webhooks for `event_type`; no process figures.
    pub fn attached(target: Target, token: &str, event_type: &str) -> Self {
        Stack {
            gateway: None,
            _redis: None,
            _cluster: None,
            target,
            token: token.to_owned(),
            event_type: event_type.to_owned(),
            gateway_pid: None,
            redis_nodes: Vec::new(),
            data_dir: None,
            api_webhooks: Vec::new(),
            config: None,
        }
    }
}

async fn start_stack(
    args: &Args,
    dir: &RunDir,
    receiver: SocketAddr,
    tls: Option<&tls::Material>,
) -> anyhow::Result<Stack> {
    let plugin = match (&args.plugin_wasm, args.plugins) {
        (Some(p), mode) if mode != PluginMode::None => {
            Some(std::fs::canonicalize(p).with_context(|| format!("--plugin-wasm {}", p.display()))?)
        }
        _ => None,
    };
    if let Some(url) = &args.gateway_url {
        let target = Target::parse(url).context("--gateway-url")?;
        let token = args.token.clone().context("--gateway-url needs --token")?;
        let event_type = format!("bench.run{}", std::process::id());
        let redis_addr = args.redis_url.as_deref().map(redis::parse_url).transpose()?;
        let plugin_ref = plugin.as_deref().map(|p| (p, args.plugins));
        let api_webhooks =
            gateway::create_api_webhooks(&target, &token, receiver, args.fanout, &event_type, plugin_ref).await?;
        return Ok(Stack {
            gateway: None,
            _redis: None,
            _cluster: None,
            target,
            token,
            event_type,
            gateway_pid: args.gateway_pid,
            redis_nodes: redis_addr.into_iter().collect(),
            data_dir: None,
            api_webhooks,
            config: None,
        });
    }
    let mut cluster = None;
    let (redis_proc, store) = match (args.store_kind(), &args.redis_url) {
        (StoreKind::Embedded, _) => (
            None,
            StoreSpec::Embedded {
                path: dir.path.join("data"),
            },
        ),
        (StoreKind::RedisCluster, _) => {
            let c = Cluster::start(ClusterSpec {
                redis_server: args.redis_server.clone(),
                dir: dir.path.join("cluster"),
                node_timeout: BENCH_NODE_TIMEOUT,
                aof: if args.redis_aof { Aof::EverySec } else { Aof::Off },
            })
            .await?;
            let nodes = c.urls();
            cluster = Some(c);
            (
                None,
                StoreSpec::RedisCluster {
                    nodes,
                    prefix: "hookgate-bench".to_owned(),
                },
            )
        }
        (StoreKind::Redis, Some(url)) => {
            redis::parse_url(url)?;
            let prefix = format!("hookgate-bench-{}", std::process::id());
            (
                None,
                StoreSpec::Redis {
                    url: url.clone(),
                    prefix,
                },
            )
        }
        (StoreKind::Redis, None) => {
            let r = RedisProc::spawn(&args.redis_server, &dir.path, args.redis_aof).await?;
            let url = r.url();
            let prefix = "hookgate-bench".to_owned();
            (Some(r), StoreSpec::Redis { url, prefix })
        }
    };
    let listen = SocketAddr::from(([127, 0, 0, 1], crate::port::free()?));
    let tls_files = tls.map(|m| m.write(&dir.path)).transpose()?;
    let config = gateway::config_toml(&ConfigSpec {
        listen,
        store: store.clone(),
        retention: args.retention.clone(),
        receiver,
        fanout: args.fanout,
        concurrency: args.gateway_concurrency,
        plugins: args.plugins,
        plugin_wasm: plugin,
        plugin_cache: dir.path.join("plugin-cache"),
        tls: tls_files,
        shards: args.shards,
        worker_threads: args.gateway_threads,
    })?;
    let config_path = dir.path.join("config.toml");
    std::fs::write(&config_path, config)?;
    let mut gw = GatewayProc::spawn(
        &args.gateway_bin,
        &config_path,
        &args.gateway_log,
        &dir.path.join("gateway.log"),
    )?;
    let target = match tls {
        Some(m) => Target::local(listen).with_tls(m.connector()?),
        None => Target::local(listen),
    };
    gw.wait_healthy(&target, Duration::from_secs(60)).await?;
    let redis_nodes = match &store {
        StoreSpec::Redis { url, .. } => vec![redis::parse_url(url)?],
        StoreSpec::RedisCluster { .. } => cluster.as_ref().map(Cluster::addrs).unwrap_or_default(),
        StoreSpec::Embedded { .. } => Vec::new(),
    };
    Ok(Stack {
        gateway_pid: Some(gw.pid()),
        gateway: Some(gw),
        _redis: redis_proc,
        _cluster: cluster,
        target,
        token: gateway::TOKEN.to_owned(),
        event_type: gateway::EVENT_TYPE.to_owned(),
        redis_nodes,
        data_dir: match store {
            StoreSpec::Embedded { path } => Some(path),
            StoreSpec::Redis { .. } | StoreSpec::RedisCluster { .. } => None,
        },
        api_webhooks: Vec::new(),
        config: Some((config_path, listen)),
    })
}

/// A second gateway on the same Redis that serves no load of this tool: it
/// only follows the store's change log, so its CPU is what one change costs
/// every other gateway of a fleet. `None` on the embedded store (one
/// process per data folder).
async fn spawn_follower(args: &Args, dir: &RunDir, stack: &Stack) -> anyhow::Result<Option<GatewayProc>> {
    let (Some((path, listen)), true) = (&stack.config, !stack.redis_nodes.is_empty()) else {
        return Ok(None);
    };
    let port = crate::port::free()?;
    let own = SocketAddr::from(([127, 0, 0, 1], port));
    let text =
        std::fs::read_to_string(path)?.replace(&format!("listen = \"{listen}\""), &format!("listen = \"{own}\""));
    let follower_path = dir.path.join("config-follower.toml");
    std::fs::write(&follower_path, text)?;
    let mut gw = GatewayProc::spawn(
        &args.gateway_bin,
        &follower_path,
        &args.gateway_log,
        &dir.path.join("gateway-follower.log"),
    )?;
    let target = match &stack.target.tls {
        Some(tls) => Target::local(own).with_tls(tls.clone()),
        None => Target::local(own),
    };
    gw.wait_healthy(&target, Duration::from_secs(60)).await?;
    Ok(Some(gw))
}

/// `--webhooks`: creates them and measures the changes (with a follower
/// gateway on Redis), before the load.
async fn many_webhooks(
    args: &Args,
    dir: &RunDir,
    stack: &Stack,
    receiver: SocketAddr,
) -> anyhow::Result<Option<fleet::FleetFigures>> {
    if args.webhook_count() == 0 {
        return Ok(None);
    }
    let follower = spawn_follower(args, dir, stack).await?;
    let spec = fleet::FleetSpec {
        target: stack.target.clone(),
        token: stack.token.clone(),
        receiver,
        count: args.webhook_count(),
        concurrency: args.webhook_create_concurrency,
        ops: args.webhook_ops,
        gateway_pid: stack.gateway_pid,
        follower_pid: follower.as_ref().map(GatewayProc::pid),
    };
    let figures = fleet::run(&spec).await;
    if let (Err(_), Some(f)) = (&figures, &follower) {
        let tail = f.log_tail();
        if !tail.is_empty() {
            eprintln!("hookgate-bench: follower gateway log tail:\n{tail}");
        }
    }
    Ok(Some(figures?))
}

/// A moment's readings of every process involved.
struct Snap {
    gateway: Option<ProcSample>,
    /// Each Redis node's reading, in `Stack::redis_nodes` order.
    redis: Vec<RedisSnapshot>,
    own: ProcSample,
    at: Instant,
    /// Busy CPU seconds of the whole machine.
    machine_s: f64,
}

async fn snap(stack: &Stack) -> anyhow::Result<Snap> {
    Ok(Snap {
        gateway: stack.gateway_pid.map(|p| procfs::sample(Some(p))).transpose()?,
        redis: {
            let mut all = Vec::with_capacity(stack.redis_nodes.len());
            for &a in &stack.redis_nodes {
                all.push(redis::snapshot(a).await?);
            }
            all
        },
        own: procfs::sample(None)?,
        at: Instant::now(),
        machine_s: procfs::machine_busy_s()?,
    })
}

/// Waits up to `max` for the machine to be under 15% busy over 2 s;
/// returns whether it was.
pub async fn wait_quiet(max: Duration) -> anyhow::Result<bool> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let window = Duration::from_secs(2);
    let deadline = Instant::now() + max;
    loop {
        let before = procfs::machine_busy_s()?;
        tokio::time::sleep(window).await;
        let busy = (procfs::machine_busy_s()? - before) / (window.as_secs_f64() * cores);
        if busy < 0.15 {
            return Ok(true);
        }
        if Instant::now() + window > deadline {
            return Ok(false);
        }
    }
}

/// Runs the scenario `args` describes.
pub async fn run(args: &Args) -> anyhow::Result<Report> {
    args.check()?;
    if args.tls == TlsMode::Both {
        bail!("run() measures one transport: split --tls both with Args::runs");
    }
    if args.wait_quiet > 0 && !wait_quiet(Duration::from_secs(args.wait_quiet)).await? {
        eprintln!(
            "hookgate-bench: the machine stayed busy for {} s; measuring anyway",
            args.wait_quiet
        );
    }
    let wall = Instant::now();
    let clock = Clock::new();
    let ceiling_body = driver::event_body(gateway::EVENT_TYPE, args.payload as usize);
    let measure_ceiling = || async {
        if args.no_ceiling {
            return anyhow::Ok(None);
        }
        let c = ceiling::measure(
            clock,
            args.concurrency,
            ceiling_body.clone(),
            args.ceiling_requests,
            CEILING_MAX_TIME,
        )
        .await?;
        Ok(Some(c))
    };
    let before: Option<Ceiling> = measure_ceiling().await?;

    let tls = args.tls_on().then(tls::Material::generate).transpose()?;
    let acceptor = tls.as_ref().map(tls::Material::acceptor).transpose()?;
    let receiver = Receiver::start_tls(
        clock,
        ReceiverOptions {
            secret: gateway::SECRET.to_owned(),
            verify_every: args.verify_every(),
            fail_ratio: args.fail_ratio,
            delay: Duration::from_millis(args.slow_receiver_ms),
        },
        acceptor,
    )
    .await?;
    let dir = RunDir::create(args.keep)?;
    let stack = start_stack(args, &dir, receiver.addr(), tls.as_ref()).await?;
    let redis_pid = match stack.redis_nodes.first() {
        Some(&a) => redis::snapshot(a).await.ok().and_then(|s| s.pid),
        None => None,
    };
    // For attaching profilers (bench/profile.sh reads this line).
    eprintln!(
        "hookgate-bench: pids: gateway {} redis-server {} hookgate-bench {}",
        stack.gateway_pid.map_or("-".into(), |p| p.to_string()),
        redis_pid.map_or("-".into(), |p| p.to_string()),
        std::process::id()
    );
    let result = async {
        let fleet = many_webhooks(args, &dir, &stack, receiver.addr()).await?;
        let mut m = measure(args, clock, &receiver, &stack).await?;
        m.fleet = fleet;
        anyhow::Ok(m)
    }
    .await;
    if !stack.api_webhooks.is_empty() {
        gateway::delete_api_webhooks(&stack.target, &stack.token, &stack.api_webhooks).await;
    }
    let log_tail = stack.gateway.as_ref().map(GatewayProc::log_tail);
    drop(stack);
    let mut measured = match result {
        Ok(m) => m,
        Err(e) => match log_tail {
            Some(tail) if !tail.is_empty() => return Err(e.context(format!("gateway log tail:\n{tail}"))),
            _ => return Err(e),
        },
    };
    measured.ceiling_before = before;
    measured.ceiling_after = measure_ceiling().await?;
    measured.wall_s = wall.elapsed().as_secs_f64();
    if args.keep {
        eprintln!("run folder kept: {}", dir.path.display());
    }
    Ok(Report::new(args, measured))
}

/// Warm-up, then the measured load and drain between two snapshots.
pub async fn measure(args: &Args, clock: Clock, receiver: &Receiver, stack: &Stack) -> anyhow::Result<Measured> {
    let spec = |count: usize, rate: Option<f64>| LoadSpec {
        target: stack.target.clone(),
        path: "/api/events".into(),
        token: Some(stack.token.clone()),
        body: driver::event_body(&stack.event_type, args.payload as usize),
        count,
        concurrency: args.concurrency,
        rate,
        max_time: Duration::from_secs(args.max_seconds),
        parse_deliveries: true,
    };
    if args.warmup > 0 {
        let w = driver::run(clock, spec(args.warmup, None)).await;
        if w.ok == 0 {
            bail!("no warm-up event was accepted: {:?}", w.errors);
        }
        let expected = w.accepted.len() as u64;
        if !receiver.wait_for(expected, WARMUP_DRAIN, DRAIN_STALL).await {
            bail!(
                "only {} of {expected} warm-up deliveries arrived within {WARMUP_DRAIN:?}",
                receiver.stats().delivered
            );
        }
    }
    let history = match args.history_count() {
        0 => None,
        n => {
            // Every event goes to the `--fanout` bench webhooks.
            let max = Duration::from_secs(args.history_max_seconds);
            Some(history::fill(clock, receiver, &spec(n, None), n, u64::from(args.fanout), max).await?)
        }
    };
    let base = receiver.stats();
    let base_conns = receiver.connections();
    let sampler = stack
        .data_dir
        .clone()
        .map(|d| disk::Sampler::start(clock, d, Duration::from_millis(args.disk_sample_ms.max(100))));
    let s0 = snap(stack).await?;
    let load = driver::run(clock, spec(args.events, args.rate)).await;
    let expected = base.delivered + load.accepted.len() as u64;
    let drained = receiver
        .wait_for(expected, Duration::from_secs(args.drain_seconds), DRAIN_STALL)
        .await;
    // Redis's memory is read once every delivery is final.
    let redis_settled = if stack.redis_nodes.is_empty() {
        None
    } else {
        settle::wait_settled(&stack.target, SETTLE_MAX).await
    };
    let s1 = snap(stack).await?;
    let arrivals = receiver.arrivals();
    let disk = match sampler {
        Some(s) => Some(disk::figures(&s.finish().await, &load.accepted, &arrivals)),
        None => None,
    };
    let join = stats::join(&load.accepted, &arrivals);
    let after = receiver.stats();
    let conns = receiver.connections();
    let connections = crate::report::Connections {
        tls: stack.target.tls.is_some() || receiver.is_tls(),
        driver: load.connections,
        receiver_measured: conns.since(&base_conns),
        receiver_total: conns,
    };
    Ok(Measured {
        load,
        join,
        drained,
        receiver: crate::receiver::ReceiverStats {
            requests: after.requests - base.requests,
            delivered: after.delivered - base.delivered,
            duplicates: after.duplicates - base.duplicates,
            retries_seen: after.retries_seen - base.retries_seen,
            failed_on_purpose: after.failed_on_purpose - base.failed_on_purpose,
            signatures_checked: after.signatures_checked - base.signatures_checked,
            signatures_bad: after.signatures_bad - base.signatures_bad,
            missing_id: after.missing_id - base.missing_id,
            body_bytes: after.body_bytes - base.body_bytes,
        },
        connections,
        gateway: s0.gateway.zip(s1.gateway),
        gateway_pid: stack.gateway_pid,
        redis: stack
            .redis_nodes
            .iter()
            .zip(s0.redis.into_iter().zip(s1.redis))
            .map(|(&addr, (before, after))| NodeReadings { addr, before, after })
            .collect(),
        redis_settled,
        disk,
        own: (s0.own, s1.own),
        machine_busy_s: s1.machine_s - s0.machine_s,
        measured_s: (s1.at - s0.at).as_secs_f64(),
        attached: stack.gateway.is_none(),
        ceiling_before: None,
        ceiling_after: None,
        wall_s: 0.0,
        fleet: None,
        history,
    })
}
