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
    /// A fresh system under test over `feed`.
    pub async fn start_system(&self, feed: &Feed) -> anyhow::Result<SystemUnderTest> {
        SystemUnderTest::start(&self.app.path()?, feed, &self.data_root, &self.app_env).await
    }
}
