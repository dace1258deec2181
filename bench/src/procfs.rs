//! CPU time and peak memory of a process, from `/proc/<pid>/stat` (utime +
//! stime) and `/proc/<pid>/status` (`VmHWM`, `VmRSS`). Linux only.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::Context;
use serde::Serialize;

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProcSample {
    /// User + system CPU seconds since the process started.
    pub cpu_s: f64,
    /// Peak resident set size so far, KiB.
    pub hwm_kib: u64,
    /// Current resident set size, KiB.
    pub rss_kib: u64,
}

/// CPU seconds the whole machine spent busy (all cores, everything but
/// idle and iowait) since boot, from the first line of `/proc/stat`.
pub fn machine_busy_s() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("read /proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let ticks: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    if ticks.len() < 5 {
        anyhow::bail!("unexpected /proc/stat line: {line}");
    }
    // user nice system idle iowait irq softirq steal ...; guest time is
    // already inside user.
    let busy: u64 = ticks.iter().take(8).sum::<u64>() - ticks[3] - ticks[4];
    Ok(busy as f64 / ticks_per_sec())
}

/// Clock ticks per second for `/proc/<pid>/stat` (USER_HZ; 100 on Linux
/// unless `getconf CLK_TCK` says otherwise).
fn ticks_per_sec() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|&t| t > 0.0)
            .unwrap_or(100.0)
    })
}

/// Reads `pid` (`None`: this process).
pub fn sample(pid: Option<u32>) -> anyhow::Result<ProcSample> {
    let dir = match pid {
        Some(p) => Path::new("/proc").join(p.to_string()),
        None => Path::new("/proc/self").to_path_buf(),
    };
    let stat = std::fs::read_to_string(dir.join("stat")).with_context(|| format!("read {}/stat", dir.display()))?;
    let status =
        std::fs::read_to_string(dir.join("status")).with_context(|| format!("read {}/status", dir.display()))?;
    Ok(ProcSample {
        cpu_s: cpu_ticks(&stat).context("parse /proc/<pid>/stat")? as f64 / ticks_per_sec(),
        hwm_kib: status_kib(&status, "VmHWM:").unwrap_or(0),
        rss_kib: status_kib(&status, "VmRSS:").unwrap_or(0),
    })
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The
/// command name (field 2) may hold spaces and parentheses, so fields are
/// counted from the last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14 -> index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line = "1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 100 1000 200";
        assert_eq!(cpu_ticks(line), Some(300));
    }

    #[test]
    fn reads_this_process_and_the_machine() {
        let s = sample(None).unwrap();
        assert!(s.hwm_kib > 0 && s.rss_kib > 0);
        assert!(machine_busy_s().unwrap() > 0.0);
    }
}
