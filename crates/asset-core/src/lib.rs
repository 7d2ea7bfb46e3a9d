//! The Asset Service's core, free of any transport: the stages a tick goes through, the engine
//! actor, the outbox relay, and the use cases the HTTP layer calls. Every I/O goes through the
//! ports in [`AssetDeps`].
//!
//! The path of a tick, in stage order (no stage module uses a later one):
//!
//! 1. [`market`]: a feed's `Tick` arrives on the tick queue ([`AssetCore::ticks`]). The market
//!    stage folds it into a `Quote`, publishes the quote in the quote book (live sockets), leaves
//!    it with the conflated outlets (shared cache, market-data topic) and the tick with the candle
//!    aggregator, and sends the quotes of followed instruments down the quote queue.
//! 2. [`engine`]: the engine actor takes the quote off the quote queue, evaluates it if its shard
//!    is owned, and stores what fired (rule states and outbox events) in one transaction, then
//!    wakes the relay.
//! 3. [`relay`]: publishes the pending outbox events to the bus and marks them sent.
//!
//! Beside the path: [`backfill`] fetches from the exchanges the candles the store lacks (history
//! for charts and indicators); [`engine::replica`] keeps this instance's rules in step with the others';
//! [`engine::handover`] follows shard ownership (the `signal-ownership` crate); [`interest`] tells
//! the feeds which instruments to stream; [`listings`] adds what the feeds newly list to the
//! catalog; [`assets`] holds the use cases.

mod assets;
mod backfill;
mod creation;
mod engine;
mod error;
mod interest;
mod listings;
mod market;
mod metrics;
mod preview;
mod relay;

pub use assets::{is_target, Assets, Chart, Listing};
pub use backfill::{Backfill, BackfillError};
pub use error::CoreError;
pub use interest::ViewGuard;
pub use listings::follow_listings;
pub use market::{LiveQuote, LiveQuotes};
pub use metrics::AssetMetrics;
pub use preview::{Preview, PreviewFiring, APPROXIMATION, MAX_LISTED, PREVIEW_DAYS};

use prometheus::Registry;
use signal_catalog::Catalog;
use signal_ownership::Ownership;
use signal_ports::{
    AlertPublisher, Broadcast, BroadcastError, CandleHistory, CandleStore, Interest,
    MarketDataPublisher, OutboxStore, QuoteCache, RuleStore, SharedCache, StoreError, TickSink,
    WatchlistStore,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use creation::{GroupedCreation, RuleCreator};
use engine::handover::Handover;
use engine::replica::{reconcile_periodically, RuleAnnouncer};
use engine::{Engine, EngineDeps, EngineHandle};
use interest::InterestTracker;
use market::conflated::{CacheOutlet, ConflatedQuotes, MarketDataOutlet, QuoteOutlet};
use market::{MarketStage, QuoteBook};
use relay::Relay;

/// The adapters the core runs on.
pub struct AssetDeps {
    pub rules: Arc<dyn RuleStore>,
    /// The relay's side of the outbox the rule store writes to.
    pub outbox: Arc<dyn OutboxStore>,
    pub watchlist: Arc<dyn WatchlistStore>,
    /// Where the minute candles built from the ticks go, and are read from.
    pub candles: Arc<dyn CandleStore>,
    /// The exchanges' candle histories, for what the store lacks; the first that serves a
    /// market is asked for it.
    pub history: Vec<Arc<dyn CandleHistory>>,
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
    /// Tells each quote whether its market is in session.
    pub calendar: signal_domain::MarketCalendar,
    /// Each instrument's market data is published at most once per this interval.
    pub market_data_interval: Duration,
    /// How long sent events stay in the outbox before they are deleted.
    pub outbox_retention: Duration,
    /// How far back sent events are published again when the bus lost what it had acknowledged.
    pub outbox_resend_window: Duration,
}

/// Why the core could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot register the metrics")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot load the rules and watchlists")]
    Store(#[from] StoreError),
    #[error("cannot follow the other instances' rule changes")]
    Broadcast(#[from] BroadcastError),
}

/// A started core.
pub struct AssetCore {
    /// The use cases.
    pub assets: Arc<Assets>,
    /// Where feeds deliver ticks.
    pub ticks: TickSink,
    /// Which instruments need live data.
    pub interest: watch::Receiver<Arc<Interest>>,
    /// The instrument master the use cases search; feeds add to it.
    pub catalog: Arc<RwLock<Catalog>>,
    pub metrics: AssetMetrics,
    /// Whether the engine still runs.
    pub engine_running: Arc<AtomicBool>,
    /// History from the exchanges for the spans the candle store lacks.
    pub backfill: Arc<Backfill>,
    pub tasks: Vec<JoinHandle<()>>,
}

/// How often the shared cache's latest quotes are brought up to date.
const QUOTE_CACHE_INTERVAL: Duration = Duration::from_millis(50);
/// Ticks waiting for the market stage. A feed that outruns it waits instead of growing memory.
const TICK_QUEUE: usize = 65_536;
/// Quotes waiting for the engine, which may be retrying a store write meanwhile; the market stage
/// (and so live quotes) goes on until this fills.
const QUOTE_QUEUE: usize = 65_536;
/// Rule changes and shard handovers waiting for the engine.
const COMMAND_QUEUE: usize = 1024;
/// Single rule creates waiting for their group.
const CREATION_QUEUE: usize = 1024;

pub async fn start(
    deps: AssetDeps,
    settings: AssetSettings,
    registry: &Registry,
    shutdown: CancellationToken,
) -> Result<AssetCore, StartError> {
    let metrics = AssetMetrics::register(registry)?;
    let book = Arc::new(QuoteBook::default());
    let outbox_ready = Arc::new(Notify::new());
    let interest = Arc::new(InterestTracker::default());
    interest.set_watched(deps.watchlist.watched_instruments().await?);
    let mut tasks = Vec::new();
    let backfill = Arc::new(Backfill::new(deps.candles.clone(), deps.history));

    // Stage 1: the market stage and what hangs off it.
    let (candle_sink, candle_task) =
        market::candles::start(deps.candles.clone(), registry, shutdown.clone())?;
    tasks.push(candle_task);
    let mut outlet = |interval, sink: Arc<dyn QuoteOutlet>| {
        let conflated = Arc::new(ConflatedQuotes::new(interval));
        tasks.push(tokio::spawn(conflated.clone().run(sink, shutdown.clone())));
        conflated
    };
    let quote_cache_outlet = outlet(
        QUOTE_CACHE_INTERVAL,
        Arc::new(CacheOutlet(deps.quote_cache.clone())),
    );
    let market_data_outlet = deps.market_data.map(|publisher| {
        outlet(
            settings.market_data_interval,
            Arc::new(MarketDataOutlet(publisher)),
        )
    });

    // Ownership first: the shards it holds at once are the engine's from the start.
    let (mut ownership, mut assigned) = Ownership::new(deps.leases.clone(), deps.members.clone());
    ownership.start().await;
    let owned = assigned.target();
    let (following, followed) = watch::channel(owned);

    // Stage 2: the engine actor, its handover and replica sync.
    // Reconciliation reads what changed from here on: the load below reads everything before.
    let in_step_at = chrono::Utc::now();
    let engine = Engine::load(
        EngineDeps {
            store: deps.rules.clone(),
            candles: deps.candles.clone(),
            book: book.clone(),
            outbox_ready: outbox_ready.clone(),
            metrics: metrics.clone(),
            interest: interest.clone(),
        },
        owned,
    )
    .await?;
    let (commands, command_queue) = mpsc::channel(COMMAND_QUEUE);
    let engine_handle = EngineHandle::new(commands);
    let (quotes, quote_queue) = mpsc::channel(QUOTE_QUEUE);
    let engine_running = Arc::new(AtomicBool::new(true));
    tasks.push(tokio::spawn({
        let (running, shutdown) = (engine_running.clone(), shutdown.clone());
        async move {
            engine.run(quote_queue, command_queue, shutdown).await;
            running.store(false, Ordering::Relaxed);
        }
    }));
    tasks.push(tokio::spawn(
        Handover {
            assigned,
            engine: engine_handle.clone(),
            store: deps.rules.clone(),
            quote_cache: deps.quote_cache.clone(),
            interest: interest.clone(),
            following,
            held: owned,
        }
        .run(),
    ));
    tasks.push(tokio::spawn(ownership.run(shutdown.clone())));
    let announcer = RuleAnnouncer::new(deps.rule_changes.clone());
    let announcements = deps.rule_changes.subscribe().await?;
    tasks.push(tokio::spawn(announcer.clone().follow(
        announcements,
        deps.rules.clone(),
        engine_handle.clone(),
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(reconcile_periodically(
        deps.rules.clone(),
        deps.watchlist.clone(),
        interest.clone(),
        engine_handle.clone(),
        in_step_at,
        shutdown.clone(),
    )));

    let (ticks, tick_queue) = mpsc::channel(TICK_QUEUE);
    tasks.push(tokio::spawn(
        MarketStage {
            book: book.clone(),
            calendar: settings.calendar,
            quote_cache_outlet,
            market_data_outlet,
            candles: candle_sink,
            following: followed,
            engine: quotes,
            metrics: metrics.clone(),
        }
        .run(tick_queue, shutdown.clone()),
    ));

    // Stage 3: the relay, and the deletion of what it sent long ago.
    let relay = Relay {
        outbox: deps.outbox.clone(),
        publisher: deps.publisher,
        metrics: metrics.clone(),
        resend_window: settings.outbox_resend_window,
    };
    tasks.push(tokio::spawn(relay.run(outbox_ready, shutdown.clone())));
    tasks.push(tokio::spawn(relay::watch_lag(
        deps.outbox.clone(),
        metrics.clone(),
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(relay::delete_sent_periodically(
        deps.outbox,
        settings.outbox_retention,
        metrics.clone(),
        shutdown.clone(),
    )));

    let (creations, creation_queue) = mpsc::channel(CREATION_QUEUE);
    tasks.push(tokio::spawn(
        GroupedCreation {
            rules: deps.rules.clone(),
            engine: engine_handle.clone(),
            announcer: announcer.clone(),
            limit: settings.max_active_rules_per_user,
        }
        .run(creation_queue, shutdown),
    ));

    let catalog = Arc::new(RwLock::new(deps.catalog));
    let assets = Assets {
        catalog: catalog.clone(),
        book,
        quote_cache: deps.quote_cache,
        rules: deps.rules,
        watchlist: deps.watchlist,
        candles: deps.candles,
        backfill: backfill.clone(),
        engine: engine_handle,
        max_active_rules: settings.max_active_rules_per_user,
        interest: interest.clone(),
        announcer,
        creator: RuleCreator::new(creations),
    };
    Ok(AssetCore {
        assets: Arc::new(assets),
        ticks,
        interest: interest.subscribe(),
        catalog,
        metrics,
        engine_running,
        backfill,
        tasks,
    })
}
