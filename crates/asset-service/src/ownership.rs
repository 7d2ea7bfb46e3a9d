//! Which instruments this Asset Service instance evaluates. Every instance holds every rule, but
//! each instrument's rules must be evaluated by one instance only: two instances whose tick
//! streams differ (one missed a re-arming trade) would number a repeating rule's firings
//! differently and raise two alerts for one crossing; and each would spend its exchange
//! connections (KIS allows 41 streams per key) on the same instruments.
//!
//! Instruments fall into [`SHARDS`] shards by a hash that every build computes alike. Instances
//! announce themselves on a channel; each computes the same assignment of shards to the
//! instances it has heard from (rendezvous hashing: a shard moves only when its owner comes or
//! goes) and holds a lease in the shared cache on each shard assigned to it. The lease, not the
//! assignment, decides: while instances disagree about who is alive, a shard stays with one.

use futures::StreamExt;
use signal_domain::InstrumentId;
use signal_ports::{Broadcast, SharedCache};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Enough to spread instruments evenly over a handful of instances; one bit each in a `u64`.
pub const SHARDS: u8 = 64;

/// 64-bit FNV-1a: fixed by its definition, so instances of different builds agree.
fn stable_hash(bytes: impl IntoIterator<Item = u8>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.into_iter().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

pub fn shard_of(instrument: &InstrumentId) -> u8 {
    let text = instrument.to_string();
    (stable_hash(text.bytes()) % u64::from(SHARDS)) as u8
}

/// A set of shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardSet(u64);

impl ShardSet {
    pub const ALL: ShardSet = ShardSet(u64::MAX);

    pub fn contains(self, shard: u8) -> bool {
        self.0 & (1 << shard) != 0
    }

    pub fn owns(self, instrument: &InstrumentId) -> bool {
        self.contains(shard_of(instrument))
    }

    pub fn len(self) -> u32 {
        self.0.count_ones()
    }

    /// The shards in `self` and not in `other`.
    pub fn without(self, other: ShardSet) -> ShardSet {
        ShardSet(self.0 & !other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn with(self, shard: u8, present: bool) -> ShardSet {
        if present {
            ShardSet(self.0 | (1 << shard))
        } else {
            ShardSet(self.0 & !(1 << shard))
        }
    }

    fn shards(self) -> impl Iterator<Item = u8> {
        (0..SHARDS).filter(move |shard| self.contains(*shard))
    }
}

/// The instance that should own `shard` among `members`: the highest score of (member, shard).
fn assignee<'a>(shard: u8, members: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    members.max_by_key(|member| avalanche(stable_hash(member.bytes().chain([b':', shard]))))
}

/// MurmurHash3's 64-bit finalizer. FNV-1a barely moves its high bits on the last byte, so
/// without this one member would outscore the others on every shard.
fn avalanche(mut hash: u64) -> u64 {
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// How often an instance announces itself and renews its leases.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// An instance unheard for this long is taken for gone, and its shards are reassigned.
const MEMBER_TIMEOUT: Duration = Duration::from_millis(3_500);
/// A lease outlives a few missed renewals, so a busy instance keeps its shards; a dead one's
/// shards are free this long after its last renewal.
const LEASE: Duration = Duration::from_secs(5);

pub struct Ownership {
    instance: String,
    cache: Arc<dyn SharedCache>,
    members: Arc<dyn Broadcast>,
    owned: watch::Sender<ShardSet>,
}

impl Ownership {
    pub fn new(cache: Arc<dyn SharedCache>, members: Arc<dyn Broadcast>) -> Self {
        Self {
            instance: uuid::Uuid::new_v4().to_string(),
            cache,
            members,
            owned: watch::Sender::new(ShardSet::default()),
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<ShardSet> {
        self.owned.subscribe()
    }

    /// Takes the shards that are free: all of them when this instance is alone, so a single
    /// instance evaluates everything from its first tick.
    pub async fn start(&self) {
        self.round(&HashMap::new()).await;
    }

    /// Announces this instance, follows the others and holds the shards assigned to it until
    /// shutdown, then gives them up so the others take them at once.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut heard: HashMap<String, Instant> = HashMap::new();
        let mut announcements = match self.members.subscribe().await {
            Ok(stream) => stream,
            Err(error) => {
                tracing::error!(%error, "cannot follow the other instances; keeping the shards held now");
                shutdown.cancelled().await;
                self.release_all().await;
                return;
            }
        };
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(member) = announcements.next() => {
                    heard.insert(String::from_utf8_lossy(&member).into_owned(), Instant::now());
                }
                _ = heartbeat.tick() => {
                    if let Err(error) = self.members.publish(self.instance.as_bytes()).await {
                        tracing::warn!(%error, "cannot announce this instance");
                    }
                    heard.retain(|_, last| last.elapsed() < MEMBER_TIMEOUT);
                    self.round(&heard).await;
                }
            }
        }
        self.release_all().await;
    }

    /// Renews the leases of the shards assigned to this instance, takes those that are free, and
    /// gives up the ones assigned elsewhere.
    async fn round(&self, heard: &HashMap<String, Instant>) {
        let members = || {
            heard
                .keys()
                .map(String::as_str)
                .chain([self.instance.as_str()])
        };
        let mut owned = *self.owned.borrow();
        for shard in 0..SHARDS {
            let assigned = assignee(shard, members()) == Some(self.instance.as_str());
            let key = lease_key(shard);
            if !assigned {
                if owned.contains(shard) {
                    if let Err(error) = self.cache.release(&key, &self.instance).await {
                        tracing::warn!(%error, shard, "cannot release a shard; it frees itself when its lease ends");
                    }
                    owned = owned.with(shard, false);
                }
                continue;
            }
            match self.cache.lease(&key, &self.instance, LEASE).await {
                Ok(held) => owned = owned.with(shard, held),
                // The shared cache is unreachable, so no other instance can take the shard
                // either: keep evaluating what this instance holds rather than nobody.
                Err(error) => tracing::warn!(%error, shard, "cannot renew a shard lease"),
            }
        }
        self.owned.send_if_modified(|current| {
            let changed = *current != owned;
            if changed {
                tracing::info!(
                    owned = owned.len(),
                    instances = heard.len().max(1),
                    "shards of instruments this instance evaluates"
                );
                *current = owned;
            }
            changed
        });
    }

    async fn release_all(&self) {
        let owned = self.owned.send_replace(ShardSet::default());
        for shard in owned.shards() {
            // Unreleased, a lease ends by itself soon.
            let _ = self.cache.release(&lease_key(shard), &self.instance).await;
        }
    }
}

fn lease_key(shard: u8) -> String {
    format!("asset-shard:{shard}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use signal_memory::{MemoryBroadcast, MemorySharedCache};

    #[test]
    fn shards_spread_instruments_and_do_not_depend_on_the_build() {
        let id: InstrumentId = "KRX:005930".parse().unwrap();
        assert_eq!(shard_of(&id), shard_of(&id.clone()));
        // FNV-1a is fixed by its definition.
        assert_eq!(stable_hash("a".bytes()), 0xaf63_dc4c_8601_ec8c);
        let shards: std::collections::HashSet<u8> = (0..1000)
            .map(|n| shard_of(&format!("KRX:{n:06}").parse().unwrap()))
            .collect();
        assert_eq!(shards.len(), usize::from(SHARDS));
    }

    #[test]
    fn instances_get_even_shares() {
        let members = [
            "6f1c2e0a-4b7d-4e55-9a3b-2d8f1e6c0b91",
            "c03e9b57-1a2f-4d8c-b6e4-7f5a9d21e3c8",
            "1e8d4a6b-9c3f-47b2-a5d0-3b6e8f2c1a74",
            "a9b7c5d3-e1f2-4a6b-8c9d-0e1f2a3b4c5d",
        ]
        .map(String::from);
        for count in 2..=4 {
            let present = &members[..count];
            for member in present {
                let share = (0..SHARDS)
                    .filter(|shard| {
                        assignee(*shard, present.iter().map(String::as_str))
                            == Some(member.as_str())
                    })
                    .count();
                let fair = usize::from(SHARDS) / count;
                assert!(
                    share >= fair / 3 && share <= fair * 2,
                    "{member} got {share} of {SHARDS} among {count}"
                );
            }
        }
    }

    #[test]
    fn a_shard_moves_only_when_its_assignee_comes_or_goes() {
        let three = ["a", "b", "c"];
        let two = ["a", "b"];
        for shard in 0..SHARDS {
            let before = assignee(shard, three.iter().copied()).unwrap();
            let after = assignee(shard, two.iter().copied()).unwrap();
            if before != "c" {
                assert_eq!(before, after, "shard {shard} moved between survivors");
            }
        }
    }

    async fn settle(a: &watch::Receiver<ShardSet>, b: &watch::Receiver<ShardSet>) {
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
        let first = Ownership::new(cache.clone(), members.clone());
        first.start().await;
        let first_owned = first.subscribe();
        assert_eq!(
            *first_owned.borrow(),
            ShardSet::ALL,
            "alone, it takes everything"
        );
        let first_stop = CancellationToken::new();
        tokio::spawn(first.run(first_stop.clone()));

        let second = Ownership::new(cache.clone(), members.clone());
        second.start().await;
        let second_owned = second.subscribe();
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
        let first = Ownership::new(cache.clone(), members.clone());
        first.start().await;
        let first_owned = first.subscribe();
        let first_task = tokio::spawn(first.run(CancellationToken::new()));
        let second = Ownership::new(cache.clone(), members.clone());
        let second_owned = second.subscribe();
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
}
