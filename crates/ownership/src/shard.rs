//! Instruments into shards, and sets of shards.

use signal_domain::InstrumentId;

/// Enough to spread instruments evenly over a handful of instances; one bit each in a `u64`.
pub const SHARDS: u8 = 64;

/// 64-bit FNV-1a: fixed by its definition, so instances of different builds agree.
pub(crate) fn stable_hash(bytes: impl IntoIterator<Item = u8>) -> u64 {
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

    /// The set with `shard` added (`present`) or taken out.
    pub fn with(self, shard: u8, present: bool) -> ShardSet {
        if present {
            ShardSet(self.0 | (1 << shard))
        } else {
            ShardSet(self.0 & !(1 << shard))
        }
    }

    pub fn shards(self) -> impl Iterator<Item = u8> {
        (0..SHARDS).filter(move |shard| self.contains(*shard))
    }
}

impl FromIterator<u8> for ShardSet {
    fn from_iter<I: IntoIterator<Item = u8>>(shards: I) -> Self {
        shards
            .into_iter()
            .fold(ShardSet::default(), |set, shard| set.with(shard, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn sets_combine_as_sets() {
        let a: ShardSet = [1, 2, 3].into_iter().collect();
        let b: ShardSet = [3, 4].into_iter().collect();
        assert_eq!(a.union(b), [1, 2, 3, 4].into_iter().collect());
        assert_eq!(a.intersection(b), [3].into_iter().collect());
        assert_eq!(a.without(b), [1, 2].into_iter().collect());
        assert_eq!(a.shards().collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(ShardSet::ALL.len(), u32::from(SHARDS));
    }
}
