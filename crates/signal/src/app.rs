//! Wiring: builds the adapters the settings name and starts the services over them. The
//! all-in-one binary starts both services connected in process; `asset-service` and
//! `alert-service` each start one, connected through Kafka.

use crate::gateway;
use anyhow::Context;
use asset_service::{PriceSource, PriceSources};
use axum::Router;
use prometheus::Registry;
use signal_accounts::{Accounts, AccountsConfig, EndedSessions, PasswordPolicy, SignInLimit};
use signal_catalog::Catalog;
use signal_domain::{ErrorChain, Market};
use signal_feed_metrics::FeedMetrics;
use signal_kis::KisFeed;
use signal_memory::in_process_bus;
use signal_ports::{
    AlertInbox, CandleHistory, FeedContext, Probe, QuoteFeed, SharedCache, TickSink,
};
use signal_runtime::adapters::{self, SharedState};
use signal_runtime::readiness;
use signal_runtime::serve::serve;
use signal_runtime::Settings;
use signal_sim_market::{SimConfig, SimulatedMarket};
use signal_upbit::UpbitFeed;
use signal_web::{Jwks, JwksConfig, JwtConfig, JwtSigner, JwtVerifier};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Events waiting between the outbox relay and the alert consumer.
const BUS_CAPACITY: usize = 1024;

/// How long a stop waits for the background tasks to finish. Past it the process goes on
/// without them: a client library blocked on a broker or database that is gone must not keep it
/// from stopping.
pub const STOP_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Background work of a running process, stopped together.
pub struct Tasks {
    shutdown: CancellationToken,
    handles: Vec<JoinHandle<()>>,
}

impl Tasks {
    /// Stops accepting work and waits, at most [`STOP_WITHIN`], for every task to finish.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let all = futures::future::join_all(self.handles);
        if tokio::time::timeout(STOP_WITHIN, all).await.is_err() {
            tracing::warn!(
                within = ?STOP_WITHIN,
                "some background work did not stop in time; stopping without it"
            );
        }
    }

    /// Runs until Ctrl-C or SIGTERM, then stops.
    pub async fn run_until_signalled(self) {
        signal_runtime::serve::shutdown_signal().await;
        tracing::info!("shutting down");
        self.stop().await;
    }
}

/// Both services in one process, and the one origin in front of them.
pub struct RunningApp {
    pub asset_addr: SocketAddr,
    pub alert_addr: SocketAddr,
    /// The web app, with both services' routes and sockets on the same origin.
    pub web_addr: SocketAddr,
    /// Where feeds deliver ticks; tests drive the system through it.
    pub ticks: TickSink,
    pub tasks: Tasks,
}

impl RunningApp {
    pub async fn stop(self) {
        self.tasks.stop().await
    }
}

/// One service running alone.
pub struct RunningService {
    pub addr: SocketAddr,
    pub tasks: Tasks,
}

struct LaunchedAsset {
    addr: SocketAddr,
    router: Router,
    ticks: TickSink,
    handles: Vec<JoinHandle<()>>,
}

/// Starts both services in this process, connected by the in-process bus, and the gateway that
/// serves the web app and routes to both. `feed` overrides the feeds the settings choose (tests
/// pass none and push ticks themselves).
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
    prepare_data_dir(settings)?;
    let shutdown = CancellationToken::new();
    let shared = adapters::shared_state(settings).await?;
    let verifier = verifier(settings, true, &shared)?;
    let (publisher, inbox) = in_process_bus(BUS_CAPACITY);
    // Market data has no listener inside one process; the bus carries only alerts here.
    let bus = adapters::AssetBus {
        alerts: Arc::new(publisher),
        market_data: None,
    };
    let asset = launch_asset(settings, bus, &shared, feed, verifier.clone(), &shutdown).await?;
    let alert = launch_alert(
        settings,
        Box::new(inbox),
        &shared,
        verifier,
        true,
        &shutdown,
    )
    .await?;
    let table = gateway::RouteTable::builtin()?;
    let upstreams = gateway::Upstreams {
        asset: asset.router,
        alert: alert.router,
    };
    let (web_addr, web_server) = serve(
        settings.web.bind,
        gateway::router(table, upstreams, gateway::AppFiles::embedded()),
        settings,
        shutdown.clone(),
    )
    .await?;
    tracing::info!(
        asset_addr = %asset.addr,
        alert_addr = %alert.addr,
        "DonTouch Signal is up: open http://{}",
        browsable(web_addr)
    );
    let mut handles = asset.handles;
    handles.extend(alert.handles);
    handles.push(web_server);
    Ok(RunningApp {
        asset_addr: asset.addr,
        alert_addr: alert.addr,
        web_addr,
        ticks: asset.ticks,
        tasks: Tasks { shutdown, handles },
    })
}

/// The Asset Service alone, publishing to Kafka.
pub async fn start_asset_service(settings: &Settings) -> anyhow::Result<RunningService> {
    prepare_data_dir(settings)?;
    let shutdown = CancellationToken::new();
    let shared = adapters::shared_state(settings).await?;
    let verifier = verifier(settings, false, &shared)?;
    let bus = adapters::asset_bus(settings).await?;
    let asset = launch_asset(settings, bus, &shared, None, verifier, &shutdown).await?;
    tracing::info!(addr = %asset.addr, "Asset Service is up");
    Ok(RunningService {
        addr: asset.addr,
        tasks: Tasks {
            shutdown,
            handles: asset.handles,
        },
    })
}

/// The Alert Service alone, consuming from Kafka.
pub async fn start_alert_service(settings: &Settings) -> anyhow::Result<RunningService> {
    prepare_data_dir(settings)?;
    let shutdown = CancellationToken::new();
    let shared = adapters::shared_state(settings).await?;
    let verifier = verifier(settings, false, &shared)?;
    let inbox = adapters::alert_inbox(settings).await?;
    let alert = launch_alert(settings, inbox, &shared, verifier, false, &shutdown).await?;
    tracing::info!(addr = %alert.addr, "Alert Service is up");
    Ok(RunningService {
        addr: alert.addr,
        tasks: Tasks {
            shutdown,
            handles: alert.handles,
        },
    })
}

/// The data directory holds the databases and the token secret: made readable by its owner
/// only when it is created here.
fn prepare_data_dir(settings: &Settings) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&settings.data_dir).with_context(|| {
        format!(
            "creating the data directory {}",
            settings.data_dir.display()
        )
    })
}

/// How tokens are signed and checked: the secret, the user claim, the issuer and audience.
pub fn jwt_config(settings: &Settings, may_generate: bool) -> anyhow::Result<JwtConfig> {
    let auth = &settings.auth;
    Ok(JwtConfig {
        secret: settings.jwt_secret(may_generate)?,
        user_claim: auth.user_claim.clone(),
        issuer: auth.issuer.clone(),
        audience: auth.audience.clone(),
        leeway: std::time::Duration::from_secs(auth.leeway_seconds),
    })
}

/// Verifies tokens for either service: HS256 with the secret, and an identity provider's RS256
/// and ES256 tokens when its key set is configured; counts each user's requests against their
/// rate; with built-in accounts on, also refuses the tokens of sessions that ended early, as
/// recorded in the shared cache both services read.
fn verifier(
    settings: &Settings,
    may_generate: bool,
    shared: &SharedState,
) -> anyhow::Result<Arc<JwtVerifier>> {
    let auth = &settings.auth;
    let mut verifier = JwtVerifier::new(&jwt_config(settings, may_generate)?);
    if let Some(url) = &auth.jwks_url {
        let jwks = Jwks::new(JwksConfig {
            url: url.clone(),
            max_age: std::time::Duration::from_secs(auth.jwks_max_age_seconds),
            min_refresh_interval: std::time::Duration::from_secs(auth.jwks_min_refresh_seconds),
        })
        .context("invalid configuration: auth.jwks_url")?;
        verifier = verifier.with_jwks(jwks);
    }
    if let Some(limit) = settings.http.user_rate_limit() {
        verifier = verifier.with_user_rate_limit(limit);
    }
    if settings.accounts.enabled {
        verifier = verifier.with_ended_sessions(EndedSessions::new(shared.cache.clone()));
    }
    Ok(Arc::new(verifier))
}

/// Built-in accounts as the settings describe them; None when switched off.
async fn accounts(
    settings: &Settings,
    shared: &SharedState,
    may_generate: bool,
) -> anyhow::Result<Option<alert_service::AccountsEdge>> {
    let config = &settings.accounts;
    if !config.enabled {
        return Ok(None);
    }
    let window = std::time::Duration::from_secs(config.signin_window_seconds);
    let accounts = Accounts::new(
        adapters::account_store(settings).await?,
        EndedSessions::new(shared.cache.clone()),
        AccountsConfig {
            policy: PasswordPolicy {
                min_length: config.min_password_length,
                ..PasswordPolicy::default()
            },
            session_lifetime: std::time::Duration::from_secs(
                u64::from(config.session_days) * 24 * 3600,
            ),
            sign_in_per_account: SignInLimit {
                attempts: config.signin_attempts_per_account,
                window,
            },
            sign_in_per_address: SignInLimit {
                attempts: config.signin_attempts_per_address,
                window,
            },
            ..AccountsConfig::default()
        },
    )
    .context("starting accounts")?;
    Ok(Some(alert_service::AccountsEdge {
        accounts: Arc::new(accounts),
        signer: JwtSigner::new(&jwt_config(settings, may_generate)?),
    }))
}

/// Where market data comes from: the live feeds, and the candle histories of the same sources.
struct MarketSources {
    feeds: Vec<Arc<dyn QuoteFeed>>,
    history: Vec<Arc<dyn CandleHistory>>,
}

/// The sources the settings ask for: the simulated market in demo mode, otherwise Upbit (unless
/// turned off) and KIS (when its credentials are set).
fn market_sources(
    settings: &Settings,
    shared: &SharedState,
    registry: &Registry,
) -> anyhow::Result<MarketSources> {
    if settings.demo {
        let instruments = Catalog::builtin()
            .entries()
            .filter_map(|e| Some((e.instrument.id.clone(), e.reference_price?)))
            .collect();
        let config = SimConfig {
            seed: settings.simulation.seed,
            speed: settings.simulation.speed,
        };
        let simulated = Arc::new(SimulatedMarket::new(instruments, config));
        return Ok(MarketSources {
            feeds: vec![simulated.clone()],
            history: vec![simulated],
        });
    }
    let metrics = FeedMetrics::register(registry)?;
    let mut feeds: Vec<Arc<dyn QuoteFeed>> = Vec::new();
    let mut history: Vec<Arc<dyn CandleHistory>> = Vec::new();
    if settings.feeds.upbit {
        let upbit = Arc::new(UpbitFeed::new(
            settings.upbit.clone(),
            metrics.source("upbit"),
        ));
        feeds.push(upbit.clone());
        history.push(upbit);
    }
    if let Some(kis) = &settings.kis {
        let cache: Arc<dyn SharedCache> = shared.cache.clone();
        let config = signal_kis::KisConfig {
            calendar: settings.calendar.clone(),
            ..kis.clone()
        };
        let kis = Arc::new(KisFeed::new(config, cache, metrics.source("kis"))?);
        feeds.push(kis.clone());
        history.push(kis);
    }
    Ok(MarketSources { feeds, history })
}

/// Where each market's prices come from: the given feeds when they are the simulated market or
/// a test's own (they serve every market), else Upbit and KIS as the settings have them.
fn price_sources(settings: &Settings, feeds: &[Arc<dyn QuoteFeed>]) -> PriceSources {
    let live = |name: &'static str| feeds.iter().any(|f| f.name() == name);
    if let [feed] = feeds {
        if !matches!(feed.name(), "upbit" | "kis") {
            return PriceSources::new(
                Market::ALL.map(|market| (market, PriceSource::Feed(feed.name()))),
                settings.demo,
            );
        }
    }
    let upbit = if live("upbit") {
        PriceSource::Feed("upbit")
    } else {
        PriceSource::SwitchedOff {
            feed: "Upbit",
            setting: "SIGNAL_FEEDS__UPBIT=false",
        }
    };
    let kis = if live("kis") {
        PriceSource::Feed("kis")
    } else {
        PriceSource::NotConfigured {
            feed: "KIS",
            setting: "SIGNAL_KIS__APP_KEY and SIGNAL_KIS__APP_SECRET",
        }
    };
    PriceSources::new(
        Market::ALL.map(|market| {
            let source = if market == Market::Upbit {
                &upbit
            } else {
                &kis
            };
            (market, source.clone())
        }),
        settings.demo,
    )
}

/// Starts the Asset Service and its feeds: `feed` when given, else those the settings choose.
async fn launch_asset(
    settings: &Settings,
    bus: adapters::AssetBus,
    shared: &SharedState,
    feed: Option<Arc<dyn QuoteFeed>>,
    verifier: Arc<JwtVerifier>,
    shutdown: &CancellationToken,
) -> anyhow::Result<LaunchedAsset> {
    let store = adapters::asset_store(settings).await?;
    let database: Arc<dyn Probe> = store.clone();
    let candles = adapters::candle_store(settings).await?;
    let registry = Registry::new();
    // A given feed (a test's) has no history: its charts are what the store holds.
    let MarketSources { feeds, history } = match feed {
        Some(feed) => MarketSources {
            feeds: vec![feed],
            history: Vec::new(),
        },
        None => market_sources(settings, shared, &registry)?,
    };
    let sources = price_sources(settings, &feeds);
    let asset = asset_service::start(
        asset_service::AssetDeps {
            rules: store.clone(),
            outbox: store.clone(),
            watchlist: store,
            candles,
            history,
            quote_cache: shared.quotes.clone(),
            rule_changes: shared.rule_changes.clone(),
            leases: shared.cache.clone(),
            members: shared.asset_members.clone(),
            publisher: bus.alerts,
            market_data: bus.market_data,
            catalog: Catalog::builtin(),
        },
        asset_service::AssetSettings {
            max_active_rules_per_user: settings.asset.max_active_rules_per_user,
            calendar: signal_domain::MarketCalendar::new(&settings.calendar),
            market_data_interval: std::time::Duration::from_millis(
                settings.bus.market_data_interval_ms,
            ),
            outbox_retention: std::time::Duration::from_secs(
                settings.asset.outbox_retention_hours.saturating_mul(3600),
            ),
            outbox_resend_window: std::time::Duration::from_secs(
                settings.asset.outbox_resend_minutes.saturating_mul(60),
            ),
        },
        sources,
        asset_service::HttpEdge {
            verifier,
            gateway: settings.gateway()?,
            socket_limits: settings.http.socket_limits(),
        },
        &registry,
        shutdown.clone(),
    )
    .await?;
    asset.readiness.add(readiness::database(database));
    for dependency in readiness::shared(settings, shared)? {
        asset.readiness.add(dependency);
    }
    for feed in &feeds {
        asset.readiness.add(readiness::feed(feed.clone()));
    }
    // Unknown paths and methods answer JSON, on the service's port and through the gateway.
    let router = signal_web::edge::with_json_fallbacks(asset.router);
    let (addr, server) = serve(
        settings.asset.bind,
        router.clone(),
        settings,
        shutdown.clone(),
    )
    .await?;
    let mut handles = asset.tasks;
    handles.push(server);
    let feed_names: Vec<&str> = feeds.iter().map(|f| f.name()).collect();
    tracing::info!(feeds = ?feed_names, "market data");
    if feeds.is_empty() {
        tracing::warn!("no live feed is configured; run with --demo for the simulated market");
    }
    for feed in feeds {
        let context = FeedContext {
            sink: asset.ticks.clone(),
            interest: asset.interest.clone(),
            shutdown: shutdown.clone(),
        };
        handles.push(tokio::spawn(asset_service::follow_listings(
            feed.clone(),
            asset.catalog.clone(),
            std::time::Duration::from_secs(settings.asset.listing_refresh_seconds.max(1)),
            shutdown.clone(),
        )));
        handles.push(tokio::spawn(async move {
            if let Err(e) = feed.run(context).await {
                tracing::error!(feed = feed.name(), error = %ErrorChain(&e), "market feed stopped");
            }
        }));
    }
    Ok(LaunchedAsset {
        addr,
        router,
        ticks: asset.ticks,
        handles,
    })
}

/// A started Alert Service: its address, its router (for the gateway) and its tasks.
struct LaunchedAlert {
    addr: SocketAddr,
    router: Router,
    handles: Vec<JoinHandle<()>>,
}

async fn launch_alert(
    settings: &Settings,
    inbox: Box<dyn AlertInbox>,
    shared: &SharedState,
    verifier: Arc<JwtVerifier>,
    may_generate_secret: bool,
    shutdown: &CancellationToken,
) -> anyhow::Result<LaunchedAlert> {
    let store = adapters::alert_store(settings).await?;
    let database: Arc<dyn Probe> = store.clone();
    let channels = signal_channels::Channels::new(
        &settings.channels,
        &settings.data_dir,
        store.clone(),
        store.clone(),
    )
    .context("setting up notification channels")?;
    let registry = Registry::new();
    let alert = alert_service::start(
        alert_service::AlertDeps {
            history: store,
            inbox,
            broadcast: shared.alert_pushes.clone(),
            accounts: accounts(settings, shared, may_generate_secret).await?,
            trusted_proxies: settings.forwarding_proxies(),
            gateway: settings.gateway()?,
            channels,
            leases: shared.cache.clone(),
            instance: uuid::Uuid::new_v4().to_string(),
        },
        verifier,
        settings.http.socket_limits(),
        &registry,
        shutdown.clone(),
    )
    .await?;
    alert.readiness.add(readiness::database(database));
    for dependency in readiness::shared(settings, shared)? {
        alert.readiness.add(dependency);
    }
    let router = signal_web::edge::with_json_fallbacks(alert.router);
    let (addr, server) = serve(
        settings.alert.bind,
        router.clone(),
        settings,
        shutdown.clone(),
    )
    .await?;
    let mut handles = alert.tasks;
    handles.push(server);
    Ok(LaunchedAlert {
        addr,
        router,
        handles,
    })
}

/// An address a browser on this machine can open: a wildcard bind is reached on loopback.
pub fn browsable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    }
}
