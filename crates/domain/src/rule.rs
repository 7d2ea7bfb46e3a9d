//! Alert rules: what a user asked to be told about, and where each rule is in its life.

use crate::instrument::InstrumentId;
use crate::price::{Percent, Price};
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

/// Which side of its level a rule fires on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// Fires when the price is at or above the level.
    Up,
    /// Fires when the price is at or below the level.
    Down,
}

impl Direction {
    /// Whether `price` satisfies a rule of this direction at `level` (exact, inclusive).
    pub fn reached(self, price: Decimal, level: Decimal) -> bool {
        match self {
            Direction::Up => price >= level,
            Direction::Down => price <= level,
        }
    }

    /// Whether `price` has gone back strictly past `level` moved away by `band`: the point where a
    /// repeating rule may fire again.
    pub fn retreated(self, price: Decimal, level: Decimal, band: Decimal) -> bool {
        match self {
            Direction::Up => price < level - band,
            Direction::Down => price > level + band,
        }
    }
}

/// What must happen to the price for a rule to fire.
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
}

/// The condition's name on the wire and in storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConditionKind {
    Above,
    Below,
    ChangeUp,
    ChangeDown,
}

impl ConditionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionKind::Above => "ABOVE",
            ConditionKind::Below => "BELOW",
            ConditionKind::ChangeUp => "CHANGE_UP",
            ConditionKind::ChangeDown => "CHANGE_DOWN",
        }
    }
}

impl std::str::FromStr for ConditionKind {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let all = [
            ConditionKind::Above,
            ConditionKind::Below,
            ConditionKind::ChangeUp,
            ConditionKind::ChangeDown,
        ];
        all.into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| RuleError::UnknownCondition(s.to_string()))
    }
}

impl Condition {
    /// Builds a condition from its kind and its number: a price for ABOVE/BELOW, a percentage for
    /// CHANGE_UP/CHANGE_DOWN.
    pub fn from_parts(kind: ConditionKind, value: Decimal) -> Result<Self, RuleError> {
        match kind {
            ConditionKind::Above => Ok(Condition::Above(Price::new(value)?)),
            ConditionKind::Below => Ok(Condition::Below(Price::new(value)?)),
            ConditionKind::ChangeUp | ConditionKind::ChangeDown => {
                if value <= Decimal::ZERO || value > Decimal::from(1000) {
                    return Err(RuleError::Percent(value));
                }
                if kind == ConditionKind::ChangeDown && value >= Decimal::ONE_HUNDRED {
                    return Err(RuleError::Percent(value));
                }
                let pct = Percent::new(value);
                Ok(match kind {
                    ConditionKind::ChangeUp => Condition::ChangeUp(pct),
                    _ => Condition::ChangeDown(pct),
                })
            }
        }
    }

    pub fn kind(self) -> ConditionKind {
        match self {
            Condition::Above(_) => ConditionKind::Above,
            Condition::Below(_) => ConditionKind::Below,
            Condition::ChangeUp(_) => ConditionKind::ChangeUp,
            Condition::ChangeDown(_) => ConditionKind::ChangeDown,
        }
    }

    /// The number the user gave: the level or the percentage.
    pub fn value(self) -> Decimal {
        match self {
            Condition::Above(p) | Condition::Below(p) => p.value(),
            Condition::ChangeUp(p) | Condition::ChangeDown(p) => p.value(),
        }
    }

    pub fn direction(self) -> Direction {
        match self {
            Condition::Above(_) | Condition::ChangeUp(_) => Direction::Up,
            Condition::Below(_) | Condition::ChangeDown(_) => Direction::Down,
        }
    }

    pub fn is_relative(self) -> bool {
        matches!(self, Condition::ChangeUp(_) | Condition::ChangeDown(_))
    }

    /// The absolute price level this condition fires at, given the instrument's previous close.
    /// Percent conditions have no level until a previous close is known.
    pub fn level(self, prev_close: Option<Price>) -> Option<Decimal> {
        let hundred = Decimal::ONE_HUNDRED;
        match self {
            Condition::Above(p) | Condition::Below(p) => Some(p.value()),
            Condition::ChangeUp(pct) => {
                prev_close.map(|c| c.value() * (hundred + pct.value()) / hundred)
            }
            Condition::ChangeDown(pct) => {
                prev_close.map(|c| c.value() * (hundred - pct.value()) / hundred)
            }
        }
    }
}

/// Whether a rule fires once or keeps watching.
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
    pub repeat: Repeat,
    pub expires_at: Option<Timestamp>,
    pub note: Option<String>,
}

pub const MAX_NOTE_CHARS: usize = 500;
pub const MAX_COOLDOWN_DAYS: i64 = 30;

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
        if let Repeat::Every {
            cooldown,
            rearm_band,
        } = repeat
        {
            if cooldown < chrono::Duration::zero()
                || cooldown > chrono::Duration::days(MAX_COOLDOWN_DAYS)
            {
                return Err(RuleError::Cooldown);
            }
            if rearm_band < Decimal::ZERO {
                return Err(RuleError::RearmBand(rearm_band));
            }
        }
        Ok(Self {
            instrument,
            condition,
            repeat,
            expires_at,
            note,
        })
    }
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRule {
    pub id: RuleId,
    pub user: UserId,
    pub spec: RuleSpec,
    pub state: RuleState,
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
    #[error("unknown condition `{0}` (expected ABOVE, BELOW, CHANGE_UP or CHANGE_DOWN)")]
    UnknownCondition(String),
    #[error("the expiry must be in the future")]
    ExpiryInPast,
    #[error("the note may hold at most {MAX_NOTE_CHARS} characters")]
    NoteTooLong,
    #[error("the cooldown must be between 0 seconds and {MAX_COOLDOWN_DAYS} days")]
    Cooldown,
    #[error("the re-arm band must not be negative, got {0}")]
    RearmBand(Decimal),
}

impl crate::Failure for RuleError {
    fn kind(&self) -> crate::FailureKind {
        crate::FailureKind::Invalid
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn levels_are_exact_and_inclusive() {
        let above = Condition::from_parts(ConditionKind::Above, dec!(71900)).unwrap();
        let level = above.level(None).unwrap();
        assert!(above.direction().reached(dec!(71900), level));
        assert!(!above.direction().reached(dec!(71899), level));
    }

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
    }

    #[test]
    fn retreat_is_strict() {
        assert!(!Direction::Up.retreated(dec!(900), dec!(1000), dec!(100)));
        assert!(Direction::Up.retreated(dec!(899), dec!(1000), dec!(100)));
        assert!(Direction::Down.retreated(dec!(1001), dec!(1000), dec!(0)));
    }
}
