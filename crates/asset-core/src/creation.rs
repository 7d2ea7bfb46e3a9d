//! Rules created one by one (the single-rule routes), stored in groups: every create that arrives
//! while the store writes one group goes into the next, one transaction and one engine command
//! for them all. Concurrent creates then share a commit instead of queueing for the store's
//! write lock one at a time, and each still answers only once the engine holds its rule.

use chrono::Utc;
use signal_domain::{AlertRule, RuleSpec, UserId};
use signal_ports::{Capped, RuleStore, StoreError};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::engine::replica::RuleAnnouncer;
use crate::engine::EngineHandle;
use crate::error::CoreError;

/// Most creates stored in one transaction.
const GROUP: usize = 256;

/// One create waiting for its group.
pub(crate) struct Creation {
    user: UserId,
    spec: RuleSpec,
    answer: oneshot::Sender<Result<AlertRule, CoreError>>,
}

/// Where single creates queue for their group. Cheap to clone.
#[derive(Clone)]
pub(crate) struct RuleCreator(mpsc::Sender<Creation>);

impl RuleCreator {
    pub(crate) fn new(queue: mpsc::Sender<Creation>) -> Self {
        Self(queue)
    }

    /// Creates an armed rule unless the user is at the limit; returns once the engine holds it.
    pub(crate) async fn create(
        &self,
        user: &UserId,
        spec: &RuleSpec,
    ) -> Result<AlertRule, CoreError> {
        let (answer, answered) = oneshot::channel();
        let creation = Creation {
            user: user.clone(),
            spec: spec.clone(),
            answer,
        };
        self.0
            .send(creation)
            .await
            .map_err(|_| CoreError::EngineStopped)?;
        answered.await.map_err(|_| CoreError::EngineStopped)?
    }
}

/// What stores the groups.
pub(crate) struct GroupedCreation {
    pub rules: Arc<dyn RuleStore>,
    pub engine: EngineHandle,
    pub announcer: RuleAnnouncer,
    pub limit: usize,
}

impl GroupedCreation {
    /// Stores every create waiting, in groups of up to [`GROUP`], until `shutdown`.
    pub(crate) async fn run(
        self,
        mut queue: mpsc::Receiver<Creation>,
        shutdown: CancellationToken,
    ) {
        let mut group = Vec::with_capacity(GROUP);
        loop {
            let received = tokio::select! {
                _ = shutdown.cancelled() => return,
                received = queue.recv_many(&mut group, GROUP) => received,
            };
            if received == 0 {
                return;
            }
            self.create(std::mem::take(&mut group)).await;
        }
    }

    async fn create(&self, group: Vec<Creation>) {
        let requests: Vec<(UserId, RuleSpec)> = group
            .iter()
            .map(|creation| (creation.user.clone(), creation.spec.clone()))
            .collect();
        let outcomes: Vec<Result<Capped<AlertRule>, StoreError>> = match self
            .rules
            .create_each(&requests, self.limit, Utc::now())
            .await
        {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            // Each create gets its own answer: alone, the others may go through.
            Err(_) => {
                let mut outcomes = Vec::with_capacity(requests.len());
                for (user, spec) in &requests {
                    outcomes.push(self.rules.create(user, spec, self.limit, Utc::now()).await);
                }
                outcomes
            }
        };
        let stored: Vec<AlertRule> = outcomes
            .iter()
            .filter_map(|outcome| match outcome {
                Ok(Capped::Stored(rule)) => Some(rule.clone()),
                _ => None,
            })
            .collect();
        let held = self.engine.upsert(stored.clone()).await;
        let mut by_user: HashMap<&UserId, Vec<signal_domain::RuleId>> = HashMap::new();
        for rule in &stored {
            by_user.entry(&rule.user).or_default().push(rule.id);
        }
        for (user, rules) in by_user {
            self.announcer.announce(user, rules).await;
        }
        for (creation, outcome) in group.into_iter().zip(outcomes) {
            let answer = match (outcome, &held) {
                (Ok(Capped::Stored(_)), Err(_)) => Err(CoreError::EngineStopped),
                (Ok(Capped::Stored(rule)), Ok(())) => Ok(rule),
                (Ok(Capped::LimitReached), _) => Err(CoreError::RuleLimit { limit: self.limit }),
                (Err(error), _) => Err(CoreError::Store(error)),
            };
            // The caller may have gone; the rule is held either way.
            let _ = creation.answer.send(answer);
        }
    }
}
