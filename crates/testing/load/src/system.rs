//! The system under test: the release build of the all-in-one binary, started as a child process
//! on a fresh data directory, both services on ports of the OS's choosing, fed by the harness's
//! exchange. Tokens are signed with a secret the harness gives it.

use crate::feed::Feed;
use anyhow::Context;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, Command};

const APP_NAME: &str = "dontouch-signal";
/// The system's log, in its data directory.
const LOG_FILE: &str = "app.log";
/// Generous: on a disk shared with other work, SQLite's first writes can take seconds.
const STARTUP: Duration = Duration::from_secs(180);

/// Where the binary under test is, built on first use when the harness runs under cargo.
pub struct AppBinary {
    given: Option<PathBuf>,
    built: Mutex<Option<PathBuf>>,
}

impl AppBinary {
    pub fn new(given: Option<PathBuf>) -> Self {
        Self {
            given,
            built: Mutex::new(None),
        }
    }

    /// The binary's path. Without `--app`, the one beside this harness; under `cargo run` it is
    /// built first, so a figure never comes from a stale binary.
    pub fn path(&self) -> anyhow::Result<PathBuf> {
        if let Some(given) = &self.given {
            return Ok(given.clone());
        }
        let mut built = self.built.lock().expect("app path");
        if let Some(path) = built.as_ref() {
            return Ok(path.clone());
        }
        let beside = std::env::current_exe()?
            .parent()
            .context("the harness has no directory")?
            .join(APP_NAME);
        if let Ok(cargo) = std::env::var("CARGO") {
            eprintln!("building the release binary under test ({APP_NAME})");
            let status = std::process::Command::new(cargo)
                .args(["build", "--release", "-p", APP_NAME, "--bin", APP_NAME])
                .status()
                .context("running cargo build")?;
            anyhow::ensure!(status.success(), "cargo build of {APP_NAME} failed");
        }
        anyhow::ensure!(
            beside.exists(),
            "{} does not exist: build it with `cargo build --release -p {APP_NAME}` or pass --app",
            beside.display()
        );
        *built = Some(beside.clone());
        Ok(beside)
    }
}

/// What the system under test has logged so far, counted as its lines go by.
#[derive(Default)]
pub struct LogCounts {
    pub warnings: AtomicU64,
    pub errors: AtomicU64,
    /// sqlx's "slow statement" warnings: statements that took over its threshold (1 s).
    pub slow_statements: AtomicU64,
    /// The longest slow statement seen, in milliseconds.
    pub slowest_statement_ms: AtomicU64,
    /// The first error logged, to show when the run ends.
    pub first_error: Mutex<Option<String>>,
}

pub struct SystemUnderTest {
    child: Child,
    pub asset: SocketAddr,
    pub alert: SocketAddr,
    secret: String,
    pub http: reqwest::Client,
    pub log: Arc<LogCounts>,
    data: tempfile::TempDir,
}

impl SystemUnderTest {
    /// Starts the binary over `feed`, its data directory made fresh under `data_root`, with
    /// `extra_env` on top of the harness's settings.
    pub async fn start(
        app: &Path,
        feed: &Feed,
        data_root: &Path,
        extra_env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let data = tempfile::Builder::new()
            .prefix("signal-load-")
            .tempdir_in(data_root)?;
        let secret = new_secret();
        let mut command = Command::new(app);
        command
            .env("SIGNAL_DATA_DIR", data.path())
            .env("SIGNAL_ASSET__BIND", "127.0.0.1:0")
            .env("SIGNAL_ALERT__BIND", "127.0.0.1:0")
            .env("SIGNAL_AUTH__JWT_SECRET", &secret)
            .env("SIGNAL_LOG_FORMAT", "json")
            .env("SIGNAL_UPBIT__REST_URL", feed.rest_url())
            .env("SIGNAL_UPBIT__WS_URL", feed.ws_url())
            .env("SIGNAL_UPBIT__STREAM_ALL_KRW_MARKETS", "true")
            .envs(extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", app.display()))?;
        let stderr = child.stderr.take().context("no stderr")?;
        let log = Arc::new(LogCounts::default());
        let log_path = data.path().join(LOG_FILE);
        let (asset, alert) =
            tokio::time::timeout(STARTUP, follow_log(stderr, log.clone(), log_path))
                .await
                .context("the system under test did not come up in time")??;
        let system = Self {
            child,
            asset,
            alert,
            secret,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()?,
            log,
            data,
        };
        system.wait_until_ready().await?;
        Ok(system)
    }

    /// Its log as written so far, one JSON object a line.
    pub fn log_path(&self) -> PathBuf {
        self.data.path().join(LOG_FILE)
    }

    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("the system under test has exited")
    }

    /// The CPU time it has used so far.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        crate::measure::cpu_time(self.pid()?)
    }

    pub fn rss(&self) -> anyhow::Result<u64> {
        crate::measure::rss_bytes(self.pid()?)
    }

    /// A token for `user`, valid for a day.
    pub fn token(&self, user: &str) -> String {
        token(&self.secret, user)
    }

    pub fn asset_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.asset)
    }

    /// `GET` on the Asset Service as `token`, answered with JSON.
    pub async fn get_json(&self, path: &str, token: &str) -> anyhow::Result<Value> {
        let response = self
            .http
            .get(self.asset_url(path))
            .bearer_auth(token)
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await?;
        anyhow::ensure!(status.is_success(), "GET {path}: {status} {body}");
        Ok(serde_json::from_str(&body)?)
    }

    /// Ready, and holding a price for every market the feed lists.
    async fn wait_until_ready(&self) -> anyhow::Result<()> {
        crate::measure::wait_for(
            "/health/ready",
            STARTUP,
            Duration::from_millis(50),
            || async {
                let response = self.http.get(self.asset_url("/health/ready")).send().await;
                response.ok().filter(|r| r.status().is_success())
            },
        )
        .await?;
        Ok(())
    }

    /// Asks the process to stop (SIGTERM) and waits up to 30 s before killing it. Errors it
    /// logged are reported: a figure taken while the system failed needs reading with that.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let errors = self.log.errors.load(Ordering::Relaxed);
        if let Some(first) = self.log.first_error.lock().expect("first error").as_deref() {
            eprintln!("the system under test logged {errors} errors; the first:\n{first}");
        }
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await?;
        }
        Ok(())
    }
}

/// A fresh random secret for signing the run's tokens.
pub fn new_secret() -> String {
    format!(
        "{:032x}{:032x}",
        rand::random::<u128>(),
        rand::random::<u128>()
    )
}

/// A token for `user` signed with `secret`, valid for a day.
pub fn token(secret: &str, user: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({ "sub": user, "iat": now, "exp": now + 86_400 });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing cannot fail")
}

/// Reads the JSON log until the line announcing both addresses, then keeps reading in the
/// background (into `path`, counting warnings and slow statements) so the pipe never fills.
async fn follow_log(
    stderr: ChildStderr,
    counts: Arc<LogCounts>,
    path: PathBuf,
) -> anyhow::Result<(SocketAddr, SocketAddr)> {
    let mut lines = BufReader::new(stderr).lines();
    let mut file = tokio::fs::File::create(&path).await?;
    let addresses = loop {
        let line = lines
            .next_line()
            .await?
            .context("the system under test exited before it was up")?;
        file.write_all(line.as_bytes()).await?;
        file.write_all(b"\n").await?;
        count(&counts, &line);
        let Ok(entry) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let fields = &entry["fields"];
        let address = |name: &str| fields[name].as_str().and_then(|a| a.parse().ok());
        if let (Some(asset), Some(alert)) = (address("asset_addr"), address("alert_addr")) {
            break (asset, alert);
        }
    };
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            count(&counts, &line);
            if file.write_all(line.as_bytes()).await.is_err()
                || file.write_all(b"\n").await.is_err()
            {
                break;
            }
        }
    });
    Ok(addresses)
}

fn count(counts: &LogCounts, line: &str) {
    let Ok(entry) = serde_json::from_str::<Value>(line) else {
        return;
    };
    match entry["level"].as_str() {
        Some("WARN") => counts.warnings.fetch_add(1, Ordering::Relaxed),
        Some("ERROR") => {
            counts
                .first_error
                .lock()
                .expect("first error")
                .get_or_insert_with(|| line.to_string());
            counts.errors.fetch_add(1, Ordering::Relaxed)
        }
        _ => 0,
    };
    let message = entry["fields"]["message"].as_str().unwrap_or_default();
    if message.contains("slow statement") {
        counts.slow_statements.fetch_add(1, Ordering::Relaxed);
        let elapsed = entry["fields"]["elapsed_secs"]
            .as_f64()
            .map(|secs| (secs * 1000.0) as u64)
            .unwrap_or(0);
        counts
            .slowest_statement_ms
            .fetch_max(elapsed, Ordering::Relaxed);
    }
}
