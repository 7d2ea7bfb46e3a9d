//! `dontouch-signal`: run the whole system in one process, or print a token for a user or web
//! push keys.

use anyhow::Context;
use clap::{Parser, Subcommand};
use dontouch_signal::Settings;
use signal_domain::UserId;
use signal_web::JwtSigner;
use std::path::PathBuf;

/// Real-time market monitoring and price alerts for Korean and US stocks and Upbit crypto.
///
/// With no command, runs the Asset Service (port 8082) and the Alert Service (port 8083) in one
/// process over SQLite files in the data directory, and the web app in front of both on
/// http://localhost:8080. Configuration comes from signal.toml (or --config), then SIGNAL_*
/// environment variables (SIGNAL_ASSET__BIND=0.0.0.0:9082), then flags.
#[derive(Parser)]
#[command(name = "dontouch-signal", version, about, long_about)]
struct Cli {
    /// TOML configuration file (default: ./signal.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Data directory for the SQLite files and the token secret (default: ./data).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Run over the simulated market; every price it produces is marked simulated.
    #[arg(long)]
    demo: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run both services (the default).
    Run,
    /// Print a signed access token for USER, for the API and the sockets.
    Token {
        /// The user id the token names (any string, e.g. alice or alice@example.com).
        user: String,
        /// How long the token is valid, in days.
        #[arg(long, default_value_t = 30)]
        days: i64,
    },
    /// Print a new VAPID key pair for web push. Give the private key to every Alert Service
    /// instance as SIGNAL_CHANNELS__WEB_PUSH__VAPID_PRIVATE_KEY (by default one instance
    /// generates its own into the data directory).
    VapidKeys,
    /// Connect to the alert socket as USER and print each alert as it arrives.
    Listen {
        user: String,
        /// Where the Alert Service listens (default: its configured address, alert.bind).
        #[arg(long)]
        alert_url: Option<String>,
    },
    /// Alert events the outbox relay could not publish (dead letters): list them, or put one
    /// back in line.
    Outbox {
        #[command(subcommand)]
        command: dontouch_signal::outbox::OutboxCommand,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut settings = Settings::load(cli.config.as_deref())?;
    if let Some(dir) = cli.data_dir {
        settings.data_dir = dir;
    }
    settings.demo |= cli.demo;
    signal_runtime::logging::init_logging(&settings.log_format);
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => {
            let app = dontouch_signal::start(&settings, None).await?;
            app.tasks.run_until_signalled().await;
            Ok(())
        }
        Command::Token { user, days } => {
            anyhow::ensure!(days > 0, "--days must be positive");
            println!("{}", sign(&settings, user, chrono::Duration::days(days))?);
            Ok(())
        }
        Command::VapidKeys => {
            let keys = signal_channels::push::VapidKeys::generate();
            println!("private key (secret): {}", keys.private_key());
            println!("public key:           {}", keys.public_key());
            Ok(())
        }
        Command::Listen { user, alert_url } => {
            let token = sign(&settings, user, chrono::Duration::hours(12))?;
            let alert_url = alert_url.unwrap_or_else(|| {
                format!(
                    "ws://{}",
                    dontouch_signal::app::browsable(settings.alert.bind)
                )
            });
            dontouch_signal::listen::listen(&alert_url, &token).await
        }
        Command::Outbox { command } => dontouch_signal::outbox::run(&settings, command).await,
    }
}

/// A token for `user`, signed with the configured secret.
fn sign(settings: &Settings, user: String, valid_for: chrono::Duration) -> anyhow::Result<String> {
    let user = UserId::new(user).context("invalid user")?;
    let signer = JwtSigner::new(&dontouch_signal::app::jwt_config(settings, true)?);
    signer.sign(&user, valid_for).context("signing the token")
}
