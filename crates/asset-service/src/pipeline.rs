//! The path of a tick through the Asset Service: quote book, trigger engine, and one transaction
//! that stores the rules' new states together with the events they raised (the outbox).
//!
//! One task owns the engine, so rule changes from the API and ticks from the feeds are applied in
//! a single order without locks. Commands are served before ticks: a rule the API has confirmed is
//! in the engine before any later tick.

use backon::{ExponentialBuilder, Retryable};
use rust_decimal::Decimal;
use signal_domain::ErrorChain;
use signal_domain::{
    AlertRule, Condition, InstrumentId, MarketCalendar, Price, QuoteSource, RuleId, Tick,
    Timestamp, TriggeredAlert, UserId, TRIGGERED_ALERT_SCHEMA_VERSION,
};
use signal_ports::{QuoteCache, RuleChange, RuleStore, StoreError};
use signal_trigger_engine::{EngineRule, RuleEngine, Transition, TransitionKind, TriggerEngine};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::candles::CandleSink;
use crate::conflated::ConflatedQuotes;
use crate::interest::InterestTracker;
use crate::metrics::AssetMetrics;
use crate::ownership::ShardSet;
use crate::quote_book::{latest_known, QuoteBook};

/// A change to the engine's rule set, confirmed once applied.
pub enum EngineCommand {
    Upsert(AlertRule, oneshot::Sender<()>),
    Remove(Vec<RuleId>, oneshot::Sender<()>),
    /// Another instance changed this rule; `None` when it was deleted. Applied only when newer
    /// than what this engine holds: a copy read while this engine was firing the rule must not
    /// re-arm it.
    Sync(RuleId, Option<AlertRule>),
    /// Every active rule as stored, read from `loaded_at` on. Catches changes whose announcement
    /// was lost: a rule this engine lacks or holds an older copy of is taken, one it holds that
    /// the store no longer lists is dropped; what this engine changed since is kept.
    Reconcile {
        active: Vec<AlertRule>,
        loaded_at: Timestamp,
    },
    /// Every active rule as stored, loaded for taking over the shards of `load`.
    TakeOver {
        load: u64,
        active: Vec<AlertRule>,
    },
}

/// How long a rule this engine let go is remembered, so that a stored copy read before it was
/// let go cannot bring it back.
const TOMBSTONE: chrono::TimeDelta = chrono::TimeDelta::minutes(5);
/// A rule is dropped for missing from the store only if unchanged for this long before the
/// store was read: a rule created just then may not have been committed yet.
const RECONCILE_MARGIN: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// What an event needs that the engine does not keep.
struct RuleOwner {
    user: UserId,
    instrument: InstrumentId,
    condition: Condition,
    note: Option<String>,
    /// Firings so far: the next one's ordinal names its event.
    trigger_count: u32,
    /// When the rule was last written by a user or a transition this engine knows of.
    updated_at: Timestamp,
}

/// What the pipeline hands each tick's results to.
pub struct PipelineOutputs {
    pub store: Arc<dyn RuleStore>,
    pub book: Arc<QuoteBook>,
    /// The shared cache's latest quotes, written behind the tick path.
    pub quote_cache_outlet: Arc<ConflatedQuotes>,
    /// Market-data events, published behind the tick path, when anyone outside hears them.
    pub market_data_outlet: Option<Arc<ConflatedQuotes>>,
    pub outbox_ready: Arc<Notify>,
    pub metrics: AssetMetrics,
    pub interest: Arc<InterestTracker>,
    pub candles: CandleSink,
    pub calendar: MarketCalendar,
    /// The shards of instruments whose rules this instance should evaluate.
    pub ownership: watch::Receiver<ShardSet>,
    /// The shards it does evaluate, once it has switched (the ownership task waits for it before
    /// releasing a shard).
    pub applied: watch::Sender<ShardSet>,
    /// The latest quotes every instance shares, read when this instance takes instruments over.
    pub quote_cache: Arc<dyn QuoteCache>,
    /// The engine's own command queue, for rules loaded off the engine task. Weak, so the queue
    /// closes when the service drops its senders.
    pub commands: mpsc::WeakSender<EngineCommand>,
}

pub struct Pipeline {
    engine: TriggerEngine,
    owners: HashMap<RuleId, RuleOwner>,
    references: HashMap<InstrumentId, Price>,
    out: PipelineOutputs,
    transitions: Vec<Transition>,
    /// The shards this instance evaluates.
    owned: ShardSet,
    /// Shards gained whose rules are loading, by load; evaluated once their rules arrive.
    loads: HashMap<u64, ShardSet>,
    next_load: u64,
    /// Rules this engine let go (fired for good, expired, deleted), and when.
    ended: HashMap<RuleId, Timestamp>,
}

impl Pipeline {
    pub async fn load(out: PipelineOutputs) -> Result<Self, StoreError> {
        let mut pipeline = Self {
            engine: TriggerEngine::default(),
            owners: HashMap::new(),
            references: HashMap::new(),
            owned: ShardSet::default(),
            loads: HashMap::new(),
            next_load: 0,
            ended: HashMap::new(),
            out,
            transitions: Vec::new(),
        };
        // Read before the rules: a shard gained while they load is a change, and reloads them.
        let owned = *pipeline.out.ownership.borrow_and_update();
        for rule in pipeline.out.store.active_rules().await? {
            pipeline.upsert(rule);
        }
        tracing::info!(rules = pipeline.engine.len(), "trigger engine loaded");
        pipeline.owned = owned;
        pipeline.publish_ownership();
        Ok(pipeline)
    }

    pub async fn run(
        mut self,
        mut ticks: mpsc::Receiver<Tick>,
        mut commands: mpsc::Receiver<EngineCommand>,
        shutdown: CancellationToken,
    ) {
        let mut expiry = tokio::time::interval(Duration::from_secs(1));
        expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(command) = commands.recv() => self.apply(command).await,
                Ok(()) = self.out.ownership.changed() => self.on_ownership_change(),
                Some(tick) = ticks.recv() => self.on_tick(tick).await,
                _ = expiry.tick() => self.expire(chrono::Utc::now()).await,
                else => break,
            }
        }
    }

    async fn apply(&mut self, command: EngineCommand) {
        match command {
            EngineCommand::Upsert(rule, done) => {
                self.upsert(rule);
                let _ = done.send(());
            }
            EngineCommand::Remove(ids, done) => {
                for id in ids {
                    self.forget(id);
                }
                let _ = done.send(());
            }
            EngineCommand::Sync(id, Some(rule)) => {
                let newer = self
                    .owners
                    .get(&id)
                    .is_none_or(|known| rule.updated_at > known.updated_at);
                if newer {
                    self.upsert(rule);
                }
            }
            EngineCommand::Sync(id, None) => self.forget(id),
            EngineCommand::Reconcile { active, loaded_at } => self.reconcile(active, loaded_at),
            EngineCommand::TakeOver { load, active } => self.take_over(load, active).await,
        }
        self.out.metrics.active_rules.set(self.engine.len() as i64);
    }

    fn upsert(&mut self, rule: AlertRule) {
        if !rule.state.is_active() {
            self.forget(rule.id);
            return;
        }
        self.out
            .interest
            .rule_active(rule.id, &rule.spec.instrument);
        self.owners.insert(
            rule.id,
            RuleOwner {
                user: rule.user,
                instrument: rule.spec.instrument.clone(),
                condition: rule.spec.condition,
                note: rule.spec.note,
                trigger_count: rule.trigger_count,
                updated_at: rule.updated_at,
            },
        );
        self.engine.upsert(EngineRule {
            id: rule.id,
            instrument: rule.spec.instrument,
            condition: rule.spec.condition,
            repeat: rule.spec.repeat,
            expires_at: rule.spec.expires_at,
            state: rule.state,
        });
        self.out.metrics.active_rules.set(self.engine.len() as i64);
    }

    fn forget(&mut self, rule: RuleId) {
        self.engine.remove(rule);
        if self.owners.remove(&rule).is_some() {
            self.ended.insert(rule, chrono::Utc::now());
        }
        self.out.interest.rule_ended(rule);
    }

    /// Only the rules of owned instruments matter: the others are reloaded on taking them over.
    fn reconcile(&mut self, active: Vec<AlertRule>, loaded_at: Timestamp) {
        self.ended.retain(|_, at| *at > loaded_at - TOMBSTONE);
        let listed: HashSet<RuleId> = active.iter().map(|rule| rule.id).collect();
        for rule in active {
            if !self.owned.owns(&rule.spec.instrument) {
                continue;
            }
            let stale = match self.owners.get(&rule.id) {
                Some(known) => known.updated_at >= rule.updated_at,
                None => self.ended.get(&rule.id).is_some_and(|at| *at >= loaded_at),
            };
            if !stale {
                self.upsert(rule);
            }
        }
        let gone: Vec<RuleId> = self
            .owners
            .iter()
            .filter(|(id, owner)| {
                self.owned.owns(&owner.instrument)
                    && !listed.contains(id)
                    && owner.updated_at < loaded_at - RECONCILE_MARGIN
            })
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.forget(id);
        }
    }

    async fn on_tick(&mut self, tick: Tick) {
        let now = chrono::Utc::now();
        let open = self
            .out
            .calendar
            .session(tick.instrument.market(), now)
            .is_open();
        let quote =
            signal_domain::Quote::after(&tick, self.out.book.latest(&tick.instrument).as_ref())
                .with_session(open);
        // Market data and candles have one producer per instrument, its owner; an instance
        // streaming another's instrument for its own viewers only shares the latest quote.
        let owned = self.owned.owns(&tick.instrument);
        if owned {
            if let Some(outlet) = &self.out.market_data_outlet {
                outlet.offer(quote.clone());
            }
            self.out.candles.offer(&tick);
        }
        self.out.quote_cache_outlet.offer(quote.clone());
        self.out.book.publish(quote);
        self.out
            .metrics
            .ticks_processed
            .with_label_values(&[source_label(tick.source)])
            .inc();
        if owned {
            self.evaluate(&tick, now).await;
        }
    }

    /// Runs `tick` through the engine and stores what it changed.
    async fn evaluate(&mut self, tick: &Tick, now: Timestamp) {
        // A new previous close recompiles the instrument's percent-change rules first.
        if let Some(close) = tick.prev_close {
            if self.references.get(&tick.instrument) != Some(&close) {
                self.references.insert(tick.instrument.clone(), close);
                self.engine.set_reference(&tick.instrument, close);
            }
        }
        let mut transitions = std::mem::take(&mut self.transitions);
        self.engine
            .on_tick(&tick.instrument, tick.price, now, &mut transitions);
        if !transitions.is_empty() {
            self.persist(&transitions, Some(tick), now).await;
        }
        transitions.clear();
        self.transitions = transitions;
    }

    /// Follows the shards this instance should evaluate. Lost ones stop at once. Gained ones
    /// start once their rules are loaded, off this task so ticks keep flowing meanwhile; their
    /// feeds are asked for them right away.
    fn on_ownership_change(&mut self) {
        let target = *self.out.ownership.borrow_and_update();
        // A shard lost while loading leaves its load: if it comes back, a newer load brings
        // states that include what another instance fired in between.
        for shards in self.loads.values_mut() {
            *shards = shards.intersection(target);
        }
        self.loads.retain(|_, shards| !shards.is_empty());
        self.owned = self.owned.intersection(target);
        let gained = target.without(self.owned).without(self.loading());
        if !gained.is_empty() {
            let load = self.next_load;
            self.next_load += 1;
            self.loads.insert(load, gained);
            self.load_rules_for(load);
        }
        self.publish_ownership();
    }

    /// Shards gained whose rules are still loading.
    fn loading(&self) -> ShardSet {
        self.loads
            .values()
            .fold(ShardSet::default(), |all, shards| all.union(*shards))
    }

    fn publish_ownership(&mut self) {
        self.out
            .interest
            .set_owned(self.owned.union(self.loading()));
        self.out
            .metrics
            .owned_shards
            .set(i64::from(self.owned.len()));
        self.out.applied.send_replace(self.owned);
    }

    /// Loads the active rules, as the previous owner stored them, and hands them back as
    /// [`EngineCommand::TakeOver`] for `load`.
    fn load_rules_for(&self, load: u64) {
        let Some(engine) = self.out.commands.upgrade() else {
            return;
        };
        let store = self.out.store.clone();
        tokio::spawn(async move {
            let read = || async { store.active_rules().await };
            let loaded = read
                .retry(
                    until_the_store_answers(),
                )
                .notify(|e: &StoreError, wait| {
                    tracing::error!(error = %ErrorChain(e), retry_in = ?wait, "loading the rules of taken-over instruments failed; retrying");
                })
                .await;
            match loaded {
                Ok(active) => {
                    // A closed engine means the service is stopping.
                    let _ = engine.send(EngineCommand::TakeOver { load, active }).await;
                }
                Err(error) => {
                    tracing::error!(error = %ErrorChain(&error), "cannot load the rules of taken-over instruments")
                }
            }
        });
    }

    /// Starts evaluating the instruments of the shards of `load` that are still this
    /// instance's to take: their rules' states as the previous owner stored them, and any
    /// crossing left unevaluated during the handover, on their latest quotes.
    async fn take_over(&mut self, load: u64, rules: Vec<AlertRule>) {
        let Some(gained) = self.loads.remove(&load) else {
            return;
        };
        let active: HashSet<RuleId> = rules
            .iter()
            .filter(|rule| gained.owns(&rule.spec.instrument))
            .map(|rule| rule.id)
            .collect();
        let ended: Vec<RuleId> = self
            .owners
            .iter()
            .filter(|(id, owner)| gained.owns(&owner.instrument) && !active.contains(id))
            .map(|(id, _)| *id)
            .collect();
        for id in ended {
            self.forget(id);
        }
        let mut instruments = Vec::new();
        for rule in rules {
            if active.contains(&rule.id) {
                instruments.push(rule.spec.instrument.clone());
                self.upsert(rule);
            }
        }
        instruments.sort();
        instruments.dedup();
        // The shared cache holds what the previous owner last saw; this instance's own book has
        // what its feeds brought since it asked for the instruments.
        let latest =
            latest_known(&self.out.book, self.out.quote_cache.as_ref(), &instruments).await;
        let now = chrono::Utc::now();
        for quote in latest.into_values() {
            let tick = Tick {
                instrument: quote.instrument,
                price: quote.price,
                trade_volume: None,
                cumulative_volume: None,
                prev_close: quote.prev_close,
                exchange_time: quote.exchange_time,
                received_at: quote.received_at,
                source: quote.source,
            };
            self.evaluate(&tick, now).await;
        }
        self.owned = self.owned.union(gained);
        self.publish_ownership();
    }

    async fn expire(&mut self, now: Timestamp) {
        let mut transitions = std::mem::take(&mut self.transitions);
        self.engine.expire_due(now, &mut transitions);
        // The instance that owns a rule's instrument stores its expiry; this instance's copy of
        // a rule it does not evaluate may be stale (fired there already), and is only let go.
        let (owned, elsewhere): (Vec<Transition>, Vec<Transition>) =
            transitions.drain(..).partition(|transition| {
                self.owners
                    .get(&transition.rule)
                    .is_some_and(|owner| self.owned.owns(&owner.instrument))
            });
        for transition in elsewhere {
            self.forget(transition.rule);
        }
        transitions.extend(owned);
        if !transitions.is_empty() {
            self.persist(&transitions, None, now).await;
        }
        transitions.clear();
        self.transitions = transitions;
    }

    /// Stores the transitions and their events in one transaction, retrying until it succeeds:
    /// the engine has already moved on, so giving up would lose an alert.
    async fn persist(&mut self, transitions: &[Transition], tick: Option<&Tick>, now: Timestamp) {
        let mut changes = Vec::with_capacity(transitions.len());
        let mut events = Vec::new();
        for transition in transitions {
            let Some(owner) = self.owners.get_mut(&transition.rule) else {
                continue;
            };
            let (state, fired_at) = match &transition.kind {
                TransitionKind::Fired { level, price, next } => {
                    owner.trigger_count += 1;
                    if let Some(tick) = tick {
                        events.push(event_for(transition.rule, owner, tick, *level, *price, now));
                    }
                    (*next, Some(now))
                }
                TransitionKind::Rearmed { next } => (*next, None),
                TransitionKind::Expired => (signal_domain::RuleState::Expired, None),
            };
            if fired_at.is_some() {
                owner.updated_at = now;
            }
            changes.push(RuleChange {
                rule: transition.rule,
                state,
                fired_at,
                trigger_count: owner.trigger_count,
            });
            let ended = match &transition.kind {
                TransitionKind::Fired { next, .. } => !next.is_active(),
                TransitionKind::Rearmed { .. } => false,
                TransitionKind::Expired => true,
            };
            if ended {
                self.forget(transition.rule);
            }
        }
        let store = self.out.store.clone();
        let write = || async { store.apply_changes(&changes, &events).await };
        let stored = write
            .retry(
                until_the_store_answers(),
            )
            .notify(|e: &StoreError, wait| {
                tracing::error!(error = %ErrorChain(e), retry_in = ?wait, "storing fired rules failed; retrying");
            })
            .await;
        if stored.is_ok() {
            self.out.metrics.alerts_fired.inc_by(events.len() as u64);
            self.out.metrics.active_rules.set(self.engine.len() as i64);
            if !events.is_empty() {
                self.out.outbox_ready.notify_one();
            }
        }
    }
}

/// Retries a store call for as long as it takes: what it carries (fired rules, the rules of
/// taken-over instruments) cannot be given up.
fn until_the_store_answers() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_max_delay(Duration::from_secs(10))
        .without_max_times()
}

fn source_label(source: QuoteSource) -> &'static str {
    match source {
        QuoteSource::Simulated => "simulated",
        QuoteSource::Upbit => "upbit",
        QuoteSource::Kis => "kis",
    }
}

fn event_for(
    rule: RuleId,
    owner: &RuleOwner,
    tick: &Tick,
    level: Decimal,
    price: Price,
    now: Timestamp,
) -> TriggeredAlert {
    // A compiled percent level can carry long fractions; eight places is finer than any venue.
    let level = Price::new(level.round_dp(8)).unwrap_or(price);
    let percent = match owner.condition {
        Condition::ChangeUp(p) | Condition::ChangeDown(p) => Some(p),
        Condition::Above(_) | Condition::Below(_) => None,
    };
    TriggeredAlert {
        event_id: signal_domain::firing_id(rule, owner.trigger_count),
        schema_version: TRIGGERED_ALERT_SCHEMA_VERSION,
        user_id: owner.user.clone(),
        rule_id: rule,
        instrument: tick.instrument.clone(),
        symbol: tick.instrument.symbol().to_string(),
        condition: owner.condition.kind(),
        level,
        percent,
        price,
        exchange_time: tick.exchange_time,
        triggered_at: now,
        note: owner.note.clone(),
        simulated: tick.source == QuoteSource::Simulated,
    }
}
