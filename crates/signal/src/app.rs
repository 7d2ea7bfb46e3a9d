//! Wiring: builds the adapters the settings name, starts both services on their ports, and, in
//! demo mode, the simulated market.

use anyhow::Context;
use axum::Router;
use prometheus::Registry;
use signal_catalog::Catalog;
use signal_memory::{in_process_bus, MemoryBroadcast, MemoryQuoteCache};
use signal_ports::{FeedContext, QuoteFeed, TickSink};
use signal_sim_market::{SimConfig, SimulatedMarket};
use signal_store_sql::{connect, Schema, SqlAlertStore, SqlAssetStore};
use signal_web::{JwtConfig, JwtVerifier};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

use crate::settings::Settings;

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
        shutdown_signal().await;
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
        settings.bus.url.starts_with("memory:") && settings.cache.url.starts_with("memory:"),
        "the all-in-one binary runs on the embedded bus and cache (memory://); got bus `{}`, cache `{}`",
        settings.bus.url,
        settings.cache.url
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

    let asset_store = Arc::new(SqlAssetStore::new(
        connect(&settings.asset_database_url(), Schema::Asset).await?,
    ));
    let alert_store = Arc::new(SqlAlertStore::new(
        connect(&settings.alert_database_url(), Schema::Alert).await?,
    ));
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
            quote_cache: Arc::new(MemoryQuoteCache::default()),
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
            broadcast: Arc::new(MemoryBroadcast::default()),
        },
        verifier,
        &alert_registry,
        shutdown.clone(),
    )
    .await?;

    let cors = cors_layer(&settings.cors_allowed_origins)?;
    let (asset_addr, asset_server) = serve(
        settings.asset.bind,
        asset.router,
        cors.clone(),
        shutdown.clone(),
    )
    .await?;
    let (alert_addr, alert_server) =
        serve(settings.alert.bind, alert.router, cors, shutdown.clone()).await?;

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

fn cors_layer(origins: &[String]) -> anyhow::Result<CorsLayer> {
    let origins = origins
        .iter()
        .map(|o| {
            o.parse()
                .with_context(|| format!("invalid CORS origin `{o}`"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods(tower_http::cors::Any)
        .allow_headers(tower_http::cors::Any))
}

async fn serve(
    bind: SocketAddr,
    router: Router,
    cors: CorsLayer,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding {bind}"))?;
    let addr = listener.local_addr()?;
    let app = router.layer(cors).layer(TraceLayer::new_for_http());
    let task = tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned());
        if let Err(e) = server.await {
            tracing::error!(error = %e, %addr, "HTTP server failed");
        }
    });
    Ok((addr, task))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
