//! Asset Service: instruments and quotes, watchlists, alert rules, and the pipeline that turns
//! each tick into fired rules and outbox events. Everything that does I/O comes in through the
//! ports in [`AssetDeps`], so the same service runs embedded or in production.

mod assets;
mod candles;
mod conflated;
mod error;
mod http;
mod interest;
mod metrics;
mod ownership;
mod pipeline;
mod quote_book;
mod relay;
mod rule_sync;

use axum::Router;
use prometheus::Registry;
use signal_catalog::Catalog;
use signal_ports::{
    AlertPublisher, Broadcast, CandleStore, Interest, MarketDataPublisher, QuoteCache, RuleStore,
    SharedCache, TickSink, WatchlistStore,
};
use signal_web::{ops_router, JwtVerifier, NotReady, Readiness};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use error::CoreError;
pub use metrics::AssetMetrics;

/// The adapters the service runs on.
pub struct AssetDeps {
    pub rules: Arc<dyn RuleStore>,
    pub watchlist: Arc<dyn WatchlistStore>,
    /// Where the minute candles built from the ticks go, and are read from.
    pub candles: Arc<dyn CandleStore>,
    pub quote_cache: Arc<dyn QuoteCache>,
    /// Announces rule changes to the other instances, and hears theirs.
    pub rule_changes: Arc<dyn Broadcast>,
    /// Where instances hold their leases on shards of instruments.
    pub leases: Arc<dyn SharedCache>,
    /// Where instances announce themselves to each other.
    pub members: Arc<dyn Broadcast>,
    pub publisher: Arc<dyn AlertPublisher>,
    /// Where market-data change events go, when anything outside the process listens.
    pub market_data: Option<Arc<dyn MarketDataPublisher>>,
    pub catalog: Catalog,
}

pub struct AssetSettings {
    pub max_active_rules_per_user: usize,
    /// How the service gets prices, in a few words, for users and logs ("simulated market").
    pub feed_description: String,
    /// Tells each quote whether its market is in session.
    pub calendar: signal_domain::MarketCalendar,
    /// Each instrument's market data is published at most once per this interval.
    pub market_data_interval: Duration,
}

/// How often the shared cache's latest quotes are brought up to date.
const QUOTE_CACHE_INTERVAL: Duration = Duration::from_millis(50);

/// A started service: its routes, where feeds deliver ticks, which instruments need them, and
/// its background tasks.
pub struct AssetService {
    pub router: Router,
    pub ticks: TickSink,
    pub interest: watch::Receiver<Arc<Interest>>,
    /// The instrument master the service searches; feeds refresh it.
    pub catalog: Arc<RwLock<Catalog>>,
    pub tasks: Vec<JoinHandle<()>>,
}

/// Ticks waiting for the engine. A feed that outruns the engine waits instead of growing memory.
const TICK_QUEUE: usize = 65_536;

struct PipelineRunning(AtomicBool);

#[async_trait::async_trait]
impl Readiness for PipelineRunning {
    async fn ready(&self) -> Result<(), NotReady> {
        self.0
            .load(Ordering::Relaxed)
            .then_some(())
            .ok_or(NotReady::Stopped("the trigger pipeline"))
    }
}

pub async fn start(
    deps: AssetDeps,
    settings: AssetSettings,
    verifier: Arc<JwtVerifier>,
    registry: &Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<AssetService> {
    let metrics = AssetMetrics::register(registry)?;
    let book = Arc::new(quote_book::QuoteBook::default());
    let outbox_ready = Arc::new(Notify::new());
    let interest = Arc::new(interest::InterestTracker::default());
    interest.set_watched(deps.watchlist.watched_instruments().await?);
    let (candle_sink, candle_task) =
        candles::start(deps.candles.clone(), registry, shutdown.clone())?;
    let mut outlet_tasks = Vec::new();
    let mut outlet = |interval, sink: Arc<dyn conflated::QuoteOutlet>| {
        let conflated = Arc::new(conflated::ConflatedQuotes::new(interval));
        outlet_tasks.push(tokio::spawn(conflated.clone().run(sink, shutdown.clone())));
        conflated
    };
    let quote_cache_outlet = outlet(
        QUOTE_CACHE_INTERVAL,
        Arc::new(conflated::CacheOutlet(deps.quote_cache.clone())),
    );
    let market_data_outlet = deps.market_data.map(|publisher| {
        outlet(
            settings.market_data_interval,
            Arc::new(conflated::MarketDataOutlet(publisher)),
        )
    });
    let (applied, applied_by_pipeline) = watch::channel(ownership::ShardSet::default());
    let ownership = ownership::Ownership::new(
        deps.leases.clone(),
        deps.members.clone(),
        applied_by_pipeline,
    );
    ownership.start().await;
    let owned = ownership.subscribe();
    let ownership_task = tokio::spawn(ownership.run(shutdown.clone()));
    let (engine, commands) = mpsc::channel(1024);
    let pipeline = pipeline::Pipeline::load(pipeline::PipelineOutputs {
        store: deps.rules.clone(),
        book: book.clone(),
        quote_cache_outlet,
        market_data_outlet,
        outbox_ready: outbox_ready.clone(),
        metrics: metrics.clone(),
        interest: interest.clone(),
        candles: candle_sink,
        calendar: settings.calendar,
        ownership: owned,
        applied,
        quote_cache: deps.quote_cache.clone(),
        commands: engine.downgrade(),
    })
    .await?;
    let (ticks, tick_queue) = mpsc::channel(TICK_QUEUE);
    let running = Arc::new(PipelineRunning(AtomicBool::new(true)));

    let pipeline_task = tokio::spawn({
        let shutdown = shutdown.clone();
        let running = running.clone();
        async move {
            pipeline.run(tick_queue, commands, shutdown).await;
            running.0.store(false, Ordering::Relaxed);
        }
    });
    let announcer = rule_sync::RuleAnnouncer::new(deps.rule_changes.clone());
    let announcements = deps.rule_changes.subscribe().await?;
    let sync_task = tokio::spawn({
        let (announcer, rules, engine, shutdown) = (
            announcer.clone(),
            deps.rules.clone(),
            engine.clone(),
            shutdown.clone(),
        );
        async move {
            announcer
                .follow(announcements, rules, engine, shutdown)
                .await
        }
    });
    let reconcile_task = tokio::spawn(rule_sync::reconcile(
        deps.rules.clone(),
        deps.watchlist.clone(),
        interest.clone(),
        engine.clone(),
        shutdown.clone(),
    ));
    let relay_task = tokio::spawn(relay::run_relay(
        deps.rules.clone(),
        deps.publisher,
        outbox_ready,
        metrics.clone(),
        shutdown,
    ));

    let catalog = Arc::new(RwLock::new(deps.catalog));
    let assets = assets::Assets {
        catalog: catalog.clone(),
        book,
        quote_cache: deps.quote_cache,
        rules: deps.rules,
        watchlist: deps.watchlist,
        candles: deps.candles,
        engine,
        max_active_rules: settings.max_active_rules_per_user,
        interest: interest.clone(),
        announcer,
    };
    let state = http::AssetState {
        assets: Arc::new(assets),
        verifier,
        metrics,
        feed_description: settings.feed_description.into(),
    };
    let router = http::router(state).merge(ops_router(registry.clone(), running));
    Ok(AssetService {
        router,
        ticks,
        interest: interest.subscribe(),
        catalog,
        tasks: [
            pipeline_task,
            relay_task,
            sync_task,
            candle_task,
            ownership_task,
            reconcile_task,
        ]
        .into_iter()
        .chain(outlet_tasks)
        .collect(),
    })
}
