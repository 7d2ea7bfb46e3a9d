//! Taking shards of instruments over and letting them go. Ownership (its own crate) decides which
//! shards this instance should evaluate; the handover task follows its decisions. A shard lost is
//! released at once: the engine stops evaluating it after storing what it fired. A shard gained is
//! loaded off the engine task (its rules as the previous owner stored them, and the quotes that
//! owner last shared) and handed to the engine as one command; the engine then evaluates the
//! newest quote of each instrument, so a level that stayed crossed through the handover fires.
//!
//! A shard lost while its load runs is dropped from that load: if it comes back, a newer load
//! brings the states another instance stored in between.

use backon::Retryable;
use signal_domain::{AlertRule, ErrorChain, InstrumentId, Quote};
use signal_ownership::{Assigned, ShardSet};
use signal_ports::{QuoteCache, RuleStore, StoreError};
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::watch;

use super::command::{EngineHandle, EngineStopped, TakeOver};
use super::{until_the_store_answers, Engine};
use crate::interest::InterestTracker;
use crate::market::newest;

impl Engine {
    /// Starts evaluating the shards of `take_over`: their rules as loaded, and then every
    /// instrument's newest quote, this instance's own or the one the previous owner shared.
    pub(super) async fn take_over(&mut self, take_over: TakeOver) {
        let TakeOver {
            shards,
            rules,
            shared_quotes,
        } = take_over;
        let loaded: HashSet<_> = rules.iter().map(|rule| rule.id).collect();
        let ended: Vec<_> = self
            .rules
            .iter()
            .filter(|(id, facts)| shards.owns(&facts.instrument) && !loaded.contains(id))
            .map(|(id, _)| *id)
            .collect();
        for id in ended {
            self.forget(id);
        }
        let mut instruments: Vec<InstrumentId> = Vec::new();
        for rule in rules {
            instruments.push(rule.spec.instrument.clone());
            self.upsert(rule);
        }
        instruments.sort();
        instruments.dedup();
        let own = instruments
            .iter()
            .filter_map(|id| self.deps.book.latest(id))
            .collect();
        self.owned = self.owned.union(shards);
        self.deps
            .metrics
            .owned_shards
            .set(i64::from(self.owned.len()));
        let now = chrono::Utc::now();
        for quote in newest(own, shared_quotes).into_values() {
            self.evaluate(&quote, now).await;
        }
    }

    /// Stops evaluating `shards`.
    pub(super) fn release(&mut self, shards: ShardSet) {
        self.owned = self.owned.without(shards);
        self.deps
            .metrics
            .owned_shards
            .set(i64::from(self.owned.len()));
    }
}

/// The task between ownership and the engine.
pub(crate) struct Handover {
    pub assigned: Assigned,
    pub engine: EngineHandle,
    pub store: Arc<dyn RuleStore>,
    pub quote_cache: Arc<dyn QuoteCache>,
    pub interest: Arc<InterestTracker>,
    /// The shards whose instruments this instance follows: those the engine evaluates and those
    /// being loaded. The market stage forwards their quotes to the engine.
    pub following: watch::Sender<ShardSet>,
    /// The shards the engine evaluates.
    pub held: ShardSet,
}

impl Handover {
    /// Follows ownership until it stops, or until the engine does.
    pub(crate) async fn run(mut self) {
        self.follow(self.held);
        self.assigned.evaluating(self.held);
        while let Some(target) = self.assigned.changed().await {
            if self.switch(target).await.is_err() {
                // Nothing evaluates any more.
                self.assigned.evaluating(ShardSet::default());
                return;
            }
        }
    }

    /// Lets go of the shards that left `target`, and takes over those that joined it.
    async fn switch(&mut self, mut target: ShardSet) -> Result<(), EngineStopped> {
        loop {
            self.release(self.held.without(target)).await?;
            let gained = target.without(self.held);
            if gained.is_empty() {
                return Ok(());
            }
            self.follow(self.held.union(gained));
            let mut kept = gained;
            let (store, quote_cache) = (self.store.clone(), self.quote_cache.clone());
            let load = async move { load(store.as_ref(), quote_cache.as_ref(), gained).await };
            tokio::pin!(load);
            let (rules, shared_quotes) = loop {
                tokio::select! {
                    loaded = &mut load => break loaded,
                    changed = self.assigned.changed() => {
                        let Some(now) = changed else {
                            return Ok(());
                        };
                        target = now;
                        kept = kept.intersection(target);
                        self.release(self.held.without(target)).await?;
                        self.follow(self.held.union(kept));
                    }
                }
            };
            if !kept.is_empty() {
                let rules = rules
                    .into_iter()
                    .filter(|rule| kept.owns(&rule.spec.instrument))
                    .collect();
                let shared_quotes = shared_quotes
                    .into_iter()
                    .filter(|quote| kept.owns(&quote.instrument))
                    .collect();
                self.engine
                    .take_over(TakeOver {
                        shards: kept,
                        rules,
                        shared_quotes,
                    })
                    .await?;
                self.held = self.held.union(kept);
                self.assigned.evaluating(self.held);
            }
            self.follow(self.held);
        }
    }

    /// Stops the engine evaluating `shards`, and waits until it has.
    async fn release(&mut self, shards: ShardSet) -> Result<(), EngineStopped> {
        if shards.is_empty() {
            return Ok(());
        }
        self.engine.release(shards).await?;
        self.held = self.held.without(shards);
        self.assigned.evaluating(self.held);
        self.follow(self.held);
        Ok(())
    }

    /// Tells the feeds and the market stage which shards' instruments this instance follows.
    fn follow(&self, shards: ShardSet) {
        self.interest.set_owned(shards);
        self.following.send_if_modified(|following| {
            let changed = *following != shards;
            *following = shards;
            changed
        });
    }
}

/// The active rules of the instruments of `shards` as stored, retrying until the store answers,
/// and what the shared cache holds of those instruments' quotes.
async fn load(
    store: &dyn RuleStore,
    quote_cache: &dyn QuoteCache,
    shards: ShardSet,
) -> (Vec<AlertRule>, Vec<Quote>) {
    let read = || async { store.active_rules().await };
    let active = read
        .retry(until_the_store_answers())
        .notify(|error: &StoreError, wait| {
            tracing::error!(error = %ErrorChain(error), retry_in = ?wait, "loading the rules of taken-over instruments failed; retrying");
        })
        .await
        // It never gives up: this is the store's answer.
        .unwrap_or_default();
    let rules: Vec<AlertRule> = active
        .into_iter()
        .filter(|rule| shards.owns(&rule.spec.instrument))
        .collect();
    let mut instruments: Vec<InstrumentId> = rules
        .iter()
        .map(|rule| rule.spec.instrument.clone())
        .collect();
    instruments.sort();
    instruments.dedup();
    let shared = quote_cache
        .get_many(&instruments)
        .await
        .unwrap_or_else(|error| {
            tracing::warn!(error = %ErrorChain(&error), "cannot read the quotes the previous owner shared; going by this instance's own");
            Vec::new()
        });
    (rules, shared)
}
