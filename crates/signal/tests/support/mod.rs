//! Running the production topology in a test: a Kafka-protocol broker (tansu) of its own, fresh
//! PostgreSQL databases, a Redis key prefix, the local stand-in for Upbit, and the
//! `asset-service` and `alert-service` binaries as separate processes.

#![allow(dead_code)] // each test file uses its own subset

use futures::StreamExt;
use serde_json::json;
pub use signal_exchange_fakes::FakeUpbit;
pub use signal_test_servers::{free_port, Broker};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

pub const SECRET: &str = "production-test-secret-0123456789abcdef";

/// A fresh, empty PostgreSQL database; returns its URL.
pub async fn fresh_database() -> String {
    let admin = std::env::var("DONTOUCH_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("signal_e2e_{}", uuid::Uuid::new_v4().simple());
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&admin)
        .await
        .expect("PostgreSQL is reachable");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .unwrap();
    let base = admin.rsplit_once('/').map(|(base, _)| base).unwrap();
    format!("{base}/{name}")
}

/// Points a service at the local Upbit stand-in.
pub fn upbit_env(upbit: &FakeUpbit) -> Vec<(String, String)> {
    vec![
        ("SIGNAL_UPBIT__REST_URL".into(), upbit.rest_url()),
        ("SIGNAL_UPBIT__WS_URL".into(), upbit.ws_url()),
    ]
}

/// A service binary running as its own process, killed when dropped. Its log goes to a file in
/// the test's directory.
pub struct ServiceProcess {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl ServiceProcess {
    pub async fn start(
        binary: &str,
        port: u16,
        env: &[(String, String)],
        dir: &Path,
    ) -> ServiceProcess {
        let log = dir.join(format!(
            "{}-{port}-{}.log",
            Path::new(binary).file_name().unwrap().to_string_lossy(),
            uuid::Uuid::new_v4().simple()
        ));
        let child = Command::new(binary)
            .envs(env.iter().cloned())
            .env("RUST_LOG", "info")
            .env_remove("RUST_BACKTRACE")
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("service binary starts");
        let process = ServiceProcess { child, port, log };
        process.wait_ready().await;
        process
    }

    /// Waits until the service says it is ready: a minute at most, generous for a loaded machine.
    async fn wait_ready(&self) {
        let url = format!("http://127.0.0.1:{}/health/ready", self.port);
        for _ in 0..1200 {
            if let Ok(response) = reqwest::get(&url).await {
                if response.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("service never became ready; its log:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no graceful shutdown, as in a crash.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    /// SIGTERM, as an orchestrator stops a service; whether the process exited within `within`.
    pub async fn terminate(&mut self, within: Duration) -> bool {
        let pid = self.child.id().expect("the service is running").to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .expect("kill runs");
        assert!(status.success());
        tokio::time::timeout(within, self.child.wait())
            .await
            .is_ok()
    }
}

/// Reads a counter or gauge from a service's /metrics.
pub async fn metric(port: u16, name: &str) -> f64 {
    let Ok(response) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await else {
        return 0.0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// The settings both services share in one test, as environment variables.
pub async fn topology_env(broker: &Broker, upbit: &FakeUpbit, dir: &Path) -> Vec<(String, String)> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut env = vec![
        ("SIGNAL_BUS__URL".to_string(), broker.url()),
        ("SIGNAL_BUS__ALERTS_TOPIC".into(), format!("alerts-{run}")),
        (
            "SIGNAL_BUS__MARKET_DATA_TOPIC".into(),
            format!("market-data-{run}"),
        ),
        ("SIGNAL_BUS__PARTITIONS".into(), "3".into()),
        // tansu 0.6 answers a fetch from an offset inside a record batch with the batches that
        // start after it (its storage looks batches up by base offset), so a consumer resuming
        // from a committed offset mid-batch silently skips that batch's tail. One message per
        // batch makes every offset a batch start.
        ("SIGNAL_BUS__PRODUCER_BATCH_MESSAGES".into(), "1".into()),
        // tansu 0.6 holds every fetch for this long, even when messages arrive meanwhile.
        ("SIGNAL_BUS__CONSUMER_FETCH_WAIT_MS".into(), "10".into()),
        (
            "SIGNAL_BUS__CONSUMER_GROUP".into(),
            format!("alert-service-{run}"),
        ),
        ("SIGNAL_CACHE__URL".into(), "redis://127.0.0.1:6379".into()),
        ("SIGNAL_CACHE__KEY_PREFIX".into(), format!("e2e:{run}:")),
        ("SIGNAL_ASSET__DATABASE_URL".into(), fresh_database().await),
        ("SIGNAL_ALERT__DATABASE_URL".into(), fresh_database().await),
        ("SIGNAL_AUTH__JWT_SECRET".into(), SECRET.into()),
        ("SIGNAL_DATA_DIR".into(), dir.display().to_string()),
    ];
    env.extend(upbit_env(upbit));
    env
}

/// Starts the Asset Service binary on a free port.
pub async fn start_asset(env: &[(String, String)], dir: &std::path::Path) -> ServiceProcess {
    let port = free_port();
    ServiceProcess::start(
        env!("CARGO_BIN_EXE_asset-service"),
        port,
        &with(env, "SIGNAL_ASSET__BIND", format!("127.0.0.1:{port}")),
        dir,
    )
    .await
}

/// Starts the Alert Service binary on a free port.
pub async fn start_alert(env: &[(String, String)], dir: &std::path::Path) -> ServiceProcess {
    let port = free_port();
    ServiceProcess::start(
        env!("CARGO_BIN_EXE_alert-service"),
        port,
        &with(env, "SIGNAL_ALERT__BIND", format!("127.0.0.1:{port}")),
        dir,
    )
    .await
}

pub fn with(env: &[(String, String)], key: &str, value: String) -> Vec<(String, String)> {
    let mut env = env.to_vec();
    env.push((key.to_string(), value));
    env
}

pub fn token(user: &str) -> String {
    signal_web::JwtSigner::new(&signal_web::JwtConfig {
        secret: SECRET.into(),
        user_claim: "sub".into(),
        ..Default::default()
    })
    .sign(
        &signal_domain::UserId::new(user).unwrap(),
        chrono::Duration::hours(1),
    )
    .unwrap()
}

/// Creates `count` ABOVE rules at `level` on KRW-BTC for `user`, as a well-behaved client: a
/// request refused for its rate (429) is sent again after the `Retry-After` it was given.
pub async fn create_rules(asset_port: u16, user: &str, level: &str, count: usize) {
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{asset_port}/api/v1/rules");
    let token = token(user);
    let body = json!({"instrument": "UPBIT:KRW-BTC", "condition": "ABOVE", "level": level});
    let created = futures::stream::iter(0..count)
        .map(|_| async {
            loop {
                let response = http.post(&url).bearer_auth(&token).json(&body).send().await;
                match response {
                    Ok(r) if r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS => {
                        let wait = r
                            .headers()
                            .get(reqwest::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                            .expect("a 429 says when to retry");
                        tokio::time::sleep(Duration::from_secs(wait)).await;
                    }
                    other => break other,
                }
            }
        })
        .buffer_unordered(16)
        .filter(|r| futures::future::ready(matches!(r, Ok(r) if r.status() == 201)))
        .count()
        .await;
    assert_eq!(created, count);
}
