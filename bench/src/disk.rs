//! The embedded store's data folder on disk: its size sampled through the
//! measured phase and the drain, the pending deliveries at each sample
//! (from the driver's accepts and the receiver's arrivals), and from those
//! the bytes per pending delivery and whether the size stays flat.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::driver::Accepted;

/// Bytes the files directly in `folder` take on disk (allocated blocks:
/// the store grows its file ahead of use, and space not written yet is not
/// allocated). The store keeps no subfolders.
pub async fn folder_bytes(folder: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(mut entries) = tokio::fs::read_dir(folder).await else {
        return 0;
    };
    let mut total = 0;
    while let Ok(Some(e)) = entries.next_entry().await {
        if let Ok(m) = e.metadata().await
            && m.is_file()
        {
            total += m.blocks() * 512;
        }
    }
    total
}

/// Samples a folder's size every `every` until stopped.
pub struct Sampler {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Vec<(u64, u64)>>,
}

impl Sampler {
    pub fn start(clock: Clock, folder: PathBuf, every: Duration) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                samples.push((clock.now_us(), folder_bytes(&folder).await));
                tokio::select! {
                    _ = stopped.changed() => break,
                    () = tokio::time::sleep(every) => {}
                }
            }
            samples.push((clock.now_us(), folder_bytes(&folder).await));
            samples
        });
        Sampler { stop, task }
    }

    /// Stops and returns `(µs, bytes)` samples.
    pub async fn finish(self) -> Vec<(u64, u64)> {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct DiskSample {
    /// Seconds since the first sample.
    pub at_s: f64,
    pub bytes: u64,
    /// Deliveries accepted and not yet received at that moment.
    pub pending: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiskFigures {
    pub samples: Vec<DiskSample>,
    pub peak_bytes: u64,
    pub end_bytes: u64,
    /// At the sample with the most deliveries pending: the folder's bytes
    /// divided by them (an upper bound: the folder also holds history).
    pub bytes_per_pending: Option<f64>,
    pub pending_at_that_sample: u64,
    /// Largest size in the first and in the second half of the samples:
    /// under steady load with a short retention these should match.
    pub first_half_max: u64,
    pub second_half_max: u64,
}

/// Joins samples with the accepts and arrivals of the same run.
pub fn figures(samples: &[(u64, u64)], accepted: &[Accepted], arrivals: &HashMap<String, u64>) -> DiskFigures {
    let mut accepts: Vec<u64> = accepted.iter().map(|a| a.accepted_us).collect();
    let mut arrived: Vec<u64> = accepted
        .iter()
        .filter_map(|a| arrivals.get(&a.delivery_id).copied())
        .collect();
    accepts.sort_unstable();
    arrived.sort_unstable();
    let pending_at = |t: u64| {
        let a = accepts.partition_point(|&x| x <= t) as u64;
        let d = arrived.partition_point(|&x| x <= t) as u64;
        a.saturating_sub(d)
    };
    let t0 = samples.first().map_or(0, |s| s.0);
    let samples: Vec<DiskSample> = samples
        .iter()
        .map(|&(t, bytes)| DiskSample {
            at_s: t.saturating_sub(t0) as f64 / 1e6,
            bytes,
            pending: pending_at(t),
        })
        .collect();
    let busiest = samples.iter().max_by_key(|s| s.pending).copied();
    let half = samples.len() / 2;
    let max_of = |s: &[DiskSample]| s.iter().map(|s| s.bytes).max().unwrap_or(0);
    DiskFigures {
        peak_bytes: max_of(&samples),
        end_bytes: samples.last().map_or(0, |s| s.bytes),
        bytes_per_pending: busiest
            .filter(|s| s.pending > 0)
            .map(|s| s.bytes as f64 / s.pending as f64),
        pending_at_that_sample: busiest.map_or(0, |s| s.pending),
        first_half_max: max_of(&samples[..half]),
        second_half_max: max_of(&samples[half..]),
        samples,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_and_bytes_per_pending_come_from_the_busiest_sample() {
        let accepted: Vec<Accepted> = (0..4)
            .map(|i| Accepted {
                delivery_id: format!("d{i}"),
                accepted_us: 10 + i,
            })
            .collect();
        let arrivals: HashMap<String, u64> = [("d0".into(), 50), ("d1".into(), 60)].into_iter().collect();
        let f = figures(&[(0, 100), (20, 400), (55, 300), (70, 200)], &accepted, &arrivals);
        let pending: Vec<u64> = f.samples.iter().map(|s| s.pending).collect();
        assert_eq!(pending, [0, 4, 3, 2]);
        assert_eq!(f.bytes_per_pending, Some(100.0));
        assert_eq!((f.peak_bytes, f.end_bytes), (400, 200));
        assert_eq!((f.first_half_max, f.second_half_max), (400, 300));
    }
}
