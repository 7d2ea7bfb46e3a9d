//! The Node peer (`peer/quote-server.js`, on the `ws` package): the same quote-socket job done the
//! way a small Node service would, over the same feed, measured by the same clients.

use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

fn peer_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peer")
}

/// Installs the peer's one dependency from its lock file, once.
async fn install() -> anyhow::Result<()> {
    let dir = peer_dir();
    if dir.join("node_modules/ws/package.json").exists() {
        return Ok(());
    }
    eprintln!("installing the Node peer's dependencies (npm ci)");
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .status()
        .await
        .context("running npm (Node.js and npm are needed for the peer)")?;
    anyhow::ensure!(status.success(), "npm ci failed in {}", dir.display());
    Ok(())
}

pub struct NodePeer {
    child: Child,
    pub addr: SocketAddr,
    pub version: String,
}

impl NodePeer {
    /// Starts the peer following `feed_ws_url` for `codes`.
    pub async fn start(feed_ws_url: &str, codes: &[String]) -> anyhow::Result<Self> {
        install().await?;
        let version = Command::new("node").arg("--version").output().await?;
        let mut child = Command::new("node")
            .arg(peer_dir().join("quote-server.js"))
            .arg(feed_ws_url)
            .arg(codes.join(","))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting node")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let port: u16 = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(port) = line.strip_prefix("listening ") {
                    return Ok(port.trim().parse()?);
                }
            }
            anyhow::bail!("the peer exited before listening")
        })
        .await
        .context("the peer did not listen within 30 s")??;
        Ok(Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            version: String::from_utf8_lossy(&version.stdout).trim().to_string(),
        })
    }

    pub fn rss(&self) -> anyhow::Result<u64> {
        crate::measure::rss_bytes(self.child.id().context("the peer has exited")?)
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}
