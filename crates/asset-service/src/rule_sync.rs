//! Keeps every Asset Service instance's engine holding every rule: an instance that changes a
//! rule announces it, and the others reload it from the store; the instance that owns the rule's
//! instrument evaluates it. An announcement can be lost (pub/sub keeps nothing for a subscriber
//! that is reconnecting), so each instance also reconciles its engine with the store now and
//! then, and refreshes the watched instruments, which any instance may have changed.

use futures::stream::BoxStream;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use signal_domain::{ErrorChain, RuleId, UserId};
use signal_ports::{Broadcast, RuleStore, WatchlistStore};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::interest::InterestTracker;
use crate::pipeline::EngineCommand;

/// How often the engine is reconciled with the store: the longest a lost announcement goes
/// unnoticed.
const RECONCILE_EVERY: Duration = Duration::from_secs(30);

#[derive(Serialize, Deserialize)]
struct RuleChanged {
    rule: RuleId,
    user: UserId,
    /// The announcing instance, which already applied the change.
    origin: Uuid,
}

#[derive(Clone)]
pub struct RuleAnnouncer {
    channel: Arc<dyn Broadcast>,
    origin: Uuid,
}

impl RuleAnnouncer {
    pub fn new(channel: Arc<dyn Broadcast>) -> Self {
        Self {
            channel,
            origin: Uuid::new_v4(),
        }
    }

    /// Tells the other instances `rule` changed. If this fails they keep their copy until their
    /// next restart, so it is logged loudly.
    pub async fn announce(&self, user: &UserId, rule: RuleId) {
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
    pub async fn follow(
        &self,
        mut announcements: BoxStream<'static, Vec<u8>>,
        rules: Arc<dyn RuleStore>,
        engine: mpsc::Sender<EngineCommand>,
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
                Err(e) => {
                    tracing::error!(error = %ErrorChain(&e), rule = %changed.rule, "reloading an announced rule failed")
                }
            }
        }
    }
}

/// Every [`RECONCILE_EVERY`]: hands the engine the active rules as stored (it keeps what it
/// knows to be newer), and the interest the watched instruments.
pub async fn reconcile(
    rules: Arc<dyn RuleStore>,
    watchlist: Arc<dyn WatchlistStore>,
    interest: Arc<InterestTracker>,
    engine: mpsc::Sender<EngineCommand>,
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
        match watchlist.watched_instruments().await {
            Ok(watched) => interest.set_watched(watched),
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "refreshing the watched instruments failed")
            }
        }
        let loaded_at = chrono::Utc::now();
        match rules.active_rules().await {
            Ok(active) => {
                if engine
                    .send(EngineCommand::Reconcile { active, loaded_at })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "reconciling the engine with the store failed")
            }
        }
    }
}
