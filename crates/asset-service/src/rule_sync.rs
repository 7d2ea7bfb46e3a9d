//! Keeps every Asset Service instance's engine holding every rule: an instance that changes a
//! rule announces it, and the others reload it from the store. (Two instances then evaluate the
//! same rules; deterministic firing ids make their events one.)

use futures::stream::BoxStream;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use signal_domain::{RuleId, UserId};
use signal_ports::{Broadcast, RuleStore};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::pipeline::EngineCommand;

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
        let sent = match serde_json::to_vec(&message) {
            Ok(bytes) => self
                .channel
                .publish(&bytes)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = sent {
            tracing::error!(error = %e, %rule, "could not announce a rule change to other instances");
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
                    tracing::error!(error = %e, rule = %changed.rule, "reloading an announced rule failed")
                }
            }
        }
    }
}
