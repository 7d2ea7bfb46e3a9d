//! Alert rules: what a user asked to be told about, and where each rule is in its life.

use crate::bar::Interval;
use crate::instrument::InstrumentId;
use crate::price::{Percent, Price, PriceError};
use crate::user::UserId;
use crate::Timestamp;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Store-assigned identity of a rule. Rules fire in ascending id order within one tick.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct RuleId(pub i64);

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Which way a condition looks: up (at or above, rising, crossing upward) or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    Up,
    Down,
}

/// Which way a price must cross a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Crossing {
    /// From below the level to at or above it.
    Up,
    /// From above the level to at or below it.
    Down,
    /// Either of the two.
    Either,
}

/// Whether a channel rule fires on the way into its band or on the way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelEdge {
    Enter,
    Exit,
}

/// How far the price must move within a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MoveSize {
    /// In the instrument's quote currency.
    Amount(Decimal),
    Percent(Percent),
}

/// The two moving averages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum AverageKind {
    /// Simple: the mean of the last `bars` closes.
    Sma,
    /// Exponential, with weight 2 / (bars + 1) on the newest close.
    Ema,
}

/// A moving average of the closes of a number of bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Average {
    pub kind: AverageKind,
    pub bars: u16,
}

impl Average {
    /// Finished bars to compute it from: its span, and for the exponential one enough more for
    /// the smoothing to forget its start (within 0.1 %).
    pub fn history_wanted(self) -> usize {
        match self.kind {
            AverageKind::Sma => usize::from(self.bars),
            AverageKind::Ema => usize::from(self.bars) * 4 + 1,
        }
    }
}

/// Finished bars to compute RSI(`bars`) from: Wilder's smoothing forgets its start (within
/// 0.1 %) after about seven times its span.
pub fn rsi_history_wanted(bars: u16) -> usize {
    usize::from(bars) * 7 + 1
}

/// What must happen for a rule to fire.
///
/// Indicators are computed on the bars of their interval, the forming bar included: its close is
/// the latest trade, as on a chart, so an indicator moves with every trade. The "level" of a
/// crossing is inclusive: a trade exactly at the level has crossed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    /// Price at or above the level (the original ABOVE).
    Above(Price),
    /// Price at or below the level (the original BELOW).
    Below(Price),
    /// Price up by at least this percentage against the previous close.
    ChangeUp(Percent),
    /// Price down by at least this percentage against the previous close.
    ChangeDown(Percent),
    /// A trade at or past the level after a trade on the other side of it. It needs a previous
    /// trade, so unlike ABOVE and BELOW it does not fire when the price is already past the level.
    Cross { crossing: Crossing, level: Price },
    /// A trade inside the band `[low, high]` after one outside it (`Enter`), or the reverse.
    Channel {
        edge: ChannelEdge,
        low: Price,
        high: Price,
    },
    /// The price at least `size` above the lowest trade of the last `window` (`Up`), or below the
    /// highest (`Down`).
    Move {
        direction: Direction,
        size: MoveSize,
        window: chrono::Duration,
    },
    /// The volume of the forming bar at least `factor` times the mean volume of the `bars` bars
    /// before it.
    VolumeSpike {
        interval: Interval,
        bars: u16,
        factor: Decimal,
    },
    /// The day's volume so far at or above `volume`.
    DayVolume { volume: Decimal },
    /// The price crosses the moving average from below to at or above it (`Up`), or the reverse.
    PriceCrossesAverage {
        direction: Direction,
        average: Average,
        interval: Interval,
    },
    /// RSI (Wilder's) of `bars` bars at or above (`Up`) or at or below (`Down`) `level`.
    Rsi {
        direction: Direction,
        bars: u16,
        level: Decimal,
        interval: Interval,
    },
    /// The fast average crosses the slow one from below to at or above it (`Up`, a golden cross),
    /// or the reverse (`Down`, a dead cross).
    AveragesCross {
        direction: Direction,
        fast: Average,
        slow: Average,
        interval: Interval,
    },
}

/// The condition's name on the wire and in storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConditionKind {
    Above,
    Below,
    ChangeUp,
    ChangeDown,
    CrossUp,
    CrossDown,
    Crossing,
    ChannelEnter,
    ChannelExit,
    MoveUp,
    MoveDown,
    VolumeSpike,
    DayVolume,
    MaCrossUp,
    MaCrossDown,
    RsiAbove,
    RsiBelow,
    GoldenCross,
    DeadCross,
}

impl ConditionKind {
    pub const ALL: [ConditionKind; 19] = [
        ConditionKind::Above,
        ConditionKind::Below,
        ConditionKind::ChangeUp,
        ConditionKind::ChangeDown,
        ConditionKind::CrossUp,
        ConditionKind::CrossDown,
        ConditionKind::Crossing,
        ConditionKind::ChannelEnter,
        ConditionKind::ChannelExit,
        ConditionKind::MoveUp,
        ConditionKind::MoveDown,
        ConditionKind::VolumeSpike,
        ConditionKind::DayVolume,
        ConditionKind::MaCrossUp,
        ConditionKind::MaCrossDown,
        ConditionKind::RsiAbove,
        ConditionKind::RsiBelow,
        ConditionKind::GoldenCross,
        ConditionKind::DeadCross,
    ];

    /// Whether the condition is computed on bars of an interval the user chooses.
    pub fn takes_interval(self) -> bool {
        matches!(
            self,
            ConditionKind::VolumeSpike
                | ConditionKind::MaCrossUp
                | ConditionKind::MaCrossDown
                | ConditionKind::RsiAbove
                | ConditionKind::RsiBelow
                | ConditionKind::GoldenCross
                | ConditionKind::DeadCross
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ConditionKind::Above => "ABOVE",
            ConditionKind::Below => "BELOW",
            ConditionKind::ChangeUp => "CHANGE_UP",
            ConditionKind::ChangeDown => "CHANGE_DOWN",
            ConditionKind::CrossUp => "CROSS_UP",
            ConditionKind::CrossDown => "CROSS_DOWN",
            ConditionKind::Crossing => "CROSSING",
            ConditionKind::ChannelEnter => "CHANNEL_ENTER",
            ConditionKind::ChannelExit => "CHANNEL_EXIT",
            ConditionKind::MoveUp => "MOVE_UP",
            ConditionKind::MoveDown => "MOVE_DOWN",
            ConditionKind::VolumeSpike => "VOLUME_SPIKE",
            ConditionKind::DayVolume => "DAY_VOLUME",
            ConditionKind::MaCrossUp => "MA_CROSS_UP",
            ConditionKind::MaCrossDown => "MA_CROSS_DOWN",
            ConditionKind::RsiAbove => "RSI_ABOVE",
            ConditionKind::RsiBelow => "RSI_BELOW",
            ConditionKind::GoldenCross => "GOLDEN_CROSS",
            ConditionKind::DeadCross => "DEAD_CROSS",
        }
    }
}

impl std::str::FromStr for ConditionKind {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ConditionKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| RuleError::UnknownCondition(s.to_string()))
    }
}

/// Longest window a move is measured over: the engine keeps a day of trades per instrument.
pub const MAX_WINDOW_HOURS: i64 = 24;
/// Most bars an indicator or a volume average may span: warming one up reads its history from the
/// stored candles, backfilled from the exchange when missing, and the exchanges serve a few
/// hundred bars per request.
pub const MAX_BARS: u16 = 500;
/// Decimal places of the numbers that are not prices (percent moves, RSI levels, volume factors,
/// and their re-arm bands): finer steps mean nothing for them.
pub const FRACTION_PLACES: u32 = 4;

impl Condition {
    /// Builds a condition from its kind and its one number: a price level for ABOVE, BELOW and the
    /// crossings, a percentage for CHANGE_UP and CHANGE_DOWN. Kinds with more parameters are built
    /// directly and checked with [`Condition::validate`].
    pub fn from_parts(kind: ConditionKind, value: Decimal) -> Result<Self, RuleError> {
        let condition = match kind {
            ConditionKind::Above => Condition::Above(Price::new(value)?),
            ConditionKind::Below => Condition::Below(Price::new(value)?),
            ConditionKind::ChangeUp | ConditionKind::ChangeDown => {
                if value <= Decimal::ZERO || value > Decimal::from(1000) {
                    return Err(RuleError::Percent(value));
                }
                if kind == ConditionKind::ChangeDown && value >= Decimal::ONE_HUNDRED {
                    return Err(RuleError::Percent(value));
                }
                let pct = Percent::new(value);
                match kind {
                    ConditionKind::ChangeUp => Condition::ChangeUp(pct),
                    _ => Condition::ChangeDown(pct),
                }
            }
            ConditionKind::CrossUp | ConditionKind::CrossDown | ConditionKind::Crossing => {
                let crossing = match kind {
                    ConditionKind::CrossUp => Crossing::Up,
                    ConditionKind::CrossDown => Crossing::Down,
                    _ => Crossing::Either,
                };
                Condition::Cross {
                    crossing,
                    level: Price::new(value)?,
                }
            }
            other => return Err(RuleError::NotOneNumber(other)),
        };
        Ok(condition)
    }

    pub fn kind(self) -> ConditionKind {
        let up = |direction, up, down| match direction {
            Direction::Up => up,
            Direction::Down => down,
        };
        match self {
            Condition::Above(_) => ConditionKind::Above,
            Condition::Below(_) => ConditionKind::Below,
            Condition::ChangeUp(_) => ConditionKind::ChangeUp,
            Condition::ChangeDown(_) => ConditionKind::ChangeDown,
            Condition::Cross { crossing, .. } => match crossing {
                Crossing::Up => ConditionKind::CrossUp,
                Crossing::Down => ConditionKind::CrossDown,
                Crossing::Either => ConditionKind::Crossing,
            },
            Condition::Channel { edge, .. } => match edge {
                ChannelEdge::Enter => ConditionKind::ChannelEnter,
                ChannelEdge::Exit => ConditionKind::ChannelExit,
            },
            Condition::Move { direction, .. } => {
                up(direction, ConditionKind::MoveUp, ConditionKind::MoveDown)
            }
            Condition::VolumeSpike { .. } => ConditionKind::VolumeSpike,
            Condition::DayVolume { .. } => ConditionKind::DayVolume,
            Condition::PriceCrossesAverage { direction, .. } => up(
                direction,
                ConditionKind::MaCrossUp,
                ConditionKind::MaCrossDown,
            ),
            Condition::Rsi { direction, .. } => {
                up(direction, ConditionKind::RsiAbove, ConditionKind::RsiBelow)
            }
            Condition::AveragesCross { direction, .. } => up(
                direction,
                ConditionKind::GoldenCross,
                ConditionKind::DeadCross,
            ),
        }
    }

    /// The number the user gave first: the level, the percentage, the move, the volume factor or
    /// level, the RSI level, or the bars of the (fast) average.
    pub fn value(self) -> Decimal {
        match self {
            Condition::Above(p) | Condition::Below(p) | Condition::Cross { level: p, .. } => {
                p.value()
            }
            Condition::ChangeUp(p) | Condition::ChangeDown(p) => p.value(),
            Condition::Channel { low, .. } => low.value(),
            Condition::Move { size, .. } => match size {
                MoveSize::Amount(amount) => amount,
                MoveSize::Percent(pct) => pct.value(),
            },
            Condition::VolumeSpike { factor, .. } => factor,
            Condition::DayVolume { volume } => volume,
            Condition::Rsi { level, .. } => level,
            Condition::PriceCrossesAverage { average, .. } => Decimal::from(average.bars),
            Condition::AveragesCross { fast, .. } => Decimal::from(fast.bars),
        }
    }

    pub fn is_relative(self) -> bool {
        matches!(self, Condition::ChangeUp(_) | Condition::ChangeDown(_))
    }

    /// The interval of the bars the condition is computed on; day volume is the volume of the
    /// forming day bar.
    pub fn interval(self) -> Option<Interval> {
        match self {
            Condition::VolumeSpike { interval, .. }
            | Condition::PriceCrossesAverage { interval, .. }
            | Condition::Rsi { interval, .. }
            | Condition::AveragesCross { interval, .. } => Some(interval),
            Condition::DayVolume { .. } => Some(Interval::D1),
            _ => None,
        }
    }

    /// How many finished bars of its interval the condition should be warmed up with.
    pub fn history_wanted(self) -> Option<(Interval, usize)> {
        let bars = match self {
            Condition::VolumeSpike { bars, .. } => usize::from(bars),
            Condition::PriceCrossesAverage { average, .. } => average.history_wanted(),
            Condition::Rsi { bars, .. } => rsi_history_wanted(bars),
            Condition::AveragesCross { fast, slow, .. } => {
                fast.history_wanted().max(slow.history_wanted())
            }
            _ => return None,
        };
        Some((self.interval()?, bars))
    }

    /// Checks every parameter, naming the first one out of range.
    pub fn validate(self) -> Result<(), RuleError> {
        match self {
            Condition::Above(_) | Condition::Below(_) | Condition::Cross { .. } => Ok(()),
            Condition::ChangeUp(pct) | Condition::ChangeDown(pct) => {
                Condition::from_parts(self.kind(), pct.value()).map(|_| ())
            }
            Condition::Channel { low, high, .. } => {
                if low >= high {
                    return Err(RuleError::parameter("low", Problem::NotBelow("high")));
                }
                Ok(())
            }
            Condition::Move {
                direction,
                size,
                window,
            } => {
                match size {
                    MoveSize::Amount(amount) => check_amount("amount", amount)?,
                    MoveSize::Percent(pct) => {
                        let max = match direction {
                            Direction::Up => Decimal::from(1000),
                            Direction::Down => Decimal::ONE_HUNDRED,
                        };
                        check_fraction("percent", pct.value(), Decimal::ZERO, max)?;
                    }
                }
                let max = chrono::Duration::hours(MAX_WINDOW_HOURS);
                if window < chrono::Duration::seconds(1) || window > max {
                    return Err(RuleError::parameter(
                        "windowSeconds",
                        Problem::Range {
                            min: Decimal::ONE,
                            max: Decimal::from(max.num_seconds()),
                            got: Decimal::from(window.num_seconds()),
                        },
                    ));
                }
                Ok(())
            }
            Condition::VolumeSpike { bars, factor, .. } => {
                check_bars("bars", bars, 1)?;
                check_fraction("factor", factor, Decimal::ZERO, Decimal::from(1000))
            }
            Condition::DayVolume { volume } => check_amount("volume", volume),
            Condition::PriceCrossesAverage { average, .. } => {
                // The average of one bar is the price itself, which never crosses it.
                check_bars("bars", average.bars, 2)
            }
            Condition::Rsi { bars, level, .. } => {
                check_bars("bars", bars, 2)?;
                check_fraction("level", level, Decimal::ZERO, Decimal::ONE_HUNDRED)
            }
            Condition::AveragesCross { fast, slow, .. } => {
                check_bars("fast.bars", fast.bars, 1)?;
                check_bars("slow.bars", slow.bars, 1)?;
                if fast.bars >= slow.bars {
                    return Err(RuleError::parameter(
                        "fast.bars",
                        Problem::NotBelow("slow.bars"),
                    ));
                }
                Ok(())
            }
        }
    }

    /// Checks a re-arm band for this condition: it is in the condition's own unit (price for price
    /// levels, averages and amounts; percentage points for percent moves; RSI points; multiples of
    /// the average volume; volume for day volume).
    fn validate_band(self, band: Decimal) -> Result<(), RuleError> {
        if band < Decimal::ZERO {
            return Err(RuleError::RearmBand(band));
        }
        let fraction_unit = matches!(
            self,
            Condition::Move {
                size: MoveSize::Percent(_),
                ..
            } | Condition::Rsi { .. }
                | Condition::VolumeSpike { .. }
        );
        if fraction_unit && band.normalize().scale() > FRACTION_PLACES {
            return Err(RuleError::parameter(
                "rearmBand",
                Problem::Places(FRACTION_PLACES),
            ));
        }
        if let Condition::Channel {
            edge: ChannelEdge::Exit,
            low,
            high,
        } = self
        {
            // Re-armed inside the band narrowed by the band on both sides, which must leave room.
            if band * Decimal::TWO >= high.value() - low.value() {
                return Err(RuleError::parameter(
                    "rearmBand",
                    Problem::NotBelow("half the channel's width"),
                ));
            }
        }
        Ok(())
    }

    /// The absolute price level this condition fires at, given the instrument's previous close:
    /// for ABOVE, BELOW, the crossings and the percent changes. Percent conditions have no level
    /// until a previous close is known.
    pub fn level(self, prev_close: Option<Price>) -> Option<Decimal> {
        let hundred = Decimal::ONE_HUNDRED;
        match self {
            Condition::Above(p) | Condition::Below(p) | Condition::Cross { level: p, .. } => {
                Some(p.value())
            }
            Condition::ChangeUp(pct) => {
                prev_close.map(|c| c.value() * (hundred + pct.value()) / hundred)
            }
            Condition::ChangeDown(pct) => {
                prev_close.map(|c| c.value() * (hundred - pct.value()) / hundred)
            }
            _ => None,
        }
    }
}

fn check_bars(field: &'static str, bars: u16, min: u16) -> Result<(), RuleError> {
    if bars < min || bars > MAX_BARS {
        return Err(RuleError::parameter(
            field,
            Problem::Range {
                min: Decimal::from(min),
                max: Decimal::from(MAX_BARS),
                got: Decimal::from(bars),
            },
        ));
    }
    Ok(())
}

/// A number of at most [`FRACTION_PLACES`] decimal places strictly between `min` and `max`, except
/// that `max` itself is allowed when it is not 100 (a 100 % fall or RSI 100 is unreachable).
fn check_fraction(
    field: &'static str,
    value: Decimal,
    min: Decimal,
    max: Decimal,
) -> Result<(), RuleError> {
    let above_max = if max == Decimal::ONE_HUNDRED {
        value >= max
    } else {
        value > max
    };
    if value <= min || above_max {
        return Err(RuleError::parameter(
            field,
            Problem::Range {
                min,
                max,
                got: value,
            },
        ));
    }
    if value.normalize().scale() > FRACTION_PLACES {
        return Err(RuleError::parameter(
            field,
            Problem::Places(FRACTION_PLACES),
        ));
    }
    Ok(())
}

/// A positive amount of a price's precision (a volume or a price difference).
fn check_amount(field: &'static str, value: Decimal) -> Result<(), RuleError> {
    Price::new(value)
        .map(|_| ())
        .map_err(|e| RuleError::parameter(field, Problem::Amount(e)))
}

/// A second condition that must also be met, within `within` of the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conjunct {
    pub condition: Condition,
    pub within: chrono::Duration,
}

/// Longest time allowed between the two conditions of a rule.
pub const MAX_WITHIN_HOURS: i64 = 24;

impl Conjunct {
    /// Checks the condition's parameters and the time, naming the first field out of range (as
    /// the second condition's own field: `level`, `withinSeconds`).
    pub fn validate(self) -> Result<(), RuleError> {
        self.condition.validate()?;
        let max = chrono::Duration::hours(MAX_WITHIN_HOURS);
        if self.within < chrono::Duration::seconds(1) || self.within > max {
            return Err(RuleError::parameter(
                "withinSeconds",
                Problem::Range {
                    min: Decimal::ONE,
                    max: Decimal::from(max.num_seconds()),
                    got: Decimal::from(self.within.num_seconds()),
                },
            ));
        }
        Ok(())
    }
}

/// How often a rule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Repeat {
    /// Fires once, then the rule is `Triggered` and stays so (the original behaviour).
    Once,
    /// Fires, then waits until both the cooldown has passed and the price has gone back strictly
    /// past the level by `rearm_band`, before it can fire again.
    Every {
        cooldown: chrono::Duration,
        rearm_band: Decimal,
    },
    /// Fires at most once per bar of the interval: after firing it waits for the next bar.
    OncePerBar(Interval),
    /// Evaluated on each finished bar of the interval only, with the bar's close as the price;
    /// fires on every bar that closes with the condition met.
    OncePerBarClose(Interval),
}

impl Repeat {
    /// The interval of a per-bar frequency.
    pub fn interval(self) -> Option<Interval> {
        match self {
            Repeat::OncePerBar(interval) | Repeat::OncePerBarClose(interval) => Some(interval),
            Repeat::Once | Repeat::Every { .. } => None,
        }
    }
}

/// Where a rule is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleState {
    /// Watching the price.
    Armed,
    /// A repeating rule that fired: `rearmed` turns true once the price goes back past the band;
    /// it watches again when that is true and `until` has passed.
    Cooling { rearmed: bool, until: Timestamp },
    /// A `once` rule that fired. Terminal.
    Triggered,
    /// Its expiry passed before it fired. Terminal.
    Expired,
}

impl RuleState {
    pub fn is_active(self) -> bool {
        matches!(self, RuleState::Armed | RuleState::Cooling { .. })
    }

    pub fn name(self) -> &'static str {
        match self {
            RuleState::Armed => "armed",
            RuleState::Cooling { .. } => "cooling",
            RuleState::Triggered => "triggered",
            RuleState::Expired => "expired",
        }
    }
}

/// The user-chosen part of a rule, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    pub instrument: InstrumentId,
    pub condition: Condition,
    /// A second condition that must be met too, within its time of the first.
    pub and: Option<Conjunct>,
    pub repeat: Repeat,
    pub expires_at: Option<Timestamp>,
    pub note: Option<String>,
    /// Which of the user's notification channels the rule's alerts go to, by channel id, in
    /// ascending order; `None` is all of them. Sockets always receive. The channels live in the
    /// Alert Service, so an id that names none (a channel deleted since) simply reaches nobody.
    pub channels: Option<Vec<i64>>,
    /// What its alerts say: plain text with `{{placeholders}}` (see [`crate::template`]),
    /// rendered for each reader in their language and time zone.
    pub message: Option<String>,
}

pub const MAX_NOTE_CHARS: usize = 500;
/// Most channels a rule may name: far more than a person has.
pub const MAX_RULE_CHANNELS: usize = 50;
pub const MAX_MESSAGE_CHARS: usize = 1000;
pub const MAX_COOLDOWN_DAYS: i64 = 30;
/// Longest snooze: a rule meant to stay quiet longer is paused.
pub const MAX_SNOOZE_DAYS: i64 = 30;

/// The instant a snooze asked for at `now` ends, checked: later than `now`, at most
/// [`MAX_SNOOZE_DAYS`] after it.
pub fn snooze_end(until: Timestamp, now: Timestamp) -> Result<Timestamp, RuleError> {
    if until <= now || until > now + chrono::Duration::days(MAX_SNOOZE_DAYS) {
        return Err(RuleError::Snooze);
    }
    Ok(until)
}

impl RuleSpec {
    pub fn new(
        instrument: InstrumentId,
        condition: Condition,
        repeat: Repeat,
        expires_at: Option<Timestamp>,
        note: Option<String>,
        now: Timestamp,
    ) -> Result<Self, RuleError> {
        if let Some(at) = expires_at {
            if at <= now {
                return Err(RuleError::ExpiryInPast);
            }
        }
        let note = note.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
        if note
            .as_ref()
            .is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS)
        {
            return Err(RuleError::NoteTooLong);
        }
        condition.validate()?;
        check_repeat(repeat, &[condition])?;
        Ok(Self {
            instrument,
            condition,
            and: None,
            repeat,
            expires_at,
            note,
            channels: None,
            message: None,
        })
    }

    /// The spec with its alerts going only to `channels` (`None`: to all the user's channels).
    pub fn with_channels(mut self, channels: Option<Vec<i64>>) -> Result<Self, RuleError> {
        if let Some(ids) = &channels {
            if ids.len() > MAX_RULE_CHANNELS {
                return Err(RuleError::parameter(
                    "channels",
                    Problem::TooMany(MAX_RULE_CHANNELS),
                ));
            }
            if let Some(&bad) = ids.iter().find(|&&id| id < 1) {
                return Err(RuleError::parameter(
                    "channels",
                    Problem::Range {
                        min: Decimal::ONE,
                        max: Decimal::from(i64::MAX),
                        got: Decimal::from(bad),
                    },
                ));
            }
        }
        self.channels = channels.map(|mut ids| {
            ids.sort_unstable();
            ids.dedup();
            ids
        });
        Ok(self)
    }

    /// The rule with a second condition; its frequency must suit both.
    pub fn with_and(mut self, and: Conjunct) -> Result<Self, RuleError> {
        and.validate().map_err(RuleError::second)?;
        check_repeat(self.repeat, &[self.condition, and.condition])?;
        self.and = Some(and);
        Ok(self)
    }

    /// The rule with a message for its alerts, checked: every placeholder must be known.
    pub fn with_message(mut self, message: &str) -> Result<Self, RuleError> {
        let message = message.trim();
        if message.is_empty() {
            self.message = None;
            return Ok(self);
        }
        if message.chars().count() > MAX_MESSAGE_CHARS {
            return Err(RuleError::MessageTooLong);
        }
        crate::template::Template::text(message).map_err(RuleError::Message)?;
        self.message = Some(message.to_string());
        Ok(self)
    }

    /// The conditions, first then second.
    pub fn conditions(&self) -> impl Iterator<Item = Condition> + '_ {
        std::iter::once(self.condition).chain(self.and.map(|and| and.condition))
    }
}

/// Checks a frequency against the conditions of the rule it repeats.
pub fn check_repeat(repeat: Repeat, conditions: &[Condition]) -> Result<(), RuleError> {
    match repeat {
        Repeat::Once => Ok(()),
        Repeat::Every {
            cooldown,
            rearm_band,
        } => {
            if cooldown < chrono::Duration::zero()
                || cooldown > chrono::Duration::days(MAX_COOLDOWN_DAYS)
            {
                return Err(RuleError::Cooldown);
            }
            if conditions.len() > 1 && !rearm_band.is_zero() {
                return Err(RuleError::parameter(
                    "rearmBand",
                    Problem::NotApplicable("a rule with two conditions"),
                ));
            }
            conditions
                .iter()
                .try_for_each(|condition| condition.validate_band(rearm_band))
        }
        Repeat::OncePerBar(interval) | Repeat::OncePerBarClose(interval) => conditions
            .iter()
            .filter_map(|condition| condition.interval())
            .find(|&own| own != interval)
            .map_or(Ok(()), |own| {
                Err(RuleError::parameter("interval", Problem::Interval(own)))
            }),
    }
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRule {
    pub id: RuleId,
    pub user: UserId,
    pub spec: RuleSpec,
    pub state: RuleState,
    /// Set while the user has paused the rule: it keeps its state and is not evaluated.
    pub paused_at: Option<Timestamp>,
    /// The rule does not fire before this instant, though it is evaluated (a crossing or a
    /// window follows the price meanwhile).
    pub snoozed_until: Option<Timestamp>,
    pub trigger_count: u32,
    pub last_triggered_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("invalid level")]
    Level(#[from] crate::price::PriceError),
    #[error("a percent change must be above 0 (and below 100 for CHANGE_DOWN), got {0}")]
    Percent(Decimal),
    #[error("unknown condition `{}`", crate::abbreviate(.0))]
    UnknownCondition(String),
    #[error("{} takes more than one number", .0.as_str())]
    NotOneNumber(ConditionKind),
    #[error("`{field}`")]
    Parameter {
        field: &'static str,
        #[source]
        problem: Problem,
    },
    #[error("the expiry must be in the future")]
    ExpiryInPast,
    #[error("the note may hold at most {MAX_NOTE_CHARS} characters")]
    NoteTooLong,
    #[error("the cooldown must be between 0 seconds and {MAX_COOLDOWN_DAYS} days")]
    Cooldown,
    #[error("the re-arm band must not be negative, got {0}")]
    RearmBand(Decimal),
    #[error("a snooze must end in the future, at most {MAX_SNOOZE_DAYS} days from now")]
    Snooze,
    #[error("the message may hold at most {MAX_MESSAGE_CHARS} characters")]
    MessageTooLong,
    #[error("invalid message")]
    Message(#[source] crate::template::TemplateError),
    /// The second condition of a pair is at fault; `field` names it as `and.<its field>`.
    #[error("the second condition's `{field}`")]
    Second {
        field: String,
        #[source]
        error: Box<RuleError>,
    },
}

impl crate::Failure for RuleError {
    fn kind(&self) -> crate::FailureKind {
        crate::FailureKind::Invalid
    }

    fn field(&self) -> Option<&str> {
        match self {
            RuleError::Second { field, .. } => Some(field),
            other => other.field_name(),
        }
    }
}

impl RuleError {
    fn parameter(field: &'static str, problem: Problem) -> Self {
        RuleError::Parameter { field, problem }
    }

    /// The error as one about the second condition of a pair.
    pub fn second(error: RuleError) -> Self {
        let field = format!("and.{}", error.field_name().unwrap_or("condition"));
        RuleError::Second {
            field,
            error: Box::new(error),
        }
    }

    /// The request field the error is about, in the API's spelling, when it is about one (for
    /// the second condition of a pair: its own field, which [`crate::Failure::field`] prefixes
    /// with `and.`).
    pub fn field_name(&self) -> Option<&'static str> {
        match self {
            RuleError::Parameter { field, .. } => Some(field),
            RuleError::Level(_) => Some("level"),
            RuleError::Percent(_) => Some("percent"),
            RuleError::UnknownCondition(_) | RuleError::NotOneNumber(_) => Some("condition"),
            RuleError::ExpiryInPast => Some("expiresAt"),
            RuleError::NoteTooLong => Some("note"),
            RuleError::Cooldown => Some("cooldownSeconds"),
            RuleError::RearmBand(_) => Some("rearmBand"),
            RuleError::Snooze => Some("until"),
            RuleError::MessageTooLong | RuleError::Message(_) => Some("message"),
            RuleError::Second { error, .. } => error.field_name(),
        }
    }
}

/// What is wrong with a parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("must be between {min} and {max}, got {got}")]
    Range {
        min: Decimal,
        max: Decimal,
        got: Decimal,
    },
    #[error("may have at most {0} decimal places")]
    Places(u32),
    #[error("must be below {0}")]
    NotBelow(&'static str),
    #[error("is not a valid amount")]
    Amount(#[source] PriceError),
    #[error("must be the interval of the condition, {0}")]
    Interval(Interval),
    #[error("does not apply to {0}")]
    NotApplicable(&'static str),
    #[error("is required")]
    Missing,
    #[error("may hold at most {0} entries")]
    TooMany(usize),
    #[error("is not supported")]
    Unsupported(#[source] crate::bar::UnknownInterval),
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn percent_conditions_compile_against_the_previous_close() {
        let up = Condition::from_parts(ConditionKind::ChangeUp, dec!(5)).unwrap();
        assert_eq!(up.level(None), None);
        let close = Price::new(dec!(10000)).unwrap();
        assert_eq!(up.level(Some(close)), Some(dec!(10500)));
        let down = Condition::from_parts(ConditionKind::ChangeDown, dec!(2.5)).unwrap();
        assert_eq!(down.level(Some(close)), Some(dec!(9750)));
    }

    #[test]
    fn rejects_nonsense_conditions() {
        assert!(Condition::from_parts(ConditionKind::Above, dec!(-1)).is_err());
        assert!(Condition::from_parts(ConditionKind::ChangeDown, dec!(100)).is_err());
        assert!(Condition::from_parts(ConditionKind::ChangeUp, dec!(0)).is_err());
        assert!("sideways".parse::<ConditionKind>().is_err());
        assert_eq!("above".parse::<ConditionKind>(), Ok(ConditionKind::Above));
        assert_eq!(
            "golden_cross".parse::<ConditionKind>(),
            Ok(ConditionKind::GoldenCross)
        );
        assert_eq!(
            Condition::from_parts(ConditionKind::RsiAbove, dec!(70)),
            Err(RuleError::NotOneNumber(ConditionKind::RsiAbove))
        );
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in ConditionKind::ALL {
            assert_eq!(kind.as_str().parse::<ConditionKind>(), Ok(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }

    fn field_of(condition: Condition) -> Option<&'static str> {
        condition.validate().err().and_then(|e| e.field_name())
    }

    fn sma(bars: u16) -> Average {
        Average {
            kind: AverageKind::Sma,
            bars,
        }
    }

    #[test]
    fn bad_parameters_name_their_field() {
        let h1 = Interval::H1;
        let spike = |bars, factor| Condition::VolumeSpike {
            interval: Interval::M5,
            bars,
            factor,
        };
        assert_eq!(field_of(spike(0, dec!(3))), Some("bars"));
        assert_eq!(field_of(spike(20, dec!(-3))), Some("factor"));
        assert_eq!(field_of(spike(20, dec!(3.00001))), Some("factor"));
        assert_eq!(field_of(spike(20, dec!(3))), None);
        let rsi = |bars, level| Condition::Rsi {
            direction: Direction::Up,
            bars,
            level,
            interval: h1,
        };
        assert_eq!(field_of(rsi(14, dec!(100))), Some("level"));
        assert_eq!(field_of(rsi(1, dec!(70))), Some("bars"));
        assert_eq!(field_of(rsi(501, dec!(70))), Some("bars"));
        assert_eq!(field_of(rsi(14, dec!(70))), None);
        let moving = |size, window| Condition::Move {
            direction: Direction::Down,
            size,
            window,
        };
        let minutes = chrono::Duration::minutes;
        let pct = |v| MoveSize::Percent(Percent::new(v));
        assert_eq!(field_of(moving(pct(dec!(3)), minutes(15))), None);
        assert_eq!(
            field_of(moving(pct(dec!(100)), minutes(15))),
            Some("percent")
        );
        assert_eq!(
            field_of(moving(pct(dec!(3)), chrono::Duration::hours(25))),
            Some("windowSeconds")
        );
        assert_eq!(
            field_of(moving(MoveSize::Amount(dec!(-5)), minutes(15))),
            Some("amount")
        );
        let cross = |fast, slow| Condition::AveragesCross {
            direction: Direction::Up,
            fast,
            slow,
            interval: h1,
        };
        assert_eq!(field_of(cross(sma(50), sma(200))), None);
        assert_eq!(field_of(cross(sma(200), sma(50))), Some("fast.bars"));
        let price_ma = Condition::PriceCrossesAverage {
            direction: Direction::Up,
            average: sma(1),
            interval: h1,
        };
        assert_eq!(field_of(price_ma), Some("bars"));
        let channel = Condition::Channel {
            edge: ChannelEdge::Enter,
            low: "200".parse().unwrap(),
            high: "100".parse().unwrap(),
        };
        assert_eq!(field_of(channel), Some("low"));
    }

    #[test]
    fn a_message_may_use_known_placeholders_only() {
        use crate::Failure;
        let spec = RuleSpec::new(
            "UPBIT:KRW-BTC".parse().unwrap(),
            Condition::Above("100".parse().unwrap()),
            Repeat::Once,
            None,
            None,
            chrono::Utc::now(),
        )
        .unwrap();
        let with = spec
            .clone()
            .with_message(" [{{symbol}}] {{price}} at {{time}} ")
            .unwrap();
        assert_eq!(
            with.message.as_deref(),
            Some("[{{symbol}}] {{price}} at {{time}}")
        );
        assert_eq!(spec.clone().with_message("  ").unwrap().message, None);
        let unknown = spec.clone().with_message("{{volume}} traded").unwrap_err();
        assert_eq!(unknown.field(), Some("message"));
        assert!(
            crate::ErrorChain(&unknown)
                .to_string()
                .contains("{{volume}}"),
            "{unknown}"
        );
        let long = "x".repeat(MAX_MESSAGE_CHARS + 1);
        assert_eq!(
            spec.with_message(&long).unwrap_err().field(),
            Some("message")
        );
    }

    #[test]
    fn frequencies_must_suit_their_condition() {
        let rsi = Condition::Rsi {
            direction: Direction::Up,
            bars: 14,
            level: dec!(70),
            interval: Interval::H1,
        };
        let field = |repeat, condition| {
            check_repeat(repeat, &[condition])
                .err()
                .map(|e| e.field_name())
        };
        assert_eq!(field(Repeat::OncePerBar(Interval::H1), rsi), None);
        assert_eq!(
            field(Repeat::OncePerBarClose(Interval::M5), rsi),
            Some(Some("interval"))
        );
        let above = Condition::Above("100".parse().unwrap());
        assert_eq!(field(Repeat::OncePerBarClose(Interval::M5), above), None);
        let every = |band| Repeat::Every {
            cooldown: chrono::Duration::seconds(60),
            rearm_band: band,
        };
        assert_eq!(field(every(dec!(2.5)), rsi), None);
        assert_eq!(field(every(dec!(0.00001)), rsi), Some(Some("rearmBand")));
        assert_eq!(field(every(dec!(-1)), above), Some(Some("rearmBand")));
        let exit = Condition::Channel {
            edge: ChannelEdge::Exit,
            low: "100".parse().unwrap(),
            high: "110".parse().unwrap(),
        };
        assert_eq!(field(every(dec!(4)), exit), None);
        assert_eq!(field(every(dec!(5)), exit), Some(Some("rearmBand")));
        assert_eq!(
            check_repeat(every(dec!(1)), &[above, rsi])
                .err()
                .and_then(|e| e.field_name()),
            Some("rearmBand")
        );
    }
}
