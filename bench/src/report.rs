//! The report: raw measurements in, figures out, as a human table or JSON.
//! Every throughput figure is also given as a fraction of the loopback
//! ceiling measured in the same run (mean of the before and after runs).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ceiling::Ceiling;
use crate::cli::{Args, PluginMode, StoreKind};
use crate::disk::DiskFigures;
use crate::driver::LoadResult;
use crate::fleet::FleetFigures;
use crate::history::HistoryFigures;
use crate::procfs::ProcSample;
use crate::receiver::ReceiverStats;
use crate::redis_figures::NodeReadings;
pub use crate::redis_figures::RedisFigures;
use crate::stats::{DeliveryJoin, Summary};
use crate::tls::ConnStats;

/// What [`crate::run`] hands over.
#[derive(Debug)]
pub struct Measured {
    pub load: LoadResult,
    pub join: DeliveryJoin,
    /// Whether every accepted delivery arrived before the drain timeout.
    pub drained: bool,
    pub receiver: ReceiverStats,
    pub connections: Connections,
    pub gateway: Option<(ProcSample, ProcSample)>,
    pub gateway_pid: Option<u32>,
    /// Every Redis node's readings (none on the embedded store).
    pub redis: Vec<NodeReadings>,
    /// Whether every delivery was final when Redis was read after the load.
    pub redis_settled: Option<bool>,
    /// The embedded store's data folder through the run.
    pub disk: Option<DiskFigures>,
    /// This process (driver + receiver).
    pub own: (ProcSample, ProcSample),
    /// Busy CPU seconds of the whole machine, and wall seconds, between
    /// the snapshots.
    pub machine_busy_s: f64,
    pub measured_s: f64,
    pub attached: bool,
    pub ceiling_before: Option<Ceiling>,
    pub ceiling_after: Option<Ceiling>,
    pub wall_s: f64,
    /// `--webhooks`: creating them and changing them.
    pub fleet: Option<FleetFigures>,
    /// `--history`: the store filled before the load.
    pub history: Option<HistoryFigures>,
}

/// Connections on both legs, and their TLS handshakes: with keep-alive and
/// session resumption, a handful per run, not one per request.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Connections {
    /// Whether the run spoke TLS.
    pub tls: bool,
    /// Opened by the driver for the measured load (to the gateway's listener).
    pub driver: ConnStats,
    /// Accepted by the receiver (from the gateway) during the measured phase.
    pub receiver_measured: ConnStats,
    /// Accepted by the receiver over the whole run (warm-up included).
    pub receiver_total: ConnStats,
}

#[derive(Debug, Serialize)]
pub struct Scenario {
    pub label: Option<String>,
    pub store: StoreKind,
    /// HTTPS on both legs (`--tls`).
    pub tls: bool,
    pub plugins: PluginMode,
    pub fanout: u32,
    pub payload_bytes: u64,
    pub slow_receiver_ms: u64,
    pub fail_ratio: f64,
    pub events: usize,
    pub concurrency: usize,
    pub rate: Option<f64>,
    pub gateway_concurrency: Option<u32>,
    /// `[server] worker_threads` of the spawned gateway (`--gateway-threads`);
    /// `None`: one per CPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_threads: Option<u32>,
    /// API webhooks created before the load (`--webhooks`).
    pub webhooks: usize,
    /// Finished deliveries stored before the load (`--history`).
    pub history: usize,
    /// `[store] shards` written into the gateway's config (`--shards`).
    pub shards: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct CeilingFigures {
    pub before: Ceiling,
    pub after: Option<Ceiling>,
    /// Mean requests/s of the measurements: the yardstick.
    pub requests_per_sec: f64,
    /// |before - after| / mean: how much the machine drifted during the run.
    pub drift: f64,
}

#[derive(Debug, Serialize)]
pub struct Ingest {
    pub requests_ok: u64,
    pub errors: BTreeMap<String, u64>,
    pub requests_per_sec: f64,
    pub of_ceiling: Option<f64>,
    pub latency_us: Summary,
    /// Whether --max-seconds stopped sending before --events.
    pub cut_short: bool,
}

#[derive(Debug, Serialize)]
pub struct Delivery {
    #[serde(flatten)]
    pub join: DeliveryJoin,
    pub of_ceiling: Option<f64>,
    pub drained: bool,
}

#[derive(Debug, Serialize)]
pub struct ProcessFigures {
    pub cpu_s: f64,
    pub cpu_s_per_1000_deliveries: f64,
    pub peak_rss_mib: Option<f64>,
}

/// Where the machine's CPU went between the snapshots.
#[derive(Debug, Serialize)]
pub struct MachineFigures {
    pub measured_s: f64,
    /// Cores available (busy CPU seconds / wall seconds can reach this).
    pub cores: usize,
    /// Busy CPU seconds of all cores.
    pub busy_s: f64,
    /// Busy CPU seconds not spent in the gateway, Redis or this tool: kernel
    /// threads (network soft interrupts) and other processes. Large values
    /// mean a disturbed measurement.
    pub other_s: f64,
}

/// The cluster target, as the table says it.
const SHARE_TARGET_TEXT: &str = "every cluster master serves 25% to 42% of the commands (uniform load)";

/// One of the targets, as far as this run can tell.
#[derive(Debug, Serialize)]
pub struct TargetCheck {
    pub target: &'static str,
    pub measured: String,
    /// `None` when this run's scenario does not test it.
    pub met: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: Scenario,
    pub ceiling: Option<CeilingFigures>,
    pub ingest: Ingest,
    pub delivery: Delivery,
    pub receiver: ReceiverStats,
    pub connections: Connections,
    pub gateway: Option<ProcessFigures>,
    pub redis_server: Option<ProcessFigures>,
    pub driver_and_receiver: ProcessFigures,
    pub redis: Option<RedisFigures>,
    pub disk: Option<DiskFigures>,
    pub machine: MachineFigures,
    pub disturbed: bool,
    pub targets: Vec<TargetCheck>,
    pub fleet: Option<FleetFigures>,
    pub history: Option<HistoryFigures>,
    pub wall_s: f64,
}

pub(crate) fn per(n: f64, deliveries: u64) -> f64 {
    if deliveries == 0 { 0.0 } else { n / deliveries as f64 }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl Report {
    pub fn new(args: &Args, m: Measured) -> Self {
        let delivered = m.join.delivered;
        let ceiling = m.ceiling_before.map(|before| {
            let (rps, drift) = match &m.ceiling_after {
                Some(a) => {
                    let mean = (before.requests_per_sec + a.requests_per_sec) / 2.0;
                    (
                        mean,
                        per((before.requests_per_sec - a.requests_per_sec).abs(), 1) / mean.max(1e-9),
                    )
                }
                None => (before.requests_per_sec, 0.0),
            };
            CeilingFigures {
                before,
                after: m.ceiling_after,
                requests_per_sec: rps,
                drift,
            }
        });
        let of = |x: f64| ceiling.as_ref().map(|c| x / c.requests_per_sec.max(1e-9));
        let ingest_rps = m.load.ok_per_sec();
        let cpu = |(a, b): (ProcSample, ProcSample), rss: bool| ProcessFigures {
            cpu_s: b.cpu_s - a.cpu_s,
            cpu_s_per_1000_deliveries: per(b.cpu_s - a.cpu_s, delivered) * 1000.0,
            peak_rss_mib: rss.then(|| mib(b.hwm_kib)),
        };
        let redis = RedisFigures::new(&m.redis, delivered, m.redis_settled);
        let redis_cpu_s: f64 = m.redis.iter().map(|n| n.after.cpu_s - n.before.cpu_s).sum();
        let redis_server = (!m.redis.is_empty()).then(|| ProcessFigures {
            cpu_s: redis_cpu_s,
            cpu_s_per_1000_deliveries: per(redis_cpu_s, delivered) * 1000.0,
            peak_rss_mib: None,
        });
        let accounted =
            m.gateway.map_or(0.0, |(a, b)| b.cpu_s - a.cpu_s) + redis_cpu_s + (m.own.1.cpu_s - m.own.0.cpu_s);
        let machine = MachineFigures {
            measured_s: m.measured_s,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            busy_s: m.machine_busy_s,
            other_s: (m.machine_busy_s - accounted).max(0.0),
        };
        let mut report = Report {
            scenario: Scenario {
                label: args.label.clone(),
                store: args.store_kind(),
                tls: args.tls_on(),
                plugins: args.plugins,
                fanout: args.fanout,
                payload_bytes: args.payload,
                slow_receiver_ms: args.slow_receiver_ms,
                fail_ratio: args.fail_ratio,
                events: args.events,
                concurrency: args.concurrency,
                rate: args.rate,
                gateway_concurrency: (!m.attached).then_some(args.gateway_concurrency),
                gateway_threads: args.gateway_threads,
                webhooks: args.webhook_count(),
                history: args.history_count(),
                shards: args.shards.filter(|_| args.store_kind().is_redis()),
            },
            ingest: Ingest {
                requests_ok: m.load.ok,
                errors: m.load.errors.clone(),
                requests_per_sec: ingest_rps,
                of_ceiling: of(ingest_rps),
                latency_us: Summary::of(m.load.latencies_us.clone()),
                cut_short: m.load.cut_short,
            },
            delivery: Delivery {
                of_ceiling: of(m.join.deliveries_per_sec),
                join: m.join,
                drained: m.drained,
            },
            ceiling,
            receiver: m.receiver,
            connections: m.connections,
            gateway: m.gateway.map(|g| cpu(g, true)),
            redis_server,
            driver_and_receiver: cpu(m.own, false),
            redis,
            disk: m.disk,
            machine,
            disturbed: false,
            targets: Vec::new(),
            fleet: m.fleet.clone(),
            history: m.history.clone(),
            wall_s: m.wall_s,
        };
        report.targets = report.check_targets(args);
        report.disturbed = report.disturbed();
        report
    }

    /// The targets, judged only where this scenario tests them.
    fn check_targets(&self, args: &Args) -> Vec<TargetCheck> {
        let baseline = args.fanout == 1
            && args.payload == 1024
            && args.plugins == PluginMode::None
            && args.slow_receiver_ms == 0
            && args.fail_ratio == 0.0;
        let e2e = self.delivery.join.deliveries_per_sec;
        let p99_ms = self.ingest.latency_us.p99 as f64 / 1000.0;
        let mut out = vec![
            TargetCheck {
                target: "end to end >= 20,000 deliveries/s (redis, fan-out 1, 1 KiB, no plugins)",
                measured: format!("{e2e:.0}/s"),
                met: (baseline && args.rate.is_none() && args.store_kind() == StoreKind::Redis)
                    .then_some(e2e >= 20_000.0),
            },
            TargetCheck {
                target: "ingest p99 < 5 ms at 10,000 events/s (half the target rate)",
                measured: format!(
                    "{p99_ms:.2} ms at {}",
                    args.rate.map_or("closed loop".into(), |r| format!("{r:.0}/s"))
                ),
                met: (baseline && args.rate.is_some_and(|r| r >= 10_000.0)).then_some(p99_ms < 5.0),
            },
        ];
        if let Some(g) = &self.gateway {
            let rss = g.peak_rss_mib.unwrap_or(0.0);
            out.push(TargetCheck {
                target: "gateway peak RSS < 150 MiB with 100,000 deliveries pending",
                measured: format!("{rss:.1} MiB, peak pending {}", self.delivery.join.peak_pending),
                met: (self.delivery.join.peak_pending >= 100_000).then_some(rss < 150.0),
            });
        }
        if let Some(f) = &self.fleet {
            // "The same" within a factor of 2 and 1 ms (a shared machine's noise).
            let same = |start: u64, end: u64| end <= 2 * start + 1000;
            let (s, e) = (&f.at_start, &f.at_end);
            out.push(TargetCheck {
                target: "create, update, rotate and delete cost the same with N webhooks as with none (p50)",
                measured: format!(
                    "create {:.2} -> {:.2} ms, update {:.2} -> {:.2}, rotate {:.2} -> {:.2}, delete {:.2} -> {:.2} \
                     ({} webhooks)",
                    f.create_first_1000_us.p50 as f64 / 1000.0,
                    f.create_last_1000_us.p50 as f64 / 1000.0,
                    s.update_us.p50 as f64 / 1000.0,
                    e.update_us.p50 as f64 / 1000.0,
                    s.rotate_us.p50 as f64 / 1000.0,
                    e.rotate_us.p50 as f64 / 1000.0,
                    s.delete_us.p50 as f64 / 1000.0,
                    e.delete_us.p50 as f64 / 1000.0,
                    f.webhooks
                ),
                met: (f.webhooks >= 10_000).then_some(
                    same(f.create_first_1000_us.p50, f.create_last_1000_us.p50)
                        && same(s.update_us.p50, e.update_us.p50)
                        && same(s.rotate_us.p50, e.rotate_us.p50)
                        && same(s.delete_us.p50, e.delete_us.p50),
                ),
            });
        }
        if let Some(r) = &self.redis {
            out.push(TargetCheck {
                target: "Redis round trips per delivery (first attempt, success) <= 4",
                measured: format!("{:.2} EVALSHA/delivery", r.evalsha_per_delivery),
                met: (args.fail_ratio == 0.0).then_some(r.evalsha_per_delivery <= 4.0),
            });
            if r.masters.len() > 1 {
                out.push(TargetCheck {
                    target: SHARE_TARGET_TEXT,
                    measured: format!("{} of the commands", r.shares_text()),
                    met: r.shares_even(),
                });
            }
        }
        out
    }

    /// Whether other load took a large share of the machine during the
    /// measured phase (over a quarter of all busy CPU time).
    pub fn disturbed(&self) -> bool {
        self.machine.other_s > 0.25 * self.machine.busy_s
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}
