//! Running the production topology in a test: a Kafka-protocol broker (tansu) of its own, fresh
//! PostgreSQL databases, a Redis key prefix, a local stand-in for Upbit whose prices the test
//! sets, and the `asset-service` and `alert-service` binaries as separate processes.

#![allow(dead_code)] // each test file uses its own subset

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::sync::watch;

pub const SECRET: &str = "production-test-secret-0123456789abcdef";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn wait_for_port(port: u16, what: &str) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not start listening on {port}");
}

/// A tansu broker with in-memory storage, killed when dropped.
pub struct Broker {
    child: Child,
    pub port: u16,
}

impl Broker {
    pub async fn start() -> Broker {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new("tansu")
            .args(["broker", "--storage-engine", "memory://tansu/"])
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("tansu is installed (bash .ci/run installs it)");
        wait_for_port(port, "tansu").await;
        Broker { child, port }
    }

    pub fn url(&self) -> String {
        format!("kafka://127.0.0.1:{}", self.port)
    }

    /// Freezes the broker process (SIGSTOP): connections stay open but nothing is answered, as
    /// when a broker hangs or the network to it drops.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("the broker is running").to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }
}

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

/// A stand-in for Upbit's public API speaking its exact formats: `/v1/market/all`,
/// `/v1/ticker` and the ticker WebSocket (binary DEFAULT frames). The test sets prices.
pub struct FakeUpbit {
    pub addr: SocketAddr,
    prices: watch::Sender<HashMap<String, String>>,
}

impl FakeUpbit {
    pub async fn start() -> FakeUpbit {
        let (prices, _) = watch::channel(HashMap::new());
        let app = Router::new()
            .route("/v1/market/all", get(markets))
            .route("/v1/ticker", get(tickers))
            .route("/websocket/v1", get(stream))
            .with_state(prices.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeUpbit { addr, prices }
    }

    pub fn set_price(&self, market: &str, price: &str) {
        self.prices.send_modify(|p| {
            p.insert(market.to_string(), price.to_string());
        });
    }

    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "SIGNAL_UPBIT__REST_URL".into(),
                format!("http://{}", self.addr),
            ),
            (
                "SIGNAL_UPBIT__WS_URL".into(),
                format!("ws://{}/websocket/v1", self.addr),
            ),
        ]
    }
}

type Prices = watch::Sender<HashMap<String, String>>;

async fn markets() -> impl IntoResponse {
    axum::Json(serde_json::json!([
        {"market": "KRW-BTC", "korean_name": "비트코인", "english_name": "Bitcoin",
         "market_event": {"warning": false}}
    ]))
}

/// A ticker as Upbit's REST API returns it (the official example with our price).
fn rest_ticker(market: &str, price: &str) -> String {
    format!(
        r#"{{"market":"{market}","trade_date":"20250730","trade_time":"170315","trade_date_kst":"20250731","trade_time_kst":"020315","trade_timestamp":1753894995076,"opening_price":163248000.00000000,"high_price":163708000.00000000,"low_price":162248000.00000000,"trade_price":{price},"prev_closing_price":163158000.00000000,"change":"FALL","change_price":282000.00000000,"change_rate":0.0017283860,"signed_change_price":-282000.00000000,"signed_change_rate":-0.0017283860,"trade_volume":0.02543652,"acc_trade_price":137728155832.9616000000000000,"acc_trade_price_24h":167740032580.71786000,"acc_trade_volume":844.94369319,"acc_trade_volume_24h":1029.27369910,"highest_52_week_price":166800000.00000000,"highest_52_week_date":"2025-07-14","lowest_52_week_price":72100000.00000000,"lowest_52_week_date":"2024-08-05","timestamp":1753894995113}}"#
    )
}

/// A ticker as Upbit's WebSocket sends it in DEFAULT format (the official example with our price,
/// and the same previous close as the REST example so both agree).
fn stream_ticker(market: &str, price: &str) -> String {
    let now = chrono::Utc::now().timestamp_millis();
    format!(
        r#"{{"type":"ticker","code":"{market}","opening_price":31883000,"high_price":32310000,"low_price":31855000,"trade_price":{price},"prev_closing_price":163158000.00000000,"acc_trade_price":78039261076.51241000,"change":"RISE","change_price":404000.00000000,"signed_change_price":404000.00000000,"change_rate":0.0126713295,"signed_change_rate":0.0126713295,"ask_bid":"ASK","trade_volume":0.03103806,"acc_trade_volume":2429.58834336,"trade_date":"20230221","trade_time":"074102","trade_timestamp":{now},"acc_ask_volume":1146.25573608,"acc_bid_volume":1283.33260728,"highest_52_week_price":57678000.00000000,"highest_52_week_date":"2022-03-28","lowest_52_week_price":20700000.00000000,"lowest_52_week_date":"2022-12-30","market_state":"ACTIVE","is_trading_suspended":false,"delisting_date":null,"market_warning":"NONE","timestamp":{now},"acc_trade_price_24h":228827082483.70729000,"acc_trade_volume_24h":7158.80283560,"stream_type":"REALTIME"}}"#
    )
}

async fn tickers(
    State(prices): State<Prices>,
    Query(query): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    let wanted = query.get("markets").cloned().unwrap_or_default();
    let current = prices.borrow().clone();
    let body: Vec<String> = wanted
        .split(',')
        .filter_map(|m| current.get(m).map(|p| rest_ticker(m, p)))
        .collect();
    (
        [
            ("content-type", "application/json"),
            ("remaining-req", "group=ticker; min=600; sec=9"),
        ],
        format!("[{}]", body.join(",")),
    )
}

async fn stream(State(prices): State<Prices>, ws: WebSocketUpgrade) -> impl IntoResponse {
    ws.on_upgrade(move |socket| stream_session(socket, prices.subscribe()))
}

async fn stream_session(
    mut socket: WebSocket,
    mut prices: watch::Receiver<HashMap<String, String>>,
) {
    let mut sent: HashMap<String, String> = prices.borrow().clone();
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) if text.as_str() == "PING" => {
                    let _ = socket.send(Message::Text("{\"status\":\"UP\"}".into())).await;
                }
                Some(Ok(_)) => {}
                _ => return,
            },
            changed = prices.changed() => {
                if changed.is_err() {
                    return;
                }
                let current = prices.borrow_and_update().clone();
                for (market, price) in &current {
                    if sent.get(market) != Some(price) {
                        let frame = stream_ticker(market, price).into_bytes();
                        if socket.send(Message::Binary(frame.into())).await.is_err() {
                            return;
                        }
                    }
                }
                sent = current;
            }
        }
    }
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

    async fn wait_ready(&self) {
        let url = format!("http://127.0.0.1:{}/health/ready", self.port);
        for _ in 0..400 {
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
        ("SIGNAL_BUS__PARTITIONS".into(), "3".into()),
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
    env.extend(upbit.env());
    env
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
    })
    .sign(
        &signal_domain::UserId::new(user).unwrap(),
        chrono::Duration::hours(1),
    )
    .unwrap()
}
