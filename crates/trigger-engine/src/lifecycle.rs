//! One rule's life on one tick. Both engines call this, so they can only disagree on which rules a
//! tick concerns, never on what a tick does to a rule; that leaves the indexes as the one thing the
//! property tests have to check.
//!
//! The domain's `Condition::level` and `Direction::retreated` panic when decimal arithmetic
//! overflows, which only absurd percentages or bands can cause; the engine must not panic on any
//! rule, so the arithmetic here is checked or saturating and otherwise identical to the domain's.

use crate::{EngineRule, TransitionKind};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use signal_domain::{Condition, Direction, Price, Repeat, RuleState, Timestamp};

/// The absolute level `condition` fires at, as `Condition::level` computes it. `None` for a percent
/// rule without a reference, or whose level does not fit a decimal (no price can reach it).
pub(crate) fn compiled_level(condition: Condition, reference: Option<Price>) -> Option<Decimal> {
    let hundred = Decimal::ONE_HUNDRED;
    let percent_level = |factor: Option<Decimal>| {
        let close = reference?.value();
        close.checked_mul(factor?)?.checked_div(hundred)
    };
    match condition {
        Condition::Above(level) | Condition::Below(level) => Some(level.value()),
        Condition::ChangeUp(pct) => percent_level(hundred.checked_add(pct.value())),
        Condition::ChangeDown(pct) => percent_level(hundred.checked_sub(pct.value())),
    }
}

/// The price a rule must go strictly back past before it may fire again. Saturating keeps the
/// comparison exact: an overflowing threshold lies beyond every valid price on the same side.
pub(crate) fn retreat_threshold(direction: Direction, level: Decimal, band: Decimal) -> Decimal {
    match direction {
        Direction::Up => level.saturating_sub(band),
        Direction::Down => level.saturating_add(band),
    }
}

/// A rule that does not repeat has no band; it can only be cooling if a caller stored it so.
pub(crate) fn rearm_band(repeat: Repeat) -> Decimal {
    match repeat {
        Repeat::Once => Decimal::ZERO,
        Repeat::Every { rearm_band, .. } => rearm_band,
    }
}

pub(crate) fn is_expired(expires_at: Option<Timestamp>, at: Timestamp) -> bool {
    expires_at.is_some_and(|expiry| expiry <= at)
}

/// What firing at `at` leaves the rule in. A cooldown running past the calendar's end never ends.
fn after_firing(repeat: Repeat, at: Timestamp) -> RuleState {
    match repeat {
        Repeat::Once => RuleState::Triggered,
        Repeat::Every { cooldown, .. } => {
            let until =
                at.checked_add_signed(cooldown)
                    .unwrap_or(if cooldown < chrono::Duration::zero() {
                        DateTime::<Utc>::MIN_UTC
                    } else {
                        DateTime::<Utc>::MAX_UTC
                    });
            RuleState::Cooling {
                rearmed: false,
                until,
            }
        }
    }
}

/// Steps 2 to 5 of a tick for a rule that has not expired, given its compiled level. `None` when the
/// tick leaves the rule as it was.
pub(crate) fn step(
    rule: &EngineRule,
    level: Option<Decimal>,
    price: Price,
    at: Timestamp,
) -> Option<TransitionKind> {
    let direction = rule.condition.direction();
    let traded = price.value();
    let mut next = rule.state;
    if let RuleState::Cooling { rearmed, until } = rule.state {
        let rearmed = rearmed
            || level.is_some_and(|level| {
                let threshold = retreat_threshold(direction, level, rearm_band(rule.repeat));
                !direction.reached(traded, threshold)
            });
        next = if rearmed && until <= at {
            RuleState::Armed
        } else {
            RuleState::Cooling { rearmed, until }
        };
    }
    if next == RuleState::Armed {
        if let Some(level) = level.filter(|&level| direction.reached(traded, level)) {
            return Some(TransitionKind::Fired {
                level,
                price,
                next: after_firing(rule.repeat, at),
            });
        }
    }
    (next != rule.state).then_some(TransitionKind::Rearmed { next })
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
                assert_eq!(compiled_level(condition, close), condition.level(close));
                assert_eq!(compiled_level(condition, None), None);
            }
        }
    }

    #[test]
    fn absurd_percentages_leave_the_rule_without_a_level_instead_of_panicking() {
        let close = Price::new(dec!(1000000000000000000)).ok();
        let absurd = Condition::ChangeUp(Percent::new(Decimal::MAX));
        assert_eq!(compiled_level(absurd, close), None);
    }

    #[test]
    fn retreat_matches_the_domain_and_saturates() {
        let (level, band) = (dec!(1000), dec!(100));
        for price in [dec!(899), dec!(900), dec!(1100), dec!(1101)] {
            for direction in [Direction::Up, Direction::Down] {
                let threshold = retreat_threshold(direction, level, band);
                assert_eq!(
                    !direction.reached(price, threshold),
                    direction.retreated(price, level, band)
                );
            }
        }
        assert_eq!(
            retreat_threshold(Direction::Down, level, Decimal::MAX),
            Decimal::MAX
        );
        assert_eq!(
            retreat_threshold(Direction::Up, level, Decimal::MIN),
            Decimal::MAX
        );
    }

    #[test]
    fn a_cooldown_past_the_end_of_time_never_ends() {
        let repeat = Repeat::Every {
            cooldown: chrono::Duration::MAX,
            rearm_band: Decimal::ZERO,
        };
        assert_eq!(
            after_firing(repeat, Utc::now()),
            RuleState::Cooling {
                rearmed: false,
                until: DateTime::<Utc>::MAX_UTC
            }
        );
    }
}
