//! The command line of the two single-service binaries, `asset-service` and `alert-service`.

use clap::Parser;
use std::path::PathBuf;

/// Which service a standalone binary runs.
#[derive(Debug, Clone, Copy)]
pub enum Service {
    /// Quotes, watchlists, alert rules and the trigger pipeline, publishing to Kafka.
    Asset,
    /// Alert history and live push, consuming from Kafka in a consumer group.
    Alert,
}

/// Runs one service alone. Configured like the all-in-one binary (signal.toml, then SIGNAL_*
/// variables); it needs SIGNAL_BUS__URL=kafka://... and the SIGNAL_AUTH__JWT_SECRET both
/// services share.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// TOML configuration file (default: ./signal.toml when present).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Runs one service alone on a runtime of its own, until Ctrl-C or SIGTERM.
pub fn main(service: Service) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(run(service));
    // Whatever is still running (a Kafka client closing against a broker that is gone, say)
    // gets a moment, and is then left behind: the process stops within seconds.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    outcome
}

async fn run(service: Service) -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = signal_runtime::Settings::load(cli.config.as_deref())?;
    signal_runtime::logging::init_logging(&settings.log_format);
    let running = match service {
        Service::Asset => crate::app::start_asset_service(&settings).await?,
        Service::Alert => crate::app::start_alert_service(&settings).await?,
    };
    running.tasks.run_until_signalled().await;
    Ok(())
}
