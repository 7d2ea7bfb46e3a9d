//! Tick to alert: one repeating probe rule (cooldown 0, band 0) on a market the background never
//! trades, crossed again and again. Each crossing is a trade below the level (the rule re-arms),
//! a pause, then a trade above it at a price used once; the latency runs from the moment the
//! feed handed that frame to its socket to the moment the alert carrying that price was read from
//! the user's alert socket. Runs alternate between a quiet feed and background trades over every
//! other market, with background rules held by other users. Each latency is also split at the
//! moment the rule fired (the alert's `triggeredAt`), and the system under test logs the stages
//! of the alert's path in between (`stages`), so a run says where its time went.

use crate::feed::{upbit_markets, Feed};
use crate::measure::{median, Latencies, LatencySummary};
use crate::report::{self, RunHeader};
use crate::stages::{self, Stage};
use crate::system::SystemUnderTest;
use anyhow::Context as _;
use futures::{SinkExt, StreamExt};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::rules::create_rules;
use super::Context;

pub const SCENARIO: &str = "tick-to-alert";

const PROBE_USER: &str = "probe";
/// The probe's level: far above the probe market's price, so only probe trades reach it.
const PROBE_LEVEL: u64 = 400_000_000;
/// How long an alert may take before its crossing counts as lost.
const ALERT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Args)]
pub struct Options {
    /// Rules held by other users while probing.
    #[arg(long, default_value_t = 100_000)]
    rules: usize,
    /// Background trades per second in the loaded runs, over every market but the probe's.
    #[arg(long, default_value_t = 5_000.0)]
    background: f64,
    /// Crossings per run.
    #[arg(long, default_value_t = 500)]
    crossings: usize,
    /// Runs of each kind (quiet and loaded), alternating.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The probe's market.
    #[arg(long, default_value = "KRW-BTC")]
    probe: String,
    /// Rule-creation requests in flight while setting up.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TickToAlertResult {
    pub run: RunHeader,
    pub rules: usize,
    pub background_ticks_per_second: f64,
    pub crossings: usize,
    pub quiet: Mode,
    pub loaded: Mode,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Mode {
    pub runs: Vec<ProbeRun>,
    pub median_p50_ms: f64,
    pub median_p90_ms: f64,
    pub median_p99_ms: f64,
    pub median_max_ms: f64,
    /// All runs together: `(ms, fraction at or below)`.
    pub distribution: Vec<(f64, f64)>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ProbeRun {
    pub latency: LatencySummary,
    /// From the rule firing (the alert's `triggeredAt`) to the read: the part after the engine.
    #[serde(default)]
    pub fire_to_socket: Option<LatencySummary>,
    /// Crossings whose alert did not arrive within the timeout.
    pub lost: usize,
    /// The system under test's CPU time during the run, as a share of one core (100 = one core).
    #[serde(default)]
    pub cpu_percent: Option<f64>,
    /// The machine's 1-minute load average when the run began.
    #[serde(default)]
    pub load_average: Option<f64>,
    /// The stages of the path as the system under test logged them during the run (every
    /// firing's, the background rules' included).
    #[serde(default)]
    pub stages: Vec<Stage>,
}

/// An alert as read from the socket.
struct AlertRead {
    /// Its exact price: which crossing it answers.
    price: String,
    /// When the read returned.
    at: Instant,
    /// From the rule firing to the read, by the wall clock both sides share.
    since_fired: Option<Duration>,
}

type AlertReads = mpsc::UnboundedReceiver<AlertRead>;

/// Reads the probe user's alert socket, acknowledging each alert as an app does.
async fn follow_alerts(system: &SystemUnderTest) -> anyhow::Result<AlertReads> {
    let url = format!(
        "ws://{}/api/v1/alerts/stream?token={}",
        system.alert,
        system.token(PROBE_USER)
    );
    // Without Nagle's algorithm, as an app should: each acknowledgement leaves at once.
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(url, None, true).await?;
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
            if let Some(price) = alert["price"].as_str() {
                let since_fired = alert["triggeredAt"]
                    .as_str()
                    .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
                    .and_then(|fired| (at_utc - fired).to_std().ok());
                let read = AlertRead {
                    price: price.to_string(),
                    at,
                    since_fired,
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

/// What one run of crossings measured.
struct Probed {
    /// Feed's write to the socket's read.
    latencies: Latencies,
    /// Rule firing to the socket's read.
    since_fired: Latencies,
    lost: usize,
}

/// `crossings` crossings of the probe rule; prices start at `first_price` and are used once.
async fn probe(
    feed: &Feed,
    market: &str,
    alerts: &mut AlertReads,
    crossings: usize,
    first_price: u64,
) -> anyhow::Result<Probed> {
    let mut latencies = Latencies::default();
    let mut since_fired = Latencies::default();
    let mut lost = 0;
    for i in 0..crossings {
        // Re-arm, and give the re-arm's write time to finish before the crossing.
        feed.trade(market, &(PROBE_LEVEL - 1).to_string());
        tokio::time::sleep(Duration::from_millis(20)).await;
        let price = (first_price + i as u64).to_string();
        let written = feed
            .timed_trade(market, &price)
            .await
            .context("the feed lost its reader")?;
        let deadline = tokio::time::Instant::now() + ALERT_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, alerts.recv()).await {
                Ok(Some(read)) if read.price == price => {
                    latencies.record(read.at.saturating_duration_since(written));
                    if let Some(since) = read.since_fired {
                        since_fired.record(since);
                    }
                    break;
                }
                Ok(Some(_)) => continue,
                Ok(None) => anyhow::bail!("the alert socket closed"),
                Err(_) => {
                    lost += 1;
                    break;
                }
            }
        }
        let pause = rand::thread_rng().gen_range(0..10);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    Ok(Probed {
        latencies,
        since_fired,
        lost,
    })
}

/// A run's figures beside what the system logged and used meanwhile.
struct RunRecord {
    probed: Probed,
    stages: Vec<Stage>,
    cpu_percent: f64,
    load_average: f64,
}

fn mode(runs: Vec<RunRecord>) -> Mode {
    let mut all = Latencies::default();
    for record in &runs {
        all.add(&record.probed.latencies);
    }
    let runs: Vec<ProbeRun> = runs
        .into_iter()
        .map(|record| ProbeRun {
            latency: record.probed.latencies.summary(),
            fire_to_socket: Some(record.probed.since_fired.summary()),
            lost: record.probed.lost,
            cpu_percent: Some(record.cpu_percent),
            load_average: Some(record.load_average),
            stages: record.stages,
        })
        .collect();
    let pick = |f: fn(&ProbeRun) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
    Mode {
        median_p50_ms: pick(|r| r.latency.p50_ms),
        median_p90_ms: pick(|r| r.latency.p90_ms),
        median_p99_ms: pick(|r| r.latency.p99_ms),
        median_max_ms: pick(|r| r.latency.max_ms),
        distribution: all.distribution(),
        runs,
    }
}

pub async fn run(context: &Context, options: Options) -> anyhow::Result<()> {
    let run = RunHeader::new(SCENARIO);
    let feed = Feed::start(upbit_markets()).await?;
    let probe_market = feed
        .market_index(&options.probe)
        .with_context(|| format!("{} is not among the feed's markets", options.probe))?;
    let others: Vec<usize> = (0..feed.markets().len())
        .filter(|&i| i != probe_market)
        .collect();
    // The stages' spans are logged unless the caller chose its own filter; the background rules
    // are created from one address, faster than its request limits allow.
    let [per_address, per_user] = super::NO_REQUEST_LIMITS;
    let system = context
        .start_system_with(
            &feed,
            &[("RUST_LOG", stages::LOG_FILTER), per_address, per_user],
        )
        .await?;
    feed.wait_for_reader(&options.probe).await?;

    if options.rules > 0 {
        eprintln!("creating {} background rules", options.rules);
        let markets: Vec<_> = others.iter().map(|&i| feed.markets()[i].clone()).collect();
        let created =
            create_rules(&system, &markets, options.rules, options.concurrency, 200).await;
        let failed = created.iter().filter(|o| !o.ok).count();
        anyhow::ensure!(failed == 0, "{failed} background rules were refused");
    }

    let token = system.token(PROBE_USER);
    let mut alerts = follow_alerts(&system).await?;
    let rule = serde_json::json!({
        "instrument": format!("UPBIT:{}", options.probe),
        "condition": "ABOVE",
        "level": PROBE_LEVEL.to_string(),
        "repeat": "every",
        "cooldownSeconds": 0,
        "rearmBand": "0",
        "note": "tick-to-alert probe",
    });
    let response = system
        .http
        .post(system.asset_url("/api/v1/rules"))
        .bearer_auth(&token)
        .json(&rule)
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "the probe rule was refused: {}",
        response.text().await?
    );

    let mut quiet = Vec::new();
    let mut loaded = Vec::new();
    let mut next_price = PROBE_LEVEL + 1;
    for round in 0..options.runs {
        for background in [false, true] {
            if background {
                feed.set_background(options.background, others.clone());
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            let load_average = crate::measure::load_average();
            let (began, cpu_before, clock) =
                (chrono::Utc::now(), system.cpu_time()?, Instant::now());
            let probed = probe(
                &feed,
                &options.probe,
                &mut alerts,
                options.crossings,
                next_price,
            )
            .await?;
            let ended = chrono::Utc::now();
            let cpu_percent = (system.cpu_time()? - cpu_before).as_secs_f64()
                / clock.elapsed().as_secs_f64()
                * 100.0;
            next_price += options.crossings as u64;
            feed.set_background(0.0, Vec::new());
            let (summary, fired) = (probed.latencies.summary(), probed.since_fired.summary());
            eprintln!(
                "  run {} {}: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms, lost {}; \
                 fired to socket p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; \
                 system CPU {cpu_percent:.0} %, load average {load_average:.2}",
                round + 1,
                if background { "loaded" } else { "quiet" },
                summary.p50_ms,
                summary.p90_ms,
                summary.p99_ms,
                summary.max_ms,
                probed.lost,
                fired.p50_ms,
                fired.p99_ms,
                fired.max_ms,
            );
            // The log is written as it comes; a moment lets the run's last lines reach it.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let stages = stages::read(&system.log_path(), began, ended)?;
            eprint!("{}", stages::describe(&stages));
            let record = RunRecord {
                probed,
                stages,
                cpu_percent,
                load_average,
            };
            if background {
                loaded.push(record);
            } else {
                quiet.push(record);
            }
        }
    }
    system.stop().await?;

    let result = TickToAlertResult {
        run,
        rules: options.rules,
        background_ticks_per_second: options.background,
        crossings: options.crossings,
        quiet: mode(quiet),
        loaded: mode(loaded),
    };
    let path = report::write(&context.out, SCENARIO, &result)?;
    crate::plot::tick_to_alert(&context.out, &result)?;
    println!(
        "tick to alert (medians of {} runs of {} crossings, {} rules): quiet p50/p99/max {:.2}/{:.2}/{:.2} ms; \
         {} ticks/s background {:.2}/{:.2}/{:.2} ms -> {}",
        options.runs,
        options.crossings,
        options.rules,
        result.quiet.median_p50_ms,
        result.quiet.median_p99_ms,
        result.quiet.median_max_ms,
        options.background,
        result.loaded.median_p50_ms,
        result.loaded.median_p99_ms,
        result.loaded.median_max_ms,
        path.display()
    );
    Ok(())
}
