//! `signal-load`: the project's load harness. Each scenario starts the release build of the
//! all-in-one binary as a child process on a fresh data directory, feeds it from a paced fake Upbit
//! over loopback, measures it from outside (HTTP, WebSocket, `/proc`), and writes the run's figures
//! to `<out>/<scenario>.json` with a plot beside it (`<out>/<scenario>.svg`). Peers that do the same
//! job (a Node `ws` server, nginx) run in the same run, so ratios compare like with like.
//!
//! Nothing here asserts on time: these are measurements, read by people.

mod feed;
mod measure;
mod peer;
mod plot;
mod quote_client;
mod report;
mod scenarios;
mod stages;
mod system;
mod topology;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Load scenarios for DonTouch Signal, run from outside against the release build.
#[derive(Parser)]
#[command(name = "signal-load", version, about, long_about)]
struct Cli {
    /// The all-in-one binary under test (default: `dontouch-signal` beside this harness, built
    /// first when the harness runs under `cargo run`).
    #[arg(long, global = true)]
    app: Option<PathBuf>,
    /// Where each run's JSON result and plot go.
    #[arg(long, global = true, default_value = "docs/benchmarks")]
    out: PathBuf,
    /// Where the system under test keeps its data (SQLite files), in a fresh directory per run
    /// (default: the system's temporary directory). Its disk's sync latency is part of every
    /// figure that stores something.
    #[arg(long, global = true)]
    data_root: Option<PathBuf>,
    /// Extra environment for the system under test, `KEY=VALUE`, repeatable.
    #[arg(long = "app-env", global = true, value_parser = parse_key_value)]
    app_env: Vec<(String, String)>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Only the fake exchange: serves Upbit's REST and a paced ticker stream until Ctrl-C.
    Feed(scenarios::feed::Options),
    /// Rule churn: create, update and delete rules over the API at a chosen concurrency.
    Rules(scenarios::rules::Options),
    /// Tick to alert: a probe rule crossed again and again, from the feed's write to the alert
    /// socket's read, without and with background load.
    TickToAlert(scenarios::tick_to_alert::Options),
    /// The Kafka path in steady state: tens of alerts a second on the production topology
    /// (tansu, `asset-service` and `alert-service` apart, PostgreSQL, Redis), fire to socket.
    KafkaPath(scenarios::kafka_path::Options),
    /// Quote sockets: memory per socket and after they close, a stalled reader, and fan-out beside
    /// the Node `ws` peer.
    Sockets(scenarios::sockets::Options),
    /// REST: wrk against the quote routes beside nginx serving the same bytes.
    Rest(scenarios::rest::Options),
    /// Redraws every plot from the JSON results in `--out`.
    Plot,
}

fn parse_key_value(text: &str) -> anyhow::Result<(String, String)> {
    text.split_once('=')
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .ok_or_else(|| anyhow::anyhow!("expected KEY=VALUE, got `{text}`"))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    measure::raise_open_file_limit()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let context = scenarios::Context {
            app: system::AppBinary::new(cli.app),
            out: cli.out,
            data_root: cli.data_root.unwrap_or_else(std::env::temp_dir),
            app_env: cli.app_env,
        };
        match cli.scenario {
            Scenario::Feed(options) => scenarios::feed::run(options).await,
            Scenario::Rules(options) => scenarios::rules::run(&context, options).await,
            Scenario::TickToAlert(options) => {
                scenarios::tick_to_alert::run(&context, options).await
            }
            Scenario::KafkaPath(options) => scenarios::kafka_path::run(&context, options).await,
            Scenario::Sockets(options) => scenarios::sockets::run(&context, options).await,
            Scenario::Rest(options) => scenarios::rest::run(&context, options).await,
            Scenario::Plot => plot::redraw_all(&context.out),
        }
    })
}
