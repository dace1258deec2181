//! The human-readable report: one screen per scenario, throughput next to
//! its share of the loopback ceiling, CPU split by process, Redis commands
//! per delivery, and the targets.

use std::fmt::Write as _;

use crate::fleet::FleetFigures;
use crate::report::{ProcessFigures, RedisFigures, Report, per};
use crate::tls::ConnStats;

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn pct(f: Option<f64>) -> String {
    f.map_or_else(|| "-".into(), |f| format!("{:.1}%", f * 100.0))
}

/// `N conns (F full + R resumed TLS handshakes)`, or `N conns` without TLS.
fn conns(c: &ConnStats, tls: bool) -> String {
    let failed = if c.tls_failed > 0 {
        format!(", {} failed", c.tls_failed)
    } else {
        String::new()
    };
    if tls {
        format!(
            "{} conns ({} full + {} resumed TLS handshakes{failed})",
            c.connections, c.tls_full, c.tls_resumed
        )
    } else {
        format!("{} conns", c.connections)
    }
}

fn transport(r: &Report) -> &'static str {
    if r.scenario.tls { "https" } else { "http" }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.scenario;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "hookgate-bench{}: {:?} store, {}, fan-out {}, {} B payload, plugins {:?}, receiver +{} ms / {:.0}% 500s",
            s.label.as_deref().map(|l| format!(" [{l}]")).unwrap_or_default(),
            s.store,
            if s.tls { "HTTPS both legs" } else { "plain HTTP" },
            s.fanout,
            s.payload_bytes,
            s.plugins,
            s.slow_receiver_ms,
            s.fail_ratio * 100.0
        );
        let _ = writeln!(
            t,
            "  {} events over {} connections ({}), gateway concurrency {}{}{}{}\n",
            s.events,
            s.concurrency,
            s.rate.map_or("closed loop".into(), |r| format!("{r:.0} events/s")),
            s.gateway_concurrency.map_or("(attached)".into(), |c| c.to_string()),
            s.gateway_threads
                .map(|n| format!(", {n} worker thread{}", if n == 1 { "" } else { "s" }))
                .unwrap_or_default(),
            s.shards.map(|n| format!(", [store] shards = {n}")).unwrap_or_default(),
            match s.history {
                0 => String::new(),
                n => format!(", {n} finished deliveries stored first"),
            }
        );
        if let Some(h) = &self.history {
            let _ = writeln!(
                t,
                "  history                {} deliveries of {} events stored before the load, in {:.0} s ({:.0}/s)\n",
                h.deliveries, h.accepted_events, h.seconds, h.deliveries_per_sec
            );
        }
        if let Some(c) = &self.ceiling {
            let after = c
                .after
                .as_ref()
                .map_or("-".into(), |a| format!("{:.0}", a.requests_per_sec));
            let _ = writeln!(
                t,
                "  loopback ceiling       {:>9.0} req/s   (before {:.0}, after {after}; drift {:.0}%)",
                c.requests_per_sec,
                c.before.requests_per_sec,
                c.drift * 100.0
            );
        }
        let i = &self.ingest;
        let d = &self.delivery;
        let _ = writeln!(t, "                         {:>9}         of ceiling", "absolute");
        let _ = writeln!(
            t,
            "  ingest                 {:>9.0} req/s   {}",
            i.requests_per_sec,
            pct(i.of_ceiling)
        );
        let _ = writeln!(
            t,
            "  end-to-end deliveries  {:>9.0} /s      {}",
            d.join.deliveries_per_sec,
            pct(d.of_ceiling)
        );
        let l = &i.latency_us;
        let _ = writeln!(
            t,
            "  ingest latency         p50 {}  p99 {}  p99.9 {}  max {}",
            ms(l.p50),
            ms(l.p99),
            ms(l.p999),
            ms(l.max)
        );
        let g = &d.join.lag_us;
        let _ = writeln!(
            t,
            "  delivery lag           p50 {}  p99 {}  max {}   (peak pending {})",
            ms(g.p50),
            ms(g.p99),
            ms(g.max),
            d.join.peak_pending
        );
        let r = &self.receiver;
        let _ = writeln!(
            t,
            "  deliveries             {} accepted, {} delivered, {} missing{}, {} duplicates, {} retries seen, \
             {} answered 500",
            d.join.accepted,
            d.join.delivered,
            d.join.missing,
            if d.drained { "" } else { " (drain timed out)" },
            r.duplicates,
            r.retries_seen,
            r.failed_on_purpose
        );
        let _ = writeln!(
            t,
            "  signatures             {} verified, {} bad; {:.0} B per delivery received",
            r.signatures_checked - r.signatures_bad,
            r.signatures_bad,
            per(r.body_bytes as f64, r.requests)
        );
        let c = &self.connections;
        let _ = writeln!(
            t,
            "  connections            driver -> gateway {}; gateway -> receiver {} in the measured phase, {} in all",
            conns(&c.driver, c.tls),
            conns(&c.receiver_measured, c.tls),
            conns(&c.receiver_total, c.tls)
        );
        if !i.errors.is_empty() || i.cut_short {
            let _ = writeln!(
                t,
                "  ingest errors          {:?}{}",
                i.errors,
                if i.cut_short {
                    " (cut short by --max-seconds)"
                } else {
                    ""
                }
            );
        }
        if let Some(f) = &self.fleet {
            t.push_str(&fleet_lines(f));
        }
        let _ = writeln!(t, "\n  CPU s per 1,000 deliveries, and memory");
        let mut proc_line = |name: &str, p: &ProcessFigures, extra: String| {
            let _ = writeln!(
                t,
                "    {name:<20} {:>7.3} s  ({:.2} s total){extra}",
                p.cpu_s_per_1000_deliveries, p.cpu_s
            );
        };
        if let Some(p) = &self.gateway {
            proc_line(
                "gateway",
                p,
                format!("   peak RSS {:.1} MiB", p.peak_rss_mib.unwrap_or(0.0)),
            );
        }
        if let (Some(p), Some(r)) = (&self.redis_server, &self.redis) {
            let name = match r.nodes {
                1 => "redis-server".to_owned(),
                n => format!("redis-server x{n}"),
            };
            proc_line(&name, p, format!("   peak memory {:.1} MiB", r.used_memory_peak_mib));
        }
        proc_line("driver + receiver", &self.driver_and_receiver, String::new());
        let mc = &self.machine;
        let _ = writeln!(
            t,
            "    machine: {:.1} of {:.1} core-seconds busy over {:.1} s; {:.2} s outside these processes{}",
            mc.busy_s,
            mc.measured_s * mc.cores as f64,
            mc.measured_s,
            mc.other_s,
            if self.disturbed() {
                " (DISTURBED: other load on the machine)"
            } else {
                ""
            }
        );
        if let Some(d) = &self.disk {
            let _ = writeln!(
                t,
                "\n  data folder            peak {:.1} MiB, end {:.1} MiB; max {:.1} MiB in the first half of the run, \
                 {:.1} MiB in the second",
                mb(d.peak_bytes),
                mb(d.end_bytes),
                mb(d.first_half_max),
                mb(d.second_half_max)
            );
            if let Some(b) = d.bytes_per_pending {
                let _ = writeln!(
                    t,
                    "    {b:.0} B per pending delivery ({:.1} MiB with {} pending)",
                    mb((b * d.pending_at_that_sample as f64) as u64),
                    d.pending_at_that_sample
                );
            }
        }
        if let Some(r) = &self.redis {
            let mut top: Vec<_> = r.by_command_per_delivery.iter().collect();
            top.sort_by(|a, b| b.1.total_cmp(a.1));
            let top: Vec<String> = top.iter().take(8).map(|(k, v)| format!("{k} {v:.2}")).collect();
            let _ = writeln!(
                t,
                "\n  Redis per delivery     {:.2} commands (incl. inside scripts{}), {:.2} EVALSHA round trips\n    {}",
                r.commands_per_delivery,
                if r.masters.len() > 1 { ", all masters" } else { "" },
                r.evalsha_per_delivery,
                top.join(", ")
            );
            let _ = writeln!(
                t,
                "    {:.3} ms Redis CPU ({} process{}); memory {}",
                r.cpu_s_per_1000_deliveries,
                r.nodes,
                if r.nodes == 1 { "" } else { "es" },
                memory_text(r)
            );
            if r.masters.len() > 1 {
                let shares: Vec<String> = r
                    .masters
                    .iter()
                    .map(|m| format!("{} {:.1}%", m.addr, m.share * 100.0))
                    .collect();
                let _ = writeln!(t, "    commands by master: {}", shares.join(", "));
            }
        }
        let _ = writeln!(t, "\n  targets");
        for c in &self.targets {
            let verdict = match c.met {
                Some(true) => "met",
                Some(false) => "NOT met",
                None => "not tested by this scenario",
            };
            let _ = writeln!(t, "    {:<74} {:<32} {verdict}", c.target, c.measured);
        }
        let _ = writeln!(t, "\n  wall time {:.1} s", self.wall_s);
        f.write_str(&t)
    }
}

/// One figure of a report, formatted.
type Column = dyn Fn(&Report) -> String;

/// Several runs of one scenario on different stores or transports, side by
/// side; with `--tls both`, the TLS/plain ratios per store below.
pub fn side_by_side(reports: &[Report]) -> String {
    let mut t = String::new();
    let cell = |f: &Column| reports.iter().map(|r| format!("{:>16}", f(r))).collect::<String>();
    let _ = writeln!(t, "side by side (same scenario, back to back)");
    let _ = writeln!(t, "  {:<30}{}", "store", cell(&|r| format!("{:?}", r.scenario.store)));
    let _ = writeln!(t, "  {:<30}{}", "transport", cell(&|r| transport(r).to_owned()));
    let _ = writeln!(
        t,
        "  {:<30}{}",
        "API webhooks",
        cell(&|r| r.scenario.webhooks.to_string())
    );
    if reports.iter().any(|r| r.scenario.history > 0) {
        let _ = writeln!(
            t,
            "  {:<30}{}",
            "stored deliveries first",
            cell(&|r| r.scenario.history.to_string())
        );
    }
    if reports.iter().any(|r| r.fleet.is_some()) {
        let fleet_rows: [(&str, &Column); 4] = [
            ("create p50 first / last 1,000", &|r| {
                r.fleet.as_ref().map_or("-".into(), |f| {
                    format!(
                        "{:.1} / {:.1} ms",
                        f.create_first_1000_us.p50 as f64 / 1000.0,
                        f.create_last_1000_us.p50 as f64 / 1000.0
                    )
                })
            }),
            ("gateway CPU per create", &|r| {
                r.fleet
                    .as_ref()
                    .map_or("-".into(), |f| cpu_ms(f.gateway_cpu_ms_per_create))
            }),
            ("follower CPU per change", &|r| {
                r.fleet
                    .as_ref()
                    .map_or("-".into(), |f| cpu_ms(f.at_end.follower_cpu_ms_per_change))
            }),
            ("update p50 at the end", &|r| {
                r.fleet.as_ref().map_or("-".into(), |f| ms(f.at_end.update_us.p50))
            }),
        ];
        for (name, f) in fleet_rows {
            let _ = writeln!(t, "  {name:<30}{}", cell(f));
        }
    }
    let rows: [(&str, &Column); 13] = [
        ("ingest req/s", &|r| format!("{:.0}", r.ingest.requests_per_sec)),
        ("ingest p50", &|r| ms(r.ingest.latency_us.p50)),
        ("ingest p99", &|r| ms(r.ingest.latency_us.p99)),
        ("end-to-end deliveries/s", &|r| {
            format!("{:.0}", r.delivery.join.deliveries_per_sec)
        }),
        ("end-to-end of ceiling", &|r| pct(r.delivery.of_ceiling)),
        ("delivery lag p99", &|r| ms(r.delivery.join.lag_us.p99)),
        ("missing / duplicates", &|r| {
            format!("{} / {}", r.delivery.join.missing, r.receiver.duplicates)
        }),
        ("gateway CPU s/1000", &|r| {
            r.gateway
                .as_ref()
                .map_or("-".into(), |g| format!("{:.3}", g.cpu_s_per_1000_deliveries))
        }),
        ("store CPU s/1000 (redis-server)", &|r| {
            r.redis_server
                .as_ref()
                .map_or("-".into(), |g| format!("{:.3}", g.cpu_s_per_1000_deliveries))
        }),
        ("gateway peak RSS", &|r| {
            r.gateway
                .as_ref()
                .and_then(|g| g.peak_rss_mib)
                .map_or("-".into(), |m| format!("{m:.1} MiB"))
        }),
        ("driver conns (TLS full/res.)", &|r| {
            conn_cell(&r.connections.driver, r.scenario.tls)
        }),
        ("receiver conns, measured", &|r| {
            conn_cell(&r.connections.receiver_measured, r.scenario.tls)
        }),
        ("machine outside CPU s", &|r| format!("{:.2}", r.machine.other_s)),
    ];
    for (name, f) in rows {
        let _ = writeln!(t, "  {name:<30}{}", cell(f));
    }
    if reports.iter().any(|r| r.redis.is_some()) {
        let redis_rows: [(&str, &Column); 3] = [
            ("Redis commands/delivery", &|r| {
                r.redis
                    .as_ref()
                    .map_or("-".into(), |x| format!("{:.2}", x.commands_per_delivery))
            }),
            ("Redis bytes/delivery", &|r| {
                r.redis
                    .as_ref()
                    .and_then(|x| x.bytes_per_delivery)
                    .map_or("-".into(), |b| format!("{b:.0}"))
            }),
            ("commands by master", &|r| {
                r.redis
                    .as_ref()
                    .filter(|x| x.masters.len() > 1)
                    .map_or("-".into(), RedisFigures::shares_text)
            }),
        ];
        for (name, f) in redis_rows {
            let _ = writeln!(t, "  {name:<30}{}", cell(f));
        }
    }
    let _ = writeln!(
        t,
        "  {:<30}{}",
        "data folder peak",
        cell(&|r| r
            .disk
            .as_ref()
            .map_or("-".into(), |d| format!("{:.1} MiB", mb(d.peak_bytes))))
    );
    t.push_str(&tls_ratios(reports));
    t
}

/// `N B per delivery (+X MiB ...)`.
fn memory_text(r: &RedisFigures) -> String {
    let settled = match r.settled {
        Some(true) => "every delivery final",
        Some(false) => "SOME DELIVERIES STILL OPEN",
        None => "final state unknown",
    };
    match r.bytes_per_delivery {
        Some(b) => format!(
            "{b:.0} B per delivery ({:+.1} MiB over the measured phase, {settled})",
            r.used_memory_delta_bytes as f64 / (1024.0 * 1024.0)
        ),
        None => "- (nothing delivered)".into(),
    }
}

fn cpu_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.3} ms"))
}

/// The `--webhooks` figures.
fn fleet_lines(f: &FleetFigures) -> String {
    let mut t = String::new();
    let (a, b) = (&f.create_first_1000_us, &f.create_last_1000_us);
    let _ = writeln!(
        t,
        "\n  {} webhooks created through the API ({} connections, {:.0}/s)",
        f.webhooks, f.create_concurrency, f.creates_per_sec
    );
    let _ = writeln!(
        t,
        "    create, first 1,000  p50 {}  p99 {}\n    create, last 1,000   p50 {}  p99 {}",
        ms(a.p50),
        ms(a.p99),
        ms(b.p50),
        ms(b.p99)
    );
    let _ = writeln!(
        t,
        "    CPU per create       gateway {}, follower gateway {}",
        cpu_ms(f.gateway_cpu_ms_per_create),
        cpu_ms(f.follower_cpu_ms_per_create)
    );
    for o in [&f.at_start, &f.at_end] {
        let _ = writeln!(
            t,
            "    with {:>6} webhooks  update p50 {}  rotate p50 {}  delete p50 {};  CPU per change: gateway {}, \
             follower {}",
            o.webhooks_present,
            ms(o.update_us.p50),
            ms(o.rotate_us.p50),
            ms(o.delete_us.p50),
            cpu_ms(o.gateway_cpu_ms_per_change),
            cpu_ms(o.follower_cpu_ms_per_change)
        );
    }
    t
}

/// `connections (full/resumed)`.
fn conn_cell(c: &ConnStats, tls: bool) -> String {
    if tls {
        format!("{} ({}/{})", c.connections, c.tls_full, c.tls_resumed)
    } else {
        c.connections.to_string()
    }
}

/// For every store run both plain and over TLS: TLS as a share of plain.
pub fn tls_ratios(reports: &[Report]) -> String {
    let mut t = String::new();
    for plain in reports.iter().filter(|r| !r.scenario.tls) {
        let Some(tls) = reports
            .iter()
            .find(|r| r.scenario.tls && r.scenario.store == plain.scenario.store)
        else {
            continue;
        };
        let ratio = |a: f64, b: f64| if b > 0.0 { format!("{:.2}", a / b) } else { "-".into() };
        let gw = |r: &Report| r.gateway.as_ref().map_or(0.0, |g| g.cpu_s_per_1000_deliveries);
        let _ = writeln!(
            t,
            "  TLS / plain ({:?}): deliveries/s x{}, ingest req/s x{}, gateway CPU per delivery x{}",
            plain.scenario.store,
            ratio(
                tls.delivery.join.deliveries_per_sec,
                plain.delivery.join.deliveries_per_sec
            ),
            ratio(tls.ingest.requests_per_sec, plain.ingest.requests_per_sec),
            ratio(gw(tls), gw(plain))
        );
    }
    t
}
