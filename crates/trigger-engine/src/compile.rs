//! What a rule's condition watches, in the shape both engines evaluate: a handful of cuts on the
//! axis of the condition's source that split the source's values into zones, the zones (or moves
//! between zones) that fire the rule, and the zones that re-arm it after it fired.
//!
//! A value is "above" a cut or not. For the price source a cut is a price key, and a price is above
//! cut `c` when its key is at or above `c`. The other sources measure something else (a move from
//! a window's low, an RSI, a price minus its average, a volume): their cuts are `2 x + s` for a
//! threshold `x` in the source's unit, the value being above the cut when it is at or above `x`
//! (`s = 0`) or strictly above it (`s = 1`); the source turns that into a price or volume bound.
//! Cuts are listed in ascending order, so a value is above a prefix of them, and its zone is the
//! length of that prefix.

use crate::keys::{at_or_above, floor_key, strictly_above};
use rust_decimal::Decimal;
use signal_domain::{
    Average, ChannelEdge, Condition, Crossing, Direction, Interval, MoveSize, Price, Repeat,
};

/// Decimal places of the source units that are fractions (percentages, RSI points, factors).
pub(crate) const FRACTION_SCALE: u32 = 4;

/// The cut for "at or above `x`" (or "strictly above `x`") on a source other than the price.
pub(crate) fn threshold_cut(x: i128, strict: bool) -> i128 {
    x.saturating_mul(2).saturating_add(i128::from(strict))
}

/// The threshold and strictness of a cut made by [`threshold_cut`].
pub(crate) fn threshold_of(cut: i128) -> (i128, bool) {
    (cut.div_euclid(2), cut.rem_euclid(2) == 1)
}

/// A decimal in units of 10^-`scale`, rounded down.
pub(crate) fn scaled(value: Decimal, scale: u32) -> i128 {
    // Rescale to 12 places exactly, then drop the places the unit does not keep.
    floor_key(value).div_euclid(10i128.pow(crate::keys::SCALE - scale))
}

/// At most two cuts, ascending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cuts {
    keys: [i128; 2],
    len: u8,
}

impl Cuts {
    pub(crate) fn one(cut: i128) -> Self {
        Self {
            keys: [cut, cut],
            len: 1,
        }
    }

    fn two(low: i128, high: i128) -> Self {
        Self {
            keys: [low.min(high), low.max(high)],
            len: 2,
        }
    }

    pub(crate) fn as_slice(&self) -> &[i128] {
        &self.keys[..usize::from(self.len)]
    }

    /// How many of the cuts `above` says the value is above.
    #[inline]
    pub(crate) fn zone(&self, above: &impl Fn(i128) -> bool) -> u8 {
        // Ascending cuts: the value is above a prefix of them.
        self.as_slice()
            .iter()
            .take_while(|&&cut| above(cut))
            .count() as u8
    }
}

/// When a rule's condition is met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Firing {
    /// Whenever the value is in one of these zones (bit `z` for zone `z`).
    Holds { zones: u8 },
    /// When the value moves from one zone to another: bit `3 from + to` for each such move.
    Enters { moves: u16 },
}

impl Firing {
    fn holds(zone: u8) -> Self {
        Firing::Holds { zones: 1 << zone }
    }

    fn enters(moves: &[(u8, u8)]) -> Self {
        Firing::Enters {
            moves: moves
                .iter()
                .fold(0, |mask, &(from, to)| mask | 1 << (3 * from + to)),
        }
    }
}

/// Whose values a condition watches. One source serves every rule of an instrument that names the
/// same one: a thousand rules on RSI(14) of 1h bars cost one RSI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum SourceKey {
    /// The traded price itself.
    Price,
    /// The move from the lowest trade of the window (`Up`) or to the highest (`Down`).
    Move {
        direction: Direction,
        percent: bool,
        window: chrono::Duration,
    },
    /// The volume of the forming bar against the mean of the bars before it.
    VolumeSpike {
        interval: Interval,
        bars: u16,
    },
    /// The volume of the forming bar.
    Volume {
        interval: Interval,
    },
    /// The price minus its moving average.
    PriceOverAverage {
        average: Average,
        interval: Interval,
    },
    Rsi {
        bars: u16,
        interval: Interval,
    },
    /// The fast average minus the slow one.
    AverageGap {
        fast: Average,
        slow: Average,
        interval: Interval,
    },
}

impl SourceKey {
    /// The bars the source is computed from.
    pub(crate) fn interval(self) -> Option<Interval> {
        match self {
            SourceKey::Price | SourceKey::Move { .. } => None,
            SourceKey::VolumeSpike { interval, .. }
            | SourceKey::Volume { interval }
            | SourceKey::PriceOverAverage { interval, .. }
            | SourceKey::Rsi { interval, .. }
            | SourceKey::AverageGap { interval, .. } => Some(interval),
        }
    }

    /// Whether it measures volume rather than price.
    pub(crate) fn is_volume(self) -> bool {
        matches!(
            self,
            SourceKey::VolumeSpike { .. } | SourceKey::Volume { .. }
        )
    }

    /// How many finished bars it is computed from, for a source that needs bars.
    pub(crate) fn history(self) -> Option<usize> {
        match self {
            SourceKey::Price | SourceKey::Move { .. } | SourceKey::Volume { .. } => None,
            SourceKey::VolumeSpike { bars, .. } => Some(usize::from(bars)),
            SourceKey::PriceOverAverage { average, .. } => Some(average.history_wanted()),
            SourceKey::Rsi { bars, .. } => Some(signal_domain::rsi_history_wanted(bars)),
            SourceKey::AverageGap { fast, slow, .. } => {
                Some(fast.history_wanted().max(slow.history_wanted()))
            }
        }
    }
}

/// A condition compiled against its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LegSpec {
    pub(crate) cuts: Cuts,
    /// For price cuts, the price each cut stands for (reported when the rule fires).
    pub(crate) levels: [Decimal; 2],
    pub(crate) firing: Firing,
    /// Cuts and zones where a rule that fired becomes free to fire again (with its cooldown).
    pub(crate) rearm: Cuts,
    pub(crate) rearm_zones: u8,
}

impl LegSpec {
    /// Whether a value in `zone`, coming from `previous` (the zone at the last trade, if known),
    /// meets the condition.
    pub(crate) fn met(&self, previous: Option<u8>, zone: u8) -> bool {
        match self.firing {
            Firing::Holds { zones } => zones & (1 << zone) != 0,
            Firing::Enters { moves } => {
                previous.is_some_and(|from| moves & (1 << (3 * from + zone)) != 0)
            }
        }
    }

    /// Whether the condition needs to know the zone of the previous trade.
    pub(crate) fn is_crossing(&self) -> bool {
        matches!(self.firing, Firing::Enters { .. })
    }

    /// The zones in which a holding condition is met.
    pub(crate) fn met_zones(&self) -> Option<u8> {
        match self.firing {
            Firing::Holds { zones } => Some(zones),
            Firing::Enters { .. } => None,
        }
    }

    pub(crate) fn rearms(&self, zone: u8) -> bool {
        self.rearm_zones & (1 << zone) != 0
    }

    /// The index of the cut a move from zone `from` to zone `to` crossed first.
    pub(crate) fn crossed_cut(&self, from: Option<u8>, to: u8) -> usize {
        match from {
            Some(from) if from > to => usize::from(from - 1),
            Some(from) => usize::from(from),
            // A holding condition: the cut at its region's edge.
            None => usize::from(to.saturating_sub(1)).min(usize::from(self.cuts.len) - 1),
        }
    }
}

/// The price a repeating rule must go back past before it may fire again is its level moved back
/// by this band. A rule that does not repeat with a cooldown has none; it can only be cooling
/// unrearmed if a caller stored it so.
pub(crate) fn rearm_band(repeat: Repeat) -> Decimal {
    match repeat {
        Repeat::Every { rearm_band, .. } => rearm_band,
        Repeat::Once | Repeat::OncePerBar(_) | Repeat::OncePerBarClose(_) => Decimal::ZERO,
    }
}

/// The absolute level a percent condition fires at. `None` without a reference, or when it does
/// not fit a decimal (no price can reach it). The domain's `Condition::level` panics when the
/// arithmetic overflows, which only absurd percentages can cause; this is checked.
pub(crate) fn percent_level(condition: Condition, reference: Option<Price>) -> Option<Decimal> {
    let hundred = Decimal::ONE_HUNDRED;
    let factor = match condition {
        Condition::ChangeUp(pct) => hundred.checked_add(pct.value())?,
        Condition::ChangeDown(pct) => hundred.checked_sub(pct.value())?,
        _ => return None,
    };
    reference?.value().checked_mul(factor)?.checked_div(hundred)
}

/// The source a condition watches.
pub(crate) fn source_of(condition: Condition) -> SourceKey {
    match condition {
        Condition::Above(_)
        | Condition::Below(_)
        | Condition::ChangeUp(_)
        | Condition::ChangeDown(_)
        | Condition::Cross { .. }
        | Condition::Channel { .. } => SourceKey::Price,
        Condition::Move {
            direction,
            size,
            window,
        } => SourceKey::Move {
            direction,
            percent: matches!(size, MoveSize::Percent(_)),
            window,
        },
        Condition::VolumeSpike { interval, bars, .. } => SourceKey::VolumeSpike { interval, bars },
        Condition::DayVolume { .. } => SourceKey::Volume {
            interval: Interval::D1,
        },
        Condition::PriceCrossesAverage {
            average, interval, ..
        } => SourceKey::PriceOverAverage { average, interval },
        Condition::Rsi { bars, interval, .. } => SourceKey::Rsi { bars, interval },
        Condition::AveragesCross {
            fast,
            slow,
            interval,
            ..
        } => SourceKey::AverageGap {
            fast,
            slow,
            interval,
        },
    }
}

/// A leg on a price level: fires while the price is at or above (`Up`) or at or below the level;
/// re-armed strictly past the level moved back by the band.
fn price_holds(direction: Direction, level: Decimal, band: Decimal) -> LegSpec {
    // Saturating arithmetic keeps the band exact: a threshold beyond what a decimal holds lies
    // beyond every price on the same side.
    match direction {
        Direction::Up => LegSpec {
            cuts: Cuts::one(at_or_above(level)),
            levels: [level; 2],
            firing: Firing::holds(1),
            rearm: Cuts::one(at_or_above(level.saturating_sub(band))),
            rearm_zones: 1 << 0,
        },
        Direction::Down => LegSpec {
            cuts: Cuts::one(strictly_above(level)),
            levels: [level; 2],
            firing: Firing::holds(0),
            rearm: Cuts::one(strictly_above(level.saturating_add(band))),
            rearm_zones: 1 << 1,
        },
    }
}

/// A leg on a threshold `x` of another source: holding at or above it (`Up`) or at or below it;
/// re-armed strictly past the threshold moved back by `band` (both in the source's unit).
fn threshold_holds(direction: Direction, x: i128, band: i128) -> LegSpec {
    let mut spec = threshold_crossing(direction, x, band);
    spec.firing = match direction {
        Direction::Up => Firing::holds(1),
        Direction::Down => Firing::holds(0),
    };
    spec
}

/// A leg crossing a threshold `x` of another source upward (`Up`: from below it to at or above
/// it) or downward.
fn threshold_crossing(direction: Direction, x: i128, band: i128) -> LegSpec {
    match direction {
        Direction::Up => LegSpec {
            cuts: Cuts::one(threshold_cut(x, false)),
            levels: [Decimal::ZERO; 2],
            firing: Firing::enters(&[(0, 1)]),
            rearm: Cuts::one(threshold_cut(x.saturating_sub(band), false)),
            rearm_zones: 1 << 0,
        },
        Direction::Down => LegSpec {
            cuts: Cuts::one(threshold_cut(x, true)),
            levels: [Decimal::ZERO; 2],
            firing: Firing::enters(&[(1, 0)]),
            rearm: Cuts::one(threshold_cut(x.saturating_add(band), true)),
            rearm_zones: 1 << 1,
        },
    }
}

/// Compiles a condition; `None` while it has no level (a percent rule without a reference).
pub(crate) fn compile(
    condition: Condition,
    repeat: Repeat,
    reference: Option<Price>,
) -> Option<LegSpec> {
    let band = rearm_band(repeat);
    let price_band = floor_key(band);
    let fraction_band = scaled(band, FRACTION_SCALE);
    let spec = match condition {
        Condition::Above(level) => price_holds(Direction::Up, level.value(), band),
        Condition::Below(level) => price_holds(Direction::Down, level.value(), band),
        Condition::ChangeUp(_) => {
            price_holds(Direction::Up, percent_level(condition, reference)?, band)
        }
        Condition::ChangeDown(_) => {
            price_holds(Direction::Down, percent_level(condition, reference)?, band)
        }
        Condition::Cross { crossing, level } => {
            let level = level.value();
            match crossing {
                Crossing::Up | Crossing::Down => {
                    let direction = match crossing {
                        Crossing::Up => Direction::Up,
                        _ => Direction::Down,
                    };
                    let mut spec = price_holds(direction, level, band);
                    spec.firing = match direction {
                        Direction::Up => Firing::enters(&[(0, 1)]),
                        Direction::Down => Firing::enters(&[(1, 0)]),
                    };
                    spec
                }
                // Below, at, and above the level; any move from a side to the level or past it.
                Crossing::Either => LegSpec {
                    cuts: Cuts::two(at_or_above(level), strictly_above(level)),
                    levels: [level; 2],
                    firing: Firing::enters(&[(0, 1), (0, 2), (2, 1), (2, 0)]),
                    rearm: Cuts::two(
                        at_or_above(level.saturating_sub(band)),
                        strictly_above(level.saturating_add(band)),
                    ),
                    rearm_zones: 1 << 0 | 1 << 2,
                },
            }
        }
        Condition::Channel { edge, low, high } => {
            let (low, high) = (low.value(), high.value());
            let cuts = Cuts::two(at_or_above(low), strictly_above(high));
            match edge {
                ChannelEdge::Enter => LegSpec {
                    cuts,
                    levels: [low, high],
                    firing: Firing::enters(&[(0, 1), (2, 1)]),
                    rearm: Cuts::two(
                        at_or_above(low.saturating_sub(band)),
                        strictly_above(high.saturating_add(band)),
                    ),
                    rearm_zones: 1 << 0 | 1 << 2,
                },
                ChannelEdge::Exit => LegSpec {
                    cuts,
                    levels: [low, high],
                    firing: Firing::enters(&[(1, 0), (1, 2)]),
                    rearm: Cuts::two(
                        at_or_above(low.saturating_add(band)),
                        strictly_above(high.saturating_sub(band)),
                    ),
                    rearm_zones: 1 << 1,
                },
            }
        }
        Condition::Move { size, .. } => match size {
            MoveSize::Amount(amount) => {
                threshold_holds(Direction::Up, floor_key(amount), price_band)
            }
            MoveSize::Percent(pct) => threshold_holds(
                Direction::Up,
                scaled(pct.value(), FRACTION_SCALE),
                fraction_band,
            ),
        },
        Condition::VolumeSpike { factor, .. } => {
            threshold_holds(Direction::Up, scaled(factor, FRACTION_SCALE), fraction_band)
        }
        Condition::DayVolume { volume } => {
            threshold_holds(Direction::Up, floor_key(volume), price_band)
        }
        Condition::Rsi {
            direction, level, ..
        } => threshold_holds(direction, scaled(level, FRACTION_SCALE), fraction_band),
        Condition::PriceCrossesAverage { direction, .. }
        | Condition::AveragesCross { direction, .. } => {
            threshold_crossing(direction, 0, price_band)
        }
    };
    Some(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;
    use signal_domain::Percent;

    #[test]
    fn levels_match_the_domain_where_it_does_not_overflow() {
        let close = Price::new(dec!(71900)).ok();
        for pct in [dec!(0.5), dec!(2.5), dec!(33.3333), dec!(99.99), dec!(1000)] {
            for condition in [
                Condition::ChangeUp(Percent::new(pct)),
                Condition::ChangeDown(Percent::new(pct)),
            ] {
                assert_eq!(percent_level(condition, close), condition.level(close));
                assert_eq!(percent_level(condition, None), None);
            }
        }
    }

    #[test]
    fn absurd_percentages_leave_the_rule_without_a_level_instead_of_panicking() {
        let close = Price::new(dec!(1000000000000000000)).ok();
        let absurd = Condition::ChangeUp(Percent::new(Decimal::MAX));
        assert_eq!(percent_level(absurd, close), None);
        assert_eq!(compile(absurd, Repeat::Once, close), None);
    }

    #[test]
    fn the_re_arm_band_saturates() {
        let every = |band| Repeat::Every {
            cooldown: chrono::Duration::zero(),
            rearm_band: band,
        };
        let below = Condition::Below("1000".parse().unwrap());
        let spec = compile(below, every(Decimal::MAX), None).unwrap();
        // No price is above Decimal::MAX: a rule with such a band never re-arms.
        assert_eq!(spec.rearm.zone(&|cut| crate::keys::LIMIT >= cut), 0);
    }

    #[test]
    fn threshold_cuts_order_strictness_between_thresholds() {
        assert!(threshold_cut(5, false) < threshold_cut(5, true));
        assert!(threshold_cut(5, true) < threshold_cut(6, false));
        assert_eq!(threshold_of(threshold_cut(-7, true)), (-7, true));
        assert_eq!(threshold_of(threshold_cut(-7, false)), (-7, false));
        assert_eq!(scaled(dec!(2.5), FRACTION_SCALE), 25_000);
        assert_eq!(scaled(dec!(-0.00005), FRACTION_SCALE), -1);
    }

    #[test]
    fn a_crossing_reports_the_cut_it_went_through_first() {
        let channel = Condition::Channel {
            edge: ChannelEdge::Enter,
            low: "100".parse().unwrap(),
            high: "200".parse().unwrap(),
        };
        let spec = compile(channel, Repeat::Once, None).unwrap();
        assert_eq!(spec.crossed_cut(Some(0), 1), 0);
        assert_eq!(spec.crossed_cut(Some(2), 1), 1);
        assert!(spec.met(Some(2), 1));
        assert!(!spec.met(Some(0), 2));
        assert!(!spec.met(None, 1));
    }
}
