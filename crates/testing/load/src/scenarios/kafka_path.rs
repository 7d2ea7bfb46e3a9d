//! The Kafka path in steady state: the production topology (tansu broker, `asset-service` and
//! `alert-service` as separate processes, PostgreSQL and Redis) with one repeating rule on each of
//! several markets, crossed in turn at a steady rate, so that tens of alerts a second flow from the
//! engine through the outbox, the broker and the Alert Service to the user's socket. Each alert's
//! latency is measured twice: from the rule firing (the alert's `triggeredAt`, stamped by the
//! engine) to the socket's read, and from the feed's write of the crossing trade to that read.

use crate::feed::{upbit_markets, Feed};
use crate::measure::{median, Latencies, LatencySummary};
use crate::report::{self, RunHeader};
use crate::system::{new_secret, token};
use crate::topology::{Servers, Topology};
use anyhow::Context as _;
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use super::Context;

pub const SCENARIO: &str = "kafka-path";

const USER: &str = "olga";
/// How long the last alerts of a run may take before their crossings count as lost.
const DRAIN: Duration = Duration::from_secs(10);

#[derive(clap::Args)]
pub struct Options {
    /// Markets crossed in turn, one repeating rule on each.
    #[arg(long, default_value_t = 20)]
    markets: usize,
    /// Crossings, and so alerts, per second.
    #[arg(long, default_value_t = 40.0)]
    alerts_per_second: f64,
    /// Seconds of crossings per run.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Runs over the same topology.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    #[command(flatten)]
    servers: Servers,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct KafkaPathResult {
    pub run: RunHeader,
    pub markets: usize,
    pub alerts_per_second: f64,
    pub seconds: u64,
    /// The settings given to both services on top of the run's own (`--app-env`).
    pub service_env: Vec<(String, String)>,
    pub runs: Vec<PathRun>,
    pub median_fire_p50_ms: f64,
    pub median_fire_p99_ms: f64,
    pub median_trade_p50_ms: f64,
    pub median_trade_p99_ms: f64,
    /// Fire to socket, all runs together: `(ms, fraction at or below)`.
    pub distribution: Vec<(f64, f64)>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PathRun {
    pub crossings: usize,
    pub fire_to_socket: LatencySummary,
    pub trade_to_socket: LatencySummary,
    /// Crossings whose alert did not arrive.
    pub lost: usize,
    /// Alerts the socket received more than once.
    pub duplicated: usize,
}

/// One alert as the socket delivered it.
struct Read {
    /// `SYMBOL@price`: each crossing's price is used once per market.
    key: String,
    triggered_at: chrono::DateTime<chrono::Utc>,
    at: Instant,
    at_utc: chrono::DateTime<chrono::Utc>,
    event: String,
}

/// Reads the user's alert socket, acknowledging each alert as an app does.
async fn follow_alerts(
    alert: std::net::SocketAddr,
    token: &str,
) -> anyhow::Result<mpsc::UnboundedReceiver<Read>> {
    let url = format!("ws://{alert}/ws/socket/alert?token={token}");
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await?;
    let (reads, alerts) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = socket.next().await {
            let (at, at_utc) = (Instant::now(), chrono::Utc::now());
            let Message::Text(text) = message else {
                continue;
            };
            let Ok(alert) = serde_json::from_str::<Value>(text.as_str()) else {
                continue;
            };
            if alert["type"] != "alert" {
                continue;
            }
            let fields = (
                alert["symbol"].as_str(),
                alert["price"].as_str(),
                alert["triggeredAt"].as_str().and_then(|t| t.parse().ok()),
                alert["eventId"].as_str(),
            );
            if let (Some(symbol), Some(price), Some(triggered_at), Some(event)) = fields {
                let read = Read {
                    key: format!("{symbol}@{price}"),
                    triggered_at,
                    at,
                    at_utc,
                    event: event.to_string(),
                };
                if reads.send(read).is_err() {
                    return;
                }
            }
            let ack = serde_json::json!({ "type": "ack", "id": alert["id"] });
            if socket.send(Message::text(ack.to_string())).await.is_err() {
                return;
            }
        }
    });
    Ok(alerts)
}

/// A market crossed by the run and its rule's level; a trade just below it re-arms the rule.
struct Crossed {
    code: String,
    level: u64,
}

/// One run: `count` crossings at `rate`, each at a price used once; then waits for the alerts.
async fn run_once(
    feed: &Feed,
    markets: &[Crossed],
    alerts: &mut mpsc::UnboundedReceiver<Read>,
    rate: f64,
    count: usize,
    offset: u64,
) -> anyhow::Result<(PathRun, Latencies)> {
    let mut written: HashMap<String, oneshot::Receiver<Instant>> = HashMap::new();
    let mut reads: Vec<Read> = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for i in 0..count {
        ticker.tick().await;
        // The next market's rule re-arms a step before its crossing.
        let next = &markets[(i + 1) % markets.len()];
        feed.trade(&next.code, &(next.level - 1).to_string());
        let market = &markets[i % markets.len()];
        let price = (market.level + offset + i as u64).to_string();
        let written_at = feed.timed_trade(&market.code, &price);
        written.insert(format!("{}@{price}", market.code), written_at);
        while let Ok(read) = alerts.try_recv() {
            reads.push(read);
        }
    }
    let deadline = tokio::time::Instant::now() + DRAIN;
    while reads.len() < count {
        match tokio::time::timeout_at(deadline, alerts.recv()).await {
            Ok(Some(read)) => reads.push(read),
            Ok(None) => anyhow::bail!("the alert socket closed"),
            Err(_) => break,
        }
    }
    let mut writes = HashMap::new();
    for (key, when) in written {
        if let Ok(at) = when.await {
            writes.insert(key, at);
        }
    }
    let (mut fire, mut trade) = (Latencies::default(), Latencies::default());
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for read in &reads {
        *seen.entry(read.event.as_str()).or_insert(0) += 1;
        if let Ok(latency) = (read.at_utc - read.triggered_at).to_std() {
            fire.record(latency);
        }
        if let Some(at) = writes.get(&read.key) {
            trade.record(read.at.saturating_duration_since(*at));
        }
    }
    let keys: std::collections::HashSet<&str> = reads.iter().map(|r| r.key.as_str()).collect();
    let received = writes.keys().filter(|k| keys.contains(k.as_str())).count();
    let run = PathRun {
        crossings: count,
        fire_to_socket: fire.summary(),
        trade_to_socket: trade.summary(),
        lost: count.saturating_sub(received),
        duplicated: seen.values().filter(|n| **n > 1).count(),
    };
    Ok((run, fire))
}

pub async fn run(context: &Context, options: Options) -> anyhow::Result<()> {
    let header = RunHeader::new(SCENARIO);
    let feed = Feed::start(upbit_markets()).await?;
    // Whole-won markets, so that every price above the level is a distinct integer.
    let markets: Vec<Crossed> = feed
        .markets()
        .iter()
        .filter(|m| m.base >= 100.0)
        .take(options.markets.max(2))
        .map(|m| Crossed {
            code: m.code.clone(),
            level: (m.base * 3.0).round() as u64,
        })
        .collect();
    let secret = new_secret();
    let topology = Topology::start(&options.servers, &feed, &secret, &context.app_env).await?;
    eprintln!("services up; logs in {}", topology.dir.path().display());
    let token = token(&secret, USER);
    let http = reqwest::Client::new();
    for market in &markets {
        let rule = serde_json::json!({
            "instrument": format!("UPBIT:{}", market.code),
            "condition": "ABOVE",
            "level": market.level.to_string(),
            "repeat": "every",
            "cooldownSeconds": 0,
            "rearmBand": "0",
        });
        let response = http
            .post(format!("http://{}/api/v1/rules", topology.asset()))
            .bearer_auth(&token)
            .json(&rule)
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "a rule was refused: {}",
            response.text().await?
        );
    }
    for market in &markets {
        feed.wait_for_reader(&market.code).await?;
        feed.trade(&market.code, &(market.level - 1).to_string());
    }
    let mut alerts = follow_alerts(topology.alert(), &token)
        .await
        .context("opening the alert socket")?;
    // Warm-up: connections opened, the consumer's partitions assigned.
    run_once(
        &feed,
        &markets,
        &mut alerts,
        options.alerts_per_second,
        100,
        1,
    )
    .await?;

    let count = (options.alerts_per_second * options.seconds as f64).round() as usize;
    let mut runs = Vec::new();
    let mut all = Latencies::default();
    for round in 0..options.runs {
        let offset = 1_000 + (round * count) as u64;
        let (run, fire) = run_once(
            &feed,
            &markets,
            &mut alerts,
            options.alerts_per_second,
            count,
            offset,
        )
        .await?;
        eprintln!(
            "  run {}: fire->socket p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; trade->socket p50 {:.2} ms, \
             p99 {:.2} ms; lost {}, duplicated {}",
            round + 1,
            run.fire_to_socket.p50_ms,
            run.fire_to_socket.p99_ms,
            run.fire_to_socket.max_ms,
            run.trade_to_socket.p50_ms,
            run.trade_to_socket.p99_ms,
            run.lost,
            run.duplicated
        );
        all.add(&fire);
        runs.push(run);
    }
    topology.stop().await?;

    let pick = |f: fn(&PathRun) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
    let result = KafkaPathResult {
        run: header,
        markets: markets.len(),
        alerts_per_second: options.alerts_per_second,
        seconds: options.seconds,
        service_env: context.app_env.clone(),
        median_fire_p50_ms: pick(|r| r.fire_to_socket.p50_ms),
        median_fire_p99_ms: pick(|r| r.fire_to_socket.p99_ms),
        median_trade_p50_ms: pick(|r| r.trade_to_socket.p50_ms),
        median_trade_p99_ms: pick(|r| r.trade_to_socket.p99_ms),
        distribution: all.distribution(),
        runs,
    };
    let path = report::write(&context.out, SCENARIO, &result)?;
    crate::plot::kafka_path(&context.out, &result)?;
    println!(
        "kafka path (medians of {} runs, {} alerts/s over {} markets): fire->socket p50/p99 {:.2}/{:.2} ms; \
         trade->socket p50/p99 {:.2}/{:.2} ms -> {}",
        options.runs,
        options.alerts_per_second,
        result.markets,
        result.median_fire_p50_ms,
        result.median_fire_p99_ms,
        result.median_trade_p50_ms,
        result.median_trade_p99_ms,
        path.display()
    );
    Ok(())
}
