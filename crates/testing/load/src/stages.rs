//! Where an alert's time goes inside the system under test: the spans it logs along the alert's
//! path (target `signal_latency`, at debug level), read back from its JSON log. Each span's line,
//! written when it closes, carries how long it was busy and idle, and the span's own fields: how
//! long before it the trade was received (`received_us`) or the alert fired (`fired_us`).

use crate::measure::{Latencies, LatencySummary};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// The setting that makes the system under test log the spans.
pub const LOG_FILTER: &str = "info,sqlx=warn,rdkafka=warn,signal_latency=debug";

const TARGET: &str = "signal_latency";

/// One stage of the path over a run.
#[derive(Debug, Serialize, Deserialize)]
pub struct Stage {
    /// The span's name, e.g. `engine.persist` (the outbox write).
    pub name: String,
    /// How long the stage took (busy and idle together).
    pub took: LatencySummary,
    /// How long before the stage began the alert fired (`fired_us`) or the trade was received
    /// (`received_us`), when the span records it.
    pub since: Option<LatencySummary>,
    /// Which of the two `since` is.
    pub since_what: Option<String>,
}

/// The stages logged to `log` between `from` and `to`, in the order of the path.
pub fn read(
    log: &Path,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Vec<Stage>> {
    let text = std::fs::read_to_string(log)?;
    let mut took: BTreeMap<String, Latencies> = BTreeMap::new();
    let mut since: BTreeMap<String, (String, Latencies)> = BTreeMap::new();
    for line in text.lines() {
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if entry["target"] != TARGET || entry["fields"]["message"] != "close" {
            continue;
        }
        let at = entry["timestamp"]
            .as_str()
            .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok());
        if !at.is_some_and(|at| at >= from && at <= to) {
            continue;
        }
        let span = &entry["span"];
        let Some(name) = span["name"].as_str() else {
            continue;
        };
        // The socket's replay on connect is not on the path of a live alert.
        if span["replayed"] == true {
            continue;
        }
        let busy = duration(&entry["fields"]["time.busy"]);
        let idle = duration(&entry["fields"]["time.idle"]);
        if let (Some(busy), Some(idle)) = (busy, idle) {
            took.entry(name.to_string())
                .or_default()
                .record(busy + idle);
        }
        for field in ["fired_us", "received_us"] {
            if let Some(micros) = span[field].as_u64() {
                since
                    .entry(name.to_string())
                    .or_insert_with(|| (field.to_string(), Latencies::default()))
                    .1
                    .record(Duration::from_micros(micros));
            }
        }
    }
    let mut stages: Vec<Stage> = took
        .into_iter()
        .map(|(name, took)| {
            let since = since.remove(&name);
            Stage {
                took: took.summary(),
                since_what: since.as_ref().map(|(what, _)| what.clone()),
                since: since.map(|(_, latencies)| latencies.summary()),
                name,
            }
        })
        .collect();
    stages.sort_by_key(|stage| path_order(&stage.name));
    Ok(stages)
}

/// Where a stage falls on the path; unknown ones last.
fn path_order(name: &str) -> usize {
    const PATH: [&str; 6] = [
        "engine.persist",
        "relay.read",
        "bus.publish",
        "alert.store",
        "alert.push",
        "relay.mark_sent",
    ];
    PATH.iter()
        .position(|stage| *stage == name)
        .unwrap_or(PATH.len())
}

/// A duration as tracing writes it: `12.3ms`, `456µs`, `789ns`, `1.20s`.
fn duration(text: &Value) -> Option<Duration> {
    let text = text.as_str()?;
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let nanos_per_unit = match unit {
        "s" => 1e9,
        "ms" => 1e6,
        "µs" | "us" => 1e3,
        "ns" => 1.0,
        _ => return None,
    };
    Some(Duration::from_nanos(
        (number * nanos_per_unit).round() as u64
    ))
}

/// One line per stage, for the console.
pub fn describe(stages: &[Stage]) -> String {
    stages
        .iter()
        .map(|stage| {
            let since = match (&stage.since, &stage.since_what) {
                (Some(since), Some(what)) => format!(
                    "; {what} p50 {:.2} ms, p99 {:.2} ms",
                    since.p50_ms, since.p99_ms
                ),
                _ => String::new(),
            };
            format!(
                "    {:<16} n {:>5}: took p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms{since}\n",
                stage.name,
                stage.took.count,
                stage.took.p50_ms,
                stage.took.p99_ms,
                stage.took.max_ms
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tracings_durations() {
        let micros = |text: &str| duration(&Value::from(text)).map(|d| d.as_micros());
        assert_eq!(micros("12.5ms"), Some(12_500));
        assert_eq!(micros("250µs"), Some(250));
        assert_eq!(micros("2.00s"), Some(2_000_000));
        assert_eq!(micros("soon"), None);
    }
}
