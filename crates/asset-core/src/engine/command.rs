//! What others may ask of the engine. The use cases change rules and wait until the engine holds
//! them; replica sync hands it other instances' changes; handover hands it shards. Nothing sends
//! into the engine's queue from inside the engine.

use signal_domain::{AlertRule, Quote, RuleId, Timestamp};
use signal_ownership::ShardSet;
use signal_ports::RulesChanged;
use tokio::sync::{mpsc, oneshot};

pub(crate) enum EngineCommand {
    /// Rules a user created or changed through this instance; confirmed once held.
    Upsert(Vec<AlertRule>, oneshot::Sender<()>),
    /// Rules a user deleted through this instance; confirmed once let go.
    Remove(Vec<RuleId>, oneshot::Sender<()>),
    /// Another instance changed this rule; `None` when it was deleted. Applied only when newer
    /// than what this engine holds: a copy read while this engine was firing the rule must not
    /// re-arm it.
    Sync(RuleId, Option<Box<AlertRule>>),
    /// The rules written and deleted since the last reconciliation, read from `loaded_at` on.
    /// Catches changes whose announcement was lost: a written rule this engine lacks or holds an
    /// older copy of is taken, a deleted one is dropped; what this engine changed since is kept.
    Reconcile {
        changes: RulesChanged,
        loaded_at: Timestamp,
    },
    /// Start evaluating `shards`; confirmed once their instruments are evaluated.
    TakeOver(TakeOver, oneshot::Sender<()>),
    /// Stop evaluating `shards`; confirmed once nothing of them is evaluated, which is after
    /// everything fired on them is stored.
    Release(ShardSet, oneshot::Sender<()>),
}

/// Shards to take over, with what was loaded for them off the engine task.
pub(crate) struct TakeOver {
    pub shards: ShardSet,
    /// The active rules of the shards' instruments, as the previous owner stored them.
    pub rules: Vec<AlertRule>,
    /// What the previous owner last saw of those instruments, from the shared cache.
    pub shared_quotes: Vec<Quote>,
}

/// The engine has stopped: the service is shutting down.
#[derive(Debug, thiserror::Error)]
#[error("the trigger engine has stopped")]
pub(crate) struct EngineStopped;

/// The engine's queue. Cheap to clone.
#[derive(Clone)]
pub(crate) struct EngineHandle(mpsc::Sender<EngineCommand>);

impl EngineHandle {
    pub(crate) fn new(queue: mpsc::Sender<EngineCommand>) -> Self {
        Self(queue)
    }

    /// Returns once the engine holds `rules`.
    pub(crate) async fn upsert(&self, rules: Vec<AlertRule>) -> Result<(), EngineStopped> {
        if rules.is_empty() {
            return Ok(());
        }
        self.confirmed(|done| EngineCommand::Upsert(rules, done))
            .await
    }

    /// Returns once the engine has let the rules go.
    pub(crate) async fn remove(&self, ids: Vec<RuleId>) -> Result<(), EngineStopped> {
        if ids.is_empty() {
            return Ok(());
        }
        self.confirmed(|done| EngineCommand::Remove(ids, done))
            .await
    }

    pub(crate) async fn take_over(&self, take_over: TakeOver) -> Result<(), EngineStopped> {
        self.confirmed(|done| EngineCommand::TakeOver(take_over, done))
            .await
    }

    pub(crate) async fn release(&self, shards: ShardSet) -> Result<(), EngineStopped> {
        self.confirmed(|done| EngineCommand::Release(shards, done))
            .await
    }

    /// Queues a command that needs no confirmation.
    pub(crate) async fn send(&self, command: EngineCommand) -> Result<(), EngineStopped> {
        self.0.send(command).await.map_err(|_| EngineStopped)
    }

    async fn confirmed(
        &self,
        command: impl FnOnce(oneshot::Sender<()>) -> EngineCommand,
    ) -> Result<(), EngineStopped> {
        let (done, applied) = oneshot::channel();
        self.send(command(done)).await?;
        applied.await.map_err(|_| EngineStopped)
    }
}
