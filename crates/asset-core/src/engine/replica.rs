//! Keeps every Asset Service instance's engine holding every rule: an instance that changes a
//! rule announces it, and the others reload it from the store; the instance that owns the rule's
//! instrument evaluates it. An announcement can be lost (pub/sub keeps nothing for a subscriber
//! that is reconnecting), so each instance also reconciles its engine with the store now and
//! then, and refreshes the watched instruments, which any instance may have changed.

use futures::stream::BoxStream;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use signal_domain::{AlertRule, ErrorChain, RuleId, Timestamp, UserId};
use signal_ports::{Broadcast, RuleStore, WatchlistStore};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::command::{EngineCommand, EngineHandle, EngineStopped};
use super::Engine;
use crate::interest::InterestTracker;

/// How often the engine is reconciled with the store: the longest a lost announcement goes
/// unnoticed.
const RECONCILE_EVERY: Duration = Duration::from_secs(30);
/// How long a rule this engine let go is remembered, so that a stored copy read before it was
/// let go cannot bring it back.
const TOMBSTONE: chrono::TimeDelta = chrono::TimeDelta::minutes(5);
/// A rule is dropped for missing from the store only if unchanged for this long before the
/// store was read: a rule created just then may not have been committed yet.
const RECONCILE_MARGIN: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

impl Engine {
    /// Another instance's change of `id`: applied only when newer than what this engine holds.
    pub(super) fn sync(&mut self, id: RuleId, rule: Option<AlertRule>) {
        match rule {
            Some(rule) => {
                let newer = self
                    .rules
                    .get(&id)
                    .is_none_or(|known| rule.updated_at > known.updated_at);
                if newer {
                    self.upsert(rule);
                }
            }
            None => self.forget(id),
        }
    }

    /// Takes what the store lists that this engine lacks or holds an older copy of, and drops
    /// what the store no longer lists. Only the rules of owned instruments matter: the others
    /// are reloaded on taking them over.
    pub(super) fn reconcile(&mut self, active: Vec<AlertRule>, loaded_at: Timestamp) {
        self.ended.retain(|_, at| *at > loaded_at - TOMBSTONE);
        let listed: HashSet<RuleId> = active.iter().map(|rule| rule.id).collect();
        for rule in active {
            if !self.owned.owns(&rule.spec.instrument) {
                continue;
            }
            let stale = match self.rules.get(&rule.id) {
                Some(known) => known.updated_at >= rule.updated_at,
                None => self.ended.get(&rule.id).is_some_and(|at| *at >= loaded_at),
            };
            if !stale {
                self.upsert(rule);
            }
        }
        let gone: Vec<RuleId> = self
            .rules
            .iter()
            .filter(|(id, facts)| {
                self.owned.owns(&facts.instrument)
                    && !listed.contains(id)
                    && facts.updated_at < loaded_at - RECONCILE_MARGIN
            })
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.forget(id);
        }
    }
}

/// The message instances exchange about a rule change.
#[derive(Serialize, Deserialize)]
struct RuleChanged {
    rule: RuleId,
    user: UserId,
    /// The announcing instance, which already applied the change.
    origin: Uuid,
}

#[derive(Clone)]
pub(crate) struct RuleAnnouncer {
    channel: Arc<dyn Broadcast>,
    origin: Uuid,
}

impl RuleAnnouncer {
    pub(crate) fn new(channel: Arc<dyn Broadcast>) -> Self {
        Self {
            channel,
            origin: Uuid::new_v4(),
        }
    }

    /// Tells the other instances `rule` changed. If this fails they catch up at their next
    /// reconciliation, so it is logged loudly.
    pub(crate) async fn announce(&self, user: &UserId, rule: RuleId) {
        let message = RuleChanged {
            rule,
            user: user.clone(),
            origin: self.origin,
        };
        let bytes = match serde_json::to_vec(&message) {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::error!(error = %ErrorChain(&error), %rule, "could not encode a rule announcement");
                return;
            }
        };
        if let Err(error) = self.channel.publish(&bytes).await {
            tracing::error!(error = %ErrorChain(&error), %rule, "could not announce a rule change to other instances");
        }
    }

    /// Applies the other instances' announcements to this instance's engine.
    pub(crate) async fn follow(
        self,
        mut announcements: BoxStream<'static, Vec<u8>>,
        rules: Arc<dyn RuleStore>,
        engine: EngineHandle,
        shutdown: CancellationToken,
    ) {
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => return,
                message = announcements.next() => message,
            };
            let Some(message) = message else { return };
            let Ok(changed) = serde_json::from_slice::<RuleChanged>(&message) else {
                tracing::warn!("ignoring an unreadable rule announcement");
                continue;
            };
            if changed.origin == self.origin {
                continue;
            }
            match rules.get(&changed.user, changed.rule).await {
                Ok(current) => {
                    if engine
                        .send(EngineCommand::Sync(changed.rule, current))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(error) => {
                    tracing::error!(error = %ErrorChain(&error), rule = %changed.rule, "reloading an announced rule failed; the next reconciliation catches up")
                }
            }
        }
    }
}

/// Every [`RECONCILE_EVERY`], a [`reconcile_once`].
pub(crate) async fn reconcile_periodically(
    rules: Arc<dyn RuleStore>,
    watchlist: Arc<dyn WatchlistStore>,
    interest: Arc<InterestTracker>,
    engine: EngineHandle,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(RECONCILE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is now, and start-up has just loaded everything.
    every.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        if reconcile_once(rules.as_ref(), watchlist.as_ref(), &interest, &engine)
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Hands the engine the active rules as stored (it keeps what it knows to be newer), and the
/// interest the watched instruments. A store that cannot answer now is asked again next time.
pub(crate) async fn reconcile_once(
    rules: &dyn RuleStore,
    watchlist: &dyn WatchlistStore,
    interest: &InterestTracker,
    engine: &EngineHandle,
) -> Result<(), EngineStopped> {
    match watchlist.watched_instruments().await {
        Ok(watched) => interest.set_watched(watched),
        Err(error) => {
            tracing::warn!(error = %ErrorChain(&error), "refreshing the watched instruments failed")
        }
    }
    let loaded_at = chrono::Utc::now();
    match rules.active_rules().await {
        Ok(active) => {
            engine
                .send(EngineCommand::Reconcile { active, loaded_at })
                .await
        }
        Err(error) => {
            tracing::warn!(error = %ErrorChain(&error), "reconciling the engine with the store failed");
            Ok(())
        }
    }
}
