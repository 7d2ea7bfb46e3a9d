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
use signal_domain::ErrorChain;
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

/// The shard of `MARKET:SYMBOL`, hashed without building the string: it runs on every tick.
pub fn shard_of(instrument: &InstrumentId) -> u8 {
    let bytes = instrument
        .market()
        .code()
        .bytes()
        .chain([b':'])
        .chain(instrument.symbol().bytes());
    (stable_hash(bytes) % u64::from(SHARDS)) as u8
}

/// A set of shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardSet(u64);

impl ShardSet {
    #[cfg(test)]
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

    pub fn union(self, other: ShardSet) -> ShardSet {
        ShardSet(self.0 | other.0)
    }

    pub fn intersection(self, other: ShardSet) -> ShardSet {
        ShardSet(self.0 & other.0)
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

/// How long a shard's release waits for the pipeline to stop evaluating it (to finish storing
/// what it fired) before the lease is given up anyway.
const HANDOVER: Duration = Duration::from_secs(10);

pub struct Ownership {
    instance: String,
    cache: Arc<dyn SharedCache>,
    members: Arc<dyn Broadcast>,
    owned: watch::Sender<ShardSet>,
    /// What the pipeline evaluates now: a shard is released only once it has left this set, so
    /// the next owner reloads rule states that include every firing of this instance.
    applied: watch::Receiver<ShardSet>,
}

impl Ownership {
    /// `applied` is where the pipeline says which shards it has switched to.
    pub fn new(
        cache: Arc<dyn SharedCache>,
        members: Arc<dyn Broadcast>,
        applied: watch::Receiver<ShardSet>,
    ) -> Self {
        Self {
            instance: uuid::Uuid::new_v4().to_string(),
            cache,
            members,
            owned: watch::Sender::new(ShardSet::default()),
            applied,
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<ShardSet> {
        self.owned.subscribe()
    }

    /// Takes the shards that are free: all of them when this instance is alone, so a single
    /// instance evaluates everything from its first tick. The pipeline is not running yet, so
    /// there is nothing to hand over.
    pub async fn start(&self) {
        let members = [self.instance.as_str()];
        let owned = self.renew(&members, *self.owned.borrow()).await;
        self.owned.send_replace(owned);
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
                announcements = self
                    .members
                    .subscribe()
                    .await
                    .inspect_err(|error| tracing::warn!(error = %ErrorChain(error), "cannot follow the other instances; retrying"))
                    .ok();
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

    /// Gives up the shards assigned elsewhere (once the pipeline has stopped evaluating them),
    /// renews the leases of the shards assigned here and takes those that are free.
    async fn round(&mut self, heard: &HashMap<String, Instant>) {
        let me = self.instance.clone();
        let members: Vec<&str> = heard
            .keys()
            .map(String::as_str)
            .chain([me.as_str()])
            .collect();
        let held = *self.owned.borrow();
        let leaving = ShardSet(
            (0..SHARDS)
                .filter(|shard| {
                    held.contains(*shard)
                        && assignee(*shard, members.iter().copied()) != Some(me.as_str())
                })
                .fold(0, |bits, shard| bits | (1 << shard)),
        );
        if !leaving.is_empty() {
            self.hand_over(held.without(leaving)).await;
            self.release(leaving).await;
        }
        let owned = self.renew(&members, held.without(leaving)).await;
        if owned != *self.owned.borrow() {
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
        let leases = (0..SHARDS)
            .filter(|shard| {
                assignee(*shard, members.iter().copied()) == Some(self.instance.as_str())
            })
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

    /// Tells the pipeline to evaluate `owned`, and waits until it does (it first finishes
    /// storing what it is firing).
    async fn hand_over(&mut self, owned: ShardSet) {
        self.owned.send_replace(owned);
        let applied = tokio::time::timeout(HANDOVER, self.applied.wait_for(|now| *now == owned));
        if !matches!(applied.await, Ok(Ok(_))) {
            tracing::warn!("the pipeline did not switch shards in time; handing over anyway");
        }
    }

    async fn release_all(&mut self) {
        let owned = *self.owned.borrow();
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
    use signal_memory::{MemoryBroadcast, MemorySharedCache};

    #[test]
    fn shards_spread_instruments_and_do_not_depend_on_the_build() {
        let id: InstrumentId = "KRX:005930".parse().unwrap();
        assert_eq!(
            shard_of(&id),
            (stable_hash("KRX:005930".bytes()) % u64::from(SHARDS)) as u8,
            "the shard of MARKET:SYMBOL as written"
        );
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

    /// An instance whose stand-in pipeline switches to whatever it is told at once.
    fn instance(cache: &Arc<dyn SharedCache>, members: &Arc<dyn Broadcast>) -> Ownership {
        let (applied, applied_by_pipeline) = watch::channel(ShardSet::default());
        let ownership = Ownership::new(cache.clone(), members.clone(), applied_by_pipeline);
        let mut owned = ownership.subscribe();
        tokio::spawn(async move {
            loop {
                let now = *owned.borrow_and_update();
                applied.send_replace(now);
                if owned.changed().await.is_err() {
                    return;
                }
            }
        });
        ownership
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
        let first = instance(&cache, &members);
        first.start().await;
        let first_owned = first.subscribe();
        assert_eq!(
            *first_owned.borrow(),
            ShardSet::ALL,
            "alone, it takes everything"
        );
        let first_stop = CancellationToken::new();
        tokio::spawn(first.run(first_stop.clone()));

        let second = instance(&cache, &members);
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
        let first = instance(&cache, &members);
        first.start().await;
        let first_owned = first.subscribe();
        let first_task = tokio::spawn(first.run(CancellationToken::new()));
        let second = instance(&cache, &members);
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

    #[tokio::test(start_paused = true)]
    async fn a_shard_is_released_only_once_the_pipeline_stops_evaluating_it() {
        let cache: Arc<dyn SharedCache> = Arc::new(MemorySharedCache::default());
        let members: Arc<dyn Broadcast> = Arc::new(MemoryBroadcast::default());
        let (applied, applied_by_pipeline) = watch::channel(ShardSet::default());
        let ownership = Ownership::new(cache.clone(), members, applied_by_pipeline);
        ownership.start().await;
        applied.send_replace(ShardSet::ALL);
        let stop = CancellationToken::new();
        let task = tokio::spawn(ownership.run(stop.clone()));
        tokio::time::sleep(HEARTBEAT).await;

        // Stopping while the pipeline is still storing what it fired: the shards stay leased.
        stop.cancel();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(!cache.lease(&lease_key(0), "next", LEASE).await.unwrap());
        applied.send_replace(ShardSet::default());
        task.await.unwrap();
        assert!(cache.lease(&lease_key(0), "next", LEASE).await.unwrap());
    }
}
