//! A source shared by the rules of one stream that watch the same thing, with the cut sets of the
//! rule legs that wait on it and the bounds that tell whether a trade can concern any of them.

use super::cut_set::{CutSet, Wait, Waiter};
use crate::compile::SourceKey;
use crate::series::{
    leaves_window, merged_history, AverageFold, Bound, Map, Mark, Point, RsiFold, Tape, VolumeFold,
};
use chrono::{DateTime, Utc};
use signal_domain::{Bar, Direction, Timestamp};

/// What a trade must reach for a source (or a whole stream) to need a closer look: a price key at
/// or above `rise` or at or below `fall`, a volume (counted from the stream's start) at or above
/// `volume_rise` or at or below `volume_fall`, or a time at or after `due`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Wake {
    pub(super) rise: i128,
    pub(super) fall: i128,
    pub(super) volume_rise: i128,
    pub(super) volume_fall: i128,
    pub(super) due: Timestamp,
}

impl Wake {
    pub(super) const NEVER: Wake = Wake {
        rise: i128::MAX,
        fall: i128::MIN,
        volume_rise: i128::MAX,
        volume_fall: i128::MIN,
        due: DateTime::<Utc>::MAX_UTC,
    };

    pub(super) fn wakes(&self, price: i128, volume: i128, at: Timestamp) -> bool {
        price >= self.rise
            || price <= self.fall
            || volume >= self.volume_rise
            || volume <= self.volume_fall
            || at >= self.due
    }

    pub(super) fn merge(self, other: Wake) -> Wake {
        Wake {
            rise: self.rise.min(other.rise),
            fall: self.fall.max(other.fall),
            volume_rise: self.volume_rise.min(other.volume_rise),
            volume_fall: self.volume_fall.max(other.volume_fall),
            due: self.due.min(other.due),
        }
    }

    /// Adds the condition under which `bound` is crossed: in `wait`'s direction, given that the
    /// volume counted from the stream's start is `base` at the source's forming bar's start.
    fn add(&mut self, bound: Bound, wait: Wait, base: i128) {
        match (bound, wait) {
            (Bound::PriceAtLeast(key), Wait::Rise) => self.rise = self.rise.min(key),
            (Bound::PriceAtLeast(key), Wait::Fall) => self.fall = self.fall.max(key - 1),
            (Bound::PriceAtMost(key), Wait::Rise) => self.fall = self.fall.max(key),
            (Bound::PriceAtMost(key), Wait::Fall) => self.rise = self.rise.min(key + 1),
            (Bound::VolumeAtLeast(key), Wait::Rise) => {
                self.volume_rise = self.volume_rise.min(base.saturating_add(key))
            }
            (Bound::VolumeAtLeast(key), Wait::Fall) => {
                self.volume_fall = self.volume_fall.max(base.saturating_add(key) - 1)
            }
            (Bound::Always, Wait::Rise) | (Bound::Never, Wait::Fall) => self.rise = i128::MIN,
            (Bound::Never, Wait::Rise) | (Bound::Always, Wait::Fall) => {}
        }
    }
}

/// What a source computes from.
#[derive(Debug)]
pub(super) enum State {
    Price,
    Move {
        /// The stream's trade count when the source was made: it sees the trades after that.
        since: u64,
        /// The current extreme of the window, if it has seen a trade.
        extreme: Option<Mark>,
    },
    Volume,
    VolumeSpike(VolumeFold),
    PriceOverAverage(AverageFold),
    Rsi(RsiFold),
    AverageGap(AverageFold, AverageFold),
}

/// Bars a source computes from that arrived before it was warmed up with stored history.
#[derive(Debug)]
pub(super) enum History {
    /// Warm, or a source that needs no bars.
    Complete,
    /// The closes received since the source was made, the most recent `cap` of them.
    Cold { received: Vec<Bar>, cap: usize },
}

#[derive(Debug)]
pub(super) struct Source {
    pub(super) key: SourceKey,
    pub(super) state: State,
    pub(super) history: History,
    pub(super) rising: CutSet,
    pub(super) falling: CutSet,
    /// Rule legs that watch it; the source goes with the last.
    pub(super) users: u32,
    /// The stream's volume count at the start of the source's forming bar (volume sources).
    pub(super) base: i128,
    /// The bounds of its cut sets and its own state changes; refreshed when either changes.
    pub(super) wake: Wake,
}

impl Source {
    pub(super) fn new(key: SourceKey, seq: u64, volume: i128) -> Self {
        let state = match key {
            SourceKey::Price => State::Price,
            SourceKey::Move { .. } => State::Move {
                since: seq,
                extreme: None,
            },
            SourceKey::Volume { .. } => State::Volume,
            SourceKey::VolumeSpike { bars, .. } => State::VolumeSpike(VolumeFold::new(bars)),
            SourceKey::PriceOverAverage { average, .. } => {
                State::PriceOverAverage(AverageFold::new(average))
            }
            SourceKey::Rsi { bars, .. } => State::Rsi(RsiFold::new(bars)),
            SourceKey::AverageGap { fast, slow, .. } => {
                State::AverageGap(AverageFold::new(fast), AverageFold::new(slow))
            }
        };
        let history = match key.history() {
            Some(cap) => History::Cold {
                received: Vec::new(),
                cap,
            },
            None => History::Complete,
        };
        Self {
            key,
            state,
            history,
            rising: CutSet::new(Wait::Rise),
            falling: CutSet::new(Wait::Fall),
            users: 0,
            base: volume,
            wake: Wake::NEVER,
        }
    }

    pub(super) fn map(&self) -> Map {
        match &self.state {
            State::Price => Map::Price,
            State::Move { extreme, .. } => match (self.key, extreme) {
                (
                    SourceKey::Move {
                        direction, percent, ..
                    },
                    Some(mark),
                ) => Map::Move {
                    direction,
                    percent,
                    extreme: mark.key,
                },
                _ => Map::Unready,
            },
            State::Volume => Map::Volume,
            State::VolumeSpike(fold) => fold.map(),
            State::PriceOverAverage(fold) => {
                fold.linear().map_or(Map::Unready, Map::PriceOverAverage)
            }
            State::Rsi(fold) => fold.map(),
            State::AverageGap(fast, slow) => match (fast.linear(), slow.linear()) {
                (Some(fast), Some(slow)) => Map::AverageGap { fast, slow },
                _ => Map::Unready,
            },
        }
    }

    /// The trade's point on this source, given the stream's volume count.
    pub(super) fn point(&self, price: i128, volume: i128) -> Point {
        Point {
            price,
            forming: volume.saturating_sub(self.base),
        }
    }

    /// Recomputes the bounds after its map or its cut sets changed.
    pub(super) fn refresh_wake(&mut self) {
        let map = self.map();
        let mut wake = Wake::NEVER;
        if let Some(cut) = self.rising.nearest() {
            wake.add(map.bound(cut), Wait::Rise, self.base);
        }
        if let Some(cut) = self.falling.nearest() {
            wake.add(map.bound(cut), Wait::Fall, self.base);
        }
        if let (
            SourceKey::Move {
                direction, window, ..
            },
            State::Move {
                extreme: Some(mark),
                ..
            },
        ) = (self.key, &self.state)
        {
            // A trade past the extreme makes a new one; the extreme leaving the window makes
            // another. A trade at the extreme's price changes no move (they are measured from
            // that price), so it leaves the source asleep: the source finds that trade on the
            // tape when it wakes, at the latest when the extreme it holds leaves the window.
            match direction {
                Direction::Up => wake.fall = wake.fall.max(mark.key - 1),
                Direction::Down => wake.rise = wake.rise.min(mark.key + 1),
            }
            wake.due = leaves_window(mark.at, window);
        }
        if let (SourceKey::Move { .. }, State::Move { extreme: None, .. }) = (self.key, &self.state)
        {
            // No trade yet: the next one is the first extreme.
            wake.rise = i128::MIN;
        }
        self.wake = wake;
    }

    /// Brings a window source's extreme up to the trade at `at` (already on the tape).
    pub(super) fn follow_tape(&mut self, tape: &Tape, at: Timestamp) {
        if let (
            SourceKey::Move {
                direction, window, ..
            },
            State::Move { since, extreme },
        ) = (self.key, &mut self.state)
        {
            let start = at
                .checked_sub_signed(window)
                .unwrap_or(DateTime::<Utc>::MIN_UTC);
            *extreme = tape.extreme(direction, *since, start);
        }
    }

    /// Takes a finished bar of the source's interval.
    pub(super) fn close_bar(&mut self, bar: &Bar, volume: i128) {
        if let History::Cold { received, cap } = &mut self.history {
            received.push(*bar);
            if received.len() > *cap {
                received.remove(0);
            }
        }
        self.fold(bar);
        if self.key.is_volume() {
            self.base = volume;
        }
    }

    fn fold(&mut self, bar: &Bar) {
        let close = crate::keys::price_key(bar.close);
        match &mut self.state {
            State::Price | State::Move { .. } | State::Volume => {}
            State::VolumeSpike(fold) => fold.push(crate::series::volume_key(bar.volume)),
            State::PriceOverAverage(fold) => fold.push(close),
            State::Rsi(fold) => fold.push(close),
            State::AverageGap(fast, slow) => {
                fast.push(close);
                slow.push(close);
            }
        }
    }

    /// Computes a cold source again from stored `history` followed by the bars it received.
    pub(super) fn warm_up(&mut self, history: &[Bar]) {
        let History::Cold { received, .. } =
            std::mem::replace(&mut self.history, History::Complete)
        else {
            return;
        };
        let bars = merged_history(history, &received);
        let fresh = Source::new(self.key, 0, self.base);
        self.state = fresh.state;
        for bar in &bars {
            self.fold(bar);
        }
    }
}

/// Where a leg's waiter goes in a source's sets.
pub(super) fn waiter(slot: u32, leg: usize) -> Waiter {
    Waiter {
        slot,
        leg: leg as u8,
    }
}
