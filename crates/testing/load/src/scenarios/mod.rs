//! One module per scenario; each starts what it measures, runs, writes its result and plot.

pub mod feed;
pub mod kafka_path;
pub mod rest;
pub mod rules;
pub mod sockets;
pub mod tick_to_alert;

use crate::feed::Feed;
use crate::system::{AppBinary, SystemUnderTest};
use std::path::PathBuf;

pub struct Context {
    pub app: AppBinary,
    pub out: PathBuf,
    /// Where each system under test gets its fresh data directory.
    pub data_root: PathBuf,
    pub app_env: Vec<(String, String)>,
}

impl Context {
    /// A fresh system under test over `feed` with the scenario's `settings` (environment
    /// variables); those given on the command line take precedence.
    pub async fn start_system_with(
        &self,
        feed: &Feed,
        settings: &[(&str, &str)],
    ) -> anyhow::Result<SystemUnderTest> {
        let env: Vec<(String, String)> = settings
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .chain(self.app_env.iter().cloned())
            .collect();
        SystemUnderTest::start(&self.app.path()?, feed, &self.data_root, &env).await
    }
}

/// The system's request rate limits switched off, for scenarios whose every client comes from the
/// one loopback address: the limits protect the service from one client, which here is the whole
/// load.
pub const NO_REQUEST_LIMITS: [(&str, &str); 2] = [
    ("SIGNAL_HTTP__REQUESTS_PER_SECOND_PER_ADDRESS", "0"),
    ("SIGNAL_HTTP__REQUESTS_PER_SECOND_PER_USER", "0"),
];
