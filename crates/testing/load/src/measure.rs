//! What a run measures with: resident memory from `/proc`, latency histograms, medians, and the
//! machine a figure was taken on.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Resident set size of process `pid`, in bytes (`VmRSS`).
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))?;
    Ok(kib * 1024)
}

/// CPU time process `pid` has used so far (user and system), from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    // The kernel reports these in USER_HZ ticks, which is 100 a second on Linux.
    const TICKS_PER_SECOND: u64 = 100;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let ticks = cpu_ticks(&stat).with_context(|| format!("no CPU times in /proc/{pid}/stat"))?;
    Ok(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

/// utime plus stime of a `/proc/<pid>/stat` line: its 14th and 15th fields. The command name
/// (2nd, in parentheses) may hold spaces and parentheses, so fields are counted after its end.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// The 1-minute load average now.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .and_then(|first| first.parse().ok())
        .unwrap_or(0.0)
}

/// Lets this process (and what it starts) hold many sockets: the soft and, when allowed, the
/// hard limit on open files go up to what the kernel permits.
pub fn raise_open_file_limit() -> anyhow::Result<()> {
    let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20);
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    // Raising the hard limit needs privilege; without it the soft limit goes up to the hard one.
    if rlimit::setrlimit(rlimit::Resource::NOFILE, ceiling, ceiling).is_err() {
        rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard)?;
    }
    Ok(())
}

/// Latencies of one kind, in microseconds.
pub struct Latencies(hdrhistogram::Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        // One microsecond to one hour, three significant digits.
        Self(hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"))
    }
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(micros.max(1));
    }

    pub fn add(&mut self, other: &Latencies) {
        // Both histograms share bounds, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub fn summary(&self) -> LatencySummary {
        let ms = |micros: u64| micros as f64 / 1000.0;
        LatencySummary {
            count: self.0.len(),
            p50_ms: ms(self.0.value_at_quantile(0.50)),
            p90_ms: ms(self.0.value_at_quantile(0.90)),
            p99_ms: ms(self.0.value_at_quantile(0.99)),
            max_ms: ms(self.0.max()),
        }
    }

    /// `(latency in ms, fraction of samples at or below it)`, for a cumulative plot.
    pub fn distribution(&self) -> Vec<(f64, f64)> {
        let total = self.0.len().max(1) as f64;
        let mut seen = 0u64;
        self.0
            .iter_recorded()
            .map(|value| {
                seen += value.count_at_value();
                (
                    self.0.highest_equivalent(value.value_iterated_to()) as f64 / 1000.0,
                    seen as f64 / total,
                )
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// The middle value (the mean of the two middle ones for an even count); 0 for none.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// What a figure was measured on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    /// The 1-minute load average when the run started: other work on the machine shows here.
    pub load_average: f64,
}

impl Machine {
    pub fn describe() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let memory_kib = read("/proc/meminfo")
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0);
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib: (memory_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            load_average: load_average(),
        }
    }
}

/// Waits until `probe` answers `Some`, checking every `every`, for at most `limit`.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut probe: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what} after {limit:?}"
        );
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn cpu_ticks_are_read_past_a_command_name_with_spaces() {
        let stat = "4242 (dontouch (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 75 0 0 20 0 8 0";
        assert_eq!(cpu_ticks(stat), Some(325));
        assert_eq!(cpu_ticks("4242 (short) S 1"), None);
    }

    #[test]
    fn latency_summary_in_milliseconds() {
        let mut latencies = Latencies::default();
        for micros in 1..=1000 {
            latencies.record(Duration::from_micros(micros));
        }
        let summary = latencies.summary();
        assert_eq!(summary.count, 1000);
        assert!((summary.p50_ms - 0.5).abs() < 0.01, "{summary:?}");
        assert!((summary.p99_ms - 0.99).abs() < 0.01, "{summary:?}");
        assert!((summary.max_ms - 1.0).abs() < 0.01, "{summary:?}");
        let distribution = latencies.distribution();
        assert_eq!(distribution.last().map(|p| p.1), Some(1.0));
    }
}
