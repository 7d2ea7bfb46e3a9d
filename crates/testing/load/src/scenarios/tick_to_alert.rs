//! Tick to alert: one repeating probe rule (cooldown 0, band 0) on a market the background never
//! trades, crossed again and again. Each crossing is a trade below the level (the rule re-arms),
//! a pause, then a trade above it at a price used once; the latency runs from the moment the
//! feed handed that frame to its socket to the moment the alert carrying that price was read from
//! the user's alert socket. Runs alternate between a quiet feed and background trades over every
//! other market, with background rules held by other users.

use crate::feed::{upbit_markets, Feed};
use crate::measure::{median, Latencies, LatencySummary};
use crate::report::{self, RunHeader};
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
    /// Crossings whose alert did not arrive within the timeout.
    pub lost: usize,
}

/// Alerts as read from the socket: their exact price and when the read returned.
type AlertReads = mpsc::UnboundedReceiver<(String, Instant)>;

/// Reads the probe user's alert socket, acknowledging each alert as an app does.
async fn follow_alerts(system: &SystemUnderTest) -> anyhow::Result<AlertReads> {
    let url = format!(
        "ws://{}/api/v1/alerts/stream?token={}",
        system.alert,
        system.token(PROBE_USER)
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await?;
    let (reads, alerts) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = socket.next().await {
            let read = Instant::now();
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
                if reads.send((price.to_string(), read)).is_err() {
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

/// `crossings` crossings of the probe rule; prices start at `first_price` and are used once.
async fn probe(
    feed: &Feed,
    market: &str,
    alerts: &mut AlertReads,
    crossings: usize,
    first_price: u64,
) -> anyhow::Result<(Latencies, usize)> {
    let mut latencies = Latencies::default();
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
                Ok(Some((alerted, read))) if alerted == price => {
                    latencies.record(read.saturating_duration_since(written));
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
    Ok((latencies, lost))
}

fn mode(runs: Vec<(Latencies, usize)>) -> Mode {
    let mut all = Latencies::default();
    for (latencies, _) in &runs {
        all.add(latencies);
    }
    let runs: Vec<ProbeRun> = runs
        .iter()
        .map(|(latencies, lost)| ProbeRun {
            latency: latencies.summary(),
            lost: *lost,
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
    let system = context.start_system(&feed).await?;
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
            let (latencies, lost) = probe(
                &feed,
                &options.probe,
                &mut alerts,
                options.crossings,
                next_price,
            )
            .await?;
            next_price += options.crossings as u64;
            feed.set_background(0.0, Vec::new());
            let summary = latencies.summary();
            eprintln!(
                "  run {} {}: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms, lost {lost}",
                round + 1,
                if background { "loaded" } else { "quiet" },
                summary.p50_ms,
                summary.p90_ms,
                summary.p99_ms,
                summary.max_ms
            );
            if background {
                loaded.push((latencies, lost));
            } else {
                quiet.push((latencies, lost));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
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
