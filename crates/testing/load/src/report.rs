//! Each run's result: a JSON file per scenario saying what was measured, on what machine, by which
//! command and when, beside the figures themselves.

use crate::measure::Machine;
use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where and how a result was taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunHeader {
    pub scenario: String,
    /// RFC 3339, UTC.
    pub date: String,
    /// The harness command line, as typed after the binary's name.
    pub command: String,
    /// The commit measured (`git describe --always --dirty`), when run inside a checkout.
    pub commit: Option<String>,
    pub machine: Machine,
}

impl RunHeader {
    pub fn new(scenario: &str) -> Self {
        let arguments: Vec<String> = std::env::args().skip(1).collect();
        let commit = std::process::Command::new("git")
            .args(["describe", "--always", "--dirty"])
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string());
        Self {
            scenario: scenario.to_string(),
            date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            command: format!("signal-load {}", arguments.join(" ")),
            commit,
            machine: Machine::describe(),
        }
    }
}

pub fn result_path(out: &Path, scenario: &str) -> PathBuf {
    out.join(format!("{scenario}.json"))
}

pub fn plot_path(out: &Path, scenario: &str) -> PathBuf {
    out.join(format!("{scenario}.svg"))
}

/// Writes `result` as `<out>/<scenario>.json` and returns its path.
pub fn write<T: Serialize>(out: &Path, scenario: &str, result: &T) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let path = result_path(out, scenario);
    let mut text = serde_json::to_string_pretty(result)?;
    text.push('\n');
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Reads `<out>/<scenario>.json`, if a run wrote one.
pub fn read<T: DeserializeOwned>(out: &Path, scenario: &str) -> anyhow::Result<Option<T>> {
    let path = result_path(out, scenario);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path)?;
    let result =
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(result))
}
