//! Rendezvous (highest random weight) hashing: every instance computes the same owner of a shard
//! from the same members, and a shard moves only when its owner comes or goes.

use crate::shard::{stable_hash, ShardSet, SHARDS};

/// The instance that should own `shard` among `members`: the highest score of (member, shard).
pub fn assignee<'a>(shard: u8, members: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    members.max_by_key(|member| avalanche(stable_hash(member.bytes().chain([b':', shard]))))
}

/// The shards assigned to `member` among `members`.
pub fn assigned(member: &str, members: &[&str]) -> ShardSet {
    (0..SHARDS)
        .filter(|shard| assignee(*shard, members.iter().copied()) == Some(member))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_get_even_shares() {
        let members = [
            "6f1c2e0a-4b7d-4e55-9a3b-2d8f1e6c0b91",
            "c03e9b57-1a2f-4d8c-b6e4-7f5a9d21e3c8",
            "1e8d4a6b-9c3f-47b2-a5d0-3b6e8f2c1a74",
            "a9b7c5d3-e1f2-4a6b-8c9d-0e1f2a3b4c5d",
        ];
        for count in 2..=4 {
            let present = &members[..count];
            let mut all = ShardSet::default();
            for member in present {
                let share = assigned(member, present);
                let fair = u32::from(SHARDS) / count as u32;
                assert!(
                    share.len() >= fair / 3 && share.len() <= fair * 2,
                    "{member} got {} of {SHARDS} among {count}",
                    share.len()
                );
                assert!(all.intersection(share).is_empty(), "one owner per shard");
                all = all.union(share);
            }
            assert_eq!(all, ShardSet::ALL, "every shard has an owner");
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
}
