//! The production topology as a system under test: the `asset-service` and `alert-service`
//! release binaries as separate processes, a Kafka-protocol broker of their own (tansu, in
//! memory), two fresh PostgreSQL databases and a Redis key prefix of their own, fed by the
//! harness's exchange.

use crate::feed::Feed;
use anyhow::Context;
use signal_test_servers::{free_port, Broker};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// Generous: the first start creates the schemas and the topics.
const STARTUP: Duration = Duration::from_secs(120);

/// Where the topology's shared servers are.
#[derive(clap::Args)]
pub struct Servers {
    /// A PostgreSQL URL allowed to create databases; two fresh ones are made, and dropped after.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// Redis, used under a key prefix of the run's own.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// Where `asset-service` and `alert-service` are (default: beside this harness).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

/// One service's process, killed when dropped; its log in the run's directory.
struct Service {
    child: Child,
    addr: SocketAddr,
}

pub struct Topology {
    asset: Service,
    alert: Service,
    _broker: Broker,
    admin_url: String,
    databases: [String; 2],
    /// The services' logs.
    pub dir: tempfile::TempDir,
}

impl Topology {
    /// Starts the broker and both services over `feed`, with `extra_env` on top of the run's
    /// settings (the same for both services).
    pub async fn start(
        servers: &Servers,
        feed: &Feed,
        secret: &str,
        extra_env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let bin_dir = match &servers.bin_dir {
            Some(dir) => dir.clone(),
            None => std::env::current_exe()?
                .parent()
                .context("the harness has no directory")?
                .to_path_buf(),
        };
        let broker = Broker::start().await;
        let run = format!("{:016x}", rand::random::<u64>());
        let databases = [format!("load_asset_{run}"), format!("load_alert_{run}")];
        sqlx::any::install_default_drivers();
        let admin = sqlx::AnyPool::connect(&servers.postgres)
            .await
            .context("connecting to PostgreSQL")?;
        for name in &databases {
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&admin)
                .await
                .with_context(|| format!("creating database {name}"))?;
        }
        admin.close().await;
        let base = servers
            .postgres
            .rsplit_once('/')
            .map(|(base, _)| base)
            .context("the PostgreSQL URL names no database")?;
        let dir = tempfile::Builder::new().prefix("signal-load-").tempdir()?;
        let mut env: Vec<(String, String)> = vec![
            ("SIGNAL_BUS__URL".into(), broker.url()),
            ("SIGNAL_BUS__ALERTS_TOPIC".into(), format!("alerts-{run}")),
            (
                "SIGNAL_BUS__MARKET_DATA_TOPIC".into(),
                format!("market-data-{run}"),
            ),
            ("SIGNAL_BUS__PARTITIONS".into(), "3".into()),
            // tansu 0.6 mis-serves a fetch starting inside a record batch (see .env.example).
            ("SIGNAL_BUS__PRODUCER_BATCH_MESSAGES".into(), "1".into()),
            // tansu 0.6 holds every fetch this long, even when messages arrive meanwhile.
            ("SIGNAL_BUS__CONSUMER_FETCH_WAIT_MS".into(), "10".into()),
            ("SIGNAL_BUS__CONSUMER_GROUP".into(), format!("load-{run}")),
            ("SIGNAL_CACHE__URL".into(), servers.redis.clone()),
            ("SIGNAL_CACHE__KEY_PREFIX".into(), format!("load:{run}:")),
            (
                "SIGNAL_ASSET__DATABASE_URL".into(),
                format!("{base}/{}", databases[0]),
            ),
            (
                "SIGNAL_ALERT__DATABASE_URL".into(),
                format!("{base}/{}", databases[1]),
            ),
            ("SIGNAL_AUTH__JWT_SECRET".into(), secret.into()),
            ("SIGNAL_DATA_DIR".into(), dir.path().display().to_string()),
            ("SIGNAL_LOG_FORMAT".into(), "json".into()),
            ("SIGNAL_UPBIT__REST_URL".into(), feed.rest_url()),
            ("SIGNAL_UPBIT__WS_URL".into(), feed.ws_url()),
        ];
        env.extend(extra_env.iter().cloned());
        let alert = Service::start(&bin_dir, "alert-service", "ALERT", &env, dir.path()).await?;
        let asset = Service::start(&bin_dir, "asset-service", "ASSET", &env, dir.path()).await?;
        Ok(Self {
            asset,
            alert,
            _broker: broker,
            admin_url: servers.postgres.clone(),
            databases,
            dir,
        })
    }

    pub fn asset(&self) -> SocketAddr {
        self.asset.addr
    }

    pub fn alert(&self) -> SocketAddr {
        self.alert.addr
    }

    /// Stops both services (SIGTERM) and drops their databases.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.asset.stop().await;
        self.alert.stop().await;
        let admin = sqlx::AnyPool::connect(&self.admin_url).await?;
        for name in &self.databases {
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
                .execute(&admin)
                .await?;
        }
        admin.close().await;
        Ok(())
    }
}

impl Service {
    async fn start(
        bin_dir: &Path,
        binary: &str,
        section: &str,
        env: &[(String, String)],
        dir: &Path,
    ) -> anyhow::Result<Self> {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let program = bin_dir.join(binary);
        let log = std::fs::File::create(dir.join(format!("{binary}.log")))?;
        let child = Command::new(&program)
            .envs(env.iter().cloned())
            .env(format!("SIGNAL_{section}__BIND"), addr.to_string())
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (build it with `cargo build --release -p dontouch-signal`)",
                    program.display()
                )
            })?;
        let http = reqwest::Client::new();
        crate::measure::wait_for(
            &format!("{binary} to be ready"),
            STARTUP,
            Duration::from_millis(50),
            || async {
                let response = http.get(format!("http://{addr}/health/ready")).send().await;
                response.ok().filter(|r| r.status().is_success())
            },
        )
        .await?;
        Ok(Self { child, addr })
    }

    async fn stop(&mut self) {
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
            let _ = self.child.kill().await;
        }
    }
}
