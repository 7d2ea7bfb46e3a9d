//! Rules waiting for a value to cross a cut, in one direction, kept in a sorted vector whose end is
//! the cut nearest to being crossed.
//!
//! A trade takes entries off the end, and the entries it puts back (a rule that fired now waits for
//! the value to come back, near where it is) usually go near the end too, so both cost a pop or a
//! short move of the last few entries; finding a position starts from the end and widens. The
//! entries are contiguous, which is what keeps a firing trade to a few cache misses when a million
//! rules no longer fit in the caches.

/// One waiting rule leg, as its rank in its set: the fields compare (derived, field by field) in
/// the set's order, so a search compares plain integers whichever way the set is sorted. In a
/// `Rise` set, whose order is descending, every field is stored inverted (`!`), which reverses
/// the order without the overflow a negation would risk. The cut is split in two halves so an
/// entry takes 24 bytes, not the 32 an `i128` field's alignment would make it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    cut_high: i64,
    cut_low: u64,
    slot: u32,
    leg: u32,
}

impl Entry {
    fn new(cut: i128, waiter: Waiter, wait: Wait) -> Self {
        let entry = Self {
            cut_high: (cut >> 64) as i64,
            cut_low: cut as u64,
            slot: waiter.slot,
            leg: u32::from(waiter.leg),
        };
        entry.ranked(wait)
    }

    /// The entry with its fields inverted in a `Rise` set: ranks them, or undoes the ranking.
    fn ranked(self, wait: Wait) -> Self {
        match wait {
            Wait::Fall => self,
            Wait::Rise => Self {
                cut_high: !self.cut_high,
                cut_low: !self.cut_low,
                slot: !self.slot,
                leg: !self.leg,
            },
        }
    }

    fn cut(&self, wait: Wait) -> i128 {
        let plain = self.ranked(wait);
        (i128::from(plain.cut_high) << 64) | i128::from(plain.cut_low)
    }

    fn waiter(&self, wait: Wait) -> Waiter {
        let plain = self.ranked(wait);
        Waiter {
            slot: plain.slot,
            leg: plain.leg as u8,
        }
    }
}

/// Which rule (its slot in the book) and which of its legs an entry wakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Waiter {
    pub(super) slot: u32,
    pub(super) leg: u8,
}

/// The direction a set's entries wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    /// For the value to get above the cut: the smallest cut is the nearest.
    Rise,
    /// For the value to fall below the cut (to be not above it): the largest cut is the nearest.
    Fall,
}

#[derive(Debug)]
pub(super) struct CutSet {
    wait: Wait,
    /// Ascending by rank, so that the nearest entry is last: by cut (then waiter), descending
    /// for `Rise`, ascending for `Fall`.
    entries: Vec<Entry>,
}

impl CutSet {
    pub(super) fn new(wait: Wait) -> Self {
        Self {
            wait,
            entries: Vec::new(),
        }
    }

    /// The cut nearest to being crossed.
    pub(super) fn nearest(&self) -> Option<i128> {
        self.entries.last().map(|entry| entry.cut(self.wait))
    }

    pub(super) fn insert(&mut self, cut: i128, waiter: Waiter) {
        let entry = Entry::new(cut, waiter, self.wait);
        let at = self.position(&entry);
        self.entries.insert(at, entry);
    }

    /// Whether the entry was there.
    pub(super) fn remove(&mut self, cut: i128, waiter: Waiter) -> bool {
        let entry = Entry::new(cut, waiter, self.wait);
        let at = self.position(&entry);
        if at > 0 && self.entries[at - 1] == entry {
            self.entries.remove(at - 1);
            true
        } else {
            false
        }
    }

    /// Takes every entry whose cut `crossed` says the value has crossed, nearest first.
    /// `crossed` must hold for a prefix of the entries counted from the nearest.
    pub(super) fn take_crossed(
        &mut self,
        crossed: impl Fn(i128) -> bool,
        mut woken: impl FnMut(Waiter),
    ) {
        while let Some(entry) = self.entries.last() {
            if !crossed(entry.cut(self.wait)) {
                break;
            }
            woken(entry.waiter(self.wait));
            self.entries.pop();
        }
    }

    /// The index at which `entry` belongs: after every entry that sorts before or equal to it.
    /// Searches from the end, widening, since most entries go near the end.
    fn position(&self, entry: &Entry) -> usize {
        let len = self.entries.len();
        let mut span = 1;
        let mut low = len;
        // Step back while the entry at `low - 1` sorts after `entry`.
        while low > 0 && *entry < self.entries[low - 1] {
            let next = low.saturating_sub(span);
            if next == 0 || *entry >= self.entries[next] {
                // The boundary is in [next, low - 1].
                let window = &self.entries[next..low - 1];
                return next + window.partition_point(|e| e <= entry);
            }
            low = next;
            span *= 2;
        }
        low
    }

    #[cfg(test)]
    fn cuts(&self) -> Vec<i128> {
        self.entries
            .iter()
            .map(|entry| entry.cut(self.wait))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn waiter(slot: u32) -> Waiter {
        Waiter { slot, leg: 0 }
    }

    proptest! {
        #[test]
        fn entries_stay_sorted_with_the_nearest_last(
            cuts in prop::collection::vec(-50i128..50, 0..200),
            removals in prop::collection::vec(0usize..200, 0..50),
        ) {
            for wait in [Wait::Rise, Wait::Fall] {
                let mut set = CutSet::new(wait);
                for (slot, &cut) in cuts.iter().enumerate() {
                    set.insert(cut, waiter(slot as u32));
                }
                let mut kept: Vec<(i128, u32)> =
                    cuts.iter().enumerate().map(|(slot, &cut)| (cut, slot as u32)).collect();
                for &index in &removals {
                    if let Some(&(cut, slot)) = kept.get(index) {
                        prop_assert!(set.remove(cut, waiter(slot)));
                        prop_assert!(!set.remove(cut, waiter(slot)));
                        kept.remove(index);
                    }
                }
                let mut expected: Vec<i128> = kept.iter().map(|&(cut, _)| cut).collect();
                expected.sort_unstable();
                if wait == Wait::Rise {
                    expected.reverse();
                }
                prop_assert_eq!(set.cuts(), expected);
            }
        }
    }

    #[test]
    fn takes_only_what_was_crossed_nearest_first() {
        let mut set = CutSet::new(Wait::Rise);
        for (slot, cut) in [30, 10, 20, 10].into_iter().enumerate() {
            set.insert(cut, waiter(slot as u32));
        }
        let mut woken = Vec::new();
        set.take_crossed(|cut| 20 >= cut, |w| woken.push(w.slot));
        assert_eq!(woken, [1, 3, 2]);
        assert_eq!(set.nearest(), Some(30));
    }
}
