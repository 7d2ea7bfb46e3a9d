//! The engine actor: one task owns the trigger engine and every rule's facts, so rule changes and
//! quotes are applied in a single order without locks. Its modules, in the order a reader needs
//! them:
//!
//! - [`command`]: what others may ask of the engine, and the handle they ask through;
//! - [`run`]: the run loop: commands before quotes, each owned quote evaluated, each firing
//!   stored with its events in one transaction;
//! - [`firing`]: pure: the transitions of one evaluation in, the state changes and events out;
//! - [`bars`]: the bars indicators and once-per-bar-close rules move on, and their warm-up;
//! - [`replica`]: keeping this instance's rules in step with the others' changes;
//! - [`handover`]: taking over and letting go of shards of instruments.

pub(crate) mod bars;
pub(crate) mod command;
mod firing;
pub(crate) mod handover;
pub(crate) mod replica;
mod run;
#[cfg(test)]
mod tests;

use backon::ExponentialBuilder;
use signal_domain::{
    AlertRule, Condition, ErrorChain, InstrumentId, Interval, Price, Quote, RuleId, RuleSpec,
    Timestamp, UserId,
};
use signal_ownership::ShardSet;
use signal_ports::{CandleStore, RuleStore, StoreError};
use signal_trigger_engine::{EngineRule, RuleEngine, Transition, TriggerEngine};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

pub(crate) use command::{EngineHandle, EngineStopped};

use crate::interest::InterestTracker;
use crate::market::QuoteBook;
use crate::metrics::AssetMetrics;

/// What an event needs of a rule that the trigger engine does not keep. One is held per rule, so
/// what few rules set is boxed apart: a plain rule holds one empty pointer for all of it.
#[derive(Debug, Clone)]
pub(crate) struct RuleFacts {
    pub user: UserId,
    pub instrument: InstrumentId,
    pub condition: Condition,
    /// Firings so far: the next one's ordinal names its event.
    pub trigger_count: u32,
    /// When the rule was last written by a user or a transition this engine knows of.
    pub updated_at: Timestamp,
    /// None when the rule sets none of them.
    pub extras: Option<Box<RuleExtras>>,
}

/// The parts of a rule its events carry that most rules leave unset.
#[derive(Debug, Clone, Default)]
pub(crate) struct RuleExtras {
    pub note: Option<String>,
    /// The notification channels its alerts go to (`None`: all).
    pub channels: Option<Vec<i64>>,
    /// Its second condition, which the event names beside the first.
    pub and: Option<signal_domain::Conjunct>,
    /// Its message template, which the event carries for the Alert Service to render.
    pub message: Option<String>,
}

impl RuleExtras {
    /// The extras of `spec`; None when it sets none.
    fn of(spec: &mut RuleSpec) -> Option<Box<Self>> {
        let extras = Self {
            note: spec.note.take(),
            channels: spec.channels.take(),
            and: spec.and,
            message: spec.message.take(),
        };
        let none = extras.note.is_none()
            && extras.channels.is_none()
            && extras.and.is_none()
            && extras.message.is_none();
        (!none).then(|| Box::new(extras))
    }
}

/// What the engine reads and where its results go.
pub(crate) struct EngineDeps {
    pub store: Arc<dyn RuleStore>,
    /// The minute candles indicators are warmed up with.
    pub candles: Arc<dyn CandleStore>,
    /// The latest quote of every instrument this instance hears: what a taken-over instrument
    /// is evaluated on, beside the one the previous owner shared.
    pub book: Arc<QuoteBook>,
    /// Woken when events were stored, so the relay publishes them at once.
    pub outbox_ready: Arc<Notify>,
    pub metrics: AssetMetrics,
    pub interest: Arc<InterestTracker>,
}

pub(crate) struct Engine {
    triggers: TriggerEngine,
    rules: HashMap<RuleId, RuleFacts>,
    references: HashMap<InstrumentId, Price>,
    bars: bars::BarClock,
    /// The shards whose instruments this engine evaluates.
    owned: ShardSet,
    /// Rules this engine let go (fired for good, expired, deleted), and when.
    ended: HashMap<RuleId, Timestamp>,
    /// Reused for every evaluation, so a quote allocates nothing when nothing fires.
    transitions: Vec<Transition>,
    /// What rules did at once when held (one already past its level fires), with the quote
    /// they were evaluated on, until stored.
    fired_on_upsert: Vec<(Transition, Quote)>,
    deps: EngineDeps,
}

impl Engine {
    /// An engine holding every active rule as stored, evaluating the shards of `owned`.
    pub(crate) async fn load(deps: EngineDeps, owned: ShardSet) -> Result<Self, StoreError> {
        let active = deps.store.active_rules().await?;
        let mut engine = Self {
            triggers: TriggerEngine::default(),
            rules: HashMap::new(),
            references: HashMap::new(),
            bars: bars::BarClock::default(),
            owned,
            ended: HashMap::new(),
            transitions: Vec::new(),
            fired_on_upsert: Vec::new(),
            deps,
        };
        // One warm-up per instrument and interval, as long as its longest indicator wants.
        let mut wanted: HashMap<(InstrumentId, Interval), usize> = HashMap::new();
        for rule in active {
            for (interval, bars) in rule.spec.conditions().filter_map(Condition::history_wanted) {
                let entry = wanted
                    .entry((rule.spec.instrument.clone(), interval))
                    .or_default();
                *entry = (*entry).max(bars);
            }
            engine.upsert(rule);
        }
        for ((instrument, interval), bars) in wanted {
            engine.warm_up(&instrument, interval, bars).await;
        }
        tracing::info!(rules = engine.triggers.len(), "trigger engine loaded");
        engine.deps.metrics.owned_shards.set(i64::from(owned.len()));
        Ok(engine)
    }

    /// Holds `rule` as given; an ended or paused rule is let go.
    fn upsert(&mut self, mut rule: AlertRule) {
        if !rule.state.is_active() || rule.paused_at.is_some() {
            self.forget(rule.id);
            return;
        }
        if rule.spec.conditions().any(|c| c.interval().is_some())
            || rule.spec.repeat.interval().is_some()
        {
            self.bars.follow(&rule.spec.instrument);
        }
        let facts = RuleFacts {
            user: rule.user,
            instrument: rule.spec.instrument.clone(),
            condition: rule.spec.condition,
            trigger_count: rule.trigger_count,
            updated_at: rule.updated_at,
            extras: RuleExtras::of(&mut rule.spec),
        };
        match self.rules.insert(rule.id, facts) {
            Some(previous) if previous.instrument == rule.spec.instrument => {}
            Some(previous) => {
                self.deps.interest.rule_ended(&previous.instrument);
                self.deps.interest.rule_active(&rule.spec.instrument);
            }
            None => self.deps.interest.rule_active(&rule.spec.instrument),
        }
        // Only the instance that evaluates the instrument evaluates the rule, on the latest
        // quote its users have seen: a quote the trigger engine took is in the book.
        let latest = self
            .owned
            .owns(&rule.spec.instrument)
            .then(|| self.deps.book.latest(&rule.spec.instrument))
            .flatten();
        let engine_rule = EngineRule {
            id: rule.id,
            instrument: rule.spec.instrument,
            condition: rule.spec.condition,
            and: rule.spec.and,
            repeat: rule.spec.repeat,
            expires_at: rule.spec.expires_at,
            snoozed_until: rule.snoozed_until,
            state: rule.state,
        };
        match latest {
            Some(quote) => {
                let mut transitions = std::mem::take(&mut self.transitions);
                self.triggers
                    .upsert(engine_rule, chrono::Utc::now(), &mut transitions);
                self.fired_on_upsert
                    .extend(transitions.drain(..).map(|t| (t, quote.clone())));
                self.transitions = transitions;
            }
            None => self.triggers.hold(engine_rule),
        }
        self.count_rules();
    }

    /// Offers the instrument's new indicators of `interval` the last `bars` finished bars from
    /// the stored candles. Without them an indicator starts from the bars that close from now on.
    async fn warm_up(&mut self, instrument: &InstrumentId, interval: Interval, bars: usize) {
        let now = chrono::Utc::now();
        match bars::history(&*self.deps.candles, instrument, interval, bars, now).await {
            Ok(history) => {
                let key = self.triggers.key(instrument);
                self.triggers.warm_up(key, interval, &history);
            }
            Err(error) => tracing::warn!(
                error = %ErrorChain(&error), %instrument, %interval,
                "no stored bars to warm indicators up with"
            ),
        }
    }

    fn forget(&mut self, rule: RuleId) {
        self.triggers.remove(rule);
        if let Some(facts) = self.rules.remove(&rule) {
            self.ended.insert(rule, chrono::Utc::now());
            self.deps.interest.rule_ended(&facts.instrument);
        }
    }

    fn count_rules(&self) {
        self.deps
            .metrics
            .active_rules
            .set(self.triggers.len() as i64);
    }
}

/// Retries a store call for as long as it takes: what it carries (fired rules, the rules of
/// taken-over instruments) cannot be given up.
pub(crate) fn until_the_store_answers() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_max_delay(Duration::from_secs(10))
        .without_max_times()
}
