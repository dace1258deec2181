//! Delivery statistics: what every gateway adds up per webhook and per
//! minute in the store, so the API and the dashboard show the whole fleet
//! over time (the Prometheus metrics are per process, since it started).
//!
//! [`Counters`] is one row: attempts by result class, deliveries by final
//! outcome, retries, rate-limit waits and a latency histogram with fixed
//! bounds. Rows of any webhooks, gateways and minutes add up by plain
//! addition, so the store only ever increments, and percentiles come from
//! the summed histogram. This module is pure: the dispatcher tallies rows
//! (`dispatch::tally`), the store keeps them, the API reads them.

use std::time::Duration;

/// The scope of the rows that sum every webhook (never a webhook id: ids
/// are `[A-Za-z0-9_-]`).
pub const FLEET: &str = "*";

/// Minute rows are kept this long (a day's window plus slack).
pub const MINUTE_ROWS_KEPT: Duration = Duration::from_secs(26 * 3600);
/// Hour rows are kept this long (a week's window plus slack).
pub const HOUR_ROWS_KEPT: Duration = Duration::from_secs(8 * 24 * 3600);

/// Upper bounds (µs) of the latency histogram's buckets; one more bucket
/// holds everything slower.
pub const LATENCY_BOUNDS_US: [u64; 15] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000, 30_000_000,
];
const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_US.len() + 1;

/// A counter of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// An attempt answered 2xx.
    AttemptSuccess = 0,
    AttemptHttp4xx,
    AttemptHttp5xx,
    AttemptTimeout,
    AttemptConnectError,
    AttemptPluginError,
    /// A delivery that reached `succeeded`.
    Succeeded,
    Dead,
    Filtered,
    /// A retry scheduled after a failed attempt.
    Retries,
    /// A delivery that waited for its webhook's rate limit.
    RateLimited,
    /// Sum of attempt durations, µs.
    LatencySumUs,
}

/// Counters in a row, in storage order.
pub const FIELDS: usize = Field::LatencySumUs as usize + 1 + LATENCY_BUCKETS;

/// The storage name of counter `i` (stable: stored by both backends).
pub fn field_name(i: usize) -> &'static str {
    const NAMES: [&str; FIELDS] = [
        "a_ok",
        "a_4xx",
        "a_5xx",
        "a_timeout",
        "a_connect",
        "a_plugin",
        "d_ok",
        "d_dead",
        "d_filtered",
        "retries",
        "rate_limited",
        "lat_sum_us",
        "lat_0.5ms",
        "lat_1ms",
        "lat_2.5ms",
        "lat_5ms",
        "lat_10ms",
        "lat_25ms",
        "lat_50ms",
        "lat_100ms",
        "lat_250ms",
        "lat_500ms",
        "lat_1s",
        "lat_2.5s",
        "lat_5s",
        "lat_10s",
        "lat_30s",
        "lat_inf",
    ];
    NAMES[i]
}

/// The index of a storage name.
pub fn field_index(name: &str) -> Option<usize> {
    (0..FIELDS).find(|&i| field_name(i) == name)
}

/// What an attempt came to, as counted (the same classes as the
/// `hookgate_delivery_attempts_total` metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptClass {
    Success,
    Http4xx,
    Http5xx,
    Timeout,
    ConnectError,
    PluginError,
}

impl AttemptClass {
    /// From the metric label.
    pub fn from_label(label: &str) -> Option<Self> {
        Some(match label {
            "success" => AttemptClass::Success,
            "http_4xx" => AttemptClass::Http4xx,
            "http_5xx" => AttemptClass::Http5xx,
            "timeout" => AttemptClass::Timeout,
            "connect_error" => AttemptClass::ConnectError,
            "plugin_error" => AttemptClass::PluginError,
            _ => return None,
        })
    }

    fn field(self) -> Field {
        match self {
            AttemptClass::Success => Field::AttemptSuccess,
            AttemptClass::Http4xx => Field::AttemptHttp4xx,
            AttemptClass::Http5xx => Field::AttemptHttp5xx,
            AttemptClass::Timeout => Field::AttemptTimeout,
            AttemptClass::ConnectError => Field::AttemptConnectError,
            AttemptClass::PluginError => Field::AttemptPluginError,
        }
    }
}

/// One row of counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters(pub [u64; FIELDS]);

impl Default for Counters {
    fn default() -> Self {
        Counters([0; FIELDS])
    }
}

impl Counters {
    pub fn get(&self, f: Field) -> u64 {
        self.0[f as usize]
    }

    pub fn bump(&mut self, f: Field) {
        self.0[f as usize] += 1;
    }

    pub fn attempt(&mut self, class: AttemptClass, took: Duration) {
        self.bump(class.field());
        let us = took.as_micros().min(u128::from(u64::MAX)) as u64;
        self.0[Field::LatencySumUs as usize] = self.0[Field::LatencySumUs as usize].saturating_add(us);
        let bucket = LATENCY_BOUNDS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(LATENCY_BOUNDS_US.len());
        self.0[Field::LatencySumUs as usize + 1 + bucket] += 1;
    }

    pub fn add(&mut self, other: &Counters) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a = a.saturating_add(*b);
        }
    }

    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|&v| v == 0)
    }

    pub fn attempts(&self) -> u64 {
        (Field::AttemptSuccess as usize..=Field::AttemptPluginError as usize)
            .map(|i| self.0[i])
            .sum()
    }

    fn latency_histogram(&self) -> &[u64] {
        &self.0[Field::LatencySumUs as usize + 1..]
    }

    /// Attempts that answered 2xx, of all attempts.
    pub fn attempt_success_rate(&self) -> Option<f64> {
        let all = self.attempts();
        (all > 0).then(|| self.get(Field::AttemptSuccess) as f64 / all as f64)
    }

    /// Deliveries that finally succeeded, of those that reached `succeeded`
    /// or `dead` (a filtered delivery was not meant to arrive).
    pub fn delivery_success_rate(&self) -> Option<f64> {
        let ok = self.get(Field::Succeeded);
        let all = ok + self.get(Field::Dead);
        (all > 0).then(|| ok as f64 / all as f64)
    }

    pub fn mean_latency_ms(&self) -> Option<f64> {
        let n: u64 = self.latency_histogram().iter().sum();
        (n > 0).then(|| self.get(Field::LatencySumUs) as f64 / n as f64 / 1000.0)
    }

    /// The `q` quantile (0..=1) of attempt latency, ms, interpolated within
    /// its histogram bucket; `None` without attempts. Past the last bound
    /// it answers the last bound (a lower bound of the truth).
    pub fn latency_quantile_ms(&self, q: f64) -> Option<f64> {
        let hist = self.latency_histogram();
        let n: u64 = hist.iter().sum();
        if n == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * n as f64).max(1.0);
        let mut seen = 0u64;
        for (i, &count) in hist.iter().enumerate() {
            if count == 0 {
                continue;
            }
            if (seen + count) as f64 >= rank {
                let Some(&upper) = LATENCY_BOUNDS_US.get(i) else {
                    return Some(LATENCY_BOUNDS_US[LATENCY_BOUNDS_US.len() - 1] as f64 / 1000.0);
                };
                let lower = if i == 0 { 0 } else { LATENCY_BOUNDS_US[i - 1] };
                let within = (rank - seen as f64) / count as f64;
                return Some((lower as f64 + within * (upper - lower) as f64) / 1000.0);
            }
            seen += count;
        }
        None
    }
}

/// One row to add: `scope` is a webhook id or [`FLEET`]; `minute` counts
/// minutes since the Unix epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub scope: String,
    pub minute: u64,
    pub counters: Counters,
}

/// The resolution of stored rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Minute,
    Hour,
}

impl Granularity {
    pub fn seconds(self) -> u64 {
        match self {
            Granularity::Minute => 60,
            Granularity::Hour => 3600,
        }
    }

    /// The bucket holding unix time `ms`.
    pub fn bucket(self, ms: u64) -> u64 {
        ms / 1000 / self.seconds()
    }
}

/// A window the API answers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Hour,
    Day,
    Week,
}

impl Window {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "1h" => Window::Hour,
            "24h" => Window::Day,
            "7d" => Window::Week,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Window::Hour => "1h",
            Window::Day => "24h",
            Window::Week => "7d",
        }
    }

    /// The rows it reads.
    pub fn granularity(self) -> Granularity {
        match self {
            Window::Hour | Window::Day => Granularity::Minute,
            Window::Week => Granularity::Hour,
        }
    }

    /// Rows it spans (the newest, still filling, included).
    pub fn buckets(self) -> u64 {
        match self {
            Window::Hour => 60,
            Window::Day => 1440,
            Window::Week => 168,
        }
    }

    /// Rows per point of its series.
    pub fn step(self) -> u64 {
        match self {
            Window::Hour | Window::Week => 1,
            Window::Day => 15,
        }
    }

    /// The first and last bucket (inclusive) of the window ending at `now_ms`,
    /// aligned so series points hold whole steps.
    pub fn range(self, now_ms: u64) -> (u64, u64) {
        let g = self.granularity();
        let step = self.step();
        let last = g.bucket(now_ms);
        let end = last - last % step + step - 1;
        (end + 1 - self.buckets(), end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_are_unique_and_round_trip() {
        for i in 0..FIELDS {
            assert_eq!(field_index(field_name(i)), Some(i));
        }
        assert_eq!(field_index("nope"), None);
    }

    #[test]
    fn latency_lands_in_its_bucket_and_quantiles_interpolate() {
        let mut c = Counters::default();
        for _ in 0..50 {
            c.attempt(AttemptClass::Success, Duration::from_millis(3));
        }
        for _ in 0..50 {
            c.attempt(AttemptClass::Http5xx, Duration::from_millis(80));
        }
        assert_eq!(c.attempts(), 100);
        assert_eq!(c.attempt_success_rate(), Some(0.5));
        // p50 is the 50th sample: the top of the (2.5, 5] ms bucket.
        assert_eq!(c.latency_quantile_ms(0.5), Some(5.0));
        // p95: 45 of 50 samples into the (50, 100] bucket.
        let p95 = c.latency_quantile_ms(0.95).unwrap();
        assert!((p95 - 95.0).abs() < 1e-9, "{p95}");
        assert_eq!(c.mean_latency_ms(), Some(41.5));
    }

    #[test]
    fn slow_attempts_answer_the_last_bound() {
        let mut c = Counters::default();
        c.attempt(AttemptClass::Timeout, Duration::from_secs(60));
        assert_eq!(c.latency_quantile_ms(0.5), Some(30_000.0));
        assert_eq!(Counters::default().latency_quantile_ms(0.5), None);
    }

    #[test]
    fn rows_add_up_and_rates_need_data() {
        let mut a = Counters::default();
        a.bump(Field::Succeeded);
        let mut b = Counters::default();
        b.bump(Field::Dead);
        b.bump(Field::Filtered);
        a.add(&b);
        assert_eq!(a.delivery_success_rate(), Some(0.5));
        assert_eq!(Counters::default().delivery_success_rate(), None);
        assert!(Counters::default().is_zero());
    }

    #[test]
    fn windows_cover_whole_steps_ending_now() {
        let now = 1_700_000_123_456u64; // minute 28_333_335
        let (from, to) = Window::Hour.range(now);
        assert_eq!(to, now / 60_000);
        assert_eq!(to - from + 1, 60);
        let (from, to) = Window::Day.range(now);
        assert_eq!((to + 1) % 15, 0);
        assert!(to >= now / 60_000);
        assert_eq!(to - from + 1, 1440);
        let (from, to) = Window::Week.range(now);
        assert_eq!(to, now / 3_600_000);
        assert_eq!(to - from + 1, 168);
        assert_eq!(Window::parse("24h"), Some(Window::Day));
        assert_eq!(Window::parse("2h"), None);
    }
}
