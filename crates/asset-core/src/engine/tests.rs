//! The engine actor over SQLite and the in-memory shared cache, no Kafka, no Redis. Each test
//! stands in for the run loop: it takes the commands the handover and replica sync send off the
//! engine's queue and applies them itself, so every step happens in a known order.

use async_trait::async_trait;
use signal_domain::{
    AlertRule, Condition, ConditionKind, InstrumentId, Quote, QuoteSource, Repeat, RuleId,
    RuleSpec, RuleState, Tick, Timestamp, TriggeredAlert, UserId,
};
use signal_memory::MemoryQuoteCache;
use signal_ownership::{handshake, shard_of, Assigner, ShardSet};
use signal_ports::{
    Capped, OutboxEntry, OutboxStore, QuoteCache, RuleChange, RuleHold, RuleStore, RulesChanged,
    StoreError, WatchlistStore,
};
use signal_store_sql::{connect, Schema, SqlAssetStore};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};

use super::command::{EngineCommand, EngineHandle};
use super::handover::Handover;
use super::replica::reconcile_once;
use super::{Engine, EngineDeps};
use crate::interest::InterestTracker;
use crate::market::QuoteBook;
use crate::metrics::AssetMetrics;

const PATIENCE: Duration = Duration::from_secs(10);

fn btc() -> InstrumentId {
    "UPBIT:KRW-BTC".parse().unwrap()
}

fn alice() -> UserId {
    UserId::new("alice").unwrap()
}

fn quote(instrument: &InstrumentId, price: &str) -> Quote {
    let now = chrono::Utc::now();
    Quote::after(
        &Tick {
            instrument: instrument.clone(),
            price: price.parse().unwrap(),
            trade_volume: None,
            cumulative_volume: None,
            prev_close: None,
            exchange_time: now,
            received_at: now,
            source: QuoteSource::Upbit,
        },
        None,
    )
}

fn above(level: u32, repeat: Repeat) -> RuleSpec {
    RuleSpec::new(
        btc(),
        Condition::from_parts(ConditionKind::Above, level.into()).unwrap(),
        repeat,
        None,
        None,
        chrono::Utc::now(),
    )
    .unwrap()
}

async fn sqlite(dir: &tempfile::TempDir) -> Arc<SqlAssetStore> {
    let url = format!("sqlite://{}/asset.db?mode=rwc", dir.path().display());
    Arc::new(SqlAssetStore::new(
        connect(&url, Schema::Asset).await.unwrap(),
    ))
}

/// A candle store that holds none: these tests have no indicators to warm up.
async fn no_candles() -> Arc<dyn signal_ports::CandleStore> {
    Arc::new(signal_store_sql::SqlCandleStore::new(
        connect("sqlite::memory:", Schema::Asset).await.unwrap(),
    ))
}

async fn create(store: &dyn RuleStore, spec: &RuleSpec, at: Timestamp) -> AlertRule {
    match store.create(&alice(), spec, 100, at).await.unwrap() {
        Capped::Stored(rule) => rule,
        Capped::LimitReached => panic!("the limit refused a test rule"),
    }
}

async fn outbox(store: &dyn OutboxStore) -> Vec<TriggeredAlert> {
    let entries: Vec<OutboxEntry> = store.pending_outbox(100).await.unwrap();
    entries
        .into_iter()
        .map(|entry| entry.event.unwrap())
        .collect()
}

/// An engine the test steps by hand, with the handover task running beside it.
struct Stepped {
    engine: Engine,
    commands: mpsc::Receiver<EngineCommand>,
    handle: EngineHandle,
    assigner: Assigner,
    cache: Arc<MemoryQuoteCache>,
    interest: Arc<InterestTracker>,
    /// The shards the handover follows: how a test knows it has seen an assignment.
    following: watch::Receiver<ShardSet>,
}

impl Stepped {
    async fn start(store: Arc<dyn RuleStore>, owned: ShardSet) -> Self {
        let cache = Arc::new(MemoryQuoteCache::default());
        let interest = Arc::new(InterestTracker::default());
        let engine = Engine::load(
            EngineDeps {
                store: store.clone(),
                candles: no_candles().await,
                book: Arc::new(QuoteBook::default()),
                outbox_ready: Arc::new(Notify::new()),
                metrics: AssetMetrics::register(&prometheus::Registry::new()).unwrap(),
                interest: interest.clone(),
            },
            owned,
        )
        .await
        .unwrap();
        let (queue, commands) = mpsc::channel(16);
        let handle = EngineHandle::new(queue);
        let (mut assigner, assigned) = handshake();
        assigner.ask(owned);
        let (following, following_seen) = watch::channel(owned);
        tokio::spawn(
            Handover {
                assigned,
                engine: handle.clone(),
                store,
                quote_cache: cache.clone(),
                interest: interest.clone(),
                following,
                held: owned,
            }
            .run(),
        );
        assert!(assigner.until_evaluated(owned, PATIENCE).await);
        Self {
            engine,
            commands,
            handle,
            assigner,
            cache,
            interest,
            following: following_seen,
        }
    }

    /// Applies the next command sent to the engine.
    async fn step(&mut self) {
        let command = tokio::time::timeout(PATIENCE, self.commands.recv())
            .await
            .expect("a command in time")
            .expect("the queue is open");
        self.engine.apply(command).await;
    }

    fn nothing_sent(&mut self) -> bool {
        self.commands.try_recv().is_err()
    }
}

/// The rule store, with the first read of the active rules held back after it read: a load that
/// takes long, during which the world moves on.
struct SlowFirstLoad {
    inner: Arc<SqlAssetStore>,
    armed: AtomicBool,
    read: Notify,
    release: Notify,
}

impl SlowFirstLoad {
    fn new(inner: Arc<SqlAssetStore>) -> Self {
        Self {
            inner,
            armed: AtomicBool::new(false),
            read: Notify::new(),
            release: Notify::new(),
        }
    }
}

#[async_trait]
impl RuleStore for SlowFirstLoad {
    async fn create(
        &self,
        user: &UserId,
        spec: &RuleSpec,
        limit: usize,
        at: Timestamp,
    ) -> Result<Capped<AlertRule>, StoreError> {
        self.inner.create(user, spec, limit, at).await
    }
    async fn create_many(
        &self,
        user: &UserId,
        specs: &[RuleSpec],
        limit: usize,
        at: Timestamp,
    ) -> Result<Capped<Vec<AlertRule>>, StoreError> {
        self.inner.create_many(user, specs, limit, at).await
    }
    async fn create_each(
        &self,
        rules: &[(UserId, RuleSpec)],
        limit: usize,
        at: Timestamp,
    ) -> Result<Vec<Capped<AlertRule>>, StoreError> {
        self.inner.create_each(rules, limit, at).await
    }
    async fn get(&self, user: &UserId, id: RuleId) -> Result<Option<AlertRule>, StoreError> {
        RuleStore::get(self.inner.as_ref(), user, id).await
    }
    async fn list(&self, user: &UserId, active_only: bool) -> Result<Vec<AlertRule>, StoreError> {
        RuleStore::list(self.inner.as_ref(), user, active_only).await
    }
    async fn update(
        &self,
        user: &UserId,
        id: RuleId,
        spec: &RuleSpec,
        limit: usize,
        at: Timestamp,
    ) -> Result<Option<Capped<AlertRule>>, StoreError> {
        self.inner.update(user, id, spec, limit, at).await
    }
    async fn delete_many(&self, user: &UserId, ids: &[RuleId]) -> Result<Vec<RuleId>, StoreError> {
        self.inner.delete_many(user, ids).await
    }
    async fn replace(
        &self,
        user: &UserId,
        replaced: &[RuleId],
        spec: &RuleSpec,
        limit: usize,
        at: Timestamp,
    ) -> Result<Capped<AlertRule>, StoreError> {
        self.inner.replace(user, replaced, spec, limit, at).await
    }
    async fn hold(
        &self,
        user: &UserId,
        id: RuleId,
        hold: RuleHold,
        at: Timestamp,
    ) -> Result<Option<AlertRule>, StoreError> {
        self.inner.hold(user, id, hold, at).await
    }
    async fn active_rules(&self) -> Result<Vec<AlertRule>, StoreError> {
        let active = self.inner.active_rules().await?;
        if self.armed.swap(false, Ordering::SeqCst) {
            self.read.notify_one();
            self.release.notified().await;
        }
        Ok(active)
    }
    async fn changed_since(&self, since: Timestamp) -> Result<RulesChanged, StoreError> {
        self.inner.changed_since(since).await
    }
    async fn apply_changes(
        &self,
        changes: &[RuleChange],
        events: &[TriggeredAlert],
    ) -> Result<(), StoreError> {
        self.inner.apply_changes(changes, events).await
    }
}

/// Another instance fired `rule` for the `count`-th time and stored it.
async fn fired_elsewhere(store: &dyn RuleStore, rule: &AlertRule, count: u32, state: RuleState) {
    let at = chrono::Utc::now();
    let event = TriggeredAlert {
        event_id: signal_domain::firing_id(rule.id, count),
        schema_version: signal_domain::TRIGGERED_ALERT_SCHEMA_VERSION,
        user_id: rule.user.clone(),
        rule_id: rule.id,
        instrument: rule.spec.instrument.clone(),
        symbol: rule.spec.instrument.symbol().to_string(),
        condition: ConditionKind::Above,
        level: "100".parse().unwrap(),
        percent: None,
        price: "150".parse().unwrap(),
        exchange_time: at,
        triggered_at: at,
        note: None,
        simulated: false,
        params: None,
        also: None,
        channels: None,
        message: None,
        change_percent: None,
    };
    store
        .apply_changes(
            &[RuleChange {
                rule: rule.id,
                state,
                fired_at: Some(at),
                trigger_count: count,
            }],
            &[event],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_shard_lost_mid_load_is_taken_over_from_a_newer_load_when_regained() {
    let dir = tempfile::tempdir().unwrap();
    let sql = sqlite(&dir).await;
    let every = Repeat::Every {
        cooldown: chrono::Duration::zero(),
        rearm_band: 0.into(),
    };
    let rule = create(sql.as_ref(), &above(100, every), chrono::Utc::now()).await;
    let store = Arc::new(SlowFirstLoad::new(sql.clone()));
    let shard: ShardSet = [shard_of(&btc())].into_iter().collect();
    // Another instance evaluates everything.
    let mut stepped = Stepped::start(store.clone(), ShardSet::default()).await;

    // Gained: the load reads the rule as armed, never fired, and is held back.
    store.armed.store(true, Ordering::SeqCst);
    stepped.assigner.ask(shard);
    tokio::time::timeout(PATIENCE, store.read.notified())
        .await
        .expect("the load reads the rules");
    // Lost before the load is in, and meanwhile the other instance fires the rule twice.
    stepped.assigner.ask(ShardSet::default());
    // The handover must see the loss before the regain: assignments are a watch, and a loss and a
    // regain asked while it is busy would reach it as no change at all.
    tokio::time::timeout(
        PATIENCE,
        stepped
            .following
            .wait_for(|following| *following == ShardSet::default()),
    )
    .await
    .expect("the handover sees the loss")
    .unwrap();
    fired_elsewhere(sql.as_ref(), &rule, 1, RuleState::Armed).await;
    fired_elsewhere(sql.as_ref(), &rule, 2, RuleState::Armed).await;
    // Regained, and then the first load comes back with what it read before.
    stepped.assigner.ask(shard);
    tokio::time::sleep(Duration::from_millis(50)).await;
    store.release.notify_one();

    stepped.step().await;
    assert!(
        stepped.assigner.until_evaluated(shard, PATIENCE).await,
        "the shard is evaluated once its newer load is in"
    );
    assert!(stepped.nothing_sent(), "one take-over, from the newer load");
    stepped.engine.on_quote(&quote(&btc(), "150")).await;
    let events = outbox(sql.as_ref()).await;
    assert!(
        events
            .iter()
            .any(|event| event.event_id == signal_domain::firing_id(rule.id, 3)),
        "the next crossing is the rule's third firing: the states the other instance stored \
         were taken, not the ones read before it fired ({events:?})"
    );
}

#[tokio::test]
async fn a_taken_over_instrument_fires_on_the_quote_its_previous_owner_last_saw() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir).await;
    let every = Repeat::Every {
        cooldown: chrono::Duration::minutes(5),
        rearm_band: 0.into(),
    };
    let rule = create(store.as_ref(), &above(100, every), chrono::Utc::now()).await;
    let mut stepped = Stepped::start(store.clone(), ShardSet::default()).await;
    // The price crossed the level while the previous owner was going away.
    stepped.cache.put(&quote(&btc(), "150")).await.unwrap();

    let shard: ShardSet = [shard_of(&btc())].into_iter().collect();
    stepped.assigner.ask(shard);
    stepped.step().await;
    assert!(stepped.assigner.until_evaluated(shard, PATIENCE).await);

    let events = outbox(store.as_ref()).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_id, signal_domain::firing_id(rule.id, 1));
    assert_eq!(events[0].price.to_string(), "150");
    assert!(
        stepped
            .interest
            .subscribe()
            .borrow()
            .needs
            .contains_key(&btc()),
        "the feeds are asked for the taken-over instrument, whose rule is still active"
    );

    // Let go: quotes of the instrument are no longer evaluated.
    let again = create(
        store.as_ref(),
        &above(100, Repeat::Once),
        chrono::Utc::now(),
    )
    .await;
    stepped
        .handle
        .send(EngineCommand::Sync(again.id, Some(Box::new(again.clone()))))
        .await
        .unwrap();
    stepped.step().await;
    stepped.assigner.ask(ShardSet::default());
    stepped.step().await;
    assert!(
        stepped
            .assigner
            .until_evaluated(ShardSet::default(), PATIENCE)
            .await
    );
    stepped.engine.on_quote(&quote(&btc(), "160")).await;
    assert_eq!(
        outbox(store.as_ref()).await.len(),
        1,
        "not this instance's to fire"
    );
}

#[tokio::test]
async fn reconciliation_catches_up_with_announcements_that_were_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir).await;
    let long_ago = chrono::Utc::now() - chrono::Duration::minutes(10);
    let deleted_elsewhere = create(store.as_ref(), &above(120, Repeat::Once), long_ago).await;
    let in_step_at = chrono::Utc::now();
    let mut stepped = Stepped::start(store.clone(), ShardSet::ALL).await;

    // Another instance creates one rule and deletes another; neither announcement arrives.
    let created_elsewhere = create(
        store.as_ref(),
        &above(100, Repeat::Once),
        chrono::Utc::now(),
    )
    .await;
    store
        .delete_many(&alice(), &[deleted_elsewhere.id])
        .await
        .unwrap();
    stepped.engine.on_quote(&quote(&btc(), "110")).await;
    assert!(
        outbox(store.as_ref()).await.is_empty(),
        "the rule created elsewhere is not known here yet"
    );

    let watchlist: &dyn WatchlistStore = store.as_ref();
    reconcile_once(
        store.as_ref(),
        watchlist,
        &stepped.interest,
        &stepped.handle,
        in_step_at,
    )
    .await
    .unwrap();
    stepped.step().await;
    stepped.engine.on_quote(&quote(&btc(), "130")).await;
    let fired: Vec<RuleId> = outbox(store.as_ref())
        .await
        .iter()
        .map(|event| event.rule_id)
        .collect();
    assert_eq!(
        fired,
        vec![created_elsewhere.id],
        "the created rule is watched; the deleted one is gone"
    );
}

#[tokio::test]
async fn reconciling_with_an_unchanged_store_reads_no_rule() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir).await;
    let long_ago = chrono::Utc::now() - chrono::Duration::minutes(10);
    let first = create(store.as_ref(), &above(100, Repeat::Once), long_ago).await;
    let second = create(store.as_ref(), &above(120, Repeat::Once), long_ago).await;
    let in_step_at = chrono::Utc::now();
    let mut stepped = Stepped::start(store.clone(), ShardSet::ALL).await;

    let watchlist: &dyn WatchlistStore = store.as_ref();
    let mut since = in_step_at;
    for round in 0..2 {
        since = reconcile_once(
            store.as_ref(),
            watchlist,
            &stepped.interest,
            &stepped.handle,
            since,
        )
        .await
        .unwrap();
        let command = tokio::time::timeout(PATIENCE, stepped.commands.recv())
            .await
            .expect("a command in time")
            .expect("the queue is open");
        match &command {
            EngineCommand::Reconcile { changes, .. } => assert!(
                changes.is_empty(),
                "round {round}: nothing changed, so no rule was read ({changes:?})"
            ),
            _ => panic!("round {round}: expected the reconciliation"),
        }
        stepped.engine.apply(command).await;
    }
    stepped.engine.on_quote(&quote(&btc(), "130")).await;
    let mut fired: Vec<RuleId> = outbox(store.as_ref())
        .await
        .iter()
        .map(|event| event.rule_id)
        .collect();
    fired.sort();
    assert_eq!(
        fired,
        vec![first.id, second.id],
        "the rules held since the start are still watched"
    );
}
