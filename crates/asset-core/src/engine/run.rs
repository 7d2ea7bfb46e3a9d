//! The engine's run loop. Commands are served before quotes: a rule the API has confirmed is in
//! the engine before any later quote. Each owned quote is evaluated, and what it fired is stored,
//! rule states and events together, in one transaction before the next quote.

use backon::Retryable;
use signal_domain::{AlertRule, Condition, ErrorChain, Interval, Quote, Timestamp};
use signal_ports::{micros_since, StoreError, LATENCY_TARGET};
use signal_trigger_engine::{RuleEngine, Trade, Transition};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::command::EngineCommand;
use super::firing::fire;
use super::{until_the_store_answers, Engine};

/// How often rules of quiet instruments are checked for expiry.
const EXPIRY_SWEEP: Duration = Duration::from_secs(1);

impl Engine {
    /// Serves commands and evaluates quotes until `shutdown`, or until both queues close.
    pub(crate) async fn run(
        mut self,
        mut quotes: mpsc::Receiver<Quote>,
        mut commands: mpsc::Receiver<EngineCommand>,
        shutdown: CancellationToken,
    ) {
        let mut expiry = tokio::time::interval(EXPIRY_SWEEP);
        expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(command) = commands.recv() => self.apply(command).await,
                Some(quote) = quotes.recv() => self.on_quote(&quote).await,
                _ = expiry.tick() => {
                    let now = chrono::Utc::now();
                    self.close_bars(now).await;
                    self.expire(now).await;
                }
                else => break,
            }
        }
    }

    pub(super) async fn apply(&mut self, command: EngineCommand) {
        match command {
            EngineCommand::Upsert(rules, done) => {
                for rule in rules {
                    self.upsert_warm(rule).await;
                }
                self.store_fired_on_upsert().await;
                // The caller may have gone; the rules are held either way.
                let _ = done.send(());
            }
            EngineCommand::Remove(ids, done) => {
                for id in ids {
                    self.forget(id);
                }
                let _ = done.send(());
            }
            EngineCommand::Sync(id, rule) => {
                self.sync(id, rule.map(|rule| *rule));
                self.store_fired_on_upsert().await;
            }
            EngineCommand::Reconcile { changes, loaded_at } => {
                self.reconcile(changes, loaded_at);
                self.store_fired_on_upsert().await;
            }
            EngineCommand::TakeOver(take_over, done) => {
                self.take_over(take_over).await;
                let _ = done.send(());
            }
            EngineCommand::Release(shards, done) => {
                self.release(shards);
                let _ = done.send(());
            }
        }
        self.count_rules();
    }

    /// Holds `rule` with its new indicators warmed up.
    async fn upsert_warm(&mut self, rule: AlertRule) {
        let instrument = rule.spec.instrument.clone();
        // One warm-up per interval, as long as the longer of the two conditions wants: an
        // indicator takes the first history offered to it.
        let mut history: Vec<(Interval, usize)> = Vec::new();
        for (interval, bars) in rule.spec.conditions().filter_map(Condition::history_wanted) {
            match history.iter_mut().find(|(known, _)| *known == interval) {
                Some((_, most)) => *most = (*most).max(bars),
                None => history.push((interval, bars)),
            }
        }
        self.upsert(rule);
        for (interval, bars) in history {
            self.warm_up(&instrument, interval, bars).await;
        }
    }

    /// Stores and announces what rules did when they were held, as a quote's transitions are.
    async fn store_fired_on_upsert(&mut self) {
        let now = chrono::Utc::now();
        for (transition, quote) in std::mem::take(&mut self.fired_on_upsert) {
            self.persist(&[transition], Some(&quote), now).await;
        }
    }

    /// Evaluates `quote` if its instrument is this engine's to evaluate.
    pub(super) async fn on_quote(&mut self, quote: &Quote) {
        if self.owned.owns(&quote.instrument) {
            self.evaluate(quote, chrono::Utc::now()).await;
        }
    }

    /// Runs `quote` through the trigger engine and stores what it changed.
    pub(super) async fn evaluate(&mut self, quote: &Quote, now: Timestamp) {
        let key = self.triggers.key(&quote.instrument);
        // A new previous close recompiles the instrument's percent-change rules first.
        if let Some(close) = quote.prev_close {
            if self.references.get(&quote.instrument) != Some(&close) {
                self.references.insert(quote.instrument.clone(), close);
                self.triggers.set_reference(key, close);
            }
        }
        let mut transitions = std::mem::take(&mut self.transitions);
        // The bars this trade ends close first: once-per-bar-close rules are evaluated on them.
        let mut closed = Vec::new();
        let volume = self.bars.on_trade(quote, now, &mut closed);
        for (interval, bar) in closed {
            self.triggers
                .on_bar_close(key, interval, &bar, &mut transitions);
        }
        let trade = Trade {
            price: quote.price,
            volume,
            at: now,
        };
        self.triggers.on_trade(key, trade, &mut transitions);
        if !transitions.is_empty() {
            self.persist(&transitions, Some(quote), now).await;
        }
        transitions.clear();
        self.transitions = transitions;
    }

    /// Closes the bars of quiet instruments whose time is up, evaluating what they close on.
    async fn close_bars(&mut self, now: Timestamp) {
        for (instrument, interval, bar) in self.bars.close_due(now) {
            if !self.owned.owns(&instrument) {
                continue;
            }
            let key = self.triggers.key(&instrument);
            let mut transitions = std::mem::take(&mut self.transitions);
            self.triggers
                .on_bar_close(key, interval, &bar, &mut transitions);
            if !transitions.is_empty() {
                let quote = self.deps.book.latest(&instrument);
                self.persist(&transitions, quote.as_ref(), now).await;
            }
            transitions.clear();
            self.transitions = transitions;
        }
    }

    async fn expire(&mut self, now: Timestamp) {
        let mut transitions = std::mem::take(&mut self.transitions);
        self.triggers.expire_due(now, &mut transitions);
        // The instance that owns a rule's instrument stores its expiry; this instance's copy of
        // a rule it does not evaluate may be stale (fired there already), and is only let go.
        let (owned, elsewhere): (Vec<Transition>, Vec<Transition>) =
            transitions.drain(..).partition(|transition| {
                self.rules
                    .get(&transition.rule)
                    .is_some_and(|facts| self.owned.owns(&facts.instrument))
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

    /// Stores the consequences of `transitions` in one transaction, retrying until it succeeds:
    /// the trigger engine has already moved on, so giving up would lose an alert.
    async fn persist(&mut self, transitions: &[Transition], quote: Option<&Quote>, now: Timestamp) {
        let firing = fire(transitions, &self.rules, quote, now);
        let store = self.deps.store.clone();
        let write = || async { store.apply_changes(&firing.changes, &firing.events).await };
        // The outbox write; `received_us` is how long ago the feed received the trade (its
        // decoding, the market stage and the engine's queue).
        let span = tracing::debug_span!(
            target: LATENCY_TARGET,
            "engine.persist",
            events = firing.events.len(),
            received_us = quote.map(|quote| micros_since(quote.received_at)),
        );
        // It never gives up: this returns once the firing is stored.
        let _ = write
            .retry(until_the_store_answers())
            .notify(|error: &StoreError, wait| {
                tracing::error!(error = %ErrorChain(error), retry_in = ?wait, "storing fired rules failed; retrying");
            })
            .instrument(span)
            .await;
        for change in &firing.changes {
            if let (Some(facts), Some(fired_at)) =
                (self.rules.get_mut(&change.rule), change.fired_at)
            {
                facts.trigger_count = change.trigger_count;
                facts.updated_at = fired_at;
            }
        }
        for rule in &firing.ended {
            self.forget(*rule);
        }
        self.deps
            .metrics
            .alerts_fired
            .inc_by(firing.events.len() as u64);
        self.count_rules();
        if !firing.events.is_empty() {
            self.deps.outbox_ready.notify_one();
        }
    }
}
