//! How ownership and the side that evaluates rules agree on shards. Ownership says which shards
//! this instance should evaluate; the evaluating side switches (it first finishes storing what it
//! fired, and loads the rules of the shards it gains) and says which it evaluates now. Ownership
//! gives a shard's lease up only once the evaluating side has let the shard go, so the next owner
//! reloads rule states that include every firing of this instance.

use std::time::Duration;
use tokio::sync::watch;

use crate::shard::ShardSet;

/// The two connected ends: [`Assigner`] for ownership, [`Assigned`] for the evaluating side.
pub fn handshake() -> (Assigner, Assigned) {
    let (target, target_seen) = watch::channel(ShardSet::default());
    let (evaluated, evaluated_seen) = watch::channel(ShardSet::default());
    (
        Assigner {
            target,
            evaluated: evaluated_seen,
        },
        Assigned {
            target: target_seen,
            evaluated,
        },
    )
}

/// Ownership's end.
pub struct Assigner {
    target: watch::Sender<ShardSet>,
    evaluated: watch::Receiver<ShardSet>,
}

impl Assigner {
    /// What the evaluating side was last asked to evaluate.
    pub fn target(&self) -> ShardSet {
        *self.target.borrow()
    }

    /// Asks the evaluating side to evaluate `shards`, and waits at most `patience` until it
    /// evaluates exactly them. False when it did not in time (or has stopped).
    pub async fn assign(&mut self, shards: ShardSet, patience: Duration) -> bool {
        self.ask(shards);
        self.until_evaluated(shards, patience).await
    }

    /// Asks the evaluating side to evaluate `shards`, without waiting.
    pub fn ask(&self, shards: ShardSet) {
        self.target.send_replace(shards);
    }

    /// Waits at most `patience` until the evaluating side evaluates exactly `shards`.
    pub async fn until_evaluated(&mut self, shards: ShardSet, patience: Duration) -> bool {
        let switched =
            tokio::time::timeout(patience, self.evaluated.wait_for(|now| *now == shards));
        matches!(switched.await, Ok(Ok(_)))
    }
}

/// The evaluating side's end.
pub struct Assigned {
    target: watch::Receiver<ShardSet>,
    evaluated: watch::Sender<ShardSet>,
}

impl Assigned {
    /// The shards to evaluate now.
    pub fn target(&mut self) -> ShardSet {
        *self.target.borrow_and_update()
    }

    /// Waits until the target changes and returns it; None once ownership has stopped.
    pub async fn changed(&mut self) -> Option<ShardSet> {
        self.target.changed().await.ok()?;
        Some(self.target())
    }

    /// Says which shards the evaluating side evaluates now.
    pub fn evaluating(&self, shards: ShardSet) {
        self.evaluated.send_replace(shards);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_assignment_completes_when_the_evaluating_side_has_switched() {
        let (mut assigner, mut assigned) = handshake();
        let shards: ShardSet = [1, 2].into_iter().collect();
        let evaluating = tokio::spawn(async move {
            let target = assigned.changed().await.unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            assigned.evaluating(target);
            assigned
        });
        assert!(assigner.assign(shards, Duration::from_secs(5)).await);
        let assigned = evaluating.await.unwrap();

        // A side that does not switch in time is not waited for longer.
        assert!(
            !assigner
                .assign(ShardSet::default(), Duration::from_secs(5))
                .await
        );
        drop(assigned);
    }
}
