//! Keeps every Asset Service instance's engine holding every rule: an instance that changes a
//! rule announces it, and the others reload it from the store; the instance that owns the rule's
//! instrument evaluates it. An announcement can be lost (pub/sub keeps nothing for a subscriber
//! that is reconnecting), so each instance also reconciles its engine with the store now and
//! then, reading only the rules written or deleted since it last did, and refreshes the watched
//! instruments, which any instance may have changed.

use futures::stream::BoxStream;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use signal_domain::{AlertRule, ErrorChain, RuleId, Timestamp, UserId};
use signal_ports::{Broadcast, RuleStore, RulesChanged, WatchlistStore};
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
/// How far before the last reconciliation the next one reads changes from: a write is stamped
/// with its instance's clock before it commits, and the instances' clocks differ a little.
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

    /// Takes the rules written since the last reconciliation that this engine lacks or holds an
    /// older copy of, and drops the ones deleted since. Only the rules of owned instruments
    /// matter: the others are reloaded on taking them over.
    pub(super) fn reconcile(&mut self, changes: RulesChanged, loaded_at: Timestamp) {
        self.ended.retain(|_, at| *at > loaded_at - TOMBSTONE);
        for rule in changes.written {
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
        for id in changes.deleted {
            self.forget(id);
        }
    }
}

/// The message instances exchange about changed rules.
#[derive(Serialize, Deserialize)]
struct RulesChangedMessage {
    rules: Vec<RuleId>,
    /// The user whose rules they are.
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

    /// Tells the other instances the user's `rules` changed, in one message. If this fails they
    /// catch up at their next reconciliation, so it is logged loudly.
    pub(crate) async fn announce(&self, user: &UserId, rules: Vec<RuleId>) {
        if rules.is_empty() {
            return;
        }
        let count = rules.len();
        let message = RulesChangedMessage {
            rules,
            user: user.clone(),
            origin: self.origin,
        };
        let bytes = match serde_json::to_vec(&message) {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::error!(error = %ErrorChain(&error), rules = count, "could not encode a rule announcement");
                return;
            }
        };
        if let Err(error) = self.channel.publish(&bytes).await {
            tracing::error!(error = %ErrorChain(&error), rules = count, "could not announce a rule change to other instances");
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
            let Ok(changed) = serde_json::from_slice::<RulesChangedMessage>(&message) else {
                tracing::warn!("ignoring an unreadable rule announcement");
                continue;
            };
            if changed.origin == self.origin {
                continue;
            }
            for rule in changed.rules {
                match rules.get(&changed.user, rule).await {
                    Ok(current) => {
                        if engine
                            .send(EngineCommand::Sync(rule, current.map(Box::new)))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(error) => {
                        tracing::error!(error = %ErrorChain(&error), %rule, "reloading an announced rule failed; the next reconciliation catches up")
                    }
                }
            }
        }
    }
}

/// Every [`RECONCILE_EVERY`], a [`reconcile_once`] from where the last one left off; the first
/// from `in_step_at`, when the engine was loaded.
pub(crate) async fn reconcile_periodically(
    rules: Arc<dyn RuleStore>,
    watchlist: Arc<dyn WatchlistStore>,
    interest: Arc<InterestTracker>,
    engine: EngineHandle,
    in_step_at: Timestamp,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(RECONCILE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is now, and start-up has just loaded everything.
    every.tick().await;
    let mut since = in_step_at;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        match reconcile_once(
            rules.as_ref(),
            watchlist.as_ref(),
            &interest,
            &engine,
            since,
        )
        .await
        {
            Ok(next) => since = next,
            Err(EngineStopped) => return,
        }
    }
}

/// Hands the engine the rules written and deleted since `since` (it keeps what it knows to be
/// newer), and the interest the watched instruments. Returns where the next reconciliation
/// starts: when this one read the store, or `since` again if the store could not answer.
pub(crate) async fn reconcile_once(
    rules: &dyn RuleStore,
    watchlist: &dyn WatchlistStore,
    interest: &InterestTracker,
    engine: &EngineHandle,
    since: Timestamp,
) -> Result<Timestamp, EngineStopped> {
    match watchlist.watched_instruments().await {
        Ok(watched) => interest.set_watched(watched),
        Err(error) => {
            tracing::warn!(error = %ErrorChain(&error), "refreshing the watched instruments failed")
        }
    }
    let loaded_at = chrono::Utc::now();
    match rules.changed_since(since - RECONCILE_MARGIN).await {
        Ok(changes) => {
            engine
                .send(EngineCommand::Reconcile { changes, loaded_at })
                .await?;
            Ok(loaded_at)
        }
        Err(error) => {
            tracing::warn!(error = %ErrorChain(&error), "reconciling the engine with the store failed");
            Ok(since)
        }
    }
}
