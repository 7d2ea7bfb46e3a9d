//! The sources other than the price, computed on integer keys so that both engines agree to the
//! last unit: what a source's value is as a function of the next trade's price (or the forming
//! bar's volume), and the incremental state behind it.
//!
//! Each source state reduces to a [`Map`]: for any cut, the price (or volume) at which the value
//! gets above the cut. A moving average, the gap between two averages and the RSI are all monotone
//! in the forming bar's close, which is the latest trade, so every cut of theirs is a price level
//! that only moves when a bar closes. A move within a window is measured from the window's low or
//! high, so its levels only move when that extreme changes. A trade that crosses none of those
//! levels cannot change any rule watching the source, which is what lets a quiet trade skip it.
//!
//! Averages and smoothed values are kept in price keys (10^-12 of the price unit), rounded half
//! away from zero at each step; sums are exact.

use crate::compile::{threshold_of, FRACTION_SCALE};
use crate::keys::{key_value, LIMIT};
use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use signal_domain::{Average, AverageKind, Bar, Direction, Timestamp};
use std::collections::VecDeque;

/// Where a source's value stands relative to one cut, as a condition on the next trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bound {
    /// Above the cut when the price key is at or above this.
    PriceAtLeast(i128),
    /// Above the cut when the price key is at or below this.
    PriceAtMost(i128),
    /// Above the cut when the forming bar's volume key is at or above this.
    VolumeAtLeast(i128),
    Always,
    Never,
}

/// What a trade shows a source: its price key, and the volume of the source's forming bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Point {
    pub(crate) price: i128,
    pub(crate) forming: i128,
}

impl Bound {
    pub(crate) fn holds(self, point: Point) -> bool {
        match self {
            Bound::PriceAtLeast(key) => point.price >= key,
            Bound::PriceAtMost(key) => point.price <= key,
            Bound::VolumeAtLeast(key) => point.forming >= key,
            Bound::Always => true,
            Bound::Never => false,
        }
    }
}

/// A linear function of the forming bar's close `p`: `(a p + b) / d`, with `d > 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Linear {
    pub(crate) a: i128,
    pub(crate) b: i128,
    pub(crate) d: i128,
}

/// A source's value as a function of the next trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Map {
    /// Not enough trades or bars yet: the value is unknown and no cut is reached.
    Unready,
    /// The price itself; a cut is a price key.
    Price,
    /// The move up from the window's lowest trade (`Up`) or down from its highest, as a
    /// percentage or an amount.
    Move {
        direction: Direction,
        percent: bool,
        extreme: i128,
    },
    /// The price minus its moving average.
    PriceOverAverage(Linear),
    /// The fast average minus the slow one.
    AverageGap { fast: Linear, slow: Linear },
    /// Wilder's RSI: the last close, and the smoothed gain and loss per bar after it.
    Rsi {
        close: i128,
        gain: i128,
        loss: i128,
        bars: i128,
    },
    /// The forming bar's volume over the mean volume (`sum / bars`) of the bars before it.
    VolumeRatio { sum: i128, bars: i128 },
    /// The forming bar's volume.
    Volume,
}

/// `num / den` rounded half away from zero; `den > 0`.
pub(crate) fn div_round(num: i128, den: i128) -> i128 {
    let half = den / 2;
    if num >= 0 {
        num.saturating_add(half) / den
    } else {
        -((-num).saturating_add(half) / den)
    }
}

/// `num / den` rounded down and up; `den > 0`.
fn div_floor(num: i128, den: i128) -> i128 {
    num.div_euclid(den)
}

fn div_ceil(num: i128, den: i128) -> i128 {
    -(-num).div_euclid(den)
}

/// The price key at or above which `k p >= t` (`k > 0`), or `k p > t` when strict.
fn at_least(t: i128, k: i128, strict: bool) -> Bound {
    if strict {
        price_at_least(div_floor(t, k).saturating_add(1))
    } else {
        price_at_least(div_ceil(t, k))
    }
}

/// The price key at or below which `k p <= t` (`k > 0`), or `k p < t` when strict.
fn at_most(t: i128, k: i128, strict: bool) -> Bound {
    if strict {
        price_at_most(div_ceil(t, k).saturating_sub(1))
    } else {
        price_at_most(div_floor(t, k))
    }
}

/// Keys beyond what a price can be become "always" or "never", so that cuts far out of range
/// cannot overflow the comparisons.
fn price_at_least(key: i128) -> Bound {
    if key <= 0 {
        Bound::Always
    } else if key > LIMIT {
        Bound::Never
    } else {
        Bound::PriceAtLeast(key)
    }
}

fn price_at_most(key: i128) -> Bound {
    if key <= 0 {
        Bound::Never
    } else if key >= LIMIT {
        Bound::Always
    } else {
        Bound::PriceAtMost(key)
    }
}

/// 100 in units of 10^-`FRACTION_SCALE`.
const HUNDRED: i128 = 100 * 10i128.pow(FRACTION_SCALE);

impl Map {
    /// Whether the map knows the source's value.
    pub(crate) fn is_ready(&self) -> bool {
        *self != Map::Unready
    }

    /// Where the value gets above `cut`.
    pub(crate) fn bound(&self, cut: i128) -> Bound {
        let (x, strict) = threshold_of(cut);
        let bound = match *self {
            Map::Unready => Some(Bound::Never),
            Map::Price => Some(price_at_least(cut)),
            Map::Move {
                direction,
                percent,
                extreme,
            } => move_bound(direction, percent, extreme, x, strict),
            // p - (a p + b) / d >= x  <=>  (d - a) p >= d x + b, with d > a for two bars or more.
            Map::PriceOverAverage(Linear { a, b, d }) => (d > a)
                .then(|| d.checked_mul(x)?.checked_add(b))
                .flatten()
                .map(|t| at_least(t, d - a, strict)),
            Map::AverageGap { fast, slow } => gap_bound(fast, slow, x, strict),
            Map::Rsi {
                close,
                gain,
                loss,
                bars,
            } => rsi_bound(close, gain, loss, bars, x, strict),
            // v / (sum / bars) >= x / 10^4  <=>  v >= x sum / (bars 10^4).
            Map::VolumeRatio { sum, bars } => x.checked_mul(sum).map(|t| {
                let den = bars * 10i128.pow(FRACTION_SCALE);
                let key = if strict {
                    div_floor(t, den).saturating_add(1)
                } else {
                    div_ceil(t, den)
                };
                Bound::VolumeAtLeast(key)
            }),
            Map::Volume => Some(Bound::VolumeAtLeast(x.saturating_add(i128::from(strict)))),
        };
        // Out of range arithmetic means a cut no value reaches (or one every value does).
        bound.unwrap_or(if x < 0 { Bound::Always } else { Bound::Never })
    }

    #[inline]
    pub(crate) fn above(&self, cut: i128, point: Point) -> bool {
        match self {
            // The common case, asked for every cut a firing rule looks at: a price cut is a price
            // key, and every price key is in 1..=LIMIT, so this is what its bound says.
            Map::Price => point.price >= cut,
            _ => self.bound(cut).holds(point),
        }
    }

    /// The price (or volume) at which the value reaches `cut`, for reports.
    pub(crate) fn level(&self, cut: i128) -> Option<Decimal> {
        match self.bound(cut) {
            Bound::PriceAtLeast(key) | Bound::PriceAtMost(key) | Bound::VolumeAtLeast(key) => {
                Some(key_value(key))
            }
            Bound::Always | Bound::Never => None,
        }
    }

    /// The value itself at `point`, for reports: the move, the average, the fast average, the
    /// RSI, the volume ratio or the volume.
    pub(crate) fn measured(&self, point: Point) -> Option<Decimal> {
        let fraction = |value: Option<Decimal>| value.map(|v| v.round_dp(FRACTION_SCALE));
        match *self {
            Map::Unready | Map::Price => None,
            Map::Move {
                direction,
                percent,
                extreme,
            } => {
                // Only a move reports the price; making a decimal of it is costly.
                let price = key_value(point.price);
                let extreme = key_value(extreme);
                let moved = match direction {
                    Direction::Up => price - extreme,
                    Direction::Down => extreme - price,
                };
                if percent {
                    fraction(
                        moved
                            .checked_mul(Decimal::ONE_HUNDRED)
                            .and_then(|m| m.checked_div(extreme)),
                    )
                } else {
                    Some(moved)
                }
            }
            Map::PriceOverAverage(average) | Map::AverageGap { fast: average, .. } => {
                Some(key_value(linear_at(average, point.price)?))
            }
            Map::Rsi {
                close,
                gain,
                loss,
                bars,
            } => {
                let (gain, loss) = rsi_averages(close, gain, loss, bars, point.price);
                let total = gain.checked_add(loss)?;
                if total == 0 {
                    return Some(Decimal::from(50));
                }
                fraction(
                    Decimal::from_i128_with_scale(gain.checked_mul(100)?, 0)
                        .checked_div(Decimal::from_i128_with_scale(total, 0)),
                )
            }
            Map::VolumeRatio { sum, bars } => {
                if sum == 0 {
                    return None;
                }
                fraction(
                    Decimal::try_from_i128_with_scale(point.forming.checked_mul(bars)?, 0)
                        .ok()?
                        .checked_div(Decimal::try_from_i128_with_scale(sum, 0).ok()?),
                )
            }
            Map::Volume => Some(key_value(point.forming)),
        }
    }
}

/// The value of a linear function at price key `p`, rounded.
fn linear_at(f: Linear, p: i128) -> Option<i128> {
    Some(div_round(f.a.checked_mul(p)?.checked_add(f.b)?, f.d))
}

fn move_bound(
    direction: Direction,
    percent: bool,
    extreme: i128,
    x: i128,
    strict: bool,
) -> Option<Bound> {
    // Up: (p - low) >= x, or 100 (p - low) / low >= x / 10^4, i.e. p HUNDRED >= low (HUNDRED + x).
    // Down: (high - p) >= x, or p HUNDRED <= high (HUNDRED - x).
    Some(match (direction, percent) {
        (Direction::Up, false) => {
            price_at_least(extreme.checked_add(x)?.checked_add(i128::from(strict))?)
        }
        (Direction::Down, false) => {
            price_at_most(extreme.checked_sub(x)?.checked_sub(i128::from(strict))?)
        }
        (Direction::Up, true) => at_least(
            extreme.checked_mul(HUNDRED.checked_add(x)?)?,
            HUNDRED,
            strict,
        ),
        (Direction::Down, true) => at_most(
            extreme.checked_mul(HUNDRED.checked_sub(x)?)?,
            HUNDRED,
            strict,
        ),
    })
}

/// fast(p) - slow(p) >= x, i.e. `k p >= t` with `k = af ds - as df`, `t = x df ds - (bf ds - bs df)`.
fn gap_bound(fast: Linear, slow: Linear, x: i128, strict: bool) -> Option<Bound> {
    let k = fast
        .a
        .checked_mul(slow.d)?
        .checked_sub(slow.a.checked_mul(fast.d)?)?;
    let r = fast
        .b
        .checked_mul(slow.d)?
        .checked_sub(slow.b.checked_mul(fast.d)?)?;
    let t = x.checked_mul(fast.d)?.checked_mul(slow.d)?.checked_sub(r)?;
    Some(match k.signum() {
        1 => at_least(t, k, strict),
        // k p >= t with k < 0 is (-k) p <= -t.
        -1 => at_most(t.checked_neg()?, k.checked_neg()?, strict),
        // Both averages move alike with the price: the gap is what the closed bars made it.
        _ => {
            if (strict && 0 > t) || (!strict && 0 >= t) {
                Bound::Always
            } else {
                Bound::Never
            }
        }
    })
}

/// The smoothed gain and loss per bar including a forming bar that closes at `p`, times `bars`.
fn rsi_averages(close: i128, gain: i128, loss: i128, bars: i128, p: i128) -> (i128, i128) {
    let rest = bars - 1;
    let up = (p - close).max(0);
    let down = (close - p).max(0);
    (
        rest.saturating_mul(gain).saturating_add(up),
        rest.saturating_mul(loss).saturating_add(down),
    )
}

/// RSI(p) >= x (in 10^-4 points), or > x when strict. With the forming bar, the averages (times
/// `bars`) are `G' = (bars - 1) gain + max(p - close, 0)` and `L'` alike, and
/// `RSI >= x  <=>  (HUNDRED - x) G' >= x L'`; when both are zero the RSI is taken as 50.
fn rsi_bound(
    close: i128,
    gain: i128,
    loss: i128,
    bars: i128,
    x: i128,
    strict: bool,
) -> Option<Bound> {
    // The ends of the scale (only a re-arm band can reach them): RSI > 0 needs a gain (or a flat
    // history and no move), RSI >= 100 needs no loss and a gain.
    if x < 0 || (x == 0 && !strict) {
        return Some(Bound::Always);
    }
    if x == 0 {
        return Some(match (gain > 0, loss > 0) {
            (true, _) => Bound::Always,
            (false, false) => price_at_least(close),
            (false, true) => price_at_least(close.checked_add(1)?),
        });
    }
    if x > HUNDRED || (x == HUNDRED && strict) || (x == HUNDRED && loss > 0) {
        return Some(Bound::Never);
    }
    if x == HUNDRED {
        return Some(if gain > 0 {
            price_at_least(close)
        } else {
            price_at_least(close.checked_add(1)?)
        });
    }
    let rest = bars - 1;
    if gain == 0 && loss == 0 {
        // A flat history: any rise makes it 100, any fall 0, no move 50.
        let half = HUNDRED / 2;
        let at_close = if strict { half > x } else { half >= x };
        return Some(if at_close {
            price_at_least(close)
        } else {
            price_at_least(close.checked_add(1)?)
        });
    }
    let up_weight = HUNDRED - x;
    // For p >= close: up_weight (rest gain + p - close) >= x rest loss.
    let need = rest.checked_mul(
        x.checked_mul(loss)?
            .checked_sub(up_weight.checked_mul(gain)?)?,
    )?;
    if need > 0 || (need == 0 && strict) {
        return Some(at_least(
            need.checked_add(close.checked_mul(up_weight)?)?,
            up_weight,
            strict,
        ));
    }
    // Met at the last close; below it: x (close - p) <= -need (strictly less when strict),
    // i.e. x p >= x close + need.
    Some(at_least(
        x.checked_mul(close)?.checked_add(need)?,
        x,
        strict,
    ))
}

/// The closes of a moving average, folded one finished bar at a time.
#[derive(Debug, Clone)]
pub(crate) enum AverageFold {
    /// The last `bars - 1` closes (the forming bar is the last of the `bars`), and their sum.
    Simple {
        bars: u16,
        closes: VecDeque<i128>,
        sum: i128,
    },
    /// Seeded by the mean of the first `bars` closes, then smoothed with weight 2 / (bars + 1).
    Exponential {
        bars: u16,
        seen: usize,
        seed: i128,
        value: i128,
    },
}

impl AverageFold {
    pub(crate) fn new(average: Average) -> Self {
        match average.kind {
            AverageKind::Sma => AverageFold::Simple {
                bars: average.bars,
                closes: VecDeque::new(),
                sum: 0,
            },
            AverageKind::Ema => AverageFold::Exponential {
                bars: average.bars,
                seen: 0,
                seed: 0,
                value: 0,
            },
        }
    }

    pub(crate) fn push(&mut self, close: i128) {
        match self {
            AverageFold::Simple { bars, closes, sum } => {
                let keep = usize::from(*bars).saturating_sub(1);
                if keep == 0 {
                    return;
                }
                closes.push_back(close);
                *sum = sum.saturating_add(close);
                if closes.len() > keep {
                    if let Some(old) = closes.pop_front() {
                        *sum = sum.saturating_sub(old);
                    }
                }
            }
            AverageFold::Exponential {
                bars,
                seen,
                seed,
                value,
            } => {
                let n = i128::from(*bars);
                if *seen < usize::from(*bars) {
                    *seed = seed.saturating_add(close);
                    if *seen + 1 == usize::from(*bars) {
                        *value = div_round(*seed, n);
                    }
                } else {
                    *value = div_round(
                        close
                            .saturating_mul(2)
                            .saturating_add((n - 1).saturating_mul(*value)),
                        n + 1,
                    );
                }
                *seen = seen.saturating_add(1);
            }
        }
    }

    /// The average with the forming bar closing at `p`, as `(a p + b) / d`.
    pub(crate) fn linear(&self) -> Option<Linear> {
        match self {
            AverageFold::Simple { bars, closes, sum } => {
                (closes.len() + 1 == usize::from(*bars).max(1)).then_some(Linear {
                    a: 1,
                    b: *sum,
                    d: i128::from(*bars).max(1),
                })
            }
            AverageFold::Exponential {
                bars, seen, value, ..
            } => {
                let n = i128::from(*bars);
                (*seen >= usize::from(*bars)).then_some(Linear {
                    a: 2,
                    b: (n - 1).saturating_mul(*value),
                    d: n + 1,
                })
            }
        }
    }
}

/// Wilder's RSI, folded one finished bar at a time: the first `bars` changes are averaged, later
/// ones smoothed in with weight 1 / bars.
#[derive(Debug, Clone)]
pub(crate) struct RsiFold {
    bars: u16,
    last: Option<i128>,
    changes: usize,
    gain: i128,
    loss: i128,
}

impl RsiFold {
    pub(crate) fn new(bars: u16) -> Self {
        Self {
            bars,
            last: None,
            changes: 0,
            gain: 0,
            loss: 0,
        }
    }

    pub(crate) fn push(&mut self, close: i128) {
        if let Some(last) = self.last {
            let n = i128::from(self.bars);
            let up = (close - last).max(0);
            let down = (last - close).max(0);
            let bars = usize::from(self.bars);
            if self.changes < bars {
                // Sums until the first average.
                self.gain = self.gain.saturating_add(up);
                self.loss = self.loss.saturating_add(down);
                if self.changes + 1 == bars {
                    self.gain = div_round(self.gain, n);
                    self.loss = div_round(self.loss, n);
                }
            } else {
                self.gain = div_round((n - 1).saturating_mul(self.gain).saturating_add(up), n);
                self.loss = div_round((n - 1).saturating_mul(self.loss).saturating_add(down), n);
            }
            self.changes = self.changes.saturating_add(1);
        }
        self.last = Some(close);
    }

    pub(crate) fn map(&self) -> Map {
        match self.last {
            Some(close) if self.changes >= usize::from(self.bars) => Map::Rsi {
                close,
                gain: self.gain,
                loss: self.loss,
                bars: i128::from(self.bars),
            },
            _ => Map::Unready,
        }
    }
}

/// The volumes of the last `bars` finished bars, and their sum.
#[derive(Debug, Clone)]
pub(crate) struct VolumeFold {
    bars: u16,
    volumes: VecDeque<i128>,
    sum: i128,
}

impl VolumeFold {
    pub(crate) fn new(bars: u16) -> Self {
        Self {
            bars,
            volumes: VecDeque::new(),
            sum: 0,
        }
    }

    pub(crate) fn push(&mut self, volume: i128) {
        self.volumes.push_back(volume);
        self.sum = self.sum.saturating_add(volume);
        if self.volumes.len() > usize::from(self.bars) {
            if let Some(old) = self.volumes.pop_front() {
                self.sum = self.sum.saturating_sub(old);
            }
        }
    }

    pub(crate) fn map(&self) -> Map {
        if self.volumes.len() == usize::from(self.bars) && self.bars > 0 {
            Map::VolumeRatio {
                sum: self.sum,
                bars: i128::from(self.bars),
            }
        } else {
            Map::Unready
        }
    }
}

/// One trade on the window tape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark {
    /// The trade's number in its stream; a window source only sees trades after its creation.
    pub(crate) seq: u64,
    pub(crate) at: Timestamp,
    pub(crate) key: i128,
}

/// An instrument's recent trades as two monotonic deques: the trades no later trade undercuts
/// (the candidates for a window's low, ascending) and those no later trade tops (for its high).
/// The extreme of any window that ends now is the first candidate inside it, so every window
/// length shares one tape, and a trade costs amortised O(1).
#[derive(Debug, Default)]
pub(crate) struct Tape {
    lows: VecDeque<Mark>,
    highs: VecDeque<Mark>,
    /// When the oldest trade on the tape leaves the longest window, as of the last trim (`None`:
    /// at the next trade). Until then a trim finds nothing to forget, so it is not tried: every
    /// trade of an instrument with windows would otherwise pay for calendar arithmetic.
    trim_at: Option<Timestamp>,
}

impl Tape {
    pub(crate) fn push(&mut self, mark: Mark) {
        while self.lows.back().is_some_and(|last| last.key >= mark.key) {
            self.lows.pop_back();
        }
        self.lows.push_back(mark);
        while self.highs.back().is_some_and(|last| last.key <= mark.key) {
            self.highs.pop_back();
        }
        self.highs.push_back(mark);
    }

    /// Forgets the trades that no window of up to `longest` reaches at `at` any more, once the
    /// oldest of them has left. A trim missed because `longest` shrank only keeps trades longer;
    /// [`Tape::extreme`] skips them.
    pub(crate) fn trim(&mut self, at: Timestamp, longest: TimeDelta) {
        if self.trim_at.is_some_and(|due| at < due) {
            return;
        }
        if let Some(start) = at.checked_sub_signed(longest) {
            for side in [&mut self.lows, &mut self.highs] {
                while side.front().is_some_and(|first| first.at < start) {
                    side.pop_front();
                }
            }
        }
        let oldest = [self.lows.front(), self.highs.front()]
            .into_iter()
            .flatten()
            .map(|mark| mark.at)
            .min();
        self.trim_at = oldest.map(|oldest| leaves_window(oldest, longest));
    }

    /// The lowest (`Up`) or highest trade after trade number `since`, at or after `start`; of
    /// equal ones, the latest.
    pub(crate) fn extreme(
        &self,
        direction: Direction,
        since: u64,
        start: Timestamp,
    ) -> Option<Mark> {
        let side = match direction {
            Direction::Up => &self.lows,
            Direction::Down => &self.highs,
        };
        let first = side.partition_point(|mark| mark.seq <= since || mark.at < start);
        side.get(first).copied()
    }
}

/// The first instant at which a trade at `at` is no longer in a window of length `window`.
pub(crate) fn leaves_window(at: Timestamp, window: TimeDelta) -> Timestamp {
    at.checked_add_signed(window)
        .and_then(|end| end.checked_add_signed(TimeDelta::nanoseconds(1)))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Stored history (sorted by start here, later copies of a bar winning) up to the first bar the
/// source received live, then those.
pub(crate) fn merged_history(history: &[Bar], received: &[Bar]) -> Vec<Bar> {
    let mut stored: Vec<Bar> = history.to_vec();
    stored.sort_by_key(|bar| bar.start);
    stored.dedup_by(|later, earlier| {
        if later.start == earlier.start {
            *earlier = *later;
            true
        } else {
            false
        }
    });
    let first_live = received.first().map(|bar| bar.start);
    stored.retain(|bar| first_live.is_none_or(|first| bar.start < first));
    stored.extend_from_slice(received);
    stored
}

/// Volume keys: units of 10^-12, negative volumes counted as none.
pub(crate) fn volume_key(volume: Decimal) -> i128 {
    crate::keys::floor_key(volume).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::threshold_cut;
    use crate::keys::SCALE;

    fn key(units: i128) -> i128 {
        units * 10i128.pow(SCALE)
    }

    fn point(units: i128) -> Point {
        Point {
            price: key(units),
            forming: 0,
        }
    }

    #[test]
    fn a_simple_average_includes_the_forming_bar() {
        let mut sma = AverageFold::new(Average {
            kind: AverageKind::Sma,
            bars: 3,
        });
        sma.push(key(10));
        assert_eq!(sma.linear(), None);
        sma.push(key(20));
        sma.push(key(30));
        // The forming bar at p: (20 + 30 + p) / 3; p crosses it at p = 25.
        let map = Map::PriceOverAverage(sma.linear().unwrap());
        let cut = threshold_cut(0, false);
        assert!(map.above(cut, point(25)));
        assert!(!map.above(
            cut,
            Point {
                price: key(25) - 1,
                forming: 0
            }
        ));
        assert_eq!(map.measured(point(40)), Some(Decimal::from(30)));
    }

    #[test]
    fn an_exponential_average_is_seeded_by_the_simple_one() {
        let mut ema = AverageFold::new(Average {
            kind: AverageKind::Ema,
            bars: 3,
        });
        for close in [10, 20, 30] {
            ema.push(key(close));
        }
        // Seed 20; with the forming bar at p: (2 p + 2 * 20) / 4, which p crosses at 20.
        let map = Map::PriceOverAverage(ema.linear().unwrap());
        assert!(map.above(threshold_cut(0, false), point(20)));
        assert!(!map.above(threshold_cut(0, true), point(20)));
        ema.push(key(40));
        // (2 * 40 + 2 * 20) / 4 = 30.
        assert_eq!(
            Map::PriceOverAverage(ema.linear().unwrap()).measured(point(30)),
            Some(Decimal::from(30))
        );
    }

    #[test]
    fn rsi_matches_wilders_definition() {
        let mut rsi = RsiFold::new(2);
        for close in [10, 12, 11] {
            rsi.push(key(close));
        }
        // Changes +2, -1: gain 1, loss 0.5 per bar. A forming bar at 11 adds nothing:
        // RSI = 100 * 0.5 / (0.5 + 0.25) = 66.67.
        let map = rsi.map();
        assert_eq!(map.measured(point(11)), Some(Decimal::new(666_667, 4)));
        // RSI >= 80 needs gain' >= 4 loss': (1 + p - 11) >= 4 * 0.5, p >= 12.
        let eighty = threshold_cut(80 * 10_000, false);
        assert_eq!(map.bound(eighty), Bound::PriceAtLeast(key(12)));
        assert_eq!(map.measured(point(12)), Some(Decimal::from(80)));
        // RSI <= 40 (not above 40 strictly): 100 / (0.5 + 1 + 11 - p) <= 40 at p <= 10.
        let forty = threshold_cut(40 * 10_000, true);
        let bound = map.bound(forty);
        assert!(bound.holds(Point {
            price: key(10) + 1,
            forming: 0
        }));
        assert!(!bound.holds(point(10)));
        assert_eq!(map.measured(point(10)), Some(Decimal::from(40)));
    }

    #[test]
    fn a_flat_history_has_an_rsi_of_fifty_until_the_price_moves() {
        let mut rsi = RsiFold::new(2);
        for _ in 0..3 {
            rsi.push(key(10));
        }
        let map = rsi.map();
        assert_eq!(map.measured(point(10)), Some(Decimal::from(50)));
        let seventy = threshold_cut(70 * 10_000, false);
        assert_eq!(map.bound(seventy), Bound::PriceAtLeast(key(10) + 1));
        let thirty = threshold_cut(30 * 10_000, false);
        assert_eq!(map.bound(thirty), Bound::PriceAtLeast(key(10)));
    }

    #[test]
    fn the_gap_of_two_averages_moving_alike_does_not_depend_on_the_price() {
        let one = Linear { a: 1, b: 0, d: 2 };
        let same = Linear { a: 1, b: 10, d: 2 };
        let map = Map::AverageGap {
            fast: same,
            slow: one,
        };
        assert_eq!(map.bound(threshold_cut(0, false)), Bound::Always);
        assert_eq!(map.bound(threshold_cut(key(6), false)), Bound::Never);
    }

    #[test]
    fn moves_are_measured_from_the_window_extreme() {
        let up = Map::Move {
            direction: Direction::Up,
            percent: true,
            extreme: key(100),
        };
        let three = threshold_cut(3 * 10_000, false);
        assert_eq!(up.bound(three), Bound::PriceAtLeast(key(103)));
        assert_eq!(up.measured(point(103)), Some(Decimal::from(3)));
        let down = Map::Move {
            direction: Direction::Down,
            percent: false,
            extreme: key(100),
        };
        assert_eq!(
            down.bound(threshold_cut(key(5), true)),
            Bound::PriceAtMost(key(95) - 1)
        );
    }

    #[test]
    fn cuts_beyond_any_price_never_overflow() {
        let maps = [
            Map::Move {
                direction: Direction::Up,
                percent: true,
                extreme: LIMIT,
            },
            Map::PriceOverAverage(Linear {
                a: 1,
                b: i128::MAX / 2,
                d: 2,
            }),
            Map::Rsi {
                close: LIMIT,
                gain: LIMIT,
                loss: LIMIT,
                bars: 500,
            },
            Map::VolumeRatio {
                sum: i128::MAX,
                bars: 1,
            },
        ];
        for map in maps {
            for cut in [i128::MIN, -1, 0, 1, i128::MAX] {
                let _ = map.bound(cut);
                let _ = map.level(cut);
            }
        }
    }

    #[test]
    fn the_tape_finds_the_extreme_of_any_window() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        let mut tape = Tape::default();
        for (seq, (s, price)) in [(0, 5), (1, 3), (2, 4), (3, 6), (4, 4)]
            .into_iter()
            .enumerate()
        {
            tape.push(Mark {
                seq: seq as u64 + 1,
                at: at(s),
                key: price,
            });
        }
        let low = |since, from| tape.extreme(Direction::Up, since, at(from)).map(|m| m.key);
        let high = |since, from| {
            tape.extreme(Direction::Down, since, at(from))
                .map(|m| m.key)
        };
        assert_eq!(low(0, 0), Some(3));
        assert_eq!(low(0, 2), Some(4));
        assert_eq!(low(2, 0), Some(4));
        assert_eq!(high(0, 0), Some(6));
        assert_eq!(high(4, 0), Some(4));
        assert_eq!(high(5, 0), None);
    }
}
