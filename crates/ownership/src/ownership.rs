//! The ownership task: announces this instance, follows the others, and holds a lease on each
//! shard assigned to this instance, handing shards to and from the evaluating side through the
//! [`handshake`](crate::handshake).

use futures::StreamExt;
use signal_domain::ErrorChain;
use signal_ports::{Broadcast, SharedCache};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::handshake::{handshake, Assigned, Assigner};
use crate::rendezvous::assigned;
use crate::shard::ShardSet;

/// How often an instance announces itself and renews its leases.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// An instance unheard for this long is taken for gone, and its shards are reassigned.
const MEMBER_TIMEOUT: Duration = Duration::from_millis(3_500);
/// A lease outlives a few missed renewals, so a busy instance keeps its shards; a dead one's
/// shards are free this long after its last renewal.
pub const LEASE: Duration = Duration::from_secs(5);
/// How long a shard's release waits for the evaluating side to let it go (to finish storing
/// what it fired) before the lease is given up anyway.
const HANDOVER: Duration = Duration::from_secs(10);

pub struct Ownership {
    instance: String,
    cache: Arc<dyn SharedCache>,
    members: Arc<dyn Broadcast>,
    assigner: Assigner,
}

impl Ownership {
    /// Ownership over `cache` (where leases live) and `members` (where instances announce
    /// themselves), and the evaluating side's end of their handshake.
    pub fn new(cache: Arc<dyn SharedCache>, members: Arc<dyn Broadcast>) -> (Self, Assigned) {
        let (assigner, assigned) = handshake();
        let ownership = Self {
            instance: uuid::Uuid::new_v4().to_string(),
            cache,
            members,
            assigner,
        };
        (ownership, assigned)
    }

    /// Takes the shards that are free: all of them when this instance is alone, so a single
    /// instance evaluates everything from its first tick. Nothing evaluates yet, so there is
    /// nothing to hand over: the evaluating side starts from this target.
    pub async fn start(&mut self) {
        let members = [self.instance.as_str()];
        let owned = self.renew(&members, self.assigner.target()).await;
        self.assigner.ask(owned);
    }

    /// Announces this instance, follows the others and holds the shards assigned to it until
    /// shutdown, then gives them up so the others take them at once.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut heard: HashMap<String, Instant> = HashMap::new();
        let mut announcements = None;
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if announcements.is_none() {
                // Until it hears the others, this instance takes itself for alone: it keeps what
                // it holds and leases only shards nobody holds.
                announcements = match self.members.subscribe().await {
                    Ok(stream) => Some(stream),
                    Err(error) => {
                        tracing::warn!(error = %ErrorChain(&error), "cannot follow the other instances; retrying");
                        None
                    }
                };
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                member = async { announcements.as_mut()?.next().await }, if announcements.is_some() => {
                    match member.as_deref().map(std::str::from_utf8) {
                        // Only instance ids count: a stray message must not become a member that
                        // is assigned shards nobody will lease.
                        Some(Ok(id)) if uuid::Uuid::parse_str(id).is_ok() => {
                            heard.insert(id.to_string(), Instant::now());
                        }
                        Some(_) => {}
                        None => announcements = None,
                    }
                }
                _ = heartbeat.tick() => {
                    if let Err(error) = self.members.publish(self.instance.as_bytes()).await {
                        tracing::warn!(error = %ErrorChain(&error), "cannot announce this instance");
                    }
                    heard.retain(|_, last| last.elapsed() < MEMBER_TIMEOUT);
                    self.round(&heard).await;
                }
            }
        }
        self.release_all().await;
    }

    /// Gives up the shards assigned elsewhere (once the evaluating side has let them go), renews
    /// the leases of the shards assigned here and takes those that are free.
    async fn round(&mut self, heard: &HashMap<String, Instant>) {
        let me = self.instance.clone();
        let members: Vec<&str> = heard
            .keys()
            .map(String::as_str)
            .chain([me.as_str()])
            .collect();
        let held = self.assigner.target();
        let leaving = held.without(assigned(&me, &members));
        if !leaving.is_empty() {
            self.hand_over(held.without(leaving)).await;
            self.release(leaving).await;
        }
        let owned = self.renew(&members, held.without(leaving)).await;
        if owned != self.assigner.target() {
            tracing::info!(
                owned = owned.len(),
                instances = members.len() - 1,
                "shards of instruments this instance evaluates"
            );
            self.hand_over(owned).await;
        }
    }

    /// Gives up the leases on `shards`. One that cannot be released ends by itself soon.
    async fn release(&self, shards: ShardSet) {
        let releases = shards.shards().map(|shard| async move {
            if let Err(error) = self.cache.release(&lease_key(shard), &self.instance).await {
                tracing::warn!(error = %ErrorChain(&error), shard, "cannot release a shard; it frees itself when its lease ends");
            }
        });
        futures::future::join_all(releases).await;
    }

    /// Leases every shard assigned to this instance among `members`, all at once; returns what
    /// it holds. A shard `held` whose renewal fails stays held: the shared cache is most likely
    /// unreachable for every instance, and evaluating is better than leaving it to nobody.
    async fn renew(&self, members: &[&str], held: ShardSet) -> ShardSet {
        let leases = assigned(&self.instance, members)
            .shards()
            .map(|shard| async move {
                let outcome = self
                    .cache
                    .lease(&lease_key(shard), &self.instance, LEASE)
                    .await;
                (shard, outcome)
            });
        let mut owned = held;
        for (shard, outcome) in futures::future::join_all(leases).await {
            match outcome {
                Ok(leased) => owned = owned.with(shard, leased),
                Err(error) => {
                    tracing::warn!(error = %ErrorChain(&error), shard, "cannot renew a shard lease")
                }
            }
        }
        owned
    }

    /// Asks the evaluating side to evaluate `owned`, and waits until it does (it first finishes
    /// storing what it is firing).
    async fn hand_over(&mut self, owned: ShardSet) {
        if !self.assigner.assign(owned, HANDOVER).await {
            tracing::warn!(
                "the evaluating side did not switch shards in time; handing over anyway"
            );
        }
    }

    async fn release_all(&mut self) {
        let owned = self.assigner.target();
        self.hand_over(ShardSet::default()).await;
        self.release(owned).await;
    }
}

fn lease_key(shard: u8) -> String {
    format!("asset-shard:{shard}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::SHARDS;
    use signal_memory::{MemoryBroadcast, MemorySharedCache};

    /// An instance whose stand-in evaluating side switches to whatever it is told at once.
    async fn instance(
        cache: &Arc<dyn SharedCache>,
        members: &Arc<dyn Broadcast>,
    ) -> (Ownership, tokio::sync::watch::Receiver<ShardSet>) {
        let (mut ownership, mut assigned) = Ownership::new(cache.clone(), members.clone());
        ownership.start().await;
        let start = assigned.target();
        let (seen, evaluated) = tokio::sync::watch::channel(start);
        assigned.evaluating(start);
        tokio::spawn(async move {
            while let Some(target) = assigned.changed().await {
                assigned.evaluating(target);
                seen.send_replace(target);
            }
        });
        (ownership, evaluated)
    }

    async fn settle(
        a: &tokio::sync::watch::Receiver<ShardSet>,
        b: &tokio::sync::watch::Receiver<ShardSet>,
    ) {
        for _ in 0..60 {
            tokio::time::sleep(HEARTBEAT).await;
            let (x, y) = (*a.borrow(), *b.borrow());
            if x.len() + y.len() == u32::from(SHARDS) && x.without(y) == x && !y.is_empty() {
                return;
            }
        }
        panic!("never settled: {:?} {:?}", *a.borrow(), *b.borrow());
    }

    #[tokio::test(start_paused = true)]
    async fn two_instances_divide_the_shards_and_one_takes_all_when_the_other_goes() {
        let cache: Arc<dyn SharedCache> = Arc::new(MemorySharedCache::default());
        let members: Arc<dyn Broadcast> = Arc::new(MemoryBroadcast::default());
        let (first, first_owned) = instance(&cache, &members).await;
        assert_eq!(
            *first_owned.borrow(),
            ShardSet::ALL,
            "alone, it takes everything"
        );
        let first_stop = CancellationToken::new();
        tokio::spawn(first.run(first_stop.clone()));

        let (second, second_owned) = instance(&cache, &members).await;
        assert!(second_owned.borrow().is_empty(), "every shard is leased");
        let second_stop = CancellationToken::new();
        let second_task = tokio::spawn(second.run(second_stop.clone()));
        settle(&first_owned, &second_owned).await;

        // A graceful stop hands the shards over at once.
        second_stop.cancel();
        second_task.await.unwrap();
        assert!(second_owned.borrow().is_empty());
        for _ in 0..10 {
            if *first_owned.borrow() == ShardSet::ALL {
                break;
            }
            tokio::time::sleep(HEARTBEAT).await;
        }
        assert_eq!(*first_owned.borrow(), ShardSet::ALL);
        first_stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_crashed_instances_shards_are_taken_when_its_leases_end() {
        let cache: Arc<dyn SharedCache> = Arc::new(MemorySharedCache::default());
        let members: Arc<dyn Broadcast> = Arc::new(MemoryBroadcast::default());
        let (first, first_owned) = instance(&cache, &members).await;
        let first_task = tokio::spawn(first.run(CancellationToken::new()));
        let (second, second_owned) = instance(&cache, &members).await;
        let second_stop = CancellationToken::new();
        tokio::spawn(second.run(second_stop.clone()));
        settle(&first_owned, &second_owned).await;

        // No goodbye: the task is gone and its leases are left to run out.
        first_task.abort();
        let orphaned = *first_owned.borrow();
        for _ in 0..20 {
            tokio::time::sleep(HEARTBEAT).await;
            if *second_owned.borrow() == ShardSet::ALL {
                break;
            }
        }
        assert_eq!(*second_owned.borrow(), ShardSet::ALL);
        assert!(!orphaned.is_empty());
        second_stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_shard_is_released_only_once_the_evaluating_side_lets_it_go() {
        let cache: Arc<dyn SharedCache> = Arc::new(MemorySharedCache::default());
        let members: Arc<dyn Broadcast> = Arc::new(MemoryBroadcast::default());
        let (mut ownership, assigned) = Ownership::new(cache.clone(), members);
        ownership.start().await;
        assigned.evaluating(ShardSet::ALL);
        let stop = CancellationToken::new();
        let task = tokio::spawn(ownership.run(stop.clone()));
        tokio::time::sleep(HEARTBEAT).await;

        // Stopping while the evaluating side is still storing what it fired: the shards stay
        // leased.
        stop.cancel();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(!cache.lease(&lease_key(0), "next", LEASE).await.unwrap());
        assigned.evaluating(ShardSet::default());
        task.await.unwrap();
        assert!(cache.lease(&lease_key(0), "next", LEASE).await.unwrap());
    }
}
