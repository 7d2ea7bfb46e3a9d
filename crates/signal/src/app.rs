//! Wiring: builds the adapters the settings name, starts both services on their ports, and, in
//! demo mode, the simulated market.

use anyhow::Context;
use prometheus::Registry;
use signal_catalog::Catalog;
use signal_memory::in_process_bus;
use signal_ports::{FeedContext, QuoteFeed, TickSink};
use signal_runtime::adapters;
use signal_runtime::serve::serve;
use signal_runtime::Settings;
use signal_sim_market::{SimConfig, SimulatedMarket};
use signal_web::{JwtConfig, JwtVerifier};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Events waiting between the outbox relay and the alert consumer.
const BUS_CAPACITY: usize = 1024;

pub struct RunningApp {
    pub asset_addr: SocketAddr,
    pub alert_addr: SocketAddr,
    /// Where feeds deliver ticks; tests drive the system through it.
    pub ticks: TickSink,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningApp {
    /// Stops accepting work, lets the background tasks finish, and closes the stores.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// Runs until Ctrl-C or SIGTERM, then stops.
    pub async fn run_until_signalled(self) {
        signal_runtime::serve::shutdown_signal().await;
        tracing::info!("shutting down");
        self.stop().await;
    }
}

/// Starts both services. `feed` overrides what the settings choose (tests pass none and push
/// ticks themselves).
pub async fn start(
    settings: &Settings,
    feed: Option<Arc<dyn QuoteFeed>>,
) -> anyhow::Result<RunningApp> {
    anyhow::ensure!(
        settings.bus.url.starts_with("memory:"),
        "the all-in-one binary connects its two services in process (bus.url = memory://); \
         to run them over `{}`, start the asset-service and alert-service binaries",
        settings.bus.url
    );
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "creating the data directory {}",
            settings.data_dir.display()
        )
    })?;
    let jwt = JwtConfig {
        secret: settings.jwt_secret()?,
        user_claim: settings.auth.user_claim.clone(),
    };
    let verifier = Arc::new(JwtVerifier::new(&jwt));
    let shutdown = CancellationToken::new();

    let asset_store = adapters::asset_store(settings).await?;
    let alert_store = adapters::alert_store(settings).await?;
    let shared = adapters::shared_state(settings).await?;
    let (publisher, inbox) = in_process_bus(BUS_CAPACITY);
    let catalog = Catalog::builtin();
    let feed = feed.or_else(|| {
        settings.demo.then(|| {
            let instruments = catalog
                .entries()
                .map(|e| (e.instrument.id.clone(), e.reference_price))
                .collect();
            let config = SimConfig {
                seed: settings.simulation.seed,
                speed: settings.simulation.speed,
            };
            Arc::new(SimulatedMarket::new(instruments, config)) as Arc<dyn QuoteFeed>
        })
    });
    let feed_description = match (&feed, settings.demo) {
        (Some(feed), true) => format!("{} market (demo)", feed.name()),
        (Some(feed), false) => format!("{} feed", feed.name()),
        (None, _) => {
            "no live feed is configured yet; run with --demo for the simulated market".into()
        }
    };

    let asset_registry = Registry::new();
    let asset = asset_service::start(
        asset_service::AssetDeps {
            rules: asset_store.clone(),
            watchlist: asset_store,
            quote_cache: shared.quotes,
            publisher: Arc::new(publisher),
            catalog,
        },
        asset_service::AssetSettings {
            max_active_rules_per_user: settings.asset.max_active_rules_per_user,
            feed_description: feed_description.clone(),
        },
        verifier.clone(),
        &asset_registry,
        shutdown.clone(),
    )
    .await?;
    let alert_registry = Registry::new();
    let alert = alert_service::start(
        alert_service::AlertDeps {
            history: alert_store,
            inbox: Box::new(inbox),
            broadcast: shared.broadcast,
        },
        verifier,
        &alert_registry,
        shutdown.clone(),
    )
    .await?;

    let origins = &settings.cors_allowed_origins;
    let (asset_addr, asset_server) =
        serve(settings.asset.bind, asset.router, origins, shutdown.clone()).await?;
    let (alert_addr, alert_server) =
        serve(settings.alert.bind, alert.router, origins, shutdown.clone()).await?;

    let mut tasks = asset.tasks;
    tasks.extend(alert.tasks);
    tasks.push(asset_server);
    tasks.push(alert_server);
    match feed {
        Some(feed) => {
            let context = FeedContext {
                sink: asset.ticks.clone(),
                interest: asset.interest.clone(),
                shutdown: shutdown.clone(),
            };
            tasks.push(tokio::spawn(async move {
                if let Err(e) = feed.run(context).await {
                    tracing::error!(error = %e, "market feed stopped");
                }
            }));
        }
        None => tracing::warn!("{feed_description}"),
    }
    tracing::info!(%asset_addr, %alert_addr, feed = %feed_description, "DonTouch Signal is up");
    Ok(RunningApp {
        asset_addr,
        alert_addr,
        ticks: asset.ticks,
        shutdown,
        tasks,
    })
}
